"""What a lossy codec did to the motion: the frames it copied.

Inter-frame codecs (H.264, HEVC, MPEG-4) encode a frame whose change from its
reference is below their quantiser as a copy of it: the decoded frame is
bit-for-bit the previous one, and whatever sub-pixel motion happened in between
is not in the file. Identical frames give identical measurements, so copies
are found from the measurements alone, on any source, at no cost.
"""

from __future__ import annotations

import numpy as np

__all__ = ["repeated_frames"]


def repeated_frames(measurements: np.ndarray) -> np.ndarray:
    """Which frames measure exactly as the one before them (a codec copied the frame).

    Parameters
    ----------
    measurements : ndarray
        Per-frame measurements, frames first (any trailing shape).

    Returns
    -------
    ndarray
        ``(frames,)`` bool; the first frame is never a repeat.

    Examples
    --------
    >>> repeated_frames(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.5], [1.0, 2.5]]))
    array([False,  True, False,  True])
    """
    values = np.asarray(measurements).reshape(len(measurements), -1)
    return np.concatenate([[False], np.all(values[1:] == values[:-1], axis=1)])
