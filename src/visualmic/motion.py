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

from .pyramid import SteerablePyramid

__all__ = [
    "BandReference",
    "reference_bands",
    "prepare_references",
    "phase_gradient_sums",
    "band_noise_covariance",
    "davis2014_band_signals",
]


@dataclass(frozen=True)
class BandReference:
    """Per-band quantities computed once from the reference frame.

    Attributes
    ----------
    conj_ref : ndarray
        Conjugated reference coefficients, flattened.
    phase_weights : ndarray
        ``(2, P)``: ``A**2 grad(phi)`` (y and x), times taper and pixel area.
    amplitude_weights : ndarray
        ``(2, P)``: ``grad(A) / A``, times taper and pixel area; multiplies ``Re(c conj(c_r))``.
    offset : ndarray
        ``(2,)``: the constant that makes the amplitude term zero for the reference itself.
    fisher : ndarray
        ``(2, 2)`` normal matrix of the band (information per unit noise).
    """

    conj_ref: np.ndarray
    phase_weights: np.ndarray
    amplitude_weights: np.ndarray
    offset: np.ndarray
    fisher: np.ndarray

    @functools.cached_property
    def _amplitude_interleaved(self) -> np.ndarray:
        """``(2P, 2)``: amplitude weights at the real parts' positions of an interleaved complex array."""
        out = np.zeros((2 * self.amplitude_weights.shape[1], 2), dtype=np.float32)
        out[0::2] = self.amplitude_weights.T
        return out


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
    pyramid: SteerablePyramid, references: list[np.ndarray], *, border_px: float = 0.0
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

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)))
    >>> refs[0].fisher.shape
    (2, 2)
    """
    out = []
    for index, (info, ref) in enumerate(zip(pyramid.bands_info, references)):
        grad = pyramid.band_gradient(ref, index)  # (2, rows, cols)
        product = np.conj(ref)[None] * grad  # A grad(A) + i A**2 grad(phi)
        power = np.abs(ref) ** 2
        floor = 1e-6 * max(float(power.mean()), 1e-30)
        margin = (border_px / info.spacing_px[0], border_px / info.spacing_px[1])
        weight = _border_taper(info.shape, margin) * info.area_px
        phase_w = (product.imag * weight).reshape(2, -1)
        amp_grad = product.real  # A grad(A)
        amp_w = (amp_grad / (power + floor) * weight).reshape(2, -1)
        offset = (amp_grad * weight).reshape(2, -1).sum(axis=1)
        # Normal matrix: sum of A^2 (k k^T + a a^T) with k = grad(phi), a = grad(A)/A,
        # i.e. sum of (A^2 k)(A^2 k)^T / A^2 + (A grad A)(A grad A)^T / A^2.
        pw = product.imag.reshape(2, -1)
        aw = amp_grad.reshape(2, -1)
        inv_power = weight.reshape(-1) / (power.reshape(-1) + floor)
        fisher = (pw * inv_power) @ pw.T + (aw * inv_power) @ aw.T
        out.append(
            BandReference(
                conj_ref=np.conj(ref).reshape(-1).astype(np.complex64),
                phase_weights=phase_w.astype(np.float32),
                amplitude_weights=amp_w.astype(np.float32),
                offset=offset,
                fisher=fisher,
            )
        )
    return out


def phase_gradient_sums(bands: list[np.ndarray], references: list[BandReference]) -> np.ndarray:
    """Right-hand sides of the per-band normal equations for a chunk of frames.

    Parameters
    ----------
    bands : list of ndarray
        ``(n, rows, cols)`` complex coefficients of each band for n frames.
    references : list of BandReference
        From :func:`prepare_references`.

    Returns
    -------
    ndarray
        ``(n, bands, 2)``; the band's displacement estimate (y, x) in pixels is
        ``-solve(fisher, sums)``.

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    >>> b = pyr.bands(frames)
    >>> phase_gradient_sums(b, prepare_references(pyr, reference_bands(b))).shape
    (3, 2, 2)
    """
    n = bands[0].shape[0]
    out = np.empty((n, len(bands), 2))
    for j, (band, ref) in enumerate(zip(bands, references)):
        q = band.reshape(n, -1) * ref.conj_ref
        dphi = np.angle(q)
        # Re(q) read through the interleaved float view: no strided copy.
        interleaved = q.view(np.float32)
        out[:, j, :] = dphi @ ref.phase_weights.T + interleaved @ ref._amplitude_interleaved - ref.offset
    return out


def band_noise_covariance(
    pyramid: SteerablePyramid, references: list[BandReference], direction: np.ndarray
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

    Returns
    -------
    ndarray
        ``(bands, bands)`` covariance of the estimates ``-u.S_b / (u.F_b u)``, px².

    Examples
    --------
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)))
    >>> band_noise_covariance(pyr, refs, np.array([0.0, 1.0])).shape
    (2, 2)
    """
    rows, cols = pyramid.shape
    half = cols // 2 + 1
    kernels = []
    for info, ref in zip(pyramid.bands_info, references):
        c_ref = np.conj(ref.conj_ref).astype(np.complex128)
        power = np.abs(c_ref) ** 2
        floor = 1e-6 * max(float(power.mean()), 1e-30)
        alpha = direction @ ref.amplitude_weights
        beta = direction @ ref.phase_weights
        # u.dS = Re sum_x dc(x) conj(v(x)), v = c_ref (alpha + i beta / A^2).
        v = (c_ref * (alpha + 1j * beta / (power + floor))).reshape(info.shape)
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
        kernel = np.real(np.fft.ifft2(full)) * (rows * cols) / (info.shape[0] * info.shape[1])
        information = direction @ ref.fisher @ direction
        kernels.append(-kernel.reshape(-1) / max(information, 1e-300))
    stacked = np.stack(kernels)
    return stacked @ stacked.T


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
