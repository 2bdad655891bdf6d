"""Soft dequantisation of JPEG-coded frames (MJPEG): every coefficient at its conditional mean.

A JPEG encoder rounds each 8 x 8 block's DCT coefficient ``x`` to a multiple of
its step ``q`` (the quantisation table of the frame's DQT segment), and a decoder
puts it back at ``level * q``. At the quantiser scales that high-speed MJPEG is
written at, the steps of the lowest spatial frequencies are 50-85 grey levels,
25-40 times the camera noise: a coefficient keeps its level in most frames and
flips to the next one only when the motion carries it close to a step's edge.
Taken at ``level * q``, such a flip is a jump of a whole step, as if the motion
had been enormous, and coefficients that flip often and rarely count alike.

Over a group of frames, the levels a coefficient takes say where its value lies
between the steps: with ``x ~ N(a, tau^2)``, the fraction of frames at each
level fixes ``a``. The decoded value is then replaced by ``E[x | level]``, the
mean of that normal law over the level's cell: a flip becomes the size the noise
makes it, and each coefficient counts by how much its levels say about the motion
(to first order this is the efficient use of the quantised values: their Fisher
information, which plain decoding wastes). ``tau`` is the camera noise, estimated
from the levels of all coefficients at once, or more where the motion itself
spreads a coefficient over several steps (the levels' own spread says so).

The law is the same for every frame of a group, so it only describes a
coefficient whose motion is small against the noise: where the motion carries
coefficients over the steps, the conditional mean bends the motion towards the
law's centre (a melody at 0.3 px: 22.5 -> 20.8 dB; at 1 px 30.9 -> 23.1).
:func:`change_to_noise_ratio` measures how large the motion is against the noise,
and a source applies the soft values to a whole file or not at all
(:data:`MAX_CHANGE_TO_NOISE`, :data:`MAX_SHIFT_RMS_PX`): mixing them with decoded
values modulates the sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dctn, idctn
from scipy.special import ndtr

__all__ = ["jpeg_luma_quantiser", "block_levels", "estimate_level_noise", "explained_change", "change_to_noise_ratio",
           "soft_dequantize", "fit_coefficient_law", "CoefficientLaw", "MIN_FRAMES", "GROUP_FRAMES", "GROUP_BYTES",
           "MAX_CHANGE_TO_NOISE", "MAX_SHIFT_RMS_PX"]

BLOCK = 8
MIN_FRAMES = 128  # frames whose levels set each coefficient's law (fewer: too coarse a fraction)
GROUP_FRAMES = 1024  # frames per law (the rarer a flip, the more frames its fraction needs)
GROUP_BYTES = 256e6  # float32 frames per law at most (larger frames: fewer per law, not fewer than MIN_FRAMES)
# Largest change_to_noise_ratio (over a file's groups) for soft values: the rigid melody scene (128²) at
# FFmpeg's default MJPEG gives 0.002, 0.005, 0.013, 0.026 at 0.02, 0.05, 0.1, 0.15 px (soft: +1.3, +1.4,
# +1.4, +1.0 dB), but 0.048 at 0.3 px and 0.057 at 1 px, where the motion inflates the noise's estimate ...
MAX_CHANGE_TO_NOISE = 0.05
# ... so the rms shift decides there: 0.013-0.033 px from 0.05 to 0.15 px, 0.065 at 0.3 px (where soft
# values would lose 1.7 dB), 0.21 at 1 px (7.8 dB).
MAX_SHIFT_RMS_PX = 0.05
NOISE_COEFFICIENTS = 4000  # coefficients the noise's likelihood is summed over
BLEND_FRAMES = 256  # frames over which one group's law passes to the next's
_BATCH = 8192  # coefficients dequantised at a time (bounds the temporaries)
_NEIGHBOURS = np.arange(-6, 7)  # levels around a coefficient's mean that its law can reach
_SIDE = np.arange(6)  # boundaries counted on either side of it
_ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63])


def jpeg_luma_quantiser(data: bytes) -> np.ndarray | None:
    """The luma quantisation table of a JPEG image (one MJPEG packet), in natural order.

    Parameters
    ----------
    data : bytes
        The JPEG stream, from its SOI marker.

    Returns
    -------
    ndarray or None
        ``(8, 8)`` float steps (row: vertical frequency), or None when the stream has no
        baseline, extended or progressive frame header or no table for its first component.

    Examples
    --------
    >>> table = bytes([0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0]) + bytes(range(1, 65))
    >>> frame = bytes([0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0])
    >>> jpeg_luma_quantiser(table + frame)[0, :3].tolist()  # zig-zag order undone
    [1.0, 2.0, 6.0]
    """
    tables: dict[int, np.ndarray] = {}
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xDB:  # DQT: one or more tables
            at = 0
            while at < len(segment):
                wide, slot = segment[at] >> 4, segment[at] & 15
                size = 128 if wide else 64
                values = np.frombuffer(segment[at + 1:at + 1 + size], dtype=">u2" if wide else "u1")
                if values.size != 64:
                    return None
                natural = np.empty(64)
                natural[_ZIGZAG] = values
                tables[slot] = natural.reshape(BLOCK, BLOCK)
                at += 1 + size
        elif marker in (0xC0, 0xC1, 0xC2):  # frame header: the first component's table
            return tables.get(segment[8] & 15) if len(segment) >= 9 else None
        elif marker == 0xDA:  # scan before any frame header
            return None
        pos += 2 + length
    return None


def _blocks(frames: np.ndarray) -> np.ndarray:
    """``(n, H, W)`` -> ``(n, H/8, W/8, 8, 8)`` orthonormal block DCT (JPEG's, level-shifted by 128)."""
    n, height, width = frames.shape
    tiles = (frames - np.float32(128)).reshape(n, height // BLOCK, BLOCK, width // BLOCK, BLOCK).swapaxes(2, 3)
    return dctn(tiles, axes=(-2, -1), norm="ortho")


def _unblocks(coefficients: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_blocks`."""
    n, rows, cols = coefficients.shape[:3]
    tiles = idctn(coefficients, axes=(-2, -1), norm="ortho").swapaxes(2, 3)
    return tiles.reshape(n, rows * BLOCK, cols * BLOCK) + np.float32(128)


def block_levels(frames: np.ndarray, quantiser: np.ndarray) -> np.ndarray:
    """Quantisation levels of decoded JPEG frames: ``round(DCT(block) / step)``.

    The decoder's rounding to whole grey levels moves a coefficient by about 0.3,
    far less than half a step, so the levels come back exactly.

    Parameters
    ----------
    frames : ndarray
        ``(n, H, W)`` decoded grey frames, H and W multiples of 8.
    quantiser : ndarray
        ``(8, 8)`` steps, see :func:`jpeg_luma_quantiser`.

    Returns
    -------
    ndarray
        ``(n, H/8, W/8, 8, 8)`` int32 levels.

    Examples
    --------
    >>> flat = np.full((1, 8, 8), 128.0 + 24.0)  # DC coefficient 8 x 24 = 192
    >>> int(block_levels(flat, np.full((8, 8), 16.0))[0, 0, 0, 0, 0])
    12
    """
    return np.rint(_blocks(np.asarray(frames, dtype=np.float32)) / quantiser.astype(np.float32)).astype(np.int32)


def _level_moments(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per coefficient: lowest and highest level, mean level, level variance (over frames)."""
    low, high = levels.min(0), levels.max(0)
    mean = levels.sum(0, dtype=np.int64) / len(levels)
    var = np.maximum((levels * levels).sum(0, dtype=np.int64) / len(levels) - mean**2, 0.0)
    return low, high, mean, var


def _cell_probabilities(centre: np.ndarray, spread: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """P(level = k) for ``x / step ~ N(centre, spread^2)`` (all in steps)."""
    s = spread[..., None]
    return ndtr((ks + 0.5 - centre[..., None]) / s) - ndtr((ks - 0.5 - centre[..., None]) / s)


def _expected_level(centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``E[round(x)]`` for ``x ~ N(centre, spread^2)`` (in steps): the level below the centre, plus the
    chance of passing each boundary above it, less that of passing each one below (six either side)."""
    base = np.floor(centre)
    ups = ndtr((centre[..., None] - (base[..., None] + 0.5 + _SIDE)) / spread[..., None]).sum(-1)
    downs = ndtr((base[..., None] - 0.5 - _SIDE - centre[..., None]) / spread[..., None]).sum(-1)
    return base + ups - downs


def _fit_centres(mean: np.ndarray, spread: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The centre (in steps) whose normal law of the given spread has the observed mean level (bisection:
    the expected level grows with the centre), to 1/10,000 of a step."""
    below, above = low - 0.5, high + 0.5
    for _ in range(int(np.ceil(np.log2(max(float(np.max(above - below, initial=1.0)), 1.0) * 1e4)))):
        mid = 0.5 * (below + above)
        low_side = _expected_level(mid, spread) < mean
        below = np.where(low_side, mid, below)
        above = np.where(low_side, above, mid)
    return 0.5 * (below + above)


def estimate_level_noise(levels: np.ndarray, quantiser: np.ndarray) -> float:
    """Camera noise (grey levels, per pixel) that best explains how often coefficients change level.

    A coefficient whose clean value lies anywhere in its cell (uniformly: true of
    coefficients a step or more from zero) changes level in a fraction of frames
    that depends on its distance to the cell's edges; over many coefficients, how
    many change level, and how often, fixes the noise. Maximum marginal likelihood
    (the position in the cell integrated out), the noise common to all (white pixel
    noise is white on an orthonormal DCT). Motion widens the levels: the estimate is
    then too large, never too small.

    Parameters
    ----------
    levels : ndarray
        ``(n, ...)`` levels over frames, see :func:`block_levels`.
    quantiser : ndarray
        ``(8, 8)`` steps.

    Returns
    -------
    float
        The noise, in grey levels; NaN when no coefficient is a step or more from zero.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.uniform(-100, 100, size=(4, 4, 8, 8))
    >>> levels = np.rint((clean + 2.0 * rng.standard_normal((300, 4, 4, 8, 8))) / 16.0).astype(np.int32)
    >>> round(float(estimate_level_noise(levels, np.full((8, 8), 16.0))), 1)
    2.0
    """
    flat = levels.reshape(len(levels), -1)
    # A spread-out subset of the coefficients: the likelihood is a sum over them.
    subset = np.unique(np.linspace(0, flat.shape[1] - 1, 4 * NOISE_COEFFICIENTS).astype(int))
    flat = flat[:, subset]
    steps = np.broadcast_to(np.asarray(quantiser, dtype=np.float64), levels.shape[1:]).ravel()[subset]
    modal = np.rint(np.median(flat, axis=0)).astype(np.int64)
    eligible = (np.abs(modal) >= 1) & (np.abs(flat - modal) <= 2).all(axis=0)
    chosen = np.flatnonzero(eligible)
    if chosen.size == 0:
        return float("nan")
    chosen = chosen[np.linspace(0, chosen.size - 1, min(chosen.size, NOISE_COEFFICIENTS)).astype(int)]
    offsets = np.arange(-2, 3)
    counts = np.stack([(flat[:, chosen] - modal[chosen] == k).sum(0) for k in offsets], axis=1)  # (m, 5)
    # The clean value's place in its cell (in steps), dense near the edges where the levels change,
    # with trapezoid weights: a uniform law over the cell.
    depth = np.geomspace(1e-4, 0.5, 48)
    width = np.gradient(depth)
    positions = np.concatenate([depth - 0.5, 0.5 - depth])
    log_weights = np.log(np.concatenate([width, width]) / (2 * width.sum()))

    def log_likelihood(noise: float) -> float:
        spread = (noise / steps[chosen])[:, None, None]
        edges = offsets[None, None, :] - positions[None, :, None]  # (1, places, 5): cell k about the place
        p = ndtr((edges + 0.5) / spread) - ndtr((edges - 0.5) / spread)
        per_place = (counts[:, None, :] * np.log(np.maximum(p, 1e-300))).sum(-1) + log_weights  # (m, places)
        top = per_place.max(1)
        return float(np.sum(top + np.log(np.sum(np.exp(per_place - top[:, None]), axis=1))))

    grid = np.geomspace(0.25, 16.0, 9)
    best = int(np.argmax([log_likelihood(g) for g in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    # Golden-section refinement between the neighbours of the best grid point, to 1 % of the bracket.
    a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
    at_a, at_b = log_likelihood(a), log_likelihood(b)
    for _ in range(10):
        if at_a > at_b:
            hi, b, at_b = b, a, at_a
            a = hi - 0.618 * (hi - lo)
            at_a = log_likelihood(a)
        else:
            lo, a, at_a = a, b, at_b
            b = lo + 0.618 * (hi - lo)
            at_b = log_likelihood(b)
    return 0.5 * (lo + hi)


def _conditional_means(levels: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``E[x | round(x) = level]`` for ``x ~ N(centre, spread^2)`` (in steps), always within the cell:
    computed once per coefficient and level, then looked up for every frame."""
    low = levels.min(0)
    span = int((levels - low).max()) + 1
    cells = low[:, None] + np.arange(span)  # (m, span)
    lower = (cells - 0.5 - centre[:, None]) / spread[:, None]
    upper = (cells + 0.5 - centre[:, None]) / spread[:, None]
    mass = ndtr(upper) - ndtr(lower)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = (np.exp(-0.5 * lower**2) - np.exp(-0.5 * upper**2)) / (np.sqrt(2 * np.pi) * mass)
    # Where the cell is far out in the law's tail the ratio underflows: the conditional mean is then
    # the cell's edge nearest the centre.
    nearest = np.where(lower > 0, lower, np.where(upper < 0, upper, 0.0))
    shift = np.where(np.isfinite(shift) & (mass > 1e-12), shift, nearest)
    table = (centre[:, None] + spread[:, None] * np.clip(shift, lower, upper)).astype(np.float32)
    return np.take_along_axis(table.T, (levels - low).astype(np.intp), axis=0)


def explained_change(frames: np.ndarray) -> tuple[float, float]:
    """How much of the frames' change a shift and a brightness gain explain: its power, and the shift.

    The frames are fitted, each against their mean ``R``, as ``R + sx dR/dx + sy dR/dy
    + g R`` (least squares); what the fit explains is the motion and the flicker, which
    quantisation flips (single coefficients, not shifts) hardly enter.

    Parameters
    ----------
    frames : ndarray
        ``(n, H, W)`` frames.

    Returns
    -------
    power : float
        Mean power per pixel of the explained change, grey levels squared.
    shift_rms_px : float
        Root-mean-square length of the fitted shifts, pixels.

    Examples
    --------
    >>> x = np.linspace(0, 8 * np.pi, 64)
    >>> frames = np.stack([100 + 50 * np.sin(x - 0.1 * k)[None, :] * np.ones((64, 1)) for k in (-1, 1)])
    >>> power, shift = explained_change(frames)  # shifts of +-0.1 rad (0.25 px) on a sine of 50 levels
    >>> round(power, 1), round(shift, 2)
    (12.7, 0.26)
    """
    frames = np.asarray(frames, dtype=np.float32)
    mean = frames.mean(0, dtype=np.float64)
    grad_y, grad_x = np.gradient(mean)
    basis = np.stack([grad_x.ravel(), grad_y.ravel(), (mean - mean.mean()).ravel()], axis=1)
    gram = basis.T @ basis
    projections = frames.reshape(len(frames), -1) @ basis.astype(np.float32) - mean.ravel() @ basis
    coefficients = np.linalg.lstsq(gram, projections.T, rcond=None)[0]  # (3, n)
    power = float(np.einsum("in,ij,jn->", coefficients, gram, coefficients) / (len(frames) * mean.size))
    return power, float(np.sqrt(np.mean(np.sum(coefficients[:2] ** 2, axis=0))))


def change_to_noise_ratio(change_power_grey2: float, noise_grey: float) -> float:
    """How far the motion and flicker move a coefficient, against the noise: ``change_power / noise²``.

    Examples
    --------
    >>> change_to_noise_ratio(0.2, 2.0)
    0.05
    """
    return float(change_power_grey2 / noise_grey**2)


@dataclass
class CoefficientLaw:
    """Each coefficient's law over a group of frames: ``x / step ~ N(centre, spread^2)``.

    Attributes
    ----------
    varies : ndarray
        ``(H/8, W/8, 8, 8)`` bool: the coefficients that took more than one level (the others
        keep their decoded value).
    centre, spread : ndarray
        ``(m,)`` for the ``m`` coefficients that vary, in steps.
    """

    varies: np.ndarray
    centre: np.ndarray
    spread: np.ndarray

    def values(self, levels: np.ndarray) -> np.ndarray:
        """``(n, H/8, W/8, 8, 8)`` levels -> float32 coefficients in steps, each varying one at its
        conditional mean."""
        coefficients = levels.astype(np.float32)
        flat, whole = coefficients.reshape(len(levels), -1), levels.reshape(len(levels), -1)
        columns = np.flatnonzero(self.varies.ravel())
        for at in range(0, columns.size, _BATCH):
            part = slice(at, at + _BATCH)
            flat[:, columns[part]] = _conditional_means(whole[:, columns[part]], self.centre[part], self.spread[part])
        return coefficients


def fit_coefficient_law(levels: np.ndarray, quantiser: np.ndarray, *, noise_grey: float) -> CoefficientLaw:
    """Each coefficient's law from the levels it takes over a group of frames.

    The spread is the noise, widened by whatever spread of levels the noise does not
    explain (motion over several steps), so that a moving coefficient is not pulled
    back to its centre; the centre is the one whose law gives the observed mean level.

    Parameters
    ----------
    levels : ndarray
        ``(n, H/8, W/8, 8, 8)``, see :func:`block_levels`.
    quantiser : ndarray
        ``(8, 8)`` steps.
    noise_grey : float
        Camera noise per pixel (grey levels), see :func:`estimate_level_noise`.

    Returns
    -------
    CoefficientLaw
    """
    low, high, mean, var = _level_moments(levels)
    steps = np.broadcast_to(np.asarray(quantiser, dtype=np.float64), mean.shape)
    varies = high > low
    mean, var, low, high = mean[varies], var[varies], low[varies], high[varies]
    spread = noise_grey / steps[varies]
    centre = _fit_centres(mean, spread, low, high)
    ks = np.floor(centre)[..., None] + _NEIGHBOURS
    p = _cell_probabilities(centre, spread, ks)
    explained = (p * ks**2).sum(-1) - (p * ks).sum(-1) ** 2
    wider = var > 1.5 * explained
    if wider.any():
        spread[wider] = np.sqrt(spread[wider] ** 2 + var[wider] - explained[wider])
        centre[wider] = _fit_centres(mean[wider], spread[wider], low[wider], high[wider])
    return CoefficientLaw(varies, centre, spread)


def soft_dequantize(
    frames: np.ndarray, quantiser: np.ndarray, *, noise_grey: float, previous: CoefficientLaw | None = None,
) -> tuple[np.ndarray, CoefficientLaw]:
    """Frames with every JPEG coefficient at its mean given its level, its law fitted over the frames.

    Parameters
    ----------
    frames : ndarray
        ``(n, H, W)`` decoded grey frames coded with one quantisation table, H and W
        multiples of 8, at least :data:`MIN_FRAMES` for a meaningful law.
    quantiser : ndarray
        ``(8, 8)`` steps, see :func:`jpeg_luma_quantiser`.
    noise_grey : float
        Camera noise per pixel (grey levels), see :func:`estimate_level_noise`.
    previous : CoefficientLaw, optional
        The law of the group just before (same table and size): the first
        :data:`BLEND_FRAMES` frames pass from its values to this group's linearly, so
        that the change of law between groups does not jump (a click in the sound).

    Returns
    -------
    frames : ndarray
        ``(n, H, W)`` float32. Coefficients that keep one level throughout keep their
        decoded value (their levels say nothing more).
    law : CoefficientLaw
        This group's law, for the next group.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = 48.0 + 2.0 * rng.standard_normal(400)  # a DC coefficient, noise 2, steps of 32
    >>> q = np.full((8, 8), 32.0)
    >>> frames = 128.0 + np.rint(truth / 32.0)[:, None, None] * 32.0 / 8.0 * np.ones((400, 8, 8))
    >>> hard = _blocks(frames.astype(np.float32))[:, 0, 0, 0, 0]
    >>> soft = _blocks(soft_dequantize(frames, q, noise_grey=2.0)[0])[:, 0, 0, 0, 0]
    >>> sorted(set(hard.round().tolist()))  # decoded: a whole step either side of the truth
    [32.0, 64.0]
    >>> round(float(np.std(hard - truth)), 1), round(float(np.std(soft - truth)), 1)
    (14.4, 1.2)
    """
    levels = block_levels(frames, quantiser)
    law = fit_coefficient_law(levels, quantiser, noise_grey=noise_grey)
    coefficients = law.values(levels)
    if previous is not None and previous.varies.shape == law.varies.shape:
        blend = min(BLEND_FRAMES, len(levels))
        weight = ((np.arange(blend) + 0.5) / blend).astype(np.float32).reshape(-1, 1, 1, 1, 1)
        coefficients[:blend] = weight * coefficients[:blend] + (1 - weight) * previous.values(levels[:blend])
    return _unblocks(coefficients * np.asarray(quantiser, dtype=np.float32)).astype(np.float32, copy=False), law
