"""Fused per-pixel kernels: the phase-gradient sums of a band in one pass, without temporaries.

:func:`visualmic.motion.phase_gradient_sums` needs, for every coefficient of a
band, the product with the conjugated reference, its angle, and five weighted
sums. With numpy that is a complex temporary, an angle temporary and two matrix
products; here (numba, optional) it is one loop that reads each coefficient
once: 0.56 ms instead of 0.94 ms per 512² frame (two bands) on one core, and the
loop releases the GIL, so chunks run on every core (``benchmarks/speed.py``).

The angle is an odd minimax polynomial of degree 15 for ``atan`` on [0, 1]
(fitted by iteratively reweighted least squares; largest error 4e-8 rad, below
float32's own 3e-7 of ``np.angle``) with branch-free octant folding, so the loop
vectorises. Sums run in float32 over segments of at most 2048 coefficients and
are added up in float64.

Set the environment variable ``VISUALMIC_NUMBA=0`` to use the numpy path.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["fused_available", "region_segments", "fused_phase_sums"]

try:  # optional: the numpy path computes the same sums
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

SEGMENT = 2048
_ATAN = (0.9999993355766332, -0.33329860778043124, 0.19946565583672063, -0.1390862922622408,
         0.09642196525251484, -0.05591231602469095, 0.021862950503118813, -0.004054565179573206)


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
    c0, c1, c2, c3, c4, c5, c6, c7 = [np.float32(c) for c in _ATAN]
    half_pi = np.float32(np.pi / 2)
    pi = np.float32(np.pi)
    n = band.shape[0]
    out = np.zeros((n, regions, 5), dtype=np.float64)
    for s in range(segments.shape[0]):
        start, stop, region = segments[s, 0], segments[s, 1], segments[s, 2]
        for t in range(n):
            py = np.float32(0.0)
            px = np.float32(0.0)
            ay = np.float32(0.0)
            ax = np.float32(0.0)
            gain = np.float32(0.0)
            for p in range(start, stop):
                vr = band[t, 2 * p]
                vi = band[t, 2 * p + 1]
                qr = vr * ref[0, p] - vi * ref[1, p]
                qi = vi * ref[0, p] + vr * ref[1, p]
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
                py += angle * weights[0, p]
                px += angle * weights[1, p]
                ay += qr * weights[2, p]
                ax += qr * weights[3, p]
                gain += qr
            out[t, region, 0] += py
            out[t, region, 1] += px
            out[t, region, 2] += ay
            out[t, region, 3] += ax
            out[t, region, 4] += gain
    return out


_compiled = None


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
    global _compiled
    if _compiled is None:
        _compiled = numba.njit(fastmath=True, nogil=True, cache=True, error_model="numpy")(_phase_sums_loop)
    band = np.ascontiguousarray(band, dtype=np.complex64)
    return _compiled(band.view(np.float32), np.ascontiguousarray(conj_ref, dtype=np.float32),
                     np.ascontiguousarray(weights, dtype=np.float32), segments, int(regions))
