"""Motion from inter-coded video (H.264, HEVC): the blocks a codec copied are missing data.

An inter-frame codec encodes each block of a frame from a reference frame: a
motion vector in quarter-pixel steps, and a quantised residual. Where the block
changed less than its quantiser resolves, the encoder skips it, and the decoded
block is a bit-for-bit copy of the reference's. A rigid surface moving by a
fraction of a pixel then shows, in any frame, some blocks that moved and many
that are stale: averaging them all (what a pyramid over the whole frame does)
pulls the motion towards the reference's and leaves it 2-3 dB above noise at
0.3 px (x264's default CRF 23, ``benchmarks/quality.py``).

Here each block's displacement is measured to first order (the light's gain and
offset fitted with it) against the still frame moved to where the drift and a
guide signal (the pyramid's recovery) put the frame (:class:`BlockMeter`); the
copied blocks of every frame are set aside (a block identical to the same block
in one of the ``COPY_DEPTH`` frames before it holds no measurement of its own);
the fresh blocks are averaged with weights from their gains and noise against
the guide; and the frames where no block is fresh are filled by the Wiener
estimate of a signal whose local spectrum is the guide's (:func:`fill_missing`),
the guide itself counting as a second, noisier observation of every frame where
that predicts better. The noise levels (the B-frames' apart, where the decoder
tells them, and the guide's) are chosen by cross-validation. On the rigid scene
of the quality benchmark: 2.8 -> 7.1 dB at 0.3 px, 14.0 -> 17.4 dB at 1 px
(``benchmarks/copies.py`` has more scenes, up to 3 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .drift import ShiftEstimator, shift_spectrum

__all__ = [
    "BLOCK_PX", "COPY_DEPTH", "MIN_OBSERVED_SHARE", "BlockMeasurements", "FilledMotion", "BlockMeter", "block_grid",
    "copied_blocks",
    "block_displacements", "fresh_block_average", "fill_missing", "recover_copied_motion", "predicts_between_frames",
]

# Side of the blocks tested for copies and measured. H.264 skips whole 16-px macroblocks but predicts
# and copies their 8-px partitions (B-frames' direct blocks too); HEVC's smallest coding unit is 8 px.
# On 8 H.264 scenes (0.15-1 px, CRF 10-23), 8-px blocks gave 0.0-1.0 dB more than 16-px ones (0.3 px:
# 6.1 -> 7.2 dB) and 4-px ones lost 0.4 dB at 1 px (too few pixels for the first order).
BLOCK_PX = 8
COPY_DEPTH = 4  # frames back a block is compared with (x264 puts up to 3 B-frames between references)
# A frame is measured against the still frame moved to the guide's position rounded to this step: the first
# order then errs by at most (step / 2)^2 times the texture's curvature (3 px of motion: 16 -> 24 dB).
GUIDE_STEP_PX = 0.25
MOVED_FRAMES_BYTES = 256e6  # memory for the projections of moved still frames kept for reuse (8 to 256 of them)
CALIBRATION_PX = 0.05  # shift by which a block's gain is calibrated
FILL_WINDOW = 256  # frames over which the guide's spectrum is taken as steady
FILL_ITERATIONS = 60  # conjugate-gradient steps per window (whitened: converges in a few dozen)
FOLDS = 5  # the noise levels are chosen by cross-validation: observed frames held out a fifth at a time
CV_EXCERPT_FRAMES = 4096  # ... on excerpts of this length (a long video: CV_EXCERPTS of them, evenly spread)
CV_EXCERPTS = 8
NOISE_SHARES = (0.003, 0.01, 0.03, 0.1, 0.3)  # candidate noise variances, as shares of the observed variance
B_NOISE_FACTORS = (1.0, 3.0, 10.0, 30.0)  # candidate ratios of a B-frame's noise variance to the others'
GUIDE_SHARES = (0.1, 0.3, 1.0, 3.0)  # candidate noise variances of the guide as a second observation (or none)
MIN_FRESH_SHARE = 0.05  # a frame counts as observed when its fresh blocks hold this share of the weight
# Fewer observed frames than this share leave gaps of ten frames and more on average: a quarter period at
# fps / 40, too long to bridge for sound (H.264 at 0.05 px: 2 % observed, the fill 7.5 dB worse than the
# decoded frames, both lost; at 0.15 px: 12 %, the fill 4.3 dB better).
MIN_OBSERVED_SHARE = 0.1
# FFmpeg's names of codecs that code every frame on its own (nothing is copied from another frame).
INTRA_ONLY_CODECS = frozenset({
    "mjpeg", "mjpegb", "jpeg2000", "ljpeg", "jpegls", "jpegxl", "prores", "dnxhd", "cfhd", "dvvideo", "rawvideo",
    "ffv1", "png", "apng", "tiff", "bmp", "gif", "webp", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "v210",
    "qtrle", "hqx",
})


def predicts_between_frames(codec: str | None) -> bool:
    """Whether frames of this codec (FFmpeg's name) may be coded from others, and so copy their blocks.

    Examples
    --------
    >>> predicts_between_frames("h264"), predicts_between_frames("mjpeg"), predicts_between_frames(None)
    (True, False, False)
    """
    return codec is not None and codec.lower() not in INTRA_ONLY_CODECS


@dataclass(frozen=True)
class BlockMeasurements:
    """Per-block displacement of every frame, and which blocks the codec copied.

    Attributes
    ----------
    displacement_px : ndarray
        ``(frames, blocks)`` first-order displacement of each block along the
        direction of motion, pixels, relative to the reference frame.
    copied : ndarray
        ``(frames, blocks)`` bool: the block is identical to the same block in one
        of the ``COPY_DEPTH`` frames before it.
    information : ndarray
        ``(blocks,)`` squared gradient along the direction summed over the block
        (zero: the block has no texture to measure).
    """

    displacement_px: np.ndarray
    copied: np.ndarray
    information: np.ndarray


@dataclass(frozen=True)
class FilledMotion:
    """A displacement signal made from the fresh blocks, with the missing frames filled.

    Attributes
    ----------
    signal_px : ndarray
        ``(frames,)`` displacement, in the guide's units.
    observed : ndarray
        ``(frames,)`` bool: frames with fresh blocks (the others are filled).
    noise_variance_px2 : float
        Noise variance of the observed frames, chosen by cross-validation (of
        the I- and P-frames', where the B-frames are known).
    bipredicted_noise_factor : float
        The B-frames' noise variance over the others', chosen with it (1: not told apart).
    prediction_error_px2 : float
        Mean squared error predicting each observed frame from the others (all
        kinds) under the chosen noise levels: a measure of the error left,
        codec's included.
    guide_noise_variance_px2 : float
        Noise variance of the guide as a second observation of every frame,
        chosen by cross-validation too (inf: the guide shapes the spectrum only).
    """

    signal_px: np.ndarray
    observed: np.ndarray
    noise_variance_px2: float
    bipredicted_noise_factor: float = 1.0
    prediction_error_px2: float = float("nan")
    guide_noise_variance_px2: float = float("inf")


def block_grid(shape: tuple[int, int], *, origin: tuple[int, int] = (0, 0),
               block_px: int = BLOCK_PX) -> tuple[slice, slice, int, int]:
    """The part of a frame covered by whole codec blocks: row and column slices, blocks down and across.

    ``origin`` is where the codec's block grid starts, in the frame's pixels
    (a region of interest that does not start on the grid shifts it).

    Examples
    --------
    >>> block_grid((100, 70), origin=(4, 0), block_px=16)
    (slice(4, 100, None), slice(0, 64, None), 6, 4)
    """
    oy, ox = origin[0] % block_px, origin[1] % block_px
    down, across = (shape[0] - oy) // block_px, (shape[1] - ox) // block_px
    return slice(oy, oy + down * block_px), slice(ox, ox + across * block_px), down, across


def _blocks(frames: np.ndarray, grid: tuple[slice, slice, int, int], block_px: int) -> np.ndarray:
    """``(frames, blocks, block_px**2)`` view of the frames' whole blocks."""
    rows, cols, down, across = grid
    part = frames[:, rows, cols]
    return part.reshape(len(frames), down, block_px, across, block_px).swapaxes(2, 3).reshape(
        len(frames), down * across, block_px * block_px)


def copied_blocks(frames: np.ndarray, previous: np.ndarray, *, grid: tuple[slice, slice, int, int],
                  block_px: int = BLOCK_PX) -> np.ndarray:
    """Which blocks of each frame are bit-for-bit copies of the same block in one of the frames before.

    Parameters
    ----------
    frames : ndarray
        ``(n, rows, cols)`` decoded frames.
    previous : ndarray
        ``(k, rows, cols)`` the frames just before them (``k`` may be 0 at the start
        of the video; only the last ``COPY_DEPTH`` are used): a block is compared
        with the same block in each of the ``COPY_DEPTH`` frames before it.
    grid : tuple
        From :func:`block_grid`.
    block_px : int
        Block side.

    Returns
    -------
    ndarray
        ``(n, blocks)`` bool.

    Examples
    --------
    >>> f = np.zeros((3, 16, 32), np.uint8); f[1, :, 16:] = 1; f[2, :, :16] = 1
    >>> copied_blocks(f, f[:0], grid=block_grid((16, 32), block_px=16), block_px=16)
    array([[False, False],
           [ True, False],
           [False,  True]])
    """
    stacked = _blocks(np.concatenate([previous[-COPY_DEPTH:], frames]), grid, block_px)
    depth = len(stacked) - len(frames)
    copied = np.zeros((len(frames), stacked.shape[1]), bool)
    for back in range(1, COPY_DEPTH + 1):
        first = max(depth, back)  # the first block with one ``back`` frames before it
        if first < len(stacked):
            copied[first - depth:] |= np.all(stacked[first:] == stacked[first - back: len(stacked) - back], axis=-1)
    return copied


def _block_projection(reference: np.ndarray, unit_vector: np.ndarray, grid: tuple[slice, slice, int, int],
                      block_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`block_displacements` applies to frames: the weight image, each block's offset (the
    weights applied to the reference) and its information."""
    ref = np.asarray(reference, np.float64)
    # Central differences: they weigh a texture's finest detail, which a codec quantises most, less than
    # exact (spectral) derivatives would (0.3 px through H.264: +0.1 to +0.7 dB); their gain is
    # calibrated away below.
    gy, gx = np.gradient(ref)
    gradient = unit_vector[0] * gy + unit_vector[1] * gx
    g = _blocks(gradient[None], grid, block_px)[0]
    information = np.einsum("bp,bp->b", g, g)
    # Light that changes (flicker) scales and offsets the block: fitted with the motion, on the block's
    # reference less its mean and a constant, so that none of it passes for motion.
    still = _blocks(ref[None], grid, block_px)[0]
    basis = np.stack([g, still - still.mean(axis=1, keepdims=True), np.ones_like(g)], axis=1)  # (b, 3, p)
    gram = np.einsum("bip,bjp->bij", basis, basis) + 1e-9 * np.eye(3)
    # The motion's coefficient is one weighted sum of the block's pixels: the first row of the inverse
    # Gram matrix applied to the basis; as an image over the grid, each frame's sums are then taken
    # block by block on a reshaped view.
    weights = np.einsum("bi,bip->bp", np.linalg.pinv(gram)[:, 0, :], basis)
    # Each block's response to the reference moved by +-CALIBRATION_PX (by FFT) is made 1 px per px:
    # a displacement then reads the same whatever part of it the moved still frame of :class:`BlockMeter`
    # took up.
    spectrum = np.fft.rfft2(ref)
    moved = [_blocks(np.fft.irfft2(shift_spectrum(spectrum, -sign * CALIBRATION_PX * unit_vector, ref.shape),
                                   s=ref.shape)[None], grid, block_px)[0] for sign in (1, -1)]
    response = -np.einsum("bp,bp->b", weights, moved[0] - moved[1]) / (2 * CALIBRATION_PX)
    weights = weights / np.where(np.abs(response) > 1e-6, response, 1.0)[:, None]
    _, _, down, across = grid
    image = weights.reshape(down, across, block_px, block_px).swapaxes(1, 2).reshape(
        down * block_px, across * block_px).astype(np.float32)
    return image, np.einsum("bp,bp->b", weights, still), information


def _projected(frames: np.ndarray, projection: tuple[np.ndarray, np.ndarray, np.ndarray],
               grid: tuple[slice, slice, int, int], block_px: int) -> np.ndarray:
    """``(n, blocks)`` displacements of frames under a :func:`_block_projection`."""
    image, offset, _ = projection
    rows, cols, down, across = grid
    weighted = np.asarray(frames, np.float32)[:, rows, cols] * image
    sums = weighted.reshape(len(weighted), down, block_px, across, block_px).sum(axis=(2, 4), dtype=np.float64)
    return (offset - sums.reshape(len(weighted), -1)).astype(np.float32)


def block_displacements(frames: np.ndarray, reference: np.ndarray, unit_vector: np.ndarray, *,
                        grid: tuple[slice, slice, int, int],
                        block_px: int = BLOCK_PX) -> tuple[np.ndarray, np.ndarray]:
    """First-order displacement of every block along ``unit_vector``, and each block's information.

    A block's displacement is the least-squares fit of the frame's difference
    from ``reference`` to the reference's gradient along the direction,
    ``I - R = -d g + a (R - mean R) + b`` with ``g = u . grad R`` (central
    differences, their gain calibrated on the reference moved by a small shift):
    the gain ``a`` and offset ``b`` take changes of the light.

    Parameters
    ----------
    frames : ndarray
        ``(n, rows, cols)``.
    reference : ndarray
        ``(rows, cols)`` the still frame (a mean of frames).
    unit_vector : ndarray
        ``(y, x)`` direction of motion in image axes (rows grow downwards).
    grid, block_px
        As in :func:`copied_blocks`.

    Returns
    -------
    displacement_px : ndarray
        ``(n, blocks)`` float32.
    information : ndarray
        ``(blocks,)`` ``<g, g>``.

    Examples
    --------
    >>> x = np.arange(32.0)
    >>> ramp = np.tile(np.sin(2 * np.pi * x / 8), (16, 1))
    >>> moved = np.tile(np.sin(2 * np.pi * (x - 0.1) / 8), (16, 1))
    >>> grid = block_grid((16, 32), block_px=16)
    >>> d, info = block_displacements(moved[None], ramp, np.array([0.0, 1.0]), grid=grid, block_px=16)
    >>> np.round(d, 2)
    array([[0.1, 0.1]], dtype=float32)
    """
    projection = _block_projection(reference, np.asarray(unit_vector, np.float64), grid, block_px)
    return _projected(frames, projection, grid, block_px), projection[2]


class BlockMeter:
    """Measures chunks of a video block by block: displacements and the blocks a codec copied.

    A frame is measured against the still frame moved to where the frame is: the
    chunk's drift (estimated from its mean frame by
    :class:`visualmic.drift.ShiftEstimator`, as the pyramid's measurement follows
    drift) plus, where given, a guide's displacement at that frame along the
    direction, rounded to ``GUIDE_STEP_PX`` (the moved still frames are kept for
    reuse). The first order then holds at any amplitude, and the shift is added
    back, so that a block's displacement is continuous from frame to frame.

    Parameters
    ----------
    reference : ndarray
        ``(rows, cols)`` the still frame (a mean of the first frames).
    unit_vector : ndarray
        ``(y, x)`` direction of motion in image axes (rows grow downwards).
    grid : tuple
        From :func:`block_grid`.
    block_px : int
        Block side.

    Attributes
    ----------
    information : ndarray
        ``(blocks,)`` as :func:`block_displacements` gives it for the reference.

    Examples
    --------
    >>> from visualmic.synth import moving_frames, procedural_texture
    >>> texture = procedural_texture((64, 64), seed=1)
    >>> motion = np.linspace(0, 2, 64) + 0.5 * np.sin(np.arange(64))  # drifts 2 px, vibrates 0.5 px
    >>> frames = np.concatenate(list(moving_frames(texture, motion)))
    >>> meter = BlockMeter(frames[:4].mean(axis=0), np.array([0.0, 1.0]), grid=block_grid((64, 64)))
    >>> moved, copied = meter(frames[-32:], frames[-36:-32], guide_px=motion[-32:] - motion[-32:].mean())
    >>> truth = motion[-32:] - motion[:4].mean()  # from where the still frame stands
    >>> bool(np.abs(np.median(moved, axis=1) - truth).max() < 0.01), bool(copied.any())
    (True, False)
    """

    def __init__(self, reference: np.ndarray, unit_vector: np.ndarray, *, grid: tuple[slice, slice, int, int],
                 block_px: int = BLOCK_PX) -> None:
        self._reference = np.asarray(reference, np.float64)
        self._spectrum = np.fft.rfft2(self._reference)
        self._estimate_shift = ShiftEstimator(self._spectrum, self._reference.shape)
        self._unit = np.asarray(unit_vector, np.float64)
        self._grid, self._block_px = grid, block_px
        self._projections: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._kept = int(np.clip(MOVED_FRAMES_BYTES / (4 * self._reference.size), 8, 256))
        self.information = self._projection((0, 0))[2]

    def _projection(self, step: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The projection of the still frame moved by ``step`` (rows, columns) times ``GUIDE_STEP_PX``."""
        if step in self._projections:  # least recently used last to go
            self._projections[step] = self._projections.pop(step)
            return self._projections[step]
        if len(self._projections) >= self._kept:
            self._projections.pop(next(iter(self._projections)))
        shift = np.array(step, np.float64) * GUIDE_STEP_PX
        shape = self._reference.shape
        moved = self._reference if not any(step) else np.fft.irfft2(
            shift_spectrum(self._spectrum, -shift, shape), s=shape)
        self._projections[step] = _block_projection(moved, self._unit, self._grid, self._block_px)
        return self._projections[step]

    def __call__(self, frames: np.ndarray, previous: np.ndarray,
                 guide_px: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(n, blocks)`` displacements (pixels along the direction, float32) and copies (bool) of a
        chunk of frames, given the frames before it (see :func:`copied_blocks`) and optionally a
        guide's ``(n,)`` displacement of them (pixels along the direction, high-passed)."""
        copied = copied_blocks(frames, previous, grid=self._grid, block_px=self._block_px)
        drift = self._estimate_shift(np.fft.rfft2(np.mean(frames, axis=0))[None])
        where = np.zeros((len(frames), 2)) if drift is None else np.tile(drift, (len(frames), 1))
        if guide_px is not None:
            where += np.asarray(guide_px, np.float64)[:, None] * self._unit
        steps = np.round(where / GUIDE_STEP_PX).astype(int)
        displacement = np.empty((len(frames), len(self.information)), np.float32)
        for step in np.unique(steps, axis=0):
            these = np.all(steps == step, axis=1)
            along = float(step @ self._unit) * GUIDE_STEP_PX
            displacement[these] = _projected(frames[these], self._projection(tuple(int(k) for k in step)),
                                             self._grid, self._block_px) + np.float32(along)
        return displacement, copied


def fresh_block_average(displacement_px: np.ndarray, copied: np.ndarray, guide_px: np.ndarray,
                        information: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One signal from the blocks no codec copied, each weighted by its gain and noise against a guide.

    Every block's gain ``g_b`` and noise variance ``v_b`` are fitted on its
    fresh frames (``block = g_b guide + noise``); a frame's value is
    ``sum g_b / v_b block / sum g_b^2 / v_b`` over its fresh blocks, in the
    guide's units. A frame counts as observed when its fresh blocks hold at
    least ``MIN_FRESH_SHARE`` of the total weight.

    Parameters
    ----------
    displacement_px : ndarray
        ``(frames, blocks)``, high-passed as the guide is.
    copied : ndarray
        ``(frames, blocks)`` bool.
    guide_px : ndarray
        ``(frames,)`` a recovery of the same motion from every block.
    information : ndarray
        ``(blocks,)``: blocks without texture (0) get no weight.

    Returns
    -------
    signal_px : ndarray
        ``(frames,)`` (0 where not observed).
    observed : ndarray
        ``(frames,)`` bool.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.sin(np.arange(400) / 3)
    >>> blocks = s[:, None] * np.array([1.0, -2.0]) + 0.01 * rng.standard_normal((400, 2))
    >>> copied = np.zeros((400, 2), bool); copied[::2, 0] = True; copied[::4, 1] = True
    >>> y, seen = fresh_block_average(blocks, copied, s, np.ones(2))
    >>> bool(seen.all()), bool(np.abs(y - s)[seen].max() < 0.05)
    (False, True)
    """
    fresh = ~copied & (information > 0)
    fresh_px = np.where(fresh, displacement_px, 0.0)
    masked_guide = np.where(fresh, guide_px[:, None], 0.0)
    guide_power = np.einsum("tb,tb->b", masked_guide, masked_guide)
    gain = np.einsum("tb,tb->b", fresh_px, masked_guide) / np.maximum(guide_power, 1e-300)
    residual = np.where(fresh, displacement_px - gain * guide_px[:, None], 0.0)
    count = fresh.sum(axis=0)
    variance = np.einsum("tb,tb->b", residual, residual) / np.maximum(count - 1, 1)
    usable = (count > 2) & (guide_power > 0) & (variance > 0)
    weight = np.where(usable, gain / np.where(usable, variance, 1.0), 0.0)
    numerator = fresh_px @ weight
    denominator = fresh @ (weight * gain)
    observed = denominator > MIN_FRESH_SHARE * max(float(np.sum(weight * gain)), 1e-300)
    return np.where(observed, numerator / np.where(observed, denominator, 1.0), 0.0), observed


def _windows(count: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of half-overlapping windows covering ``0..count-1`` (clipped) and which are inside."""
    hop = window // 2
    index = np.arange(-hop, count, hop)[:, None] + np.arange(window)
    return np.clip(index, 0, count - 1), (index >= 0) & (index < count)


def fill_missing(signal: np.ndarray, observed: np.ndarray, guide: np.ndarray, *,
                 noise_variance: float | np.ndarray, window: int = FILL_WINDOW,
                 iterations: int = FILL_ITERATIONS) -> np.ndarray:
    """Wiener estimate of a signal seen, with noise, on some frames only, given a guide to its spectrum.

    In half-overlapping Hann windows of ``window`` frames the signal is taken as
    stationary with the power spectrum of ``guide`` there, and the observations
    as the signal plus white noise of ``noise_variance``; each window's posterior
    mean (found by conjugate gradients in whitened coordinates) is overlap-added.
    Where every frame is observed and the noise is small this returns the
    observations; where none is, a signal shaped by the guide's spectrum and
    bridging the observed frames around.

    Parameters
    ----------
    signal : ndarray
        ``(frames,)`` observations (any value where not observed).
    observed : ndarray
        ``(frames,)`` bool.
    guide : ndarray
        ``(frames,)`` a signal with the right local spectrum (scale included).
    noise_variance : float or ndarray
        Variance of the observations' noise, for all frames or ``(frames,)``.
    window, iterations : int
        Window length (even) and conjugate-gradient steps.

    Returns
    -------
    ndarray
        ``(frames,)``.

    Examples
    --------
    >>> t = np.arange(2048)
    >>> s = np.sin(2 * np.pi * t / 9.3)
    >>> seen = np.random.default_rng(0).random(2048) < 0.4
    >>> filled = fill_missing(np.where(seen, s, 0.0), seen, s, noise_variance=1e-4)
    >>> bool(np.abs(filled - s)[300:-300].max() < 0.05)
    True
    """
    count = len(signal)
    index, inside = _windows(count, window)
    taper = np.hanning(window + 1)[:window]  # periodic: half-overlapping windows sum to 1
    variance = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (count,))
    precision = np.divide(1.0, variance, out=np.zeros(count), where=observed & (variance > 0))[index] * inside
    data = np.where(inside, signal[index], 0.0)
    spectrum = np.abs(scipy.fft.rfft(np.where(inside, guide[index], 0.0) * taper, axis=1)) ** 2 / np.sum(taper**2)
    root = np.sqrt(spectrum + 1e-9 * spectrum.mean(axis=1, keepdims=True) + 1e-300)

    def colour(z: np.ndarray) -> np.ndarray:  # C^(1/2) z: white to the guide's spectrum
        return scipy.fft.irfft(scipy.fft.rfft(z, axis=1) * root, n=window, axis=1)

    def system(z: np.ndarray) -> np.ndarray:  # (I + C^(1/2) P C^(1/2)) z, P: the observations' precisions
        return z + colour(precision * colour(z))

    # Solve in whitened coordinates s = C^(1/2) z; the system is I plus a positive part: well conditioned.
    rhs = colour(precision * data)
    z = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    power = np.einsum("wt,wt->w", residual, residual)
    for _ in range(iterations):
        image = system(direction)
        step = power / np.maximum(np.einsum("wt,wt->w", direction, image), 1e-300)
        z += step[:, None] * direction
        residual -= step[:, None] * image
        new_power = np.einsum("wt,wt->w", residual, residual)
        direction = residual + (new_power / np.maximum(power, 1e-300))[:, None] * direction
        power = new_power
    filled = np.zeros(count)
    np.add.at(filled, index[inside], (colour(z) * taper)[inside])
    return filled


def _excerpts(count: int) -> list[slice]:
    """Where the noise levels are cross-validated: the whole signal, or ``CV_EXCERPTS`` evenly spread
    excerpts of ``CV_EXCERPT_FRAMES`` when that is shorter."""
    if count <= CV_EXCERPTS * CV_EXCERPT_FRAMES:
        return [slice(0, count)]
    starts = np.linspace(0, count - CV_EXCERPT_FRAMES, CV_EXCERPTS).astype(int)
    return [slice(int(a), int(a) + CV_EXCERPT_FRAMES) for a in starts]


def recover_copied_motion(measurements: BlockMeasurements, guide_px: np.ndarray, *,
                          bipredicted: np.ndarray | None = None, seed: int = 0) -> FilledMotion | None:
    """The displacement from the blocks a codec did not copy, with the frames it copied whole filled in.

    The fresh blocks are averaged (:func:`fresh_block_average`) and the frames
    without any are filled (:func:`fill_missing`) with the guide's local
    spectrum. The noise variance is the one of ``NOISE_SHARES`` (times the
    observed frames' variance) that best predicts the observed frames, a fold
    at a time (``FOLDS``), from the others. Where the codec's B-frames are known,
    theirs is chosen too, as a multiple (``B_NOISE_FACTORS``) of the others': a
    B-frame's blocks are mostly interpolated between its references, not
    measured, and the frames that score the choice are then the references (I-
    and P-frames) only. Over 7 H.264 scenes (0.15-1 px, CRF 18 and 23) the
    choice lands within 0.6 dB of the best of the grid. Then the guide's own
    noise variance (``GUIDE_SHARES`` of the same scale, or none), as a second
    observation of every frame fused with the first by their precisions, scored
    with the guide left out at the held-out frames too (its errors there are
    partly the observation's own, which would make it look better than it is):
    +0.4 to +0.8 dB at 0.6-1 px, none chosen at 0.15-0.3 px, -0.2 dB at CRF 18.

    Parameters
    ----------
    measurements : BlockMeasurements
        Per-block displacements (high-passed as the guide is) and copies.
    guide_px : ndarray
        ``(frames,)`` a recovery of the same motion from every block.
    bipredicted : ndarray, optional
        ``(frames,)`` bool: the B-frames (:meth:`visualmic.sources.FrameSource.bipredicted_frames`).
    seed : int
        Seed of the draw of the folds.

    Returns
    -------
    FilledMotion or None
        None where fewer than ``MIN_OBSERVED_SHARE`` of the frames hold a fresh
        block: too few to fill the others from.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> s = np.sin(2 * np.pi * np.arange(3000) / 7.7)
    >>> blocks = s[:, None] + 0.05 * rng.standard_normal((3000, 4))
    >>> copied = rng.random((3000, 4)) < 0.5
    >>> copied[rng.random(3000) < 0.4] = True  # whole frames copied
    >>> guide = 0.5 * s + 0.2 * rng.standard_normal(3000)  # a blurred recovery of the same motion
    >>> out = recover_copied_motion(BlockMeasurements(blocks, copied, np.ones(4)), guide)
    >>> round(float(np.corrcoef(guide, s)[0, 1]), 2), round(float(np.corrcoef(out.signal_px, s)[0, 1]), 2)
    (0.88, 1.0)
    """
    signal, observed = fresh_block_average(measurements.displacement_px, measurements.copied, guide_px,
                                           measurements.information)
    if observed.mean() < MIN_OBSERVED_SHARE:
        return None
    # The guide's spectrum in the observations' units (a noisy guide fits with a smaller gain).
    observed_guide = guide_px[observed]
    guide_px = guide_px * float(signal[observed] @ observed_guide) / max(float(observed_guide @ observed_guide), 1e-300)
    kinds = np.zeros(len(signal), bool) if bipredicted is None else np.asarray(bipredicted, bool)
    scale = float(np.var(signal[observed]))
    fold = np.random.default_rng(seed).integers(0, FOLDS, len(signal))
    scored = observed & ~kinds if (observed & ~kinds).any() else observed

    def variances(share: float, factor: float) -> np.ndarray:
        return share * scale * np.where(kinds, factor, 1.0)

    def prediction_errors(share: float, factor: float, guide_share: float | None = None) -> np.ndarray:
        """Each observed frame predicted from the others (and the guide elsewhere: its errors at a frame
        are partly the observation's own), a fold at a time: the squared errors (NaN where not predicted)."""
        errors = np.full(len(signal), np.nan)
        for part in _excerpts(len(signal)):
            for k in range(FOLDS):
                held_out = observed[part] & (fold[part] == k)
                guess = _fill_with_guide(signal[part], observed[part] & ~held_out, guide_px[part],
                                         variances(share, factor)[part], guide_share and guide_share * scale,
                                         guide_at=~held_out)
                errors[part][held_out] = (guess - signal[part])[held_out] ** 2
        return errors

    def total(errors: np.ndarray) -> float:
        return float(np.nansum(errors[scored]))

    factors = B_NOISE_FACTORS if kinds.any() else (1.0,)
    tried = {(share, factor): prediction_errors(share, factor) for share in NOISE_SHARES for factor in factors}
    share, factor = min(tried, key=lambda choice: total(tried[choice]))
    guided = {None: tried[share, factor]} | {g: prediction_errors(share, factor, g) for g in GUIDE_SHARES}
    guide_share = min(guided, key=lambda choice: total(guided[choice]))
    filled = _fill_with_guide(signal, observed, guide_px, variances(share, factor),
                              guide_share and guide_share * scale, guide_at=np.ones(len(signal), bool))
    return FilledMotion(filled, observed, share * scale, factor, float(np.nanmean(guided[guide_share][observed])),
                        math.inf if guide_share is None else guide_share * scale)


def _fill_with_guide(signal: np.ndarray, observed: np.ndarray, guide: np.ndarray, variances: np.ndarray,
                     guide_variance: float | None, *, guide_at: np.ndarray) -> np.ndarray:
    """:func:`fill_missing` of the observations and, where ``guide_at`` and ``guide_variance`` is given,
    the guide as a second observation of the same signal with that noise variance (fused frame by frame
    by their precisions)."""
    precision = np.divide(1.0, variances, out=np.zeros(len(signal)), where=observed)
    data = np.where(observed, signal, 0.0)
    if guide_variance is not None:
        guide_precision = np.where(guide_at, 1.0 / guide_variance, 0.0)
        data = np.divide(precision * data + guide_precision * guide, precision + guide_precision,
                         out=np.zeros(len(signal)), where=precision + guide_precision > 0)
        precision = precision + guide_precision
    seen = precision > 0
    return fill_missing(data, seen, guide, noise_variance=np.divide(1.0, precision, out=np.ones(len(signal)),
                                                                     where=seen))
