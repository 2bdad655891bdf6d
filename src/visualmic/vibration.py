"""Where the surface vibrates: motion per cell of the frame, and its running spectrum.

The frame is divided into square cells. In each cell, the phase-gradient
estimator of :mod:`visualmic.motion` (its phase term, summed over the bands'
samples that fall in the cell) gives a 2-D displacement per frame. A
:class:`RunningDFT` accumulates, chunk by chunk, the displacement's Fourier
coefficients at chosen frequencies, so that a map of any length of video needs
memory for the cells and frequencies only, never a per-pixel time series.

:func:`dominant_phasors` projects each frequency's 2-D phasors on the direction
of motion, so that the map reads as amplitude (pixels) and phase (radians):
regions moving in opposite directions are pi apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal
import scipy.sparse

from .motion import regularised_power
from .pyramid import SteerablePyramid

__all__ = ["cell_labels", "CellMotion", "RunningDFT", "dominant_phasors", "spectrum_peaks"]


def cell_labels(shape: tuple[int, int], spacing_px: tuple[float, float], cell_px: tuple[float, float],
                grid: tuple[int, int]) -> np.ndarray:
    """Cell (row-major index into ``grid``) of every sample of a band, from its place in the frame.

    Parameters
    ----------
    shape : tuple of int
        The band's grid (rows, columns).
    spacing_px : tuple of float
        Distance between the band's samples in frame pixels.
    cell_px : tuple of float
        Cell height and width in frame pixels.
    grid : tuple of int
        Number of cells (rows, columns); samples beyond fall in the last cell.

    Examples
    --------
    >>> cell_labels((4, 4), (2.0, 2.0), (4.0, 4.0), (2, 2))
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]])
    """
    rows = np.minimum((np.arange(shape[0]) * spacing_px[0] / cell_px[0]).astype(int), grid[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * spacing_px[1] / cell_px[1]).astype(int), grid[1] - 1)
    return rows[:, None] * grid[1] + cols[None, :]


@dataclass(frozen=True)
class _BandCells:
    conj_ref: np.ndarray  # (P,) complex64
    sums: scipy.sparse.csr_matrix  # (2 C, P): A^2 grad(phi) (y, x) of each sample, in its cell's rows


class CellMotion:
    """2-D displacement of every cell of the frame, frame by frame.

    Parameters
    ----------
    pyramid : SteerablePyramid
        The pyramid that produced ``references``.
    references : list of ndarray
        Reference coefficients of every band (see :func:`visualmic.motion.reference_bands`).
    cell_px : int
        Cell side in frame pixels.

    Attributes
    ----------
    grid : tuple of int
        Cells (rows, columns).
    information : ndarray
        ``(rows, cols)`` trace of each cell's normal matrix: how much texture it
        has to measure motion with (0: none).

    Examples
    --------
    >>> from visualmic.motion import reference_bands
    >>> from visualmic.synth import procedural_texture, moving_frames
    >>> frames = np.concatenate(list(moving_frames(procedural_texture((32, 32)), np.array([0.0, 0.1]))))
    >>> pyr = SteerablePyramid((32, 32))
    >>> cells = CellMotion(pyr, reference_bands(pyr.bands(frames[:1])), cell_px=16)
    >>> d = cells.displacement(pyr.bands(frames))
    >>> d.shape, bool(abs(d[1, :, :, 1].mean() - 0.1) < 0.01)
    ((2, 2, 2, 2), True)
    """

    def __init__(self, pyramid: SteerablePyramid, references: list[np.ndarray], *, cell_px: int) -> None:
        rows, cols = pyramid.shape
        self.cell_px = int(cell_px)
        self.grid = (-(-rows // self.cell_px), -(-cols // self.cell_px))
        cells = self.grid[0] * self.grid[1]
        fisher = np.zeros((cells, 2, 2))
        self._bands = []
        for index, (info, ref) in enumerate(zip(pyramid.bands_info, references)):
            grad = pyramid.band_gradient(ref, index)
            weighted_gradient = (np.conj(ref)[None] * grad).imag.reshape(2, -1) * info.area_px  # A^2 grad(phi)
            inverse_power = 1.0 / regularised_power(ref).reshape(-1)
            labels = cell_labels(info.shape, info.spacing_px, (self.cell_px, self.cell_px), self.grid).reshape(-1)
            for i in range(2):
                for j in range(2):
                    fisher[:, i, j] += np.bincount(
                        labels, weighted_gradient[i] * weighted_gradient[j] * inverse_power / info.area_px,
                        minlength=cells)
            samples = np.arange(labels.size)
            sums = scipy.sparse.csr_matrix(
                (weighted_gradient.reshape(-1), (np.concatenate([2 * labels, 2 * labels + 1]),
                                                 np.concatenate([samples, samples]))),
                shape=(2 * cells, labels.size), dtype=np.float32,
            )
            self._bands.append(_BandCells(conj_ref=np.conj(ref).reshape(-1).astype(np.complex64), sums=sums))
        trace = np.trace(fisher, axis1=1, axis2=2)
        floor = 1e-6 * max(float(trace.max()), 1e-30)
        self._inverse = np.linalg.inv(fisher + floor * np.eye(2))
        self.information = trace.reshape(self.grid)

    def displacement(self, bands: list[np.ndarray]) -> np.ndarray:
        """Displacement (y, x) of every cell in pixels, ``(frames, rows, cols, 2)``.

        Parameters
        ----------
        bands : list of ndarray
            ``(n, rows, cols)`` complex coefficients of every band, as the pyramid gives them.
        """
        n = bands[0].shape[0]
        total = np.zeros((self._inverse.shape[0] * 2, n))
        for band, cells in zip(bands, self._bands):
            phase_change = np.angle(band.reshape(n, -1) * cells.conj_ref)  # (n, P)
            total += cells.sums @ phase_change.T
        sums = total.T.reshape(n, -1, 2)
        return -np.einsum("cij,ncj->nci", self._inverse, sums).reshape(n, *self.grid, 2)


class RunningDFT:
    """Fourier coefficients at chosen frequencies, accumulated chunk by chunk.

    Chunks may arrive in any order (each says where it starts), and two
    accumulators of disjoint frames merge by :meth:`merge`. The result is the
    single-sided amplitude phasor of the mean-removed signal: a sinusoid
    ``a cos(2 pi f t + p)`` gives ``a exp(i p)`` at ``f`` (rectangular window).

    Parameters
    ----------
    frequencies_hz : sequence of float
        Where to evaluate.
    fps : float
        Sampling rate of the frames.
    shape : tuple of int
        Shape of one frame's values.

    Examples
    --------
    >>> t = np.arange(1000) / 1000
    >>> x = 0.5 * np.cos(2 * np.pi * 50 * t + 1.0)[:, None]
    >>> dft = RunningDFT([50.0], fps=1000, shape=(1,))
    >>> dft.add(x[:300], first=0); dft.add(x[300:], first=300)
    >>> p = dft.phasors()[0, 0]
    >>> round(float(abs(p)), 6), round(float(np.angle(p)), 6)
    (0.5, 1.0)
    """

    def __init__(self, frequencies_hz, *, fps: float, shape: tuple[int, ...]) -> None:
        self.frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
        self.fps = float(fps)
        self.shape = tuple(shape)
        size = int(np.prod(self.shape))
        self._coefficients = np.zeros((self.frequencies_hz.size, size), dtype=np.complex128)
        self._kernel_sums = np.zeros(self.frequencies_hz.size, dtype=np.complex128)
        self._sum = np.zeros(size)
        self.count = 0

    def add(self, values: np.ndarray, *, first: int) -> None:
        """Add frames ``first`` to ``first + len(values) - 1``; ``values`` is ``(n, *shape)``."""
        n = values.shape[0]
        t = (first + np.arange(n)) / self.fps
        kernel = np.exp(-2j * np.pi * self.frequencies_hz[:, None] * t[None, :])  # (F, n)
        flat = values.reshape(n, -1).astype(np.float64)
        self._coefficients += kernel @ flat
        self._kernel_sums += kernel.sum(axis=1)
        self._sum += flat.sum(axis=0)
        self.count += n

    def merge(self, other: RunningDFT) -> None:
        """Add another accumulator's frames (disjoint from this one's)."""
        if not np.array_equal(other.frequencies_hz, self.frequencies_hz) or other.shape != self.shape:
            raise ValueError("the accumulators measure different frequencies or shapes")
        self._coefficients += other._coefficients
        self._kernel_sums += other._kernel_sums
        self._sum += other._sum
        self.count += other.count

    def phasors(self) -> np.ndarray:
        """``(frequencies, *shape)`` complex amplitude phasors of the mean-removed signal."""
        if self.count == 0:
            raise ValueError("no frames were added")
        mean = self._sum / self.count
        centred = self._coefficients - self._kernel_sums[:, None] * mean[None, :]
        return (2.0 / self.count * centred).reshape(-1, *self.shape)


def dominant_phasors(phasors: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project 2-D motion phasors on each frequency's main direction of motion.

    Parameters
    ----------
    phasors : ndarray
        ``(frequencies, ..., 2)`` complex phasors of the (y, x) displacement.
    weights : ndarray, optional
        ``(...)`` trust in each cell (cells without texture: 0).

    Returns
    -------
    projected : ndarray
        ``(frequencies, ...)`` complex: amplitude and phase along the direction,
        the phase relative to the strongest cell (which gets phase 0).
    direction_deg : ndarray
        ``(frequencies,)`` the direction, degrees counter-clockwise from the x axis
        (90: up the image), as :class:`visualmic.combine.BandMotion` gives it.

    Examples
    --------
    >>> p = np.array([[[0.0, 1.0], [0.0, -0.5]]], complex)  # two cells moving in x, opposite
    >>> projected, direction = dominant_phasors(p)
    >>> np.round(projected, 6).tolist(), round(float(direction[0]), 3)
    ([[(1+0j), (-0.5+0j)]], 0.0)
    """
    frequencies = phasors.shape[0]
    flat = phasors.reshape(frequencies, -1, 2)
    w = np.ones(flat.shape[1]) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    projected = np.empty(flat.shape[:2], dtype=np.complex128)
    directions = np.empty(frequencies)
    for f in range(frequencies):
        scatter = np.einsum("c,ci,cj->ij", w, flat[f], np.conj(flat[f])).real
        _, vectors = np.linalg.eigh(scatter)
        u = vectors[:, -1]
        if u[1] < 0 or (u[1] == 0 and u[0] > 0):
            u = -u
        along = flat[f] @ u
        strongest = int(np.argmax(np.abs(along) * (w > 0)))
        rotation = np.exp(-1j * np.angle(along[strongest])) if abs(along[strongest]) > 0 else 1.0
        projected[f] = along * rotation
        directions[f] = np.degrees(np.arctan2(-u[0], u[1])) + 0.0  # no -0.0
    return projected.reshape(phasors.shape[:-1]), directions


def spectrum_peaks(signal: np.ndarray, *, fps: float, count: int = 3, lowest_hz: float = 0.0,
                   separation_hz: float | None = None, above_median_db: float = 10.0) -> np.ndarray:
    """Frequencies of the strongest peaks of a signal's spectrum (Welch average).

    Only peaks standing ``above_median_db`` over the spectrum's median count:
    noise has peaks too, and mapping them would show nothing.

    Parameters
    ----------
    signal : ndarray
        1-D signal.
    fps : float
        Its sampling rate.
    count : int
        At most this many peaks, strongest first.
    lowest_hz : float
        Ignore frequencies below this (the high-passed band).
    separation_hz : float, optional
        Minimum distance between peaks [default: 4 frequency bins].
    above_median_db : float
        How far above the median power (over the band kept) a peak must stand.

    Examples
    --------
    >>> t = np.arange(8000) / 2000
    >>> x = np.sin(2 * np.pi * 300 * t) + 0.5 * np.sin(2 * np.pi * 700 * t)
    >>> spectrum_peaks(x, fps=2000, count=2).round().tolist()
    [300.0, 700.0]
    """
    segment = int(min(signal.size, max(256, 2 ** int(np.log2(max(signal.size // 4, 1))))))
    freqs, power = scipy.signal.welch(signal, fs=fps, nperseg=segment)
    step = freqs[1] - freqs[0]
    distance = max(1, int(round((separation_hz or 4 * step) / step)))
    power = np.where(freqs >= max(lowest_hz, step), power, 0.0)
    floor = float(np.median(power[power > 0])) if np.any(power > 0) else 0.0
    peaks, _ = scipy.signal.find_peaks(power, distance=distance, height=floor * 10 ** (above_median_db / 10))
    strongest = peaks[np.argsort(power[peaks])[::-1]][:count]
    # Refine each peak by a parabola through the log power of its neighbours.
    out = []
    for k in strongest:
        if 0 < k < power.size - 1 and np.all(power[k - 1 : k + 2] > 0):
            a, b, c = np.log(power[k - 1 : k + 2])
            shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
            out.append(freqs[k] + shift * step)
        else:
            out.append(freqs[k])
    return np.array(out)
