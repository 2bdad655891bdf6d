"""What a frame offers before any motion is measured: texture, noise, and the best motion noise they allow.

Used by ``visualmic inspect``: where the texture is (motion can only be seen
where the image has gradients), how noisy the camera is (from the differences
of consecutive frames), and the per-frame motion noise a perfect estimator
would reach with that texture and that noise (the Cramér-Rao bound of a rigid
shift).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

__all__ = ["texture_energy", "suggest_roi", "temporal_noise", "motion_noise_floor_px"]


def texture_energy(frame: np.ndarray, *, smoothing_px: float = 3.0) -> np.ndarray:
    """Local gradient energy ``|grad I|**2``, smoothed by a Gaussian.

    Parameters
    ----------
    frame : ndarray
        Grey frame.
    smoothing_px : float
        Standard deviation of the smoothing, pixels.

    Examples
    --------
    >>> frame = np.zeros((32, 32)); frame[:, 16:] = np.random.default_rng(0).random((32, 16))
    >>> energy = texture_energy(frame)
    >>> bool(energy[:, 24:].mean() > 10 * energy[:, :8].mean())
    True
    """
    gy, gx = np.gradient(np.asarray(frame, dtype=np.float64))
    return scipy.ndimage.gaussian_filter(gy**2 + gx**2, smoothing_px)


def suggest_roi(energy: np.ndarray, *, threshold: float = 0.05) -> tuple[int, int, int, int] | None:
    """The box around the textured part of the frame, ``(x, y, width, height)``, or None.

    Pixels whose texture energy exceeds ``threshold`` times the 99th percentile
    count as textured; the box holds all of them (untextured borders cut off).
    Width and height are rounded up to even numbers within the frame.

    Examples
    --------
    >>> energy = np.zeros((40, 60)); energy[10:20, 30:50] = 1.0
    >>> suggest_roi(energy)
    (30, 10, 20, 10)
    """
    top = float(np.percentile(energy, 99))
    if top <= 0:
        return None
    rows = np.flatnonzero((energy > threshold * top).any(axis=1))
    cols = np.flatnonzero((energy > threshold * top).any(axis=0))
    y, x = int(rows[0]), int(cols[0])
    height, width = int(rows[-1]) - y + 1, int(cols[-1]) - x + 1
    height = min(height + height % 2, energy.shape[0] - y)
    width = min(width + width % 2, energy.shape[1] - x)
    return x, y, width, height


def temporal_noise(frames: np.ndarray) -> float:
    """Camera noise (std, grey levels) from consecutive frames: a robust spread of their differences / sqrt(2).

    Motion of a fraction of a pixel changes the differences little next to the
    noise; the median absolute deviation ignores the pixels it does change.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> frames = 100 + rng.normal(0, 2.0, (8, 64, 64))
    >>> round(temporal_noise(frames), 1)
    2.0
    """
    if frames.shape[0] < 2:
        raise ValueError("at least two frames are needed")
    differences = np.diff(np.asarray(frames, dtype=np.float64), axis=0).reshape(-1)
    spread = 1.4826 * np.median(np.abs(differences - np.median(differences)))
    if spread == 0:  # quantised, nearly static frames: fall back on the standard deviation
        spread = float(np.std(differences))
    return float(spread / np.sqrt(2))


def motion_noise_floor_px(frame: np.ndarray, noise: float) -> tuple[float, float]:
    """Best per-frame motion noise (px, std) for a rigid shift along x and along y.

    ``1 / sqrt(sum (dI/dx)**2 / sigma**2)``: the Cramér-Rao bound with white
    noise of std ``noise`` (finite differences; frame edges included).

    Examples
    --------
    >>> x = np.arange(64)
    >>> frame = np.tile(100 * np.sin(2 * np.pi * x / 16), (64, 1))
    >>> floor_x, floor_y = motion_noise_floor_px(frame, 1.0)
    >>> floor_x < 1e-3, floor_y
    (True, inf)
    """
    gy, gx = np.gradient(np.asarray(frame, dtype=np.float64))

    def floor(gradient: np.ndarray) -> float:
        information = float(np.sum(gradient**2)) / max(noise, 1e-12) ** 2
        return float(1 / np.sqrt(information)) if information > 1e-12 else float("inf")

    return floor(gx), floor(gy)
