"""Whether a video's scene continues across the frame's edges: the seam test.

An FFT joins each frame's opposite edges. In a camera's view of a larger
scene the join is a seam between unrelated content that stays put while the
scene moves; the pyramid then analyses each frame's periodic component
(:class:`visualmic.pyramid.SteerablePyramid`, ``periodic=True``), in which the
seam neither moves nor counts. A simulation that shifts a texture
periodically (by FFT) moves its seam with the scene: there the seam carries
motion information, and the frames are best analysed as they are.

:func:`seam_gain` tells the two apart from the data: the motion that the
strips along the seam show under the periodic model, regressed on the
scene's recovered motion.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from .pyramid import edge_strips, smooth_component_factors, smooth_component_spectrum

__all__ = ["seam_gain", "seam_gain_of_strips", "WRAPPING_SEAM_GAIN", "STRIP_PX"]

#: The seam gain above which a scene is taken to wrap (about 1 where it does, 0 where it does not).
WRAPPING_SEAM_GAIN = 0.5
#: Width of the strips along the edges that the seam test reads.
STRIP_PX = 3


def seam_gain(frames: np.ndarray, displacement_px: np.ndarray, *, direction_deg: float,
              strip_px: int = STRIP_PX) -> float:
    """How far the seam where opposite edges meet moves with the scene.

    The mean frame is split into its periodic and smooth components (Moisan;
    :func:`visualmic.pyramid.smooth_component_spectrum`): the smooth one holds
    the seam. A shift ``d`` along ``direction_deg`` changes the frame by ``-d``
    times the periodic component's derivative, plus, if the seam moves with the
    scene, ``-d`` times the smooth component's (both derivatives spectral). The
    two coefficients are fitted jointly on strips of ``strip_px`` pixels along
    the four edges, where the seam's share is largest, with ``d`` the scene's
    recovered displacement: the smooth component's is about 1 where the seam
    moves with the scene (a periodically shifted scene) and about 0 where it
    stays put (a view of a larger scene, whose edges show what lies beyond them).

    Parameters
    ----------
    frames : ndarray
        ``(n, rows, cols)`` frames as the recovery analysed them.
    displacement_px : ndarray
        The scene's displacement along ``direction_deg`` on those frames (at
        least ``n`` samples), high-passed (the sound): only what varies at audio
        rates is compared.
    direction_deg : float
        Direction of the motion in degrees from the x axis (along a row) towards the
        top of the frame (rows grow downwards), as :func:`visualmic.combine.project_band_motion`
        gives it.
    strip_px : int
        Width of the strips along the edges.

    Returns
    -------
    float
        The smooth component's coefficient (NaN where the fit is undetermined).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> texture = np.cumsum(rng.standard_normal((64, 64)), axis=1)  # its edges do not match
    >>> d = 0.05 * np.sin(np.arange(400) * 2.1)
    >>> k = np.fft.fftfreq(64)
    >>> shifted = np.fft.ifft2(np.fft.fft2(texture)[None] * np.exp(-2j * np.pi * k[None, None, :] * d[:, None, None]))
    >>> round(seam_gain(shifted.real, d, direction_deg=0.0), 1)
    1.0
    >>> view = np.stack([texture[:, 1:33] * (1 - s) + texture[:, 0:32] * s for s in d])  # no wrap: linear shift
    >>> abs(seam_gain(view, d, direction_deg=0.0)) < 0.5
    True
    """
    frames = np.asarray(frames, dtype=np.float64)
    strips = edge_strips(frames.shape[1:], strip_px)
    return seam_gain_of_strips(frames.mean(axis=0), frames[:, strips], displacement_px,
                               direction_deg=direction_deg, strip_px=strip_px)


def seam_gain_of_strips(mean_frame: np.ndarray, strip_values: np.ndarray, displacement_px: np.ndarray, *,
                        direction_deg: float, strip_px: int = STRIP_PX) -> float:
    """:func:`seam_gain` from what a stream of frames keeps: their mean and every frame's strip pixels.

    Parameters
    ----------
    mean_frame : ndarray
        ``(rows, cols)`` mean of the frames.
    strip_values : ndarray
        ``(n, pixels)``: each frame's pixels where :func:`visualmic.pyramid.edge_strips` (``shape, strip_px``)
        is true, in order.
    displacement_px, direction_deg, strip_px
        As :func:`seam_gain` takes them.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> frames = rng.normal(size=(50, 16, 16))
    >>> strips = edge_strips((16, 16), 3)
    >>> d = rng.normal(size=50)
    >>> whole = seam_gain(frames, d, direction_deg=30.0)
    >>> whole == seam_gain_of_strips(frames.mean(axis=0), frames[:, strips], d, direction_deg=30.0)
    True
    """
    mean_frame = np.asarray(mean_frame, dtype=np.float64)
    shape = mean_frame.shape
    angle = np.deg2rad(direction_deg)
    frequency = np.cos(angle) * fft.rfftfreq(shape[1])[None, :] - np.sin(angle) * fft.fftfreq(shape[0])[:, None]
    spectrum = fft.rfft2(mean_frame)
    smooth = smooth_component_spectrum(mean_frame[None], smooth_component_factors(shape))[0]
    strips = edge_strips(shape, strip_px)
    kernels = np.stack([fft.irfft2(part * (2j * np.pi * frequency), s=shape)[strips]
                        for part in (spectrum - smooth, smooth)])  # (periodic, smooth) derivatives, (2, pixels)
    changes = np.asarray(strip_values, dtype=np.float64) - mean_frame[strips]
    sums = -changes @ kernels.T  # (n, 2)
    sound = np.asarray(displacement_px, dtype=np.float64)[: len(changes)]
    sound = sound - sound.mean()
    normal = (kernels @ kernels.T) * float(sound @ sound)
    if not np.linalg.cond(normal) < 1e12:
        return float("nan")
    return float(np.linalg.solve(normal, sound @ sums)[1])
