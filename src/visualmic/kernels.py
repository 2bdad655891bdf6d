"""Fused per-pixel kernels (numba, optional): one pass over memory where numpy needs several.

* :func:`fused_phase_sums`: :func:`visualmic.motion.phase_gradient_sums` needs,
  for every coefficient of a band, the product with the conjugated reference,
  its angle, and five weighted sums. With numpy that is a complex temporary, an
  angle temporary and two matrix products; here one loop reads each coefficient
  once: 0.17 ms instead of 0.94 ms per 512² frame (two bands, 4 x 4 regions)
  on one core (0.32 ms with 256-bit vectors, see below).
* :func:`fused_band_spectrum`: a band's cropped, masked spectrum, every bin read
  and written once (numpy: zeroing, buffered strided products and conjugation
  in separate passes): 0.19 ms instead of 0.34 ms per 512² frame (two bands).
* :func:`fused_band_spectrum_adjoint`: its adjoint, adding band-sized spectra
  back to the bins they came from (the noise model's kernels,
  :func:`visualmic.motion.band_noise_covariance`): 2.9 ms instead of 5.9 ms for
  the 16 regional kernels of a 512² band.

The loops release the GIL, so chunks run on every core, and index slices from
0 so that the compiler knows no index is negative and vectorises the loads of
interleaved complex numbers with shuffles instead of gathers.

On processors with AVX-512 the phase loop is compiled with 16 float32 lanes
(512-bit vectors) where LLVM would choose 8 (it prefers 256-bit vectors on
Intel server cores), one vector per step (LLVM would interleave two, and leave
runs of fewer than 32 coefficients of a region to scalar code: 4 x 4 regions of
a 128² frame's band are runs of 16): per band of a 512² frame on one core 0.086
instead of 0.162 ms, of a 128² frame 11 instead of 16 µs. LLVM sets these only
process-wide (``--force-vector-width``, ``--force-vector-interleave``), so they
are set for that one compilation, under a lock, and reset to their defaults
after; the band loop, which memory bounds, keeps LLVM's choice (16 lanes are
10 % slower).

The angle is an odd minimax polynomial of degree 15 for ``atan`` on [0, 1]
(fitted by iteratively reweighted least squares; largest error 4e-8 rad, below
float32's own 3e-7 of ``np.angle``) with branch-free octant folding, so the loop
vectorises. Sums run in float32 over segments of at most 2048 coefficients and
are added up in float64.

Set the environment variable ``VISUALMIC_NUMBA=0`` to use the numpy path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator

import numpy as np

__all__ = ["fused_available", "region_segments", "fused_phase_sums", "fused_band_spectrum",
           "fused_band_spectrum_adjoint"]

try:  # optional: the numpy path computes the same sums
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

SEGMENT = 2048
_ATAN = (0.9999993355766332, -0.33329860778043124, 0.19946565583672063, -0.1390862922622408,
         0.09642196525251484, -0.05591231602469095, 0.021862950503118813, -0.004054565179573206)
PHASE_LANES = 16  # float32 lanes of the phase loop's vectors where AVX-512 allows (see above)
_COMPILING = threading.Lock()


def fused_available() -> bool:
    """Whether the fused kernel will be used: numba is installed and ``VISUALMIC_NUMBA`` is not ``0``.

    Examples
    --------
    >>> isinstance(fused_available(), bool)
    True
    """
    return numba is not None and os.environ.get("VISUALMIC_NUMBA", "1") != "0"


def region_segments(labels: np.ndarray, *, longest: int = SEGMENT) -> np.ndarray:
    """Runs of equal region label in a flattened band, cut to at most ``longest`` coefficients.

    Returns
    -------
    ndarray
        ``(segments, 3)`` int64 rows ``(start, stop, region)`` covering every coefficient once.

    Examples
    --------
    >>> region_segments(np.array([0, 0, 0, 1, 1, 0]), longest=2).tolist()
    [[0, 2, 0], [2, 3, 0], [3, 5, 1], [5, 6, 0]]
    """
    labels = np.asarray(labels).reshape(-1)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [labels.size]])
    rows = []
    for start, stop in zip(starts.tolist(), stops.tolist()):
        for a in range(start, stop, longest):
            rows.append((a, min(a + longest, stop), int(labels[start])))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _phase_sums_loop(band, ref, weights, segments, regions):  # pragma: no cover - compiled
    # Unpacked one by one: a loop over the tuple would be a loop the vectoriser reports it cannot take.
    a0, a1, a2, a3, a4, a5, a6, a7 = _ATAN
    c0, c1, c2, c3 = np.float32(a0), np.float32(a1), np.float32(a2), np.float32(a3)
    c4, c5, c6, c7 = np.float32(a4), np.float32(a5), np.float32(a6), np.float32(a7)
    half_pi = np.float32(np.pi / 2)
    pi = np.float32(np.pi)
    n = band.shape[0]
    out = np.zeros((n, regions, 5), dtype=np.float64)
    for s in range(segments.shape[0]):
        start, stop, region = segments[s, 0], segments[s, 1], segments[s, 2]
        # Views of the segment, indexed from 0 (see the module's docstring): 1.3x faster.
        ref_re, ref_im = ref[0, start:stop], ref[1, start:stop]
        w_py, w_px, w_ay, w_ax = (weights[0, start:stop], weights[1, start:stop], weights[2, start:stop],
                                  weights[3, start:stop])
        for t in range(n):
            coefficients = band[t, 2 * start : 2 * stop]
            py = np.float32(0.0)
            px = np.float32(0.0)
            ay = np.float32(0.0)
            ax = np.float32(0.0)
            gain = np.float32(0.0)
            for p in range(stop - start):
                vr = coefficients[2 * p]
                vi = coefficients[2 * p + 1]
                qr = vr * ref_re[p] - vi * ref_im[p]
                qi = vi * ref_re[p] + vr * ref_im[p]
                abs_r = abs(qr)
                abs_i = abs(qi)
                steep = abs_i > abs_r
                hi = abs_i if steep else abs_r
                lo = abs_r if steep else abs_i
                a = lo / (hi + np.float32(1e-30))
                z = a * a
                poly = ((((((c7 * z + c6) * z + c5) * z + c4) * z + c3) * z + c2) * z + c1) * z + c0
                angle = poly * a
                angle = half_pi - angle if steep else angle
                angle = pi - angle if qr < 0 else angle
                angle = -angle if qi < 0 else angle
                py += angle * w_py[p]
                px += angle * w_px[p]
                ay += qr * w_ay[p]
                ax += qr * w_ax[p]
                gain += qr
            out[t, region, 0] += py
            out[t, region, 1] += px
            out[t, region, 2] += ay
            out[t, region, 3] += ax
            out[t, region, 4] += gain
    return out


def _compiled(loop, signature: tuple, *, lanes: int | None = None):
    """``loop`` compiled now for ``signature`` (numba types of its arguments), once per process
    (and cached on disk), releasing the GIL; with ``lanes`` float32 lanes per vector where the
    processor has AVX-512. Every kernel compiles here, one at a time, so that no other
    compilation of ours runs while the lanes are set (LLVM's option is process-wide)."""
    with _COMPILING:
        return _compile(loop, signature, lanes)


@functools.cache
def _compile(loop, signature: tuple, lanes: int | None):
    dispatcher = numba.njit(fastmath=True, nogil=True, cache=True, error_model="numpy")(loop)
    with _vector_lanes(lanes if _has_avx512() else None):
        dispatcher.compile(signature)
    return dispatcher


@functools.cache
def _has_avx512() -> bool:
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx512f", False))


@contextlib.contextmanager
def _vector_lanes(lanes: int | None) -> Iterator[None]:
    """Within the block, LLVM's loop vectoriser uses vectors of ``lanes`` lanes, one per step
    (None: its own choices, unchanged)."""
    if lanes is None:
        yield
        return
    import llvmlite.binding as llvm

    llvm.set_option("visualmic", f"--force-vector-width={int(lanes)}")
    llvm.set_option("visualmic", "--force-vector-interleave=1")
    try:
        yield
    finally:  # 0: the vectoriser's own choice, the default of both
        llvm.set_option("visualmic", "--force-vector-width=0")
        llvm.set_option("visualmic", "--force-vector-interleave=0")


@functools.cache
def _phase_sums_kernel():
    """:func:`_phase_sums_loop` compiled for the arrays :func:`fused_phase_sums` passes."""
    matrix = numba.float32[:, ::1]
    return _compiled(_phase_sums_loop, (matrix, matrix, matrix, numba.int64[:, ::1], numba.int64),
                     lanes=PHASE_LANES)


@functools.cache
def _band_kernels():
    """:func:`_band_spectrum_loop` and :func:`_band_spectrum_adjoint_loop`, compiled for the arrays
    :func:`fused_band_spectrum` and :func:`fused_band_spectrum_adjoint` pass."""
    bins, plan, masks = numba.float32[:, :, ::1], numba.int64[:, ::1], numba.float32[::1]
    return (_compiled(_band_spectrum_loop, (bins, bins, plan, masks, plan)),
            _compiled(_band_spectrum_adjoint_loop, (bins, numba.float32[:, ::1], plan, masks, numba.int64[::1],
                                                    numba.float32)))


def fused_phase_sums(band: np.ndarray, conj_ref: np.ndarray, weights: np.ndarray, segments: np.ndarray,
                     regions: int) -> np.ndarray:
    """Per-region sums of a band's phase change and amplitude term, one pass over the coefficients.

    Parameters
    ----------
    band : ndarray
        ``(n, P)`` complex64 coefficients of n frames.
    conj_ref : ndarray
        ``(2, P)`` float32: real and imaginary parts of the conjugated reference.
    weights : ndarray
        ``(4, P)`` float32: phase weights (y, x) and amplitude weights (y, x) of each coefficient.
    segments : ndarray
        From :func:`region_segments`.
    regions : int
        Number of regions.

    Returns
    -------
    ndarray
        ``(n, regions, 5)`` float64: ``sum dphi w_y``, ``sum dphi w_x``, ``sum Re(q) a_y``,
        ``sum Re(q) a_x`` and ``sum Re(q)``, with ``q = band conj_ref`` and ``dphi = angle(q)``.

    Examples
    --------
    >>> band = np.exp(0.1j * np.ones((1, 4))).astype(np.complex64)
    >>> ref = np.stack([np.ones(4), np.zeros(4)]).astype(np.float32)
    >>> w = np.ones((4, 4), np.float32)
    >>> out = fused_phase_sums(band, ref, w, region_segments(np.zeros(4, int)), 1)  # doctest: +SKIP
    >>> np.round(out[0, 0], 4)  # doctest: +SKIP
    array([0.4   , 0.4   , 3.98  , 3.98  , 3.98  ])
    """
    band = np.ascontiguousarray(band, dtype=np.complex64)
    return _phase_sums_kernel()(band.view(np.float32), np.ascontiguousarray(conj_ref, dtype=np.float32),
                                np.ascontiguousarray(weights, dtype=np.float32),
                                np.ascontiguousarray(segments, dtype=np.int64), int(regions))


def _band_spectrum_loop(spectrum, out, plan, masks, zero):  # pragma: no cover - compiled
    n = spectrum.shape[0]
    for z in range(zero.shape[0]):
        for t in range(n):
            for i in range(zero[z, 0], zero[z, 1]):
                row = out[t, i, 2 * zero[z, 2] : 2 * zero[z, 3]]
                for j in range(row.size):
                    row[j] = 0.0
    for r in range(plan.shape[0]):
        out_row, src_row, out_col, src_col, cols, reverse, mirrored, start = plan[r]
        sign = np.float32(-1.0) if mirrored else np.float32(1.0)
        mask = masks[2 * start : 2 * (start + cols)]
        # Slices indexed from 0 (no negative-index checks, so the loops vectorise).
        for t in range(n):
            src = spectrum[t, src_row, 2 * src_col : 2 * (src_col + cols)]
            dst = out[t, out_row, 2 * out_col : 2 * (out_col + cols)]
            if reverse:
                for j in range(cols):
                    k = cols - 1 - j
                    re, im = src[2 * k], sign * src[2 * k + 1]
                    dst[2 * j] = re * mask[2 * j] - im * mask[2 * j + 1]
                    dst[2 * j + 1] = re * mask[2 * j + 1] + im * mask[2 * j]
            else:
                for j in range(cols):
                    re, im = src[2 * j], sign * src[2 * j + 1]
                    dst[2 * j] = re * mask[2 * j] - im * mask[2 * j + 1]
                    dst[2 * j + 1] = re * mask[2 * j + 1] + im * mask[2 * j]


def fused_band_spectrum(spectrum: np.ndarray, plan: np.ndarray, masks: np.ndarray, zero: np.ndarray, *,
                        shape: tuple[int, int]) -> np.ndarray:
    """A band's cropped, masked spectrum assembled in one pass: every bin read and written once.

    The numpy path zeroes, multiplies, then conjugates the mirrored blocks in
    separate passes over memory; this loop takes 0.19 ms instead of 0.34 ms per
    512² frame (two bands) on one core.

    Parameters
    ----------
    spectrum : ndarray
        ``(n, rows, cols // 2 + 1)`` complex64 ``rfft2`` of n frames.
    plan : ndarray
        ``(R, 8)`` int64, one row per copied run of bins: output row, source row,
        output column, first source column, columns, reversed (the source read right
        to left), mirrored, start of its mask in ``masks``
        (:attr:`visualmic.pyramid.Band.assembly_plan`).
    masks : ndarray
        complex64, the runs' masks one after another; a run computes ``src * mask``,
        a mirrored one ``conj(src) * mask``.
    zero : ndarray
        ``(Z, 4)`` int64 rectangles ``(row, row_stop, column, column_stop)`` set to zero.
    shape : tuple of int
        The band's cropped size.

    Returns
    -------
    ndarray
        ``(n, *shape)`` complex64.

    Examples
    --------
    >>> spectrum = np.arange(1, 7, dtype=np.complex64).reshape(1, 2, 3)
    >>> plan = np.array([[0, 1, 0, 1, 2, 0, 1, 0], [1, 0, 0, 1, 2, 0, 1, 2]])  # rows 1, 0, columns 1, 2, conj.
    >>> fused_band_spectrum(spectrum, plan, np.full(4, 2, np.complex64), np.zeros((0, 4), np.int64),
    ...                     shape=(2, 2))[0].real.tolist()  # doctest: +SKIP
    [[10.0, 12.0], [4.0, 6.0]]
    """
    spectrum = np.ascontiguousarray(spectrum, dtype=np.complex64)
    out = np.empty((spectrum.shape[0], *shape), dtype=np.complex64)
    _band_kernels()[0](spectrum.view(np.float32), out.view(np.float32), np.ascontiguousarray(plan, dtype=np.int64),
                       np.ascontiguousarray(masks, dtype=np.complex64).view(np.float32),
                       np.ascontiguousarray(zero, dtype=np.int64))
    return out


def _band_spectrum_adjoint_loop(spectra, bins, plan, masks, starts, scale):  # pragma: no cover - compiled
    for r in range(plan.shape[0]):
        out_row, _, out_col, _, cols, reverse, mirrored, start = plan[r]
        # Each bin goes back where the forward loop read it: src * conj(mask), conjugated if mirrored.
        imaginary_sign = -scale if mirrored else scale
        mask = masks[2 * start : 2 * (start + cols)]
        first = starts[r]
        for kernel in range(spectra.shape[0]):
            band_bins = spectra[kernel, out_row, 2 * out_col : 2 * (out_col + cols)]
            frame_bins = bins[kernel, 2 * first : 2 * (first + cols)]
            for j in range(cols):
                k = cols - 1 - j if reverse else j
                frame_bins[2 * k] += scale * (band_bins[2 * j] * mask[2 * j] + band_bins[2 * j + 1] * mask[2 * j + 1])
                frame_bins[2 * k + 1] += imaginary_sign * (
                    band_bins[2 * j + 1] * mask[2 * j] - band_bins[2 * j] * mask[2 * j + 1])


def fused_band_spectrum_adjoint(spectra: np.ndarray, bins: np.ndarray, plan: np.ndarray, masks: np.ndarray,
                                starts: np.ndarray, *, scale: float) -> None:
    """Add the adjoint of :func:`fused_band_spectrum` applied to band-sized spectra to frame bins, in place.

    Where the forward operation copies a bin of the frame's ``rfft2`` to the band
    (``src * mask``, or ``conj(src) * mask`` for mirrored blocks), this adds
    ``scale * value * conj(mask)`` (conjugated for mirrored blocks) back to that
    bin: one pass, no temporaries (:func:`visualmic.motion.band_noise_covariance`
    applies it to every region's kernel). The bins may be the whole half plane
    or only those the band reads (its support: most of the half plane for the
    finest scale, a quarter of it one octave down), in any layout where each
    run's bins follow one another, as they do in the half plane's flat order and
    in that of any sorted subset of it.

    Parameters
    ----------
    spectra : ndarray
        ``(n, *band_shape)`` complex64.
    bins : ndarray
        ``(n, L)`` complex64, C-contiguous: frame bins, added to.
    plan, masks : ndarray
        As for :func:`fused_band_spectrum`.
    starts : ndarray
        ``(R,)`` int64: where in a row of ``bins`` each run of ``plan`` puts its
        first source bin (the run's first source column, left to right).
    scale : float
        Factor applied to everything added.

    Examples
    --------
    >>> out = np.zeros((1, 2 * 3), np.complex64)  # the flat half plane of a 2x4 frame
    >>> plan = np.array([[0, 1, 0, 1, 2, 0, 1, 0], [1, 0, 0, 1, 2, 0, 1, 2]])  # as in fused_band_spectrum's
    >>> starts = plan[:, 1] * 3 + plan[:, 3]  # row * (cols // 2 + 1) + column
    >>> fused_band_spectrum_adjoint(np.ones((1, 2, 2), np.complex64), out, plan,
    ...                             np.full(4, 2j, np.complex64), starts, scale=1.0)  # doctest: +SKIP
    >>> out.reshape(2, 3).tolist()  # doctest: +SKIP
    [[0j, 2j, 2j], [0j, 2j, 2j]]
    """
    if bins.dtype != np.complex64 or bins.ndim != 2 or not bins.flags.c_contiguous:
        raise ValueError("bins must be a C-contiguous (n, L) complex64 array")
    spectra = np.ascontiguousarray(spectra, dtype=np.complex64)
    _band_kernels()[1](spectra.view(np.float32), bins.view(np.float32), np.ascontiguousarray(plan, dtype=np.int64),
                       np.ascontiguousarray(masks, dtype=np.complex64).view(np.float32),
                       np.ascontiguousarray(starts, dtype=np.int64), np.float32(scale))
