"""How close a recovered sound is to the truth.

All comparisons first find the lag, sign and gain that best match the
recovered signal to the reference, since none of the three is observable from
a video: a surface's motion is a filtered, delayed copy of the sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal

from .audio import resample

__all__ = [
    "Alignment",
    "align",
    "snr_db",
    "segmental_snr_db",
    "log_likelihood_ratio",
    "Evaluation",
    "evaluate",
]


@dataclass(frozen=True)
class Alignment:
    """Best match of an estimate to a reference: ``estimate[t + lag] ~ gain * reference[t]``."""

    lag: int
    gain: float


def _bandpass(x: np.ndarray, fps: float, band_hz: tuple[float, float] | None) -> np.ndarray:
    if band_hz is None:
        return np.asarray(x, dtype=np.float64) - np.mean(x)
    lo, hi = band_hz
    nyq = fps / 2
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    freqs = np.fft.rfftfreq(len(x), 1.0 / fps)
    spec[(freqs < lo) | (freqs > min(hi, nyq))] = 0
    return np.fft.irfft(spec, n=len(x))


def align(estimate: np.ndarray, reference: np.ndarray, *, max_lag: int = 200) -> Alignment:
    """Lag (samples) and gain (with sign) that best map ``reference`` onto ``estimate``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.standard_normal(1000)
    >>> est = -2.0 * np.roll(ref, 3)
    >>> a = align(est, ref)
    >>> a.lag, round(a.gain, 3)
    (3, -2.0)
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    n = min(estimate.size, reference.size)
    estimate, reference = estimate[:n], reference[:n]
    corr = scipy.signal.correlate(estimate, reference, mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    keep = np.abs(lags) <= max_lag
    best = int(lags[keep][np.argmax(np.abs(corr[keep]))])
    shifted = np.roll(reference, best)
    gain = float(np.dot(estimate, shifted) / max(np.dot(shifted, shifted), 1e-300))
    return Alignment(lag=best, gain=gain)


def snr_db(
    estimate: np.ndarray,
    reference: np.ndarray,
    *,
    fps: float,
    band_hz: tuple[float, float] | None = None,
    max_lag: int = 200,
    trim: int = 0,
) -> float:
    """SNR (dB) of an estimate against the truth, after the best lag, sign and gain.

    Both signals are restricted to ``band_hz`` first (an ideal FFT band-pass),
    and ``trim`` samples are ignored at both ends (filter edges).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.standard_normal(20000)
    >>> est = 0.5 * np.roll(ref, -2) + 0.05 * rng.standard_normal(20000)
    >>> round(snr_db(est, ref, fps=2200), 1)
    20.0
    """
    est, clean, _ = _matched(estimate, reference, fps=fps, band_hz=band_hz, max_lag=max_lag, trim=trim)
    return _power_ratio_db(clean, est - clean)


def _matched(
    estimate: np.ndarray, reference: np.ndarray, *, fps: float, band_hz: tuple[float, float] | None,
    max_lag: int, trim: int = 0,
) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """Both signals band-limited, the reference delayed and scaled to match best, and the
    samples the delay wrapped around (plus ``trim`` at each end) left out."""
    n = min(len(estimate), len(reference))
    est = _bandpass(np.asarray(estimate[:n], dtype=np.float64), fps, band_hz)
    ref = _bandpass(np.asarray(reference[:n], dtype=np.float64), fps, band_hz)
    a = align(est, ref, max_lag=max_lag)
    clean = a.gain * np.roll(ref, a.lag)
    keep = slice(max(a.lag, 0) + trim, n + min(a.lag, 0) - trim)
    return est[keep], clean[keep], a


def _power_ratio_db(signal: np.ndarray, error: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(signal**2) / max(np.sum(error**2), 1e-300)))


def _frames(x: np.ndarray, rate_hz: float, frame_s: float = 0.030) -> np.ndarray:
    """Hann-windowed frames of ``frame_s`` with 75 % overlap (Loizou's evaluation code)."""
    length = max(8, int(round(frame_s * rate_hz)))
    hop = max(1, length // 4)
    count = 1 + max(0, (x.size - length) // hop)
    window = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, length + 1) / (length + 1)))
    index = np.arange(length)[None, :] + hop * np.arange(count)[:, None]
    return x[np.minimum(index, x.size - 1)] * window


def segmental_snr_db(estimate: np.ndarray, clean: np.ndarray, *, rate_hz: float) -> float:
    """Mean SNR over 30 ms frames, each clipped to [-10, 35] dB (no alignment: see :func:`evaluate`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.standard_normal(16000)
    >>> round(segmental_snr_db(clean + 0.1 * rng.standard_normal(16000), clean, rate_hz=16000))
    20
    """
    n = min(estimate.size, clean.size)
    c = _frames(np.asarray(clean[:n], float), rate_hz)
    e = _frames(np.asarray(estimate[:n], float), rate_hz)
    eps = np.finfo(float).eps
    per_frame = 10 * np.log10(np.sum(c**2, axis=1) / (np.sum((c - e) ** 2, axis=1) + eps) + eps)
    return float(np.mean(np.clip(per_frame, -10.0, 35.0)))


def _lpc(frame: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """LPC coefficients ``[1, a1, ..., ap]`` (autocorrelation method) and the autocorrelation."""
    r = np.array([np.dot(frame[: frame.size - k], frame[k:]) for k in range(order + 1)])
    if r[0] <= 0:
        return np.concatenate(([1.0], np.zeros(order))), r
    # A -60 dB white floor: a band-limited frame (a pure tone) has a singular autocorrelation matrix.
    column = r[:order].copy()
    column[0] *= 1 + 1e-6
    a = scipy.linalg.solve_toeplitz(column, -r[1 : order + 1])
    return np.concatenate(([1.0], a)), r


def log_likelihood_ratio(estimate: np.ndarray, clean: np.ndarray, *, rate_hz: float) -> float:
    """LPC log-likelihood ratio (lower is better): mean of the lowest 95 % of 30 ms frames.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.convolve(rng.standard_normal(8000), [1, 0.9, 0.5], mode="same")
    >>> round(log_likelihood_ratio(x, x, rate_hz=8000), 6)
    0.0
    """
    order = 10 if rate_hz < 10000 else 16
    n = min(estimate.size, clean.size)
    values = []
    for c, e in zip(_frames(np.asarray(clean[:n], float), rate_hz), _frames(np.asarray(estimate[:n], float), rate_hz)):
        a_clean, r_clean = _lpc(c, order)
        a_est, _ = _lpc(e, order)
        toeplitz = scipy.linalg.toeplitz(r_clean)
        numerator = a_est @ toeplitz @ a_est
        denominator = a_clean @ toeplitz @ a_clean
        if denominator > 0 and numerator > 0:
            values.append(np.log(numerator / denominator))
    if not values:
        return float("nan")
    values = np.sort(values)
    return float(np.mean(values[: max(1, int(round(0.95 * values.size)))]))


@dataclass(frozen=True)
class Evaluation:
    """Quality of a recovered sound against a reference (see :func:`evaluate`)."""

    rate_hz: float
    lag_s: float
    gain: float
    snr_db: float
    segmental_snr_db: float
    llr: float
    stoi: float | None
    band_hz: tuple[float, float] | None

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate(
    recovered: np.ndarray,
    recovered_rate_hz: float,
    reference: np.ndarray,
    reference_rate_hz: float,
    *,
    band_hz: tuple[float, float] | None = None,
    max_lag_s: float = 1.0,
) -> Evaluation:
    """Compare a recovered sound with the truth: SNR, segmental SNR, LLR and STOI.

    Both are brought to the lower of the two rates (no invented bandwidth),
    optionally restricted to ``band_hz``, and the reference is delayed, sign-
    flipped and scaled to match best (none of the three is observable from a
    video); every metric then compares the recovered sound with that reference.
    STOI needs ``pystoi`` (``pip install visualmic[metrics]``); it works at
    10 kHz, so a recording sampled at 2.2 kHz is capped by its bandwidth.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.standard_normal(8000)
    >>> rec = -0.5 * np.roll(ref, 40) + 0.05 * rng.standard_normal(8000)
    >>> e = evaluate(rec, 8000, ref, 8000)
    >>> round(e.snr_db), round(e.lag_s * 8000), round(e.gain, 2)
    (20, 40, -0.5)
    """
    rate = float(min(recovered_rate_hz, reference_rate_hz))
    rec = resample(np.asarray(recovered, float), rate_in_hz=recovered_rate_hz, rate_out_hz=rate)
    ref = resample(np.asarray(reference, float), rate_in_hz=reference_rate_hz, rate_out_hz=rate)
    rec, clean, a = _matched(rec, ref, fps=rate, band_hz=band_hz, max_lag=int(max_lag_s * rate))
    stoi = None
    try:
        import pystoi
    except ImportError:
        pass
    else:
        stoi = float(pystoi.stoi(clean, rec, int(round(rate)), extended=False))
    return Evaluation(
        rate_hz=rate,
        lag_s=a.lag / rate,
        gain=a.gain,
        snr_db=_power_ratio_db(clean, rec - clean),
        segmental_snr_db=segmental_snr_db(rec, clean, rate_hz=rate),
        llr=log_likelihood_ratio(rec, clean, rate_hz=rate),
        stoi=stoi,
        band_hz=band_hz,
    )
