"""Frames held in numpy arrays: in memory, or ``.npy`` files memory-mapped."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import FrameSource, Meta, grey_from_channels

__all__ = ["ArraySource", "open_npy", "release_pages"]


def _bit_depth(dtype: np.dtype) -> int:
    if dtype == np.bool_:
        return 1
    return int(dtype.itemsize * 8)


class ArraySource(FrameSource):
    """Frames from an array ``(frames, rows, cols)`` or ``(frames, rows, cols, channels)``.

    The array may be a memory map: chunks are read one at a time, and only the
    region of interest is touched.

    Examples
    --------
    >>> src = ArraySource(np.zeros((10, 16, 16), np.uint8))
    >>> src.meta.frame_count, src.meta.bit_depth
    (10, 8)
    >>> [(i, f.shape) for i, f in src.chunks(chunk_frames=4)]
    [(0, (4, 16, 16)), (4, (4, 16, 16)), (8, (2, 16, 16))]
    """

    def __init__(self, frames: np.ndarray, *, path: str = "<array>", format: str = "array") -> None:
        frames = np.asanyarray(frames)
        if frames.ndim == 4 and frames.shape[-1] in (1, 2, 3, 4):
            self._channels = True
        elif frames.ndim == 3:
            self._channels = False
        else:
            raise InputError(
                f"{path}: frames must have shape (frames, rows, cols) or (frames, rows, cols, channels), "
                f"got {frames.shape}"
            )
        if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_) or np.iscomplexobj(frames):
            raise InputError(f"{path}: frames must be real numbers, got dtype {frames.dtype}")
        self._frames = frames
        self.meta = Meta(
            path=path,
            format=format,
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            bit_depth=_bit_depth(frames.dtype),
            frame_count=int(frames.shape[0]),
            frame_count_exact=True,
            lossy=False,
        )

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        total = self._frames.shape[0]
        stop = total if stop is None else min(stop, total)
        for first in range(max(start, 0), stop, chunk_frames):
            last = min(first + chunk_frames, stop)
            block = grey_from_channels(self._frames[first:last, rows, cols], self._channels)
            self._release(first, last)
            yield first, block

    def _release(self, first: int, last: int) -> None:
        if isinstance(self._frames, np.memmap) and self._frames.flags.c_contiguous:
            frame_bytes = self._frames.strides[0]
            release_pages(self._frames, self._frames.offset + first * frame_bytes,
                          self._frames.offset + last * frame_bytes)


def release_pages(mapped: np.memmap, start_byte: int, end_byte: int) -> None:
    """Drop the whole pages of a memory map between two file offsets from this process's memory.

    Sources call it on what they have read, so that resident memory stays flat
    however long the file (the pages remain in the system's page cache).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     np.arange(4096, dtype=np.uint8).tofile(f.name)
    ...     release_pages(np.memmap(f.name, np.uint8, mode="r"), 0, 4096)
    """
    mapping = getattr(mapped, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise"):
        return
    mapped_from = mapped.offset - mapped.offset % mmap.ALLOCATIONGRANULARITY  # where the mapping starts
    page = mmap.PAGESIZE
    start = -(-(start_byte - mapped_from) // page) * page  # whole pages inside the range only
    end = ((end_byte - mapped_from) // page) * page
    if end > start:
        mapping.madvise(mmap.MADV_DONTNEED, start, end - start)


def open_npy(path: Path) -> ArraySource:
    """Open a ``.npy`` file memory-mapped (nothing is loaded until chunks are read)."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    return ArraySource(frames, path=str(path), format="npy")
