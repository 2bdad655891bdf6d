"""Frames stored as images: a folder of PNG/TIFF files, or one multi-page TIFF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ..errors import InputError
from .base import FrameSource, Meta, grey_from_channels, stored_grey

__all__ = ["ImageFolderSource", "TiffStackSource", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _natural_key(path: Path) -> list[object]:
    """Sort key that puts frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _read_image(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return tifffile.imread(path)
        with Image.open(path) as img:
            return np.asarray(img)
    except Exception as exc:  # PIL and tifffile raise many kinds
        raise InputError(f"{path}: cannot read image ({exc})") from None


def _as_grey(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] in (1, 2, 3, 4):
        return grey_from_channels(image, channel_axis=True)
    if image.ndim != 2:
        raise InputError(f"{path}: expected a 2-D grey or colour image, got shape {image.shape}")
    return stored_grey(image)


class ImageFolderSource(FrameSource):
    """Frames from a folder of PNG or TIFF files, in natural name order.

    Examples
    --------
    >>> src = ImageFolderSource(Path("frames/"))  # doctest: +SKIP
    >>> src.meta.frame_count  # doctest: +SKIP
    2200
    """

    def __init__(self, folder: Path) -> None:
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise InputError(f"{folder}: the folder holds no PNG or TIFF frames")
        first = _read_image(files[0])
        self._files = files
        self._shape = first.shape[:2]
        self.meta = Meta(
            path=str(folder),
            format="image-folder",
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            bit_depth=int(first.dtype.itemsize * 8),
            frame_count=len(files),
            frame_count_exact=True,
            lossy=False,
        )

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        stop = len(self._files) if stop is None else min(stop, len(self._files))
        for first in range(max(start, 0), stop, chunk_frames):
            block = []
            for path in self._files[first : min(first + chunk_frames, stop)]:
                image = _read_image(path)
                if image.shape[:2] != self._shape:
                    raise InputError(
                        f"{path}: frame size {image.shape[:2]} differs from the first frame's {self._shape}")
                block.append(_as_grey(image[rows, cols], path))
            yield first, np.stack(block)


class TiffStackSource(FrameSource):
    """Frames from the pages of one (multi-page) TIFF file, read page by page."""

    def __init__(self, path: Path) -> None:
        try:
            self._tiff = tifffile.TiffFile(path)
            pages = self._tiff.pages
            first = pages[0]
        except Exception as exc:
            raise InputError(f"{path}: not a readable TIFF file ({exc})") from None
        self._path = path
        self._count = len(pages)
        self._shape = tuple(first.shape[:2])
        self.meta = Meta(
            path=str(path),
            format="tiff",
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            bit_depth=int(first.bitspersample),
            frame_count=self._count,
            frame_count_exact=True,
            lossy=first.compression not in (1, 5, 8, 32946, 32773),  # none, LZW, deflate, packbits
        )

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        stop = self._count if stop is None else min(stop, self._count)
        for first in range(max(start, 0), stop, chunk_frames):
            block = []
            for index in range(first, min(first + chunk_frames, stop)):
                try:
                    image = self._tiff.pages[index].asarray()
                except Exception as exc:
                    raise InputError(f"{self._path}: cannot read page {index} ({exc})") from None
                if image.shape[:2] != self._shape:
                    raise InputError(f"{self._path}: page {index} has size {image.shape[:2]}, not {self._shape}")
                block.append(_as_grey(image[rows, cols], self._path))
            yield first, np.stack(block)

    def close(self) -> None:
        self._tiff.close()
