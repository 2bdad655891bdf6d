"""Local phase and amplitude changes of pyramid bands, reduced to motion per band and frame.

For a band ``c`` and a reference ``c_r``, a shift ``d`` changes the band's log
``log c = log A + i phi`` by ``-d . grad(log c_r)``. The weighted least-squares
fit of that model over all pixels (weights ``A**2``, the inverse of the local
phase noise) gives the displacement. Its two ingredients per pixel are the
wrapped phase difference (robust to large motion) and the relative amplitude
change; its per-pixel weights come from the reference alone, so a frame costs
one complex product, one ``arctan2`` and a few multiply-adds per coefficient.

Summed over the bands of a tight pyramid this is, to first order, the
efficient (Cramér-Rao) estimator of a rigid translation: the band-wise normal
equations add up to the image-wide ones (Parseval).

The results per frame are small accumulators (:class:`BandSums`), so chunks of
frames can be measured anywhere and concatenated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .kernels import fused_available, fused_phase_sums, region_segments
from .pyramid import Band, SteerablePyramid

__all__ = [
    "BandReference",
    "reference_bands",
    "prepare_references",
    "phase_gradient_sums",
    "band_noise_covariance",
    "merge_regions",
    "region_labels",
    "davis2014_band_signals",
]


@dataclass(frozen=True)
class BandReference:
    """Per-band quantities computed once from the reference frame.

    The band's pixels may be split into regions, each measured on its own (local
    aggregation); with one region, the whole band gives one measurement.

    Attributes
    ----------
    conj_ref : ndarray
        Conjugated reference coefficients, flattened.
    phase_weights : ndarray
        ``(2 R, P)``: ``A**2 grad(phi)`` (y and x) in each of the R regions (zero
        outside it), times taper and pixel area.
    amplitude_weights : ndarray
        ``(2 R, P)``: ``grad(A) / A`` likewise; multiplies ``Re(c conj(c_r))``.
    offset : ndarray
        ``(2 R,)``: the constant that makes the amplitude term zero for the reference itself.
    fisher : ndarray
        ``(R, 2, 2)`` normal matrix of each region (information per unit noise).
    labels : ndarray
        ``(P,)`` region of every coefficient.
    """

    conj_ref: np.ndarray
    phase_weights: np.ndarray
    amplitude_weights: np.ndarray
    offset: np.ndarray
    fisher: np.ndarray
    labels: np.ndarray

    @property
    def regions(self) -> int:
        """Number of regions the band is measured in."""
        return self.fisher.shape[0]

    @functools.cached_property
    def _amplitude_interleaved(self) -> np.ndarray:
        """``(2P, 2R + 2)``: amplitude weights at the real parts' positions of an interleaved
        complex array, a column giving the frame's brightness gain ``sum Re(q) / sum A**2``, and a
        zero column (an odd width takes a much slower BLAS path: 1.5 ms against 1.1 ms at 704²)."""
        pixels, channels = self.amplitude_weights.shape[1], self.amplitude_weights.shape[0]
        out = np.zeros((2 * pixels, channels + 2), dtype=np.float32)
        out[0::2, :channels] = self.amplitude_weights.T
        out[0::2, channels] = self._inverse_power
        return out

    @functools.cached_property
    def _inverse_power(self) -> float:
        """``1 / sum A**2``: turns ``sum Re(q)`` into the frame's brightness gain."""
        return 1.0 / max(float(np.sum(np.abs(self.conj_ref) ** 2)), 1e-30)

    @functools.cached_property
    def _fused_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :func:`visualmic.kernels.fused_phase_sums` reads: the reference's real and
        imaginary parts, the four weights of every coefficient (its region's rows), its segments."""
        rows = np.arange(self.labels.size)
        pick = 2 * self.labels
        weights = np.stack([self.phase_weights[pick, rows], self.phase_weights[pick + 1, rows],
                            self.amplitude_weights[pick, rows], self.amplitude_weights[pick + 1, rows]])
        parts = np.stack([self.conj_ref.real, self.conj_ref.imag])
        return parts.astype(np.float32), weights.astype(np.float32), region_segments(self.labels)


def region_labels(shape: tuple[int, int], spacing_px: tuple[float, float], frame_shape: tuple[int, int],
                  grid: int) -> np.ndarray:
    """Region (0 to ``grid**2 - 1``, row-major) of every sample of a band, from its place in the frame.

    Examples
    --------
    >>> region_labels((4, 4), (2.0, 2.0), (8, 8), 2)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]])
    """
    rows = np.minimum((np.arange(shape[0]) * spacing_px[0] * grid / frame_shape[0]).astype(int), grid - 1)
    cols = np.minimum((np.arange(shape[1]) * spacing_px[1] * grid / frame_shape[1]).astype(int), grid - 1)
    return rows[:, None] * grid + cols[None, :]


def reference_bands(bands_per_frame: list[np.ndarray]) -> list[np.ndarray]:
    """Average each band over frames (complex mean): a reference with less noise.

    Examples
    --------
    >>> b = [np.ones((4, 3, 3), np.complex64)]
    >>> reference_bands(b)[0].shape
    (3, 3)
    """
    return [band.mean(axis=0) for band in bands_per_frame]


def _border_taper(shape: tuple[int, int], margin: tuple[float, float]) -> np.ndarray:
    """Raised-cosine weight falling to 0 over ``margin`` samples at the frame's edges."""

    def ramp(n: int, m: float) -> np.ndarray:
        if m <= 0:
            return np.ones(n)
        dist = np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5
        return np.sin(0.5 * np.pi * np.clip(dist / m, 0, 1)) ** 2

    return ramp(shape[0], margin[0])[:, None] * ramp(shape[1], margin[1])[None, :]


def prepare_references(
    pyramid: SteerablePyramid, references: list[np.ndarray], *, border_px: float = 0.0, grid: int = 1
) -> list[BandReference]:
    """Weights of the phase-gradient estimator for every band, from reference coefficients.

    Parameters
    ----------
    pyramid : SteerablePyramid
        The pyramid that produced ``references``.
    references : list of ndarray
        One ``(rows, cols)`` complex array per band (see :func:`reference_bands`).
    border_px : float
        Width (input pixels) over which weights fade out at the frame's edges,
        where the FFT's wrap-around joins unrelated content.
    grid : int
        Measure each band in ``grid x grid`` regions of the frame (1: as a whole).

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)), grid=2)
    >>> refs[0].fisher.shape, refs[0].phase_weights.shape
    ((4, 2, 2), (8, 480))
    """
    out = []
    for index, (info, ref) in enumerate(zip(pyramid.bands_info, references)):
        grad = pyramid.band_gradient(ref, index)  # (2, rows, cols)
        product = np.conj(ref)[None] * grad  # A grad(A) + i A**2 grad(phi)
        power = np.abs(ref) ** 2
        floor = 1e-6 * max(float(power.mean()), 1e-30)
        margin = (border_px / info.spacing_px[0], border_px / info.spacing_px[1])
        weight = _border_taper(info.shape, margin) * info.area_px
        amp_grad = product.real  # A grad(A)
        labels = region_labels(info.shape, info.spacing_px, pyramid.shape, grid).reshape(-1)
        inside = (labels[None, :] == np.arange(grid * grid)[:, None]).astype(float)  # (R, P)
        pw = product.imag.reshape(2, -1)
        aw = amp_grad.reshape(2, -1)
        flat_weight = weight.reshape(-1)
        phase_w = (inside[:, None, :] * (pw * flat_weight)[None]).reshape(-1, pw.shape[1])
        amp_w = (inside[:, None, :] * (aw / (power.reshape(-1) + floor) * flat_weight)[None]).reshape(-1, aw.shape[1])
        offset = (inside[:, None, :] * (aw * flat_weight)[None]).sum(axis=2).reshape(-1)
        # Normal matrix: sum of A^2 (k k^T + a a^T) with k = grad(phi), a = grad(A)/A,
        # i.e. sum of (A^2 k)(A^2 k)^T / A^2 + (A grad A)(A grad A)^T / A^2, per region.
        inv_power = flat_weight / (power.reshape(-1) + floor)
        fisher = np.einsum("rp,ip,jp->rij", inside, pw * inv_power, pw) + np.einsum(
            "rp,ip,jp->rij", inside, aw * inv_power, aw
        )
        out.append(
            BandReference(
                conj_ref=np.conj(ref).reshape(-1).astype(np.complex64),
                phase_weights=phase_w.astype(np.float32),
                amplitude_weights=amp_w.astype(np.float32),
                offset=offset,
                fisher=fisher,
                labels=labels,
            )
        )
    return out


def phase_gradient_sums(bands: list[np.ndarray], references: list[BandReference]) -> np.ndarray:
    """Right-hand sides of the normal equations of every channel (band x region) for a chunk of frames.

    Parameters
    ----------
    bands : list of ndarray
        ``(n, rows, cols)`` complex coefficients of each band for n frames.
    references : list of BandReference
        From :func:`prepare_references`.

    Returns
    -------
    ndarray
        ``(n, channels, 2)`` with channels band-major (band b, region r at
        ``b * R + r``); a channel's displacement (y, x) in pixels is
        ``-solve(fisher, sums)``.

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    >>> b = pyr.bands(frames)
    >>> phase_gradient_sums(b, prepare_references(pyr, reference_bands(b))).shape
    (3, 2, 2)
    """
    sums_of_band = _band_sums_fused if fused_available() else _band_sums_numpy
    per_band = [sums_of_band(band.reshape(band.shape[0], -1), ref) for band, ref in zip(bands, references)]
    return np.concatenate(per_band, axis=1).astype(np.float64)


def _band_sums_numpy(band: np.ndarray, ref: BandReference) -> np.ndarray:
    """``(n, R, 2)`` normal-equation sums of one band's flattened coefficients, with numpy."""
    q = band * ref.conj_ref
    dphi = np.angle(q)
    # Re(q) read through the interleaved float view: no strided copy. The amplitude term
    # is made blind to the frame's brightness (flicker): under a gain g, Re(q) = g A^2, so
    # g times the offset is what the reference itself would give.
    amplitude = q.view(np.float32) @ ref._amplitude_interleaved
    channels = ref.amplitude_weights.shape[0]
    gain = amplitude[:, channels : channels + 1]
    sums = dphi @ ref.phase_weights.T + amplitude[:, :channels] - gain * ref.offset
    return sums.reshape(band.shape[0], ref.regions, 2)


def _band_sums_fused(band: np.ndarray, ref: BandReference) -> np.ndarray:
    """The same sums as :func:`_band_sums_numpy`, in one compiled pass (see :mod:`visualmic.kernels`)."""
    parts, weights, segments = ref._fused_inputs
    raw = fused_phase_sums(band, parts, weights, segments, ref.regions)
    gain = raw[:, :, 4].sum(axis=1)[:, None, None] * ref._inverse_power  # over the whole band
    return raw[:, :, 0:2] + raw[:, :, 2:4] - gain * ref.offset.reshape(ref.regions, 2)


def merge_regions(sums: np.ndarray, fisher: np.ndarray, regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums and normal matrices of whole bands from those of their regions.

    The normal equations add up over pixels, so a band measured in regions and
    merged is exactly the band measured as a whole.

    Parameters
    ----------
    sums : ndarray
        ``(frames, bands * regions, 2)`` from :func:`phase_gradient_sums`.
    fisher : ndarray
        ``(bands * regions, 2, 2)``.
    regions : int
        Regions per band.

    Examples
    --------
    >>> s, f = merge_regions(np.ones((3, 8, 2)), np.ones((8, 2, 2)), 4)
    >>> s.shape, f.shape, s[0, 0, 0]
    ((3, 2, 2), (2, 2, 2), np.float64(4.0))
    """
    frames = sums.shape[0]
    return (sums.reshape(frames, -1, regions, 2).sum(axis=2), fisher.reshape(-1, regions, 2, 2).sum(axis=1))


def band_noise_covariance(
    pyramid: SteerablePyramid, references: list[BandReference], direction: np.ndarray, *, merge_regions: bool = False
) -> np.ndarray:
    """Covariance of the bands' displacement estimates under white pixel noise of unit variance.

    To first order, band b's estimate along ``direction`` is a linear function
    of the image, ``s_b = sum_y h_b(y) I(y)``; its kernel ``h_b`` is obtained
    exactly by the adjoint of the band's crop-and-mask operator.  Bands that
    overlap in frequency have correlated noise, which this covariance captures
    (the combination stage uses it; ignoring it over-trusts groups of bands).

    Parameters
    ----------
    pyramid : SteerablePyramid
        The pyramid the references come from.
    references : list of BandReference
        From :func:`prepare_references`.
    direction : ndarray
        ``(2,)`` unit vector (y, x) of the motion.
    merge_regions : bool
        Give the covariance of the bands measured as wholes (their regions'
        sums added up, see :func:`merge_regions`) instead of the regions'.

    Returns
    -------
    ndarray
        ``(channels, channels)`` covariance of the channels' estimates
        ``-u.S_c / (u.F_c u)`` (channels as in :func:`phase_gradient_sums`; bands
        with ``merge_regions``), px².

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)))
    >>> band_noise_covariance(pyr, refs, np.array([0.0, 1.0])).shape
    (2, 2)
    """
    kernels = []
    for info, ref in zip(pyramid.bands_info, references):
        c_ref = np.conj(ref.conj_ref).astype(np.complex128)
        power = np.abs(c_ref) ** 2
        floor = 1e-6 * max(float(power.mean()), 1e-30)
        groups = [range(ref.regions)] if merge_regions else [[region] for region in range(ref.regions)]
        for regions in groups:
            # The estimate of a group of regions is linear in the sums of its regions.
            alpha = sum(direction @ ref.amplitude_weights[2 * r : 2 * r + 2] for r in regions)
            beta = sum(direction @ ref.phase_weights[2 * r : 2 * r + 2] for r in regions)
            # u.dS = Re sum_x dc(x) conj(v(x)), v = c_ref (alpha + i beta / A^2).
            v = (c_ref * (alpha + 1j * beta / (power + floor))).reshape(info.shape)
            information = sum(direction @ ref.fisher[r] @ direction for r in regions)
            kernels.append(-_image_kernel(v, info, pyramid.shape) / max(information, 1e-300))
    stacked = np.stack(kernels)
    return stacked @ stacked.T


def _image_kernel(v: np.ndarray, info: Band, frame_shape: tuple[int, int]) -> np.ndarray:
    """``h`` (flattened) such that ``Re sum_x band(I)(x) conj(v(x)) = sum_y h(y) I(y)``: the adjoint
    of the band's crop-and-mask operator applied to ``v``."""
    rows, cols = frame_shape
    half = cols // 2 + 1
    spectrum_v = np.fft.fft2(v)
    gather = np.zeros((rows, half), dtype=np.complex128)
    for block in info.blocks:  # adjoint of BlockCopy: out = src * mask (conjugated for mirrors)
        part = spectrum_v[block.rows, block.cols]
        contribution = (part if block.mirror else np.conj(part)) * block.mask
        if isinstance(block.src_rows, slice) or isinstance(block.src_cols, slice):
            gather[block.src_rows, block.src_cols] += contribution
        else:
            np.add.at(gather, (block.src_rows[:, None], block.src_cols[None, :]), contribution)
    # h(y) = Re sum_k G(k) exp(-2 pi i k.y) / (h w), k over the rfft half plane.
    full = np.zeros((rows, cols), dtype=np.complex128)
    full[:, :half] = np.conj(gather)
    return (np.real(np.fft.ifft2(full)) * (rows * cols) / (info.shape[0] * info.shape[1])).reshape(-1)


def davis2014_band_signals(bands: list[np.ndarray], references: list[np.ndarray]) -> np.ndarray:
    """The 2014 reference code's per-band signal: ``sum(A**2 dphi) / sum(A)`` per frame.

    Returns
    -------
    ndarray
        ``(n, bands)``.

    Examples
    --------
    >>> b = [np.exp(1j * np.linspace(0, 0.1, 8)).reshape(2, 2, 2)]
    >>> davis2014_band_signals(b, [b[0][0]]).shape
    (2, 1)
    """
    n = bands[0].shape[0]
    out = np.empty((n, len(bands)))
    for j, (band, ref) in enumerate(zip(bands, references)):
        flat = band.reshape(n, -1)
        amp = np.abs(flat)
        dphi = np.angle(flat * np.conj(ref.reshape(-1)))
        out[:, j] = np.sum(amp**2 * dphi, axis=1) / np.maximum(np.sum(amp, axis=1), 1e-30)
    return out
