"""Frame preparation before the pyramid: region checks and block averaging."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .sources.base import Roi

__all__ = ["check_roi", "block_mean", "prepared_shape"]


def check_roi(roi: Roi | None, *, width: int, height: int) -> Roi:
    """Validate a region of interest against the frame size; None means the whole frame.

    Examples
    --------
    >>> check_roi(None, width=64, height=48)
    (0, 0, 64, 48)
    >>> check_roi((60, 0, 10, 10), width=64, height=48)
    Traceback (most recent call last):
    ...
    visualmic.errors.InputError: region of interest x=60 y=0 w=10 h=10 lies outside the 64x48 frame
    """
    if roi is None:
        return (0, 0, width, height)
    x, y, w, h = roi
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise InputError(f"region of interest x={x} y={y} w={w} h={h} lies outside the {width}x{height} frame")
    return roi


def prepared_shape(roi: Roi, downsample: int) -> tuple[int, int]:
    """Size (rows, cols) of frames after cropping to ``roi`` and block averaging."""
    return roi[3] // downsample, roi[2] // downsample


def block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor x factor`` blocks (remainder rows/cols dropped).

    Examples
    --------
    >>> block_mean(np.arange(16, dtype=np.float32).reshape(1, 4, 4), 2)[0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    if factor == 1:
        return frames
    n, rows, cols = frames.shape
    r, c = rows // factor, cols // factor
    view = frames[:, : r * factor, : c * factor].reshape(n, r, factor, c, factor)
    return view.mean(axis=(2, 4), dtype=np.float32)
