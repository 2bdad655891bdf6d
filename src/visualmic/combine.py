"""Combine per-band motion into one signal.

The default combination treats every band as a noisy, possibly delayed and
sign-flipped copy of one displacement signal, ``s_b(t) = g_b s(t - lag_b) + n_b(t)``,
and estimates gains, lags (a few samples at most) and noise variances from the
data itself. The best linear estimate is then ``sum_b (g_b / v_b) s_b(t + lag_b)``
normalised to unit gain: a band with no texture along the motion has a tiny
gain or a large noise, hence a tiny weight, so adding bands cannot make the
result worse. The 2014 recipe (equal sum, lag to band 0) is :func:`davis2014_combine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal

from .audio import highpass

GAIN_PRIOR_VAR = 0.25  # prior spread of a band's gain around 1 (a standard deviation of 0.5)

__all__ = ["BandMotion", "Combination", "project_band_motion", "combine_bands", "davis2014_combine"]


@dataclass(frozen=True)
class BandMotion:
    """Per-band displacement along the dominant direction of motion.

    Attributes
    ----------
    signals_px : ndarray
        ``(bands, frames)`` displacement estimates, pixels along ``direction_deg``.
    information : ndarray
        ``(bands,)`` Fisher information of each band along the direction (per
        unit pixel-noise variance): the weight each band would get under the
        white-noise model.
    direction_deg : float
        Direction of motion, degrees counter-clockwise from the x axis
        (0: along the rows, towards larger column index; 90: up the image).
    unit_vector : ndarray
        The same direction as ``(y, x)`` components in image axes (rows grow downwards).
    """

    signals_px: np.ndarray
    information: np.ndarray
    direction_deg: float
    unit_vector: np.ndarray


@dataclass(frozen=True)
class Combination:
    """One displacement signal from many bands, and how it was made.

    Attributes
    ----------
    signal_px : ndarray
        Combined displacement, pixels, one value per frame.
    weights : ndarray
        ``signal_px[t] = sum_b weights[b] * band[b][t + lags[b]]`` (signs included).
    lags : ndarray
        Integer lag of each band, in frames.
    noise_px : ndarray
        Measured noise standard deviation of each band, pixels (NaN if unmeasured).
    noise_floor_px : float
        Estimated noise standard deviation of ``signal_px`` per frame, pixels
        (white over 0 to fps/2; NaN if unmeasured).
    """

    signal_px: np.ndarray
    weights: np.ndarray
    lags: np.ndarray
    noise_px: np.ndarray
    noise_floor_px: float


def project_band_motion(sums: np.ndarray, fisher: np.ndarray, *, fps: float, highpass_hz: float) -> BandMotion:
    """Solve the per-band normal equations and project on the dominant direction.

    The direction is the principal axis of the jointly estimated 2-D motion
    (after the high-pass, so slow drift does not decide it).

    Parameters
    ----------
    sums : ndarray
        ``(frames, bands, 2)`` from :func:`visualmic.motion.phase_gradient_sums`.
    fisher : ndarray
        ``(bands, 2, 2)`` normal matrices of the bands.
    fps : float
        Frame rate (Hz), for the high-pass.
    highpass_hz : float
        Cut-off of the high-pass applied before choosing the direction.

    Examples
    --------
    >>> t = np.arange(400)
    >>> s = np.sin(t / 3.0)
    >>> sums = -np.stack([np.stack([0 * s, s], -1)] * 2, axis=1)  # x motion, 2 bands
    >>> m = project_band_motion(sums, np.stack([np.eye(2)] * 2), fps=400, highpass_hz=10)
    >>> round(m.direction_deg), m.signals_px.shape
    (0, (2, 400))
    """
    total = fisher.sum(axis=0)
    joint = -np.linalg.solve(total, sums.sum(axis=1).T)  # (2, frames): y, x
    filtered = highpass(joint, fps=fps, cutoff_hz=highpass_hz)
    _, vecs = np.linalg.eigh(filtered @ filtered.T)
    u = vecs[:, -1]  # (uy, ux), rows grow downwards
    if u[1] < 0 or (abs(u[1]) < 1e-12 and u[0] > 0):
        u = -u
    information = np.einsum("i,bij,j->b", u, fisher, u)
    signals = -np.einsum("i,tbi->bt", u, sums) / np.maximum(information, 1e-300)[:, None]
    direction = float(np.degrees(np.arctan2(-u[0], u[1])))
    return BandMotion(signals_px=signals, information=information, direction_deg=direction, unit_vector=u)


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """``y[t] = x[t + lag]``, edges filled with the nearest sample."""
    if lag == 0:
        return x
    idx = np.clip(np.arange(x.size) + lag, 0, x.size - 1)
    return x[idx]


def _best_lag(x: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """Lag within ``±max_lag`` that maximises ``|<x[t + lag], reference[t]>|``."""
    inner = max_lag
    core = slice(inner, x.size - inner)
    scores = [abs(np.dot(_shift(x, lag)[core], reference[core])) for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def _unit_gain_weights(cov: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """GLS weights ``w = C^-1 g / (g' C^-1 g)``: the unbiased combination of least variance."""
    solved = np.linalg.solve(cov, gains)
    return solved / float(gains @ solved)


def combine_bands(
    signals: np.ndarray,
    *,
    noise_covariance: np.ndarray,
    fps: float,
    highpass_hz: float,
    max_lag: int = 2,
    iterations: int = 5,
) -> Combination:
    """Generalised least-squares combination of band signals, with measured noise, signs and lags.

    Model: ``s_b(t) = g_b s(t - lag_b) + n_b(t)``. The noise covariance has the
    correlations ``K`` predicts for white pixel noise (overlapping bands share
    noise) and each band's variance as measured from its residual, so a band
    with extra noise (aliasing, specularities, codec damage: anything the
    white-noise model misses) is weighted by what it really delivers. The gains (with their sign) are regressed on the combined
    signal with the bias from its own noise removed; lags within ``±max_lag``.

    Parameters
    ----------
    signals : ndarray
        ``(bands, frames)`` band signals, pixels.
    noise_covariance : ndarray
        ``(bands, bands)`` predicted noise covariance up to a scale (identity
        when nothing is known).
    fps, highpass_hz : float
        Frame rate and the high-pass applied before measuring (drift is not signal).
    max_lag : int
        Largest lag considered, in frames.
    iterations : int
        Rounds of re-estimation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.sin(np.arange(4000) / 5.0)
    >>> bands = np.stack([s + 0.1 * rng.standard_normal(4000),
    ...                   -s + 0.1 * rng.standard_normal(4000),
    ...                   s + 3.0 * rng.standard_normal(4000)])
    >>> c = combine_bands(bands, noise_covariance=np.eye(3), fps=2200, highpass_hz=0)
    >>> np.round(c.weights, 2).tolist()  # the flipped band counts, the noisy one hardly
    [0.51, -0.51, 0.0]
    """
    signals = np.asarray(signals, dtype=np.float64)
    n_bands, n = signals.shape
    if n_bands == 1:
        return Combination(signals[0].copy(), np.ones(1), np.zeros(1, int), np.full(1, np.nan), float("nan"))
    if n <= 4 * max_lag + 8:
        max_lag = 0
    analysed = highpass(signals, fps=fps, cutoff_hz=highpass_hz) if highpass_hz > 0 else signals - signals.mean(1, keepdims=True)
    model = np.asarray(noise_covariance, dtype=np.float64)
    model = model + np.eye(n_bands) * 1e-9 * np.trace(model) / n_bands
    scale = np.sqrt(np.diag(model))
    correlation = model / np.outer(scale, scale)
    gains = _initial_gains(analysed, model)
    lags = np.zeros(n_bands, dtype=int)
    cov = model  # absolute noise covariance, px²: the model's correlations, measured variances
    core = slice(max_lag, n - max_lag)
    for _ in range(iterations):
        weights = _unit_gain_weights(cov, gains)
        aligned = np.stack([_shift(analysed[b], lags[b]) for b in range(n_bands)])[:, core]
        combined = weights @ aligned
        # Each band's noise variance from its residual: a residual keeps the share
        # diag(P C P') / diag(C) of the band's noise, P = I - g w' (the combination
        # absorbs the rest).
        proj = np.eye(n_bands) - np.outer(gains, weights)
        kept = np.einsum("ij,jk,ik->i", proj, cov, proj) / np.diag(cov)
        residual = np.mean((aligned - gains[:, None] * combined) ** 2, axis=1)
        variance = np.maximum(residual / np.maximum(kept, 1e-3), 1e-30)
        # No band is quieter than the white-noise model says, at the pixel-noise scale of
        # the bands that carry the combination (this also pins down what residuals alone
        # cannot separate when only two bands carry the signal).
        pixel_noise = _weighted_median(variance / np.diag(model), np.abs(weights * gains))
        variance = np.maximum(variance, pixel_noise * np.diag(model))
        cov = correlation * np.sqrt(np.outer(variance, variance))
        weights = _unit_gain_weights(cov, gains)
        combined = weights @ aligned
        # Gains, unbiased: E<x_b, s> = g_b P + (C w)_b and E<s, s> = P + w'Cw.
        noise_in_combined = float(weights @ cov @ weights)
        signal_power = float(np.mean(combined**2)) - noise_in_combined
        if signal_power > 3 * noise_in_combined / np.sqrt(combined.size):  # a signal is there to measure
            measured_gains = (aligned @ combined / combined.size - cov @ weights) / signal_power
            # Shrink towards the calibrated prior (1: every band measures pixels) by each
            # estimate's uncertainty, so that noise cannot flip a weak band's sign.
            gain_var = variance * (signal_power + noise_in_combined) / (combined.size * signal_power**2)
            gains = (measured_gains / gain_var + 1.0 / GAIN_PRIOR_VAR) / (1.0 / gain_var + 1.0 / GAIN_PRIOR_VAR)
            gains[np.abs(gains) < 1e-6] = 1e-6
            if max_lag:
                lags = _align_lags(analysed, weights, lags, max_lag)
    weights = _unit_gain_weights(cov, gains)
    signal = sum(weights[b] * _shift(signals[b], lags[b]) for b in range(n_bands))
    noise_px = np.sqrt(np.diag(cov))
    return Combination(np.asarray(signal), weights, lags, noise_px, float(np.sqrt(weights @ cov @ weights)))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Median of ``values`` where each counts with its weight."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    if cumulative[-1] <= 0:
        return float(np.median(values))
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _initial_gains(analysed: np.ndarray, model: np.ndarray) -> np.ndarray:
    """First gains (signs included): each band regressed on the most informative band.

    The best band (least model noise) is the most reliable reference for signs;
    the estimates are shrunk towards 1 by their uncertainty. Regression dilution
    makes them small for weak bands, which is the safe side: the loop in
    :func:`combine_bands` then re-estimates them without bias.
    """
    best = int(np.argmin(np.diag(model)))
    reference = analysed[best]
    energy = float(reference @ reference)
    if energy <= 0:
        return np.ones(analysed.shape[0])
    measured = analysed @ reference / energy
    variance = np.mean(analysed**2, axis=1) / np.mean(reference**2) / analysed.shape[1]
    variance = np.maximum(variance, 1e-300)
    return (measured / variance + 1.0 / GAIN_PRIOR_VAR) / (1.0 / variance + 1.0 / GAIN_PRIOR_VAR)


def _align_lags(analysed: np.ndarray, weights: np.ndarray, lags: np.ndarray, max_lag: int) -> np.ndarray:
    """Lags of all bands against the combination of the others, anchored on the main band.

    The band that carries most of the combination keeps lag 0; the others are
    placed one at a time (largest weight first) against the current combination
    of all the rest, so that two bands cannot chase each other.
    """
    lags = lags.copy()
    order = np.argsort(-np.abs(weights))
    lags -= lags[order[0]]
    aligned = np.stack([_shift(x, lag) for x, lag in zip(analysed, lags)])
    for b in order[1:]:
        others = weights @ aligned - weights[b] * aligned[b]
        lags[b] = _best_lag(analysed[b], others, max_lag)
        aligned[b] = _shift(analysed[b], lags[b])
    return lags


def davis2014_combine(signals: np.ndarray) -> Combination:
    """The 2014 recipe: align every band to band 0 by the peak of their
    cross-correlation (any lag, no sign flip), then sum with equal weights.

    Examples
    --------
    >>> s = np.sin(np.arange(200) / 4.0)
    >>> c = davis2014_combine(np.stack([s, np.roll(s, 3)]))
    >>> c.lags.tolist()
    [0, 3]
    """
    signals = np.asarray(signals, dtype=np.float64)
    n_bands, n = signals.shape
    lags = np.zeros(n_bands, dtype=int)
    for b in range(1, n_bands):
        corr = scipy.signal.correlate(signals[b], signals[0], mode="full")
        lags[b] = int(np.argmax(corr)) - (n - 1)
    total = sum(np.roll(signals[b], -lags[b]) for b in range(n_bands))
    return Combination(np.asarray(total), np.ones(n_bands), lags, np.full(n_bands, np.nan), float("nan"))
