"""Follow slow drift: measure every chunk of frames relative to where the surface has drifted.

The phase-gradient estimator is linear in the displacement: beyond a fraction
of a pixel the finest bands' phases wrap and the fit breaks. A camera that
drifts by a pixel or more (a tripod settling, thermal creep) would lose the
sound. Each chunk's mean shift against the reference is therefore estimated
first, from the lowest spatial frequencies of the chunk's mean frame (which
do not wrap for shifts up to 16 pixels), windowed so that the texture entering
and leaving the view does not count, then refined on higher ones; the
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
LIMITS = (1 / 32, 1 / 16, 1 / 8)  # cycles per pixel of the steps: no wrap up to 16, 8 then 4 px
SETTLED_PX = FOLLOW_BEYOND_PX / 2  # a coarsest step that moved less decides the chunk: the finer ones are skipped
MAX_ERROR_PX = 0.05  # a direction of the shift is followed when known to within this,
SIGNIFICANT = 8.0  # or when it moved this many standard errors along it, the shift explaining the phases:
COHERENT = 0.9  # their weighted mean resultant once it is removed (pure noise: 0.1-0.8; a drift: 0.94-1)
MIN_BINS = 24  # a step fits at least this many bins: its misfit, hence its error, is then known well enough


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cycles per pixel) of the bins of an ``rfft2`` of frames of ``shape``."""
    return np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]


class ShiftEstimator:
    """Shift ``(dy, dx)`` in pixels that moves the reference onto a chunk of frames, from spectra.

    A shift ``d`` multiplies the spectrum by ``exp(-2 pi i f.d)``. The phase of
    the cross-spectrum of the chunk's mean frame and the reference, each less its
    mean and under a Hann window (computed on the spectrum: :meth:`window_block`),
    is fitted by weighted least squares (weights: its magnitude), first over
    frequencies below the first of ``limits`` (cycles per pixel; no wrap up to
    ``1 / (2 limit)`` px), then, each estimate removed and the reference's window
    moved with it, up to the next, the last twice. Only the low-frequency block up
    to the last limit is read. The window keeps the frame's edges out: texture that
    entered or left the view (a camera drifting over a larger scene) would bias the
    shift towards none. A direction moves the chunk where the fit's standard error
    (from its residual phase misfit) is below ``MAX_ERROR_PX``, or where the shift
    along it is ``SIGNIFICANT`` times that error and explains the phases
    (``COHERENT``); a chunk moves only when it moved more than ``FOLLOW_BEYOND_PX``
    (else None).

    Parameters
    ----------
    reference_spectrum : ndarray
        ``rfft2`` of the reference frame, ``(rows, cols // 2 + 1)``.
    shape : tuple of int
        The frames' shape.
    limits : tuple of float
        Highest frequency (cycles per pixel) of each step, ascending.

    Examples
    --------
    >>> from visualmic.synth import procedural_texture
    >>> texture = procedural_texture((64, 64), seed=0)
    >>> moved = np.roll(texture, (-2, 3), axis=(0, 1))[None]  # one frame, moved by rows, columns
    >>> estimate = ShiftEstimator(np.fft.rfft2(texture), (64, 64))
    >>> np.round(estimate(np.fft.rfft2(moved)), 2) + 0.0
    array([-2.,  3.])
    """

    def __init__(self, reference_spectrum: np.ndarray, shape: tuple[int, int], *,
                 limits: tuple[float, ...] = LIMITS) -> None:
        fine_limit = limits[-1]
        # The block fitted: |ky| <= half[0], 0 <= kx <= half[1] (integer bins); one more bin on each side
        # is read, which the window's 3-tap kernel takes in.
        half = [min(int(np.floor(fine_limit * n)), (n - 1) // 2 - 1) for n in shape]
        self._half, self._shape = half, np.asarray(shape, dtype=float)
        self.rows = np.r_[0 : half[0] + 2, shape[0] - half[0] - 1 : shape[0]]
        # Those rows are two runs, the lowest positive frequencies and the lowest negative ones.
        self._row_runs = [slice(0, half[0] + 2), slice(shape[0] - half[0] - 1, shape[0])]
        self.cols = slice(0, half[1] + 2)
        ky, kx = np.arange(-half[0], half[0] + 1)[:, None], np.arange(half[1] + 1)[None, :]
        self.fy = np.broadcast_to(ky / shape[0], (ky.size, kx.size))
        self.fx = np.broadcast_to(kx / shape[1], self.fy.shape)
        self._reference_read = reference_spectrum[self.rows, self.cols]
        self.conj_reference = np.conj(self.window_block(self._reference_read))
        nonzero = (self.fy != 0) | (self.fx != 0)
        # Each step: which bins of the block it fits, and their frequencies (2, bins); a limit that
        # leaves fewer than MIN_BINS bins (small frames: the coarsest) or adds none is no step, unless
        # no limit leaves more (tiny frames: the finest is the one step).
        self.steps, kept = [], []
        for limit in limits:
            use = nonzero & (np.abs(self.fy) <= limit) & (self.fx <= limit)
            enough = np.count_nonzero(use) >= MIN_BINS or (limit == fine_limit and not self.steps)
            if enough and not (self.steps and np.array_equal(use, self.steps[-1][0])):
                self.steps.append((use, np.stack([self.fy[use], self.fx[use]])))
                kept.append(limit)
        # The coarsest step alone, on its own smaller block (the same bins, in the same order): it decides most chunks.
        self._coarse = ShiftEstimator(reference_spectrum, shape, limits=(kept[0],)) if len(kept) > 1 else None

    def __call__(self, spectrum: np.ndarray) -> np.ndarray | None:
        """The shift to move a chunk back by, from its ``(n, rows, cols // 2 + 1)`` spectrum (see :meth:`follow`)."""
        if self._coarse is not None:
            # A chunk that has not moved (most) is known from the coarsest step, the same numbers :meth:`follow`
            # would compute first, on a sixteenth of the bins (0.08 ms for a chunk of 4 frames of 512²).
            coarse = self._coarse.estimate(self._coarse.mean_block(spectrum))
            if np.hypot(*coarse) <= SETTLED_PX:
                return None
        return self.follow(self.mean_block(spectrum))

    def mean_block(self, spectrum: np.ndarray) -> np.ndarray:
        """The windowed spectrum of the chunk's mean frame on the block (what :meth:`follow` reads)."""
        # The rows are two runs (low positive and negative frequencies): two slices, no gather.
        return self.window_block(np.concatenate([spectrum[:, rows, self.cols].mean(axis=0) for rows in self._row_runs]))

    def window_block(self, read: np.ndarray, window_shift_px: np.ndarray | None = None) -> np.ndarray:
        """From a frame's spectrum at ``[rows, cols]`` (what a GPU sends back), that of the frame less
        its mean, times a Hann window, on the block: ``0.5 X(k) - 0.25 X(k-1) - 0.25 X(k+1)`` along
        each axis. The frame's edges, where texture enters and leaves the view, then weigh nothing,
        and the frame's mean, which does not move, adds nothing. With ``window_shift_px`` (y, x), the
        window is moved back by it (``w(x + s)``): the reference's window, moved to where the chunk's
        content came from, so that the window's own shape does not bias the shift."""
        ky = self._half[0] + 1
        rows = np.concatenate([read[ky + 1 :], read[: ky + 1]])  # ky = -(half + 1) ... half + 1
        rows[ky, 0] = 0  # the mean
        negative = np.conj(rows[::-1, :0:-1])  # kx = -(half + 1) ... -1: X(ky, -kx) = conj X(-ky, kx)
        full = np.concatenate([negative, rows], axis=1)
        below = above = np.full(2, 0.25 + 0j)  # the taps on X(k - 1), X(k + 1)
        if window_shift_px is not None:
            turn = np.exp(2j * np.pi * np.asarray(window_shift_px) / self._shape)
            below, above = 0.25 * turn, 0.25 / turn
        full = 0.5 * full[1:-1] - below[0] * full[:-2] - above[0] * full[2:]
        full = 0.5 * full[:, 1:-1] - below[1] * full[:, :-2] - above[1] * full[:, 2:]
        return full[:, self._half[1] :]

    def follow(self, block: np.ndarray) -> np.ndarray | None:
        """The shift to move a chunk back by, from its :meth:`mean_block` (a GPU's: :meth:`window_block`
        of the mean frame's spectrum at ``[rows, cols]``); None when it moved ``FOLLOW_BEYOND_PX`` or
        less (measured as it is)."""
        shift = self.estimate(block, settle_below_px=SETTLED_PX)
        return shift if np.hypot(*shift) > FOLLOW_BEYOND_PX else None

    def estimate(self, block: np.ndarray, *, settle_below_px: float = 0.0) -> np.ndarray:
        """The shift, from the chunk's :meth:`mean_block`; the finer steps are skipped when the
        coarsest moved ``settle_below_px`` or less."""
        shift = np.zeros(2)
        # The finest step twice: the second with the reference's window where the first put it.
        for step, (use, freqs) in enumerate(self.steps + self.steps[-1:] if len(self.steps) > 1 else self.steps):
            if step and np.hypot(*shift) <= settle_below_px:
                break
            if shift.any():  # the shift found so far removed, the reference's window moved with it
                reference = self.window_block(self._reference_read, shift)[use]
                residual = block[use] * np.conj(reference) * np.exp(2j * np.pi * (shift @ freqs))
            else:
                residual = block[use] * self.conj_reference[use]
            weight = np.abs(residual)
            if not weight.any():
                break
            # Weighted least squares of the phase on -2 pi f.d (weights: the magnitude).
            phase, design = np.angle(residual), -2 * np.pi * freqs
            normal = (design * weight) @ design.T
            right = (design * weight) @ phase
            values, vectors = np.linalg.eigh(normal)
            determined = values > 1e-12 * values[-1]
            full = vectors[:, determined] @ (vectors[:, determined].T @ right / values[determined])
            misfit_phase = phase - full @ design
            misfit = float(weight @ misfit_phase**2) / (phase.size - 2)
            # How well one shift explains the phases: the weighted mean resultant of what it leaves.
            coherence = abs(weight @ np.exp(1j * misfit_phase)) / weight.sum()
            # A direction moves the chunk where the fit determines it to within MAX_ERROR_PX, or where
            # the chunk clearly moved along it (SIGNIFICANT standard errors) and the shift explains
            # the phases (COHERENT): a texture without detail along y, or frames of pure noise, leave
            # it where it is. The misfit counts what entered and left the view too, so that on a small
            # view of a larger scene the coarsest step's error grows with the drift (0.24 px at 4.6 px
            # on 96², 0.014 px on 512²) while the finer steps' stays under 0.02 px.
            for value, vector in zip(values, vectors.T):
                if value <= 0:
                    continue
                along, error = (vector @ right) / value, np.sqrt(misfit / value)
                if error < MAX_ERROR_PX or (abs(along) > SIGNIFICANT * error and coherence >= COHERENT):
                    shift = shift + vector * along
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
