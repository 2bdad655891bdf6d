"""Frame sources: open a file, folder or array and stream grey frames in chunks.

:func:`open_source` picks the reader from what it is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .arrays import ArraySource, open_npy
from .base import FrameSource, Meta, Roi, parse_roi
from .images import ImageFolderSource, TiffStackSource
from .video import VideoSource

__all__ = ["open_source", "FrameSource", "Meta", "Roi", "parse_roi", "ArraySource", "VideoSource"]


def open_source(source: str | Path | np.ndarray | FrameSource) -> FrameSource:
    """Open frames from a path (video, ``.npy``, TIFF, folder of images) or an array.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        What to read. Arrays are ``(frames, rows, cols[, channels])``.

    Returns
    -------
    FrameSource

    Raises
    ------
    InputError
        When the path does not exist or cannot be read as frames.

    Examples
    --------
    >>> src = open_source(np.zeros((40, 32, 32), np.uint8))
    >>> src.meta.width, src.meta.frame_count
    (32, 40)
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, np.ndarray):
        return ArraySource(source)
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return ImageFolderSource(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return open_npy(path)
    if suffix in (".tif", ".tiff"):
        return TiffStackSource(path)
    return VideoSource(path)
