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
from .phantom import open_cine
from .photron import PHOTRON_SUFFIXES, open_photron
from .video import VideoSource

__all__ = ["open_source", "FrameSource", "Meta", "Roi", "parse_roi", "ArraySource", "VideoSource"]


def open_source(source: str | Path | np.ndarray | FrameSource) -> FrameSource:
    """Open frames from a path (video, camera file, ``.npy``, TIFF, folder of images) or an array.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        What to read. Arrays are ``(frames, rows, cols[, channels])``. Photron
        ``.cih``/``.cihx``/``.mraw`` and Phantom ``.cine`` files are read by
        their own readers; other files by FFmpeg (PyAV).

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
    if suffix in PHOTRON_SUFFIXES:
        return open_photron(path)
    if suffix == ".cine":
        return open_cine(path)
    return VideoSource(path)
