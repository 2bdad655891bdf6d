"""Follow slow drift: measure every chunk of frames relative to where the surface has drifted.

The phase-gradient estimator is linear in the displacement: beyond a fraction
of a pixel the finest bands' phases wrap and the fit breaks. A camera that
drifts by a pixel or more (a tripod settling, thermal creep) would lose the
sound. Each chunk's mean shift against the reference is therefore estimated
first, from the lowest spatial frequencies of the chunk's mean spectrum (which
do not wrap for shifts up to several pixels), then refined on higher ones; the
chunk's frames are moved back by it in the Fourier domain (a phase ramp on the
spectrum already computed, no extra FFT); the bands measure what remains (the
sound, small); and the shift is added back to the measurement. A chunk depends
on nothing but its own frames, so chunks still run in any order, on any thread
or cluster worker, with the same result.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ShiftEstimator", "shift_spectrum", "FOLLOW_BEYOND_PX"]

FOLLOW_BEYOND_PX = 0.1  # chunks that moved less are measured as they are
SETTLED_PX = FOLLOW_BEYOND_PX / 2  # a coarse step that moved less decides the chunk: the fine one is skipped
MAX_ERROR_PX = 0.05  # a direction of the shift is followed only when known to within this


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cycles per pixel) of the bins of an ``rfft2`` of frames of ``shape``."""
    return np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]


class ShiftEstimator:
    """Shift ``(dy, dx)`` in pixels that moves the reference onto a chunk of frames, from spectra.

    A shift ``d`` multiplies the spectrum by ``exp(-2 pi i f.d)``. The phase of
    the cross-spectrum of the chunk's mean and the reference is fitted by weighted
    least squares (weights: its magnitude), first over frequencies below
    ``coarse_limit`` cycles per pixel (no wrap up to ``1 / (2 coarse_limit)`` px),
    then, that estimate removed, up to ``fine_limit``. Only that low-frequency
    block of the spectrum is read. A direction is moved only where the fit's
    standard error is below ``MAX_ERROR_PX`` (from its residual phase misfit),
    and a chunk only when it moved more than ``FOLLOW_BEYOND_PX`` (else None).

    Parameters
    ----------
    reference_spectrum : ndarray
        ``rfft2`` of the reference frame, ``(rows, cols // 2 + 1)``.
    shape : tuple of int
        The frames' shape.

    Examples
    --------
    >>> from visualmic.synth import procedural_texture
    >>> texture = procedural_texture((64, 64), seed=0)
    >>> moved = np.roll(texture, (-2, 3), axis=(0, 1))[None]  # one frame, moved by rows, columns
    >>> estimate = ShiftEstimator(np.fft.rfft2(texture), (64, 64))
    >>> np.round(estimate(np.fft.rfft2(moved)), 3) + 0.0
    array([-2.,  3.])
    """

    def __init__(self, reference_spectrum: np.ndarray, shape: tuple[int, int], *, coarse_limit: float = 1 / 16,
                 fine_limit: float = 1 / 8) -> None:
        fy, fx = _frequencies(shape)
        self.rows = np.flatnonzero(np.abs(fy[:, 0]) <= fine_limit)
        # Those rows are two runs, the lowest positive frequencies and the lowest negative ones.
        positive = int(np.count_nonzero(np.abs(fy[: shape[0] // 2 + 1, 0]) <= fine_limit))
        runs = (slice(0, positive), slice(positive + shape[0] - self.rows.size, shape[0]))
        self._row_runs = [run for run in runs if run.stop > run.start]
        self.cols = slice(0, int(np.count_nonzero(fx[0] <= fine_limit)))
        self.fy = np.broadcast_to(fy[self.rows], (self.rows.size, self.cols.stop))
        self.fx = np.broadcast_to(fx[:, self.cols], self.fy.shape)
        self.conj_reference = np.conj(reference_spectrum[self.rows, self.cols])
        nonzero = (self.fy != 0) | (self.fx != 0)
        # Each step: which bins of the block it fits, and their frequencies (2, bins); one step
        # where both limits are the same.
        self.steps = []
        for limit in dict.fromkeys((coarse_limit, fine_limit)):
            use = nonzero & (np.abs(self.fy) <= limit) & (self.fx <= limit)
            self.steps.append((use, np.stack([self.fy[use], self.fx[use]])))
        # The coarse step alone, on its own smaller block (the same bins, in the same order): it decides most chunks.
        self._coarse = (ShiftEstimator(reference_spectrum, shape, coarse_limit=coarse_limit, fine_limit=coarse_limit)
                        if fine_limit > coarse_limit else None)

    def __call__(self, spectrum: np.ndarray) -> np.ndarray | None:
        """The shift to move a chunk back by, from its ``(n, rows, cols // 2 + 1)`` spectrum (see :meth:`follow`)."""
        if self._coarse is not None:
            # A chunk that has not moved (most) is known from the coarse step, the same numbers :meth:`follow`
            # would compute first, on a quarter of the bins: a tenth of a chunk's own time in a 2-thread run.
            coarse = self._coarse.estimate(self._coarse.mean_block(spectrum))
            if np.hypot(*coarse) <= SETTLED_PX:
                return None
        return self.follow(self.mean_block(spectrum))

    def mean_block(self, spectrum: np.ndarray) -> np.ndarray:
        """The chunk's mean spectrum at ``[rows, cols]`` (what :meth:`follow` reads)."""
        # The rows are two runs (low positive and negative frequencies): two slices, no gather.
        return np.concatenate([spectrum[:, rows, self.cols].mean(axis=0) for rows in self._row_runs])

    def follow(self, block: np.ndarray) -> np.ndarray | None:
        """The shift to move a chunk back by, from its mean spectrum at ``[rows, cols]`` only (what
        a GPU sends back); None when it moved ``FOLLOW_BEYOND_PX`` or less (measured as it is)."""
        shift = self.estimate(block, settle_below_px=SETTLED_PX)
        return shift if np.hypot(*shift) > FOLLOW_BEYOND_PX else None

    def estimate(self, block: np.ndarray, *, settle_below_px: float = 0.0) -> np.ndarray:
        """The shift, from the chunk's mean spectrum at ``[rows, cols]``; the fine step is skipped
        when the coarse one moved ``settle_below_px`` or less."""
        cross = block * self.conj_reference
        shift = np.zeros(2)
        for step, (use, freqs) in enumerate(self.steps):
            if step and np.hypot(*shift) <= settle_below_px:
                break
            residual = cross[use]
            if shift.any():
                residual = residual * np.exp(2j * np.pi * (shift @ freqs))
            weight = np.abs(residual)
            if freqs.shape[1] < 4 or not weight.any():
                break
            # Weighted least squares of the phase on -2 pi f.d (weights: the magnitude).
            phase, design = np.angle(residual), -2 * np.pi * freqs
            normal = (design * weight) @ design.T
            right = (design * weight) @ phase
            values, vectors = np.linalg.eigh(normal)
            determined = values > 1e-12 * values[-1]
            full = vectors[:, determined] @ (vectors[:, determined].T @ right / values[determined])
            misfit = float(weight @ (phase - full @ design) ** 2) / (phase.size - 2)
            # Only directions the fit determines to within MAX_ERROR_PX move the chunk: a
            # texture without detail along y, or frames of pure noise, leave it where it is.
            for value, vector in zip(values, vectors.T):
                if value > 0 and misfit / value < MAX_ERROR_PX**2:
                    shift = shift + vector * (vector @ right) / value
        return shift


def shift_spectrum(spectrum: np.ndarray, shift_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The spectrum of frames moved back by ``shift_px`` (``(dy, dx)``): ``X exp(2 pi i f.d)``.

    Examples
    --------
    >>> from visualmic.synth import procedural_texture
    >>> texture = procedural_texture((32, 32), seed=0)
    >>> moved = np.fft.rfft2(np.roll(texture, (1, -2), axis=(0, 1)))
    >>> back = np.fft.irfft2(shift_spectrum(moved, np.array([1.0, -2.0]), (32, 32)), s=(32, 32))
    >>> bool(np.allclose(back, texture))
    True
    """
    fy, fx = _frequencies(shape)
    ramp = np.exp(2j * np.pi * (fy * shift_px[0] + fx * shift_px[1]))
    return (spectrum * ramp).astype(spectrum.dtype, copy=False)
