"""The phase-gradient measurement to first order: every channel's sums as dot products of the frame
with fixed kernel images, and no transform per frame.

A channel's sums (:func:`visualmic.motion.phase_gradient_sums`) weigh each band
coefficient's phase change ``angle(c conj(c_r))`` and its ``Re(c conj(c_r))``.
While the phases change little, ``angle(q) = Im(q) / |c_r|**2`` to first order,
and the sums are then linear in the band, so linear in the frame: each is
``sum_y h(y) I(y)`` for a kernel image ``h``, the adjoint of the pyramid applied
to the channel's weights (the kernels of the noise model,
:func:`visualmic.motion.band_noise_covariance`, whose covariance is then exact).
A chunk of frames costs a matrix product instead of one forward and one inverse
FFT per band and frame; a region's kernel lives near its region, so the frame is
cut into blocks of rows, each multiplied by the kernels that reach it only
(``KERNEL_TAIL`` of a kernel's energy, in the blocks where it is weakest, is left out).

Each band's sums are divided by its brightness gain (``Re sum c conj(c_r) / sum
|c_r|**2``, a kernel too): a flickering light scales the first-order sums as it
leaves phases alone. The first-order error is a third-order term in the change
of ``log c``; a chunk whose rms change (``d.F d / power`` of every region's
displacement, the information-weighted mean over the band's coefficients) exceeds
``LINEAR_BELOW_RAD`` is left to the phase path (``None``), as is, by the caller,
a chunk that drifted (:mod:`visualmic.drift`): a melody moving 0.3 to 1 px,
recovered at 35-40 dB, then loses at most 0.03 dB against the phase path (0.1 dB
with the limit at 0.2 rad, 0.5 dB at 0.3); below, the two differ by their noise
alone, the first order's being exactly the noise model's. Set the environment variable
``VISUALMIC_LINEAR=0`` to measure every chunk by its phases.
"""

from __future__ import annotations

import os

import numpy as np

from .motion import BandReference, kernel_spectra, region_kernels
from .pyramid import SteerablePyramid

__all__ = ["LinearSums", "channel_kernels", "kept_blocks", "linear_available", "LINEAR_BELOW_RAD", "CHUNK_BYTES"]

LINEAR_BELOW_RAD = 0.15  # rms change of log c up to which a chunk is measured to first order (see LinearSums)
KERNEL_TAIL = 1e-4  # fraction of a kernel's energy left out, from the row blocks where it is weakest
BLOCK_ROWS = 8  # rows of the frame per block of the matrix products
# The phase path costs 7-19 ns per pixel and frame (one core; 1 to 12 bands), the matrix products 0.03-0.1 ns per
# pixel, frame and kernel value (20-130 values per pixel): beyond this many values per pixel and band, the FFTs win.
MOST_COLUMNS_PER_BAND = 30.0
MOST_KERNEL_BYTES = 256e6  # the kernels' memory (12 bands at 512²: 134 MB)
GAIN_RANGE = (0.5, 2.0)  # a band's brightness gain outside this is left to the phase path
# Chunks of about this many bytes of float32 frames (32 frames of 512²): the kernels are read from memory once
# per chunk (the phase path's FFTs prefer 4 MB, see visualmic.engine.default_chunk_frames).
CHUNK_BYTES = 32e6


class _TooCostly(Exception):
    """The kernels would keep more values than allowed (see :meth:`LinearSums.when_faster`)."""


def linear_available() -> bool:
    """Whether chunks may be measured to first order: ``VISUALMIC_LINEAR`` is not ``0``.

    Examples
    --------
    >>> isinstance(linear_available(), bool)
    True
    """
    return os.environ.get("VISUALMIC_LINEAR", "1") != "0"


def channel_kernels(pyramid: SteerablePyramid, reference: BandReference, index: int) -> np.ndarray:
    """Kernel images of one band's first-order sums: ``(2 R + 1, rows, cols)`` float32.

    Rows ``r`` and ``R + r`` give region r's sums along y and x (the flicker correction's
    gain times the region's offset included), row ``2 R`` the band's brightness gain.

    Examples
    --------
    >>> from visualmic.motion import prepare_references, reference_bands
    >>> pyr = SteerablePyramid((32, 32))
    >>> frame = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frame)), grid=2)
    >>> channel_kernels(pyr, refs[0], 0).shape
    (9, 32, 32)
    """
    info = pyramid.bands_info[index]
    rows, cols = pyramid.shape
    c_ref = np.conj(reference.conj_ref)
    batches = []
    for along in np.eye(2):  # the sums along y, then along x
        v, gain_weight = reference.first_order_weights(along)
        batches.append(region_kernels(v, c_ref, reference.labels, gain_weight))
    batches.append(iter([(c_ref * reference._inverse_power).astype(np.complex64)[None]]))
    half_plane = np.arange(rows * (cols // 2 + 1))
    kernels = []
    for batch in (b for part in batches for b in part):
        spectra = np.zeros((batch.shape[0], half_plane.size), dtype=np.complex64)
        kernel_spectra([batch], info, half_plane, pyramid.shape, out=spectra)
        kernels.append(pyramid.frame_kernels(spectra.reshape(-1, rows, cols // 2 + 1)))
    return np.concatenate(kernels)


def kept_blocks(energy: np.ndarray, tail: float) -> np.ndarray:
    """Which blocks each kernel keeps: all but its weakest, as many as together hold at most ``tail`` of its
    energy (``energy``: ``(kernels, blocks)``; returns booleans of that shape).

    Examples
    --------
    >>> kept_blocks(np.array([[1e-6, 0.5, 2e-6, 0.5], [0.25, 0.25, 0.25, 0.25]]), 1e-5).astype(int)
    array([[0, 1, 0, 1],
           [1, 1, 1, 1]])
    """
    order = np.argsort(energy, axis=1)
    weakest = np.cumsum(np.take_along_axis(energy, order, axis=1), axis=1) <= tail * energy.sum(axis=1, keepdims=True)
    keep = np.ones_like(weakest)
    np.put_along_axis(keep, order, ~weakest, axis=1)
    return keep


class LinearSums:
    """First-order channel sums of chunks of frames (see the module's text), or None where a chunk moved
    too much for them.

    Parameters
    ----------
    pyramid : SteerablePyramid
        The pyramid of the references.
    references : list of BandReference
        From :func:`visualmic.motion.prepare_references`.
    reference_frame : ndarray
        The frame the references are the bands of (``(rows, cols)``).
    tail : float
        Fraction of each kernel's energy left out (its weakest row blocks).
    most_values : float, optional
        Give up (``_TooCostly``) as soon as the kernels keep more values than this.

    Examples
    --------
    >>> from visualmic.motion import phase_gradient_sums, prepare_references, reference_bands
    >>> pyr = SteerablePyramid((32, 32))
    >>> y, x = np.mgrid[:32, :32] * (2 * np.pi / 32)
    >>> frames = np.stack([np.sin(3 * x + 2 * y + d) + np.cos(5 * y - x - d) for d in (0, 0.02, -0.03)])
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames[:1])), grid=2)
    >>> first_order = LinearSums(pyr, refs, frames[0])(frames)
    >>> phases = phase_gradient_sums(pyr.bands(frames), refs)
    >>> first_order.shape, bool(np.abs(first_order - phases).max() < 1e-3 * np.abs(phases).max())
    ((3, 8, 2), True)
    >>> LinearSums(pyr, refs, frames[0])(np.roll(frames, 2, axis=2)) is None  # 2 px, 0.4 rad: for the phases
    True
    """

    def __init__(self, pyramid: SteerablePyramid, references: list[BandReference], reference_frame: np.ndarray, *,
                 tail: float = KERNEL_TAIL, most_values: float | None = None):
        rows, cols = pyramid.shape
        self.regions = references[0].regions
        self.bands = len(references)
        per_band = 2 * self.regions + 1
        starts = np.arange(0, rows, BLOCK_ROWS)
        kept_columns: list[list[np.ndarray]] = [[] for _ in starts]
        kept_values: list[list[np.ndarray]] = [[] for _ in starts]
        reference_frame = np.asarray(reference_frame, dtype=np.float32).reshape(-1)
        exact = []  # the whole kernels' sums of the reference frame
        for index, reference in enumerate(references):
            kernels = channel_kernels(pyramid, reference, index)
            exact.append(kernels.reshape(kernels.shape[0], -1) @ reference_frame)
            energy = np.add.reduceat(np.einsum("kyx,kyx->ky", kernels, kernels, dtype=np.float64), starts, axis=1)
            keep = kept_blocks(energy, tail)
            for block, first in enumerate(starts):
                columns = np.flatnonzero(keep[:, block])
                kept_columns[block].append(columns + index * per_band)
                pixels = (min(first + BLOCK_ROWS, rows) - first) * cols  # no columns where the block is flat
                kept_values[block].append(kernels[columns, first : first + BLOCK_ROWS].reshape(columns.size, pixels))
            kept = sum(values.size for part in kept_values for values in part)
            if most_values is not None and kept > most_values:
                raise _TooCostly(f"{kept} kernel values after {index + 1} of {len(references)} bands")
        self._blocks = []
        for first, columns, values in zip(starts, kept_columns, kept_values):
            matrix = np.ascontiguousarray(np.concatenate(values).T)  # (block pixels, kept columns)
            self._blocks.append((first * cols, min(first + BLOCK_ROWS, rows) * cols, np.concatenate(columns), matrix))
        #: Kernel values per pixel of the frame (the matrix products' cost, against the FFTs').
        self.columns_per_pixel = sum(matrix.size for *_, matrix in self._blocks) / (rows * cols)
        # What the left-out tails add to the reference frame's sums, added back to every frame's in
        # proportion to its brightness gain (the reference's is 1): a tail then misses only its share of a
        # frame's change (the motion), not its share of the whole frame's sums (which cancel to the
        # sound's few hundredths of a pixel), and a flickering light still changes nothing.
        self._tails = (np.concatenate(exact) - self._block_sums(reference_frame[None])[0]).reshape(self.bands, -1)
        self._fisher_inverse = np.linalg.pinv(np.concatenate([r.fisher for r in references]), rcond=1e-9)
        self._power = np.array([r.power for r in references])

    @classmethod
    def when_faster(cls, pyramid: SteerablePyramid, references: list[BandReference],
                    reference_frame: np.ndarray) -> LinearSums | None:
        """A :class:`LinearSums` where its matrix products are cheaper than the phase path's FFTs
        (``MOST_COLUMNS_PER_BAND``), its kernels fit in ``MOST_KERNEL_BYTES`` and ``VISUALMIC_LINEAR``
        allows it, else None."""
        if not linear_available():
            return None
        pixels = pyramid.shape[0] * pyramid.shape[1]
        try:
            return cls(pyramid, references, reference_frame,
                       most_values=min(MOST_KERNEL_BYTES / 4, MOST_COLUMNS_PER_BAND * len(references) * pixels))
        except _TooCostly:
            return None

    def _block_sums(self, frames: np.ndarray) -> np.ndarray:
        """``(n, columns)`` float64: the kept kernels' sums of every frame, block by block of rows."""
        flat = np.asarray(frames).reshape(frames.shape[0], -1)
        raw = np.zeros((flat.shape[0], self.bands * (2 * self.regions + 1)), dtype=np.float32)
        for start, stop, columns, matrix in self._blocks:
            raw[:, columns] += flat[:, start:stop].astype(np.float32) @ matrix
        return raw.astype(np.float64)

    def __call__(self, frames: np.ndarray) -> np.ndarray | None:
        """``(n, channels, 2)`` sums as :func:`visualmic.motion.phase_gradient_sums` gives them, to
        first order, or None where some frame's change of ``log c`` exceeds ``LINEAR_BELOW_RAD`` (rms)
        or some band's brightness gain leaves ``GAIN_RANGE``."""
        count = frames.shape[0]
        kept = self._block_sums(frames).reshape(count, self.bands, 2 * self.regions + 1)
        # The gain g = kept + g * tail (the tail's share at the reference, scaled by g), so g = kept / (1 - tail).
        gain = kept[:, :, -1:] / (1 - self._tails[:, -1:])
        raw = kept + gain * self._tails
        if not np.all((gain > GAIN_RANGE[0]) & (gain < GAIN_RANGE[1])):
            return None
        sums = (raw[:, :, :-1] / gain).reshape(count, self.bands, 2, self.regions).transpose(0, 1, 3, 2)
        sums = sums.reshape(count, self.bands * self.regions, 2)
        change = np.einsum("nci,cij,ncj->nc", sums, self._fisher_inverse, sums).reshape(count, self.bands, -1)
        if np.any(change.sum(axis=2) > LINEAR_BELOW_RAD**2 * self._power):
            return None
        return sums
