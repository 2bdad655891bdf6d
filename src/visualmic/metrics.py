"""How close a recovered sound is to the truth.

All comparisons first find the lag, sign and gain that best match the
recovered signal to the reference, since none of the three is observable from
a video: a surface's motion is a filtered, delayed copy of the sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

__all__ = ["Alignment", "align", "snr_db"]


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
    est = _bandpass(estimate, fps, band_hz)
    ref = _bandpass(reference, fps, band_hz)
    a = align(est, ref, max_lag=max_lag)
    n = min(est.size, ref.size)
    model = a.gain * np.roll(ref[:n], a.lag)
    sl = slice(trim + abs(a.lag), n - trim - abs(a.lag))
    error = est[:n][sl] - model[sl]
    return float(10 * np.log10(np.sum(model[sl] ** 2) / max(np.sum(error**2), 1e-300)))
