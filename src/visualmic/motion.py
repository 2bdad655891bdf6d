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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .fftlib import fft2
from .kernels import fused_available, fused_band_spectrum_adjoint, fused_phase_sums, region_segments
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
    "kernel_spectra",
    "region_kernels",
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
    weights : ndarray
        ``(4, P)`` float32 per coefficient, times taper and pixel area:
        ``A**2 grad(phi)`` (y, x), which multiply the phase difference, and
        ``grad(A) / A`` (y, x), which multiply ``Re(c conj(c_r))``.
    labels : ndarray
        ``(P,)`` region of every coefficient.
    offset : ndarray
        ``(R, 2)``: the constant that makes the amplitude term zero for the reference itself.
    fisher : ndarray
        ``(R, 2, 2)`` normal matrix of each region (information per unit noise).
    power : float
        ``sum A**2`` times taper and pixel area over the band: ``d.F d / power`` is the
        mean squared change of ``log c`` (phase and log-amplitude, rad²) a shift ``d`` makes.
    """

    conj_ref: np.ndarray
    weights: np.ndarray
    labels: np.ndarray
    offset: np.ndarray
    fisher: np.ndarray
    power: float

    @property
    def regions(self) -> int:
        """Number of regions the band is measured in."""
        return self.fisher.shape[0]

    @functools.cached_property
    def region_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Phase and amplitude weights spread over regions: two ``(2 R, P)`` matrices, row
        ``2 r + i`` holding component i (y, x) on region r's coefficients and zero elsewhere
        (the form matrix products want)."""
        inside = self.labels[None, :] == np.arange(self.regions)[:, None]  # (R, P)
        spread = [(inside[:, None, :] * part[None]).reshape(2 * self.regions, -1).astype(np.float32)
                  for part in (self.weights[0:2], self.weights[2:4])]
        return spread[0], spread[1]

    def first_order_weights(self, along: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """To first order, the sums along ``along`` (``(2,)``: y, x) of region r are
        ``Re sum_x c(x) conj(v(x))`` over its coefficients less ``gain_weight[r]`` times the band's
        brightness gain (the flicker correction): ``(v, gain_weight)``, as :func:`region_kernels` takes them.

        With ``q = c conj(c_r)``, the phase term's ``angle(q)`` is ``Im(q) / |c_r|**2`` to first order
        (the power regularised, :func:`regularised_power`), so ``v = c_r (alpha + i beta / A**2)``, alpha
        and beta the amplitude and phase weights along ``along``.

        Examples
        --------
        >>> pyr = SteerablePyramid((32, 32))
        >>> frame = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)
        >>> ref = prepare_references(pyr, reference_bands(pyr.bands(frame)), grid=2)[0]
        >>> v, gain_weight = ref.first_order_weights(np.array([0.0, 1.0]))  # along x
        >>> v.shape, gain_weight.shape
        ((480,), (4,))
        """
        phase, amplitude = np.asarray(along, dtype=np.float32) @ self.weights.reshape(2, 2, -1)
        c_ref = np.conj(self.conj_ref)
        v = c_ref * (amplitude + 1j * (phase / regularised_power(c_ref)))
        return v, (self.offset @ along) * self._inverse_power

    @functools.cached_property
    def _amplitude_interleaved(self) -> np.ndarray:
        """``(2P, 2R + 2)``: amplitude weights at the real parts' positions of an interleaved
        complex array, a column giving the frame's brightness gain ``sum Re(q) / sum A**2``, and a
        zero column (an odd width takes a much slower BLAS path: 1.5 ms against 1.1 ms at 704²)."""
        amplitude = self.region_weights[1]
        pixels, channels = amplitude.shape[1], amplitude.shape[0]
        out = np.zeros((2 * pixels, channels + 2), dtype=np.float32)
        out[0::2, :channels] = amplitude.T
        out[0::2, channels] = self._inverse_power
        return out

    @functools.cached_property
    def _inverse_power(self) -> float:
        """``1 / sum A**2``: turns ``sum Re(q)`` into the frame's brightness gain."""
        return 1.0 / max(float(np.sum(np.abs(self.conj_ref) ** 2)), 1e-30)

    @functools.cached_property
    def _fused_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :func:`visualmic.kernels.fused_phase_sums` reads: the reference's real and
        imaginary parts, the four weights of every coefficient, its segments."""
        parts = np.stack([self.conj_ref.real, self.conj_ref.imag])
        return parts.astype(np.float32), self.weights, region_segments(self.labels)


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


def region_sums(values: np.ndarray, labels: np.ndarray, grid: int) -> np.ndarray:
    """Sums of ``values`` over each region of :func:`region_labels`'s ``labels`` (rectangles of whole rows
    and columns: sums of slices, no scatter).

    Parameters
    ----------
    values : ndarray
        ``(k, rows * cols)`` values of a band's samples, flattened.
    labels : ndarray
        ``(rows, cols)`` from :func:`region_labels`.
    grid : int
        Regions per side.

    Returns
    -------
    ndarray
        ``(k, grid * grid)`` (0 for regions without samples).

    Examples
    --------
    >>> labels = region_labels((4, 4), (2.0, 2.0), (8, 8), 2)
    >>> region_sums(np.arange(16.0)[None], labels, 2)
    array([[10., 18., 42., 50.]])
    """
    row_starts = np.flatnonzero(np.diff(labels[:, 0], prepend=-1))
    col_starts = np.flatnonzero(np.diff(labels[0], prepend=-1))
    blocks = np.add.reduceat(np.add.reduceat(values.reshape(-1, *labels.shape), row_starts, axis=1), col_starts, axis=2)
    sums = np.zeros((values.shape[0], grid, grid))
    sums[:, (labels[row_starts, 0] // grid)[:, None], (labels[0, col_starts] % grid)[None, :]] = blocks
    return sums.reshape(values.shape[0], -1)


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


def regularised_power(coefficients: np.ndarray) -> np.ndarray:
    """``|c|**2`` plus a millionth of its mean: the phase weights' denominator, never zero.

    Examples
    --------
    >>> regularised_power(np.array([0j, 2j])).tolist()  # mean 2: the floor is 2e-6
    [2e-06, 4.000002]
    """
    power = np.abs(coefficients) ** 2
    return power + 1e-6 * max(float(power.mean()), 1e-30)


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
    >>> refs[0].fisher.shape, refs[0].weights.shape
    ((4, 2, 2), (4, 480))
    """
    out = []
    regions = grid * grid
    for index, (info, ref) in enumerate(zip(pyramid.bands_info, references)):
        grad = pyramid.band_gradient(ref, index)  # (2, rows, cols)
        product = np.conj(ref)[None] * grad  # A grad(A) + i A**2 grad(phi)
        power = regularised_power(ref).reshape(-1)
        margin = (border_px / info.spacing_px[0], border_px / info.spacing_px[1])
        weight = (_border_taper(info.shape, margin) * info.area_px).reshape(-1)
        labels = region_labels(info.shape, info.spacing_px, pyramid.shape, grid)
        pw = product.imag.reshape(2, -1)  # A^2 grad(phi)
        aw = product.real.reshape(2, -1)  # A grad(A)
        inv_power = weight / power
        offset = region_sums(aw * weight, labels, grid).T  # (R, 2)
        # Normal matrix: sum of A^2 (k k^T + a a^T) with k = grad(phi), a = grad(A)/A,
        # i.e. sum of (A^2 k)(A^2 k)^T / A^2 + (A grad A)(A grad A)^T / A^2, per region.
        yy, xy, xx = region_sums(
            np.stack([(pw[i] * pw[j] + aw[i] * aw[j]) * inv_power for i, j in ((0, 0), (1, 0), (1, 1))]), labels, grid)
        fisher = np.stack([yy, xy, xy, xx], axis=-1).reshape(regions, 2, 2)
        labels = labels.reshape(-1)
        out.append(
            BandReference(
                conj_ref=np.conj(ref).reshape(-1).astype(np.complex64),
                weights=np.concatenate([pw * weight, aw * inv_power]).astype(np.float32),
                labels=labels,
                offset=offset,
                fisher=fisher,
                power=float(np.sum(np.abs(ref.reshape(-1)) ** 2 * weight)),
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
    channels = 2 * ref.regions
    gain = amplitude[:, channels : channels + 1]
    sums = dphi @ ref.region_weights[0].T + amplitude[:, :channels] - gain * ref.offset.reshape(-1)
    return sums.reshape(band.shape[0], ref.regions, 2)


def _band_sums_fused(band: np.ndarray, ref: BandReference) -> np.ndarray:
    """The same sums as :func:`_band_sums_numpy`, in one compiled pass (see :mod:`visualmic.kernels`)."""
    parts, weights, segments = ref._fused_inputs
    raw = fused_phase_sums(band, parts, weights, segments, ref.regions)
    gain = raw[:, :, 4].sum(axis=1)[:, None, None] * ref._inverse_power  # over the whole band
    return raw[:, :, 0:2] + raw[:, :, 2:4] - gain * ref.offset


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
    """Covariance of the channels' displacement estimates under white pixel noise of unit variance.

    To first order, a channel's estimate along ``direction`` is a linear function
    of the image, ``s = sum_y h(y) I(y)``; its kernel ``h`` is exactly the adjoint
    of the band's crop-and-mask operator applied to the channel's weights, and
    the kernels' Gram matrix follows from their spectra on the bands' bins alone
    (no frame-sized transform). Bands that overlap in frequency have correlated
    noise, which this covariance captures (the combination stage uses it;
    ignoring it over-trusts groups of bands), as does the flicker correction's
    brightness gain, common to a band's regions.

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
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)), grid=2)
    >>> band_noise_covariance(pyr, refs, np.array([0.0, 1.0])).shape
    (8, 8)
    >>> band_noise_covariance(pyr, refs, np.array([0.0, 1.0]), merge_regions=True).shape
    (2, 2)
    """
    spectra, informations = [], []
    half_plane = np.arange(pyramid.shape[0] * (pyramid.shape[1] // 2 + 1))
    for info, support, ref in zip(pyramid.bands_info, pyramid.half_plane_supports, references):
        # A region's estimate is linear in its sums, u.dS = Re sum_x dc(x) conj(v(x)) (v zero outside the
        # region) less (u.offset) dg, dg the band's brightness gain: divided by its information u.F u.
        v, gain_weight = ref.first_order_weights(direction)
        gain_weight = gain_weight.astype(np.float32)  # (R,)
        information = np.einsum("i,rij,j->r", direction, ref.fisher, direction)
        if merge_regions:
            gain_weight, information = gain_weight.sum(keepdims=True), information.sum(keepdims=True)
        # Bands reading most of the half plane (the finest scales) keep it whole: no gathers in the Gram.
        bins = half_plane if 2 * support.size >= half_plane.size else support
        spectra.append((bins, np.zeros((gain_weight.size, bins.size), dtype=np.complex64)))
        kernel_spectra(region_kernels(v, np.conj(ref.conj_ref), ref.labels, gain_weight), info, bins,
                       pyramid.shape, out=spectra[-1][1])
        informations.append(information)
    information = np.concatenate(informations)
    scale = np.divide(-1.0, information, out=np.zeros_like(information), where=information > 0)
    gram = _kernel_gram(spectra, pyramid.shape)
    if pyramid.periodic:
        gram += _seam_gram_correction(pyramid, spectra)
    return gram * np.outer(scale, scale)


SEAM_KERNELS_AT_ONCE = 8  # kernels made dense together for their edge terms (4 MB each at 1024²)


def _seam_gram_correction(pyramid: SteerablePyramid, spectra: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """What the periodic component's adjoint changes in the kernels' Gram (:func:`_kernel_gram`).

    A pyramid that analyses each frame's periodic component (``pyramid.periodic``) adds ``c_i`` to
    every kernel ``h_i``, on the frame's edge pixels alone (:meth:`SteerablePyramid.edge_terms`):
    ``sum (h_i + c_i)(h_j + c_j) = G_ij + e_i.c_j + c_i.e_j - c_i.c_j`` with ``e = h + c`` on the
    edges. Without it the noise of bands whose kernels reach the edges was underestimated (by half at
    the middle scales of a smooth texture's 128² view).
    """
    rows, cols = pyramid.shape
    half = cols // 2 + 1
    edges, added = [], []
    for bins, values in spectra:
        for first in range(0, values.shape[0], SEAM_KERNELS_AT_ONCE):
            part = values[first : first + SEAM_KERNELS_AT_ONCE]
            dense = np.zeros((part.shape[0], rows * half), dtype=np.complex64)
            dense[:, bins] = part
            plain, add = pyramid.edge_terms(dense.reshape(-1, rows, half))
            edges.append(plain + add)
            added.append(add)
    e = np.concatenate(edges).astype(np.float64)
    c = np.concatenate(added).astype(np.float64)
    return e @ c.T + c @ e.T - c @ c.T


KERNELS_AT_ONCE = 4  # regions' kernels transformed together: a few MB at a time, not one array of all of them


def region_kernels(v: np.ndarray, c_ref: np.ndarray, labels: np.ndarray,
                   gain_weight: np.ndarray) -> Iterator[np.ndarray]:
    """The regions' weights ``v * [labels == r] - gain_weight[r] * c_ref`` (flat, band-sized), a few
    regions at a time: ``(k, pixels)`` complex64 arrays, regions in order; one region: the whole band."""
    if gain_weight.size == 1:
        yield (v - gain_weight[0] * c_ref)[None]
        return
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(gain_weight.size + 1))
    for first in range(0, gain_weight.size, KERNELS_AT_ONCE):
        regions = range(first, min(first + KERNELS_AT_ONCE, gain_weight.size))
        batch = np.empty((len(regions), v.size), dtype=np.complex64)
        for row, region in zip(batch, regions):
            np.multiply(c_ref, -gain_weight[region], out=row)
            inside = order[bounds[region] : bounds[region + 1]]
            row[inside] += v[inside]
        yield batch


def kernel_spectra(kernels: Iterable[np.ndarray], info: Band, bins: np.ndarray, frame_shape: tuple[int, int], *,
                   out: np.ndarray) -> None:
    """Image-domain spectra of the kernels ``h`` with ``Re sum_x band(I)(x) conj(v(x)) = sum_y h(y) I(y)``,
    added to ``out``.

    ``h`` is the adjoint of the band's crop-and-mask operator applied to each
    ``v`` (given in ``(k, pixels)`` batches of the band's flattened size); its
    spectrum lives on the band's bins of the frame's ``rfft2`` half plane
    (:attr:`SteerablePyramid.half_plane_supports`). ``out`` (``(K, bins.size)``
    complex64, C-contiguous) receives the values ``F`` on ``bins`` (sorted flat
    half-plane indices that hold the band's support) such that
    ``h = Re(ifft2(F))`` (F zero elsewhere).
    """
    rows, cols = frame_shape
    half = cols // 2 + 1
    scale = (rows * cols) / (info.shape[0] * info.shape[1])
    plan, masks = info.assembly_plan[:2]
    # A run's source bins follow one another in the half plane, all on the support: so in ``bins`` too.
    starts = np.searchsorted(bins, plan[:, 1] * half + plan[:, 3])
    first = 0
    for batch in kernels:
        spectrum_v = fft2(batch.reshape(-1, *info.shape))  # all cores: the combination runs alone
        on_bins = out[first : first + len(batch)]
        first += len(batch)
        if fused_available():  # one pass, no temporaries
            fused_band_spectrum_adjoint(spectrum_v, on_bins, plan, masks, starts, scale=scale)
            continue
        half_plane = np.zeros((len(batch), rows, half), dtype=np.complex64)
        for block in info.blocks:  # adjoint of BlockCopy: out = src * mask (conj. for mirrors)
            part = spectrum_v[:, block.rows, block.cols]
            half_plane[:, block.src_rows, block.src_cols] += (np.conj(part) if block.mirror else part) * (
                np.conj(block.mask) * scale)
        on_bins += np.take(half_plane.reshape(len(batch), -1), bins, axis=1)


def _kernel_gram(spectra: list[tuple[np.ndarray, np.ndarray]], frame_shape: tuple[int, int]) -> np.ndarray:
    """``sum_y h_i(y) h_j(y)`` of all kernels from their half-plane spectra (:func:`kernel_spectra`:
    ``(bins, F)``).

    With ``h = Re(ifft2(F))``, Parseval gives ``(Re sum_k F_i conj(F_j) + Re sum_k F_i(k) F_j(-k)) / (2 N)``
    for N pixels, the second sum over the bins whose mirror ``-k`` is also on the half plane
    (the zero and Nyquist columns).
    """
    rows, cols = frame_shape
    half = cols // 2 + 1
    sizes = [spectrum.shape[0] for _, spectrum in spectra]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    gram = np.zeros((offsets[-1], offsets[-1]))
    for i, (bins_i, f_i) in enumerate(spectra):
        row, col = np.divmod(bins_i, half)
        self_mirrored = np.flatnonzero((col == 0) | (2 * col == cols))
        mirrors = ((-row[self_mirrored]) % rows) * half + col[self_mirrored]
        for j in range(i, len(spectra)):
            bins_j, f_j = spectra[j]
            a, b = _where_in(bins_j, bins_i)  # the shared bins, gathered only where some are not
            shared_i = f_i if a.size == f_i.shape[1] else np.take(f_i, a, axis=1)
            shared_j = f_j if b.size == f_j.shape[1] else np.take(f_j, b, axis=1)
            # Re(x conj(y)) summed is the real dot product of the interleaved parts.
            total = shared_i.view(np.float32) @ shared_j.view(np.float32).T
            a, b = _where_in(bins_j, mirrors)
            total += (f_i[:, self_mirrored[a]] @ f_j[:, b].T).real
            block = total / (2 * rows * cols)
            gram[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]] = block
            gram[offsets[j] : offsets[j + 1], offsets[i] : offsets[i + 1]] = block.T
    return gram


def _where_in(positions: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the sorted half-plane bins ``flat`` are among ``positions`` (sorted), and their indices
    there: ``(indices into flat, indices into positions)``."""
    if positions is flat:
        return np.arange(flat.size), np.arange(flat.size)
    index = np.minimum(np.searchsorted(positions, flat), positions.size - 1)
    found = np.flatnonzero(positions[index] == flat)
    return found, index[found]


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
