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
EXCESS_THRESHOLD = 2.0  # a band's noise beyond this ratio to the model's is counted as noise of its own
SCORE_BLOCK_CHANNELS = 8  # channels high-passed at once when choosing the direction of regions' motion

__all__ = [
    "BandMotion", "Combination", "joint_displacement", "project_band_motion", "combine_bands", "davis2014_combine",
    "estimated_snr_db",
]


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


def _total_information(fisher: np.ndarray) -> np.ndarray:
    """All channels' normal matrices summed, with a tiny ridge that keeps texture with detail in
    one direction only (a grating) solvable: the motion across it is then simply not seen."""
    total = fisher.sum(axis=0)
    return total + np.eye(2) * 1e-9 * max(np.trace(total), 1e-300)


def joint_displacement(sums: np.ndarray, fisher: np.ndarray) -> np.ndarray:
    """The 2-D displacement all channels see together (rigid motion), pixels, ``(frames, 2)`` as (y, x).

    The least-squares solution of all channels' normal equations at once: the
    efficient estimate of a rigid shift under white pixel noise.

    Parameters
    ----------
    sums : ndarray
        ``(frames, channels, 2)`` from :func:`visualmic.motion.phase_gradient_sums`.
    fisher : ndarray
        ``(channels, 2, 2)`` normal matrices.

    Examples
    --------
    >>> sums = np.array([[[0.0, -0.5], [0.0, -0.5]]])  # one frame, two channels, x motion
    >>> (joint_displacement(sums, np.stack([np.eye(2)] * 2)) + 0.0).round(6).tolist()  # (y, x)
    [[0.0, 0.5]]
    """
    return -np.linalg.solve(_total_information(fisher), sums.sum(axis=1).T).T


def project_band_motion(
    sums: np.ndarray, fisher: np.ndarray, *, fps: float, highpass_hz: float, coherent: bool = True
) -> BandMotion:
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
    coherent : bool
        True when all channels see one rigid motion (their sum is the best
        estimate); False for regions that may move in opposite directions, whose
        sum could cancel: the direction then comes from the sum of the channels'
        own motion covariances, weighted by their information.

    Examples
    --------
    >>> t = np.arange(400)
    >>> s = np.sin(t / 3.0)
    >>> sums = -np.stack([np.stack([0 * s, s], -1)] * 2, axis=1)  # x motion, 2 bands
    >>> m = project_band_motion(sums, np.stack([np.eye(2)] * 2), fps=400, highpass_hz=10)
    >>> round(m.direction_deg), m.signals_px.shape
    (0, (2, 400))
    """
    total = _total_information(fisher)
    # The joint estimate's noise covariance is proportional to total^-1 and anisotropic
    # (larger where the texture has less detail).
    noise = np.linalg.inv(total)
    if coherent:
        filtered = highpass(joint_displacement(sums, fisher).T, fps=fps, cutoff_hz=highpass_hz)  # (2, frames)
        covariance = filtered @ filtered.T
    else:
        # Scores S_c = -F_c d_c: summing their covariances adds the channels' motion
        # energy whatever its sign; in the units of the joint estimate, total^-1 (.) total^-1.
        scores = np.zeros((2, 2))
        for first in range(0, sums.shape[1], SCORE_BLOCK_CHANNELS):  # a few channels at a time: little memory
            block = sums[:, first : first + SCORE_BLOCK_CHANNELS].transpose(1, 2, 0)
            filtered = highpass(block, fps=fps, cutoff_hz=highpass_hz)  # (channels, 2, frames)
            scores += np.einsum("cit,cjt->ij", filtered, filtered)
        covariance = noise @ scores @ noise
    # With C = P u u' + s2 N, the top generalised eigenvector v of (C, N) gives u ~ N v,
    # free of the noise's anisotropy.
    _, vecs = scipy.linalg.eigh(covariance, noise)
    u = noise @ vecs[:, -1]
    u /= np.linalg.norm(u)  # (uy, ux), rows grow downwards
    if u[1] < 0 or (abs(u[1]) < 1e-12 and u[0] > 0):
        u = -u
    information = np.maximum(np.einsum("i,bij,j->b", u, fisher, u), 1e-12 * np.trace(total))
    signals = np.empty((sums.shape[1], sums.shape[0]))
    for c in range(sums.shape[1]):  # channel by channel: float32 sums are never copied whole to float64
        signals[c] = (sums[:, c, 0] * -u[0] - sums[:, c, 1] * u[1]) / information[c]
    direction = float(np.degrees(np.arctan2(-u[0], u[1])))
    return BandMotion(signals_px=signals, information=information, direction_deg=direction, unit_vector=u)


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """``y[t] = x[t + lag]``, edges filled with the nearest sample."""
    if lag == 0:
        return x
    idx = np.clip(np.arange(x.size) + lag, 0, x.size - 1)
    return x[idx]


def _best_lag(x: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """Lag within ``±max_lag`` that maximises ``|corr(x[t + lag], reference[t])|``, 0 unless
    that correlation beats lag 0's by three standard errors (noise must not move a band)."""
    core = slice(max_lag, x.size - max_lag)
    ref = reference[core]
    if not ref.size:
        return 0
    norm = np.sqrt(np.dot(ref, ref) * np.dot(x[core], x[core])) or 1.0
    # Row k is x[t + k - max_lag] over the core: the shifts never reach the edges there.
    scores = np.abs(np.lib.stride_tricks.sliding_window_view(x, ref.size) @ ref) / norm
    best = int(np.argmax(scores))
    if scores[best] - scores[max_lag] < 3.0 / np.sqrt(ref.size):
        return 0
    return best - max_lag


def _residual_power(signals: np.ndarray, gains: np.ndarray, common: np.ndarray) -> np.ndarray:
    """``mean((signals[b] - gains[b] * common) ** 2)`` of every row, one row at a time (no full-size temporary)."""
    return np.array([np.mean((row - gain * common) ** 2) for row, gain in zip(signals, gains)])


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

    Model: ``s_b(t) = g_b s(t - lag_b) + n_b(t)``. The noise covariance is the
    one ``K`` predicts for white pixel noise (overlapping bands share noise), at
    the pixel-noise level measured from the residuals; a band whose residual
    shows more than twice its predicted noise (aliasing, specularities, codec
    damage: anything the white-noise model misses) gets the excess as noise of
    its own, so it is weighted by what it really delivers. Signs start from a regression on
    the most informative band (a flip must be significant); gains are then
    estimated once, each band against the combination of the others with their
    shared noise removed, and shrunk towards their prior (the bands are
    calibrated in pixels) by their uncertainty. Lags within ``±max_lag`` change
    only when significantly better.

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
    [0.5, -0.5, 0.0]
    """
    signals = np.asarray(signals, dtype=np.float64)
    model = np.asarray(noise_covariance, dtype=np.float64)
    # A channel without information (a region a small band has no sample in) carries a
    # zero signal with zero predicted noise: it would look perfect. Leave it out.
    usable = (np.diag(model) > 0) & (np.ptp(signals, axis=1) > 0)
    if 0 < usable.sum() < signals.shape[0]:
        part = combine_bands(signals[usable], noise_covariance=model[np.ix_(usable, usable)], fps=fps,
                             highpass_hz=highpass_hz, max_lag=max_lag, iterations=iterations)
        weights, lags, noise = np.zeros(usable.size), np.zeros(usable.size, int), np.full(usable.size, np.nan)
        weights[usable], lags[usable], noise[usable] = part.weights, part.lags, part.noise_px
        return Combination(part.signal_px, weights, lags, noise, part.noise_floor_px)
    n_bands, n = signals.shape
    if n_bands == 1:
        return Combination(signals[0].copy(), np.ones(1), np.zeros(1, int), np.full(1, np.nan), float("nan"))
    if n <= 4 * max_lag + 8:
        max_lag = 0
    if highpass_hz > 0:
        analysed = highpass(signals, fps=fps, cutoff_hz=highpass_hz)
    else:
        analysed = signals - signals.mean(1, keepdims=True)
    # Each channel's predicted noise is trusted to 0.1 %: fine grids of regions make the model
    # singular (channels that are exact combinations of others), and a combination that relies
    # on noise cancelling exactly along such directions amplifies whatever the model misses.
    model = model + np.diag(np.diag(model)) * 1e-3
    gains = _initial_signs(analysed, model)
    lags = np.zeros(n_bands, dtype=int)
    cov = model
    core = slice(max_lag, n - max_lag)
    for iteration in range(iterations):
        shifted = np.stack([_shift(analysed[b], lags[b]) for b in range(n_bands)]) if lags.any() else analysed
        aligned = shifted[:, core]
        cov = _noise_covariance(aligned, model, cov, gains)
        weights = _unit_gain_weights(cov, gains)
        if iteration == 0:
            # Gains once, against the consensus of the noise model's GLS: re-estimating
            # them in a loop feeds a dominant band's own noise back into its weight.
            gains = _leave_one_out_gains(aligned, weights, gains, cov)
            weights = _unit_gain_weights(cov, gains)
        if max_lag:
            lags = _align_lags(analysed, weights, lags, max_lag)
    weights = _unit_gain_weights(cov, gains)
    signal = sum(weights[b] * _shift(signals[b], lags[b]) for b in range(n_bands))
    noise_px = np.sqrt(np.diag(cov))
    return Combination(np.asarray(signal), weights, lags, noise_px, float(np.sqrt(weights @ cov @ weights)))


def _noise_covariance(
    aligned: np.ndarray, model: np.ndarray, cov: np.ndarray, gains: np.ndarray
) -> np.ndarray:
    """Absolute band-noise covariance (px²): the model's, at the measured pixel-noise level,
    plus, for bands that show far more noise than predicted, the excess as noise of their own.

    The excess (a codec's damage, aliasing) is not camera noise: it does not share the
    model's correlations between bands, so it is not given them (MJPEG at 0.05 px: 8.5 dB
    instead of 8.2 with the model's correlations scaled up; 8.4 instead of -3.0 in 8 x 8
    regions, whose many correlated channels the scaled model made it trust to cancel)."""
    n_bands = aligned.shape[0]
    weights = _unit_gain_weights(cov, gains)
    combined = weights @ aligned
    # A residual keeps the share diag(P C P') / diag(C) of the band's noise, P = I - g w'
    # (the combination absorbs the rest).
    proj = np.eye(n_bands) - np.outer(gains, weights)
    kept = np.einsum("ij,jk,ik->i", proj, cov, proj) / np.diag(cov)
    residual = _residual_power(aligned, gains, combined)
    measured = np.maximum(residual / np.maximum(kept, 1e-3), 1e-30)
    # The model's variances are trusted unless a band measures more than EXCESS_THRESHOLD
    # times its prediction: residual estimates are biased by some 10 % for a dominant band
    # at low SNR, while real trouble (aliasing, codec damage, flicker) shows as 2-10x.
    # The pixel-noise level is the smallest ratio: trouble only ever adds noise.
    pixel_noise = float(np.min(measured / np.diag(model)))
    predicted = pixel_noise * np.diag(model)
    excess = np.where(measured > EXCESS_THRESHOLD * predicted, measured - predicted, 0.0)
    return pixel_noise * model + np.diag(excess)


def _leave_one_out_gains(aligned: np.ndarray, weights: np.ndarray, gains: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each band's gain against the combination of the *other* bands, shrunk towards its prior.

    The noise shared with the other bands (overlapping bands) is removed from
    the cross-product, the others' own noise from their power; the estimate is
    then shrunk towards the prior (the current gain: 1, or -1 for a band found
    flipped) by its uncertainty, so that noise cannot move a weak band's gain.
    """
    n = aligned.shape[1]
    new = gains.copy()
    for b in range(aligned.shape[0]):
        others_w = weights.copy()
        others_w[b] = 0.0
        norm = float(others_w @ gains)
        if abs(norm) < 1e-6:
            continue
        others_w /= norm  # unit-gain combination of the other bands
        others = others_w @ aligned
        others_noise = float(others_w @ cov @ others_w)
        power = float(others @ others) / n - others_noise
        if power <= 3 * others_noise / np.sqrt(n):  # no signal to measure against
            continue
        estimate = (float(aligned[b] @ others) / n - float(cov[b] @ others_w)) / power
        variance = cov[b, b] * (power + others_noise) / (n * power**2)
        new[b] = (estimate / variance + gains[b] / GAIN_PRIOR_VAR) / (1.0 / variance + 1.0 / GAIN_PRIOR_VAR)
    new[np.abs(new) < 1e-6] = 1e-6
    return new


def _initial_signs(analysed: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Prior gains: -1 for bands clearly flipped against the most informative band, else 1.

    A band's regression on the best band (least model noise) must be negative by
    more than three standard errors to count as flipped.
    """
    best = int(np.argmin(np.diag(model)))
    reference = analysed[best]
    energy = float(reference @ reference)
    signs = np.ones(analysed.shape[0])
    if energy <= 0:
        return signs
    slope = analysed @ reference / energy
    residual = _residual_power(analysed, slope, reference)
    stderr = np.sqrt(residual / energy)
    signs[slope < -3 * stderr] = -1.0
    return signs


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


def estimated_snr_db(signal_px: np.ndarray, noise_floor_px: float, *, rate_hz: float,
                     band_hz: tuple[float, float]) -> float:
    """SNR of a band-limited signal, estimated without the truth from its measured noise floor.

    The noise floor (per sample at ``rate_hz``) is white over 0 to ``rate_hz / 2``,
    so the band holds ``(hi - lo) / (rate_hz / 2)`` of its power; the signal is
    what ``signal_px`` holds beyond that (at least 30 dB under the noise).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> signal = np.sin(np.arange(20000) / 3.0)  # power 0.5
    >>> noisy = signal + 0.5 * rng.standard_normal(20000)  # noise power 0.25: 3 dB
    >>> round(estimated_snr_db(noisy, 0.5, rate_hz=2200, band_hz=(0, 1100)), 1)
    3.0
    """
    if not np.isfinite(noise_floor_px):
        return float("nan")
    noise = noise_floor_px**2 * (band_hz[1] - band_hz[0]) / (rate_hz / 2)
    signal = float(np.var(signal_px)) - noise
    return float(10 * np.log10(max(signal, 1e-3 * noise) / max(noise, 1e-300)))
