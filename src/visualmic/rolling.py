"""Rolling shutter: every row of a frame is a sample of the motion at its own instant.

A rolling-shutter camera starts exposing row ``y`` of frame ``n`` at
``n / fps + y * line_delay`` (rows read top to bottom by default), for the
exposure time; between the last row of a frame and the first of the next lies
the frame delay, when nothing is seen. So a 60 fps camera reading 300 rows at
40 µs samples the motion at 25 kHz for 12 ms, then waits 4.7 ms.

The stages, each a function here:

1. :class:`RowMotion`: the horizontal displacement of every row against a
   reference row (the mean of many frames, :func:`aligned_mean`), by weighted
   least squares on the row's intensity gradient, with a brightness gain and an
   offset per row (flicker and exposure changes do not leak into the motion);
   :class:`DriftingRowMotion` measures each chunk against the reference moved
   to where a creeping camera took it.
2. :func:`remove_row_offsets`: each row's constant offset (the reference is a
   mean, so each row has its own zero) and, optionally, each frame's;
   :func:`remove_slow_drift`: the frames' common slow motion.
3. :func:`place_on_grid`: the rows' samples, uniform within a frame but offset
   by fractions of a line between frames, become a uniform signal at an audio
   rate (each frame's run low-passed, then interpolated at the grid's times);
   grid points outside the frames' readouts are gaps, and the mask says which.
4. :func:`fill_gaps`: gaps filled by least-squares autoregressive
   interpolation from both sides (Janssen, Veldhuis and Vries, 1986), which
   continues tones and formants through the frame delay.

The exposure averages the motion over its duration (a box filter): its
response falls to -3 dB at ``0.443 / exposure`` and to zero at ``1 / exposure``;
:func:`usable_band_hz` limits the band accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.interpolate
import scipy.signal

from .drift import ShiftEstimator, shift_spectrum

__all__ = [
    "RowTiming",
    "RowMotion",
    "DriftingRowMotion",
    "aligned_mean",
    "remove_row_offsets",
    "remove_slow_drift",
    "place_on_grid",
    "fill_gaps",
    "usable_band_hz",
    "estimate_line_delay",
]


@dataclass(frozen=True)
class RowTiming:
    """When every row of every frame was exposed.

    Attributes
    ----------
    fps : float
        Frame rate.
    line_delay_s : float
        Delay between the starts of two consecutive rows (1 / line rate).
    exposure_s : float
        Exposure of a row; samples are placed at the middle of it.
    first_row : int
        Row of the sensor the first analysed row is (a region of interest keeps
        absolute times).
    bottom_up : bool
        Rows read from the bottom of the image to the top.
    sensor_rows : int or None
        Rows of the whole frame (needed with ``bottom_up``).

    Examples
    --------
    >>> timing = RowTiming(fps=60, line_delay_s=40e-6)
    >>> timing.times_s(np.array([1]), rows=3).round(6).tolist()
    [[0.016667, 0.016707, 0.016747]]
    """

    fps: float
    line_delay_s: float
    exposure_s: float = 0.0
    first_row: int = 0
    bottom_up: bool = False
    sensor_rows: int | None = None

    def check(self, sensor_rows: int) -> None:
        """Raise ValueError when the readout of ``sensor_rows`` rows does not fit in a frame period."""
        if not (np.isfinite(self.line_delay_s) and self.line_delay_s > 0):
            raise ValueError(f"the line delay must be a positive number of seconds, got {self.line_delay_s:g}")
        if not (np.isfinite(self.exposure_s) and self.exposure_s >= 0):
            raise ValueError(f"the exposure must be >= 0 s, got {self.exposure_s:g}")
        readout = sensor_rows * self.line_delay_s
        if readout >= 1.0 / self.fps:
            raise ValueError(
                f"{sensor_rows} rows x {self.line_delay_s * 1e6:g} us = {readout * 1e3:.3f} ms of readout "
                f"do not fit in a frame period of {1e3 / self.fps:.3f} ms at {self.fps:g} fps: "
                "check --line-delay (or --line-rate)"
            )
        if self.exposure_s > 1.0 / self.fps:
            raise ValueError(f"an exposure of {self.exposure_s * 1e3:g} ms is longer than the frame period")

    def row_offsets_s(self, rows: int) -> np.ndarray:
        """Time of each analysed row's exposure middle after its frame's start, ``(rows,)``."""
        sensor_row = self.first_row + np.arange(rows)
        if self.bottom_up:
            sensor_row = (self.sensor_rows or rows) - 1 - sensor_row
        return sensor_row * self.line_delay_s + 0.5 * self.exposure_s

    def times_s(self, frames: np.ndarray, *, rows: int) -> np.ndarray:
        """Exposure middle of every row of the given frames, ``(len(frames), rows)``."""
        return np.asarray(frames)[:, None] / self.fps + self.row_offsets_s(rows)[None, :]


def _taper(n: int, width: float) -> np.ndarray:
    """Raised-cosine weights falling to 0 over ``width`` samples at both ends."""
    if width <= 0:
        return np.ones(n)
    distance = np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5
    return np.sin(0.5 * np.pi * np.clip(distance / width, 0, 1)) ** 2


def _mirror_derivative(rows: np.ndarray) -> np.ndarray:
    """d/dx of every row by FFT of the row followed by its mirror image (continuous at both ends)."""
    cols = rows.shape[-1]
    extended = np.concatenate([rows, rows[..., ::-1]], axis=-1)
    frequency = np.fft.rfftfreq(2 * cols)
    derivative = np.fft.irfft(np.fft.rfft(extended, axis=-1) * 2j * np.pi * frequency, n=2 * cols, axis=-1)
    return derivative[..., :cols]


class RowMotion:
    """Horizontal displacement of every row against its reference, frame by frame.

    Each observed row is modelled as its reference row, scaled and offset, and
    shifted by ``d``: ``x = g (r - d r') + b``. The weighted least-squares fit
    (a raised-cosine taper at the row's ends) of the coefficients of ``r``,
    ``r'`` and 1 is linear in the frame; ``d`` is minus the ratio of the first
    two, so a brightness change (flicker) neither adds nor scales motion. The
    derivative ``r'`` is spectral, of the row extended by its mirror image (no
    wrap-around jump), so that rows of different texture measure the same
    motion equally: a per-row gain error would modulate the sound at the frame
    rate.

    Parameters
    ----------
    reference : ndarray
        ``(rows, cols)`` reference rows (the mean of many frames).
    taper_px : float
        Width of the taper at each end of a row.

    Attributes
    ----------
    noise_gain : ndarray
        ``(rows,)``: a row's displacement variance per unit pixel-noise variance
        (``sum g**2``); inf where the row has no horizontal texture.

    Examples
    --------
    >>> x = np.arange(64)
    >>> ref = np.tile(100 + 50 * np.sin(2 * np.pi * x / 16), (2, 1))
    >>> shifted = 100 + 50 * np.sin(2 * np.pi * (x - 0.05) / 16)
    >>> frame = np.stack([ref[0], 1.2 * shifted + 3])  # row 1: shifted, brighter
    >>> RowMotion(ref).displacement(frame[None]).round(3).tolist()
    [[0.0, 0.05]]
    """

    def __init__(self, reference: np.ndarray, *, taper_px: float = 8.0) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        rows, cols = reference.shape
        weight = _taper(cols, min(taper_px, cols / 4))
        derivative = _mirror_derivative(reference)
        basis = np.stack([reference, derivative, np.ones_like(reference)], axis=1)  # (rows, 3, cols)
        normal = np.einsum("rix,x,rjx->rij", basis, weight, basis)
        scale = np.einsum("rii->r", normal)[:, None, None]
        normal = normal + 1e-12 * scale * np.eye(3)
        solved = np.linalg.solve(normal, basis * weight)  # (rows, 3, cols): the LS projection
        self._weights = np.ascontiguousarray(solved[:, :2, :].transpose(1, 0, 2)).astype(np.float32)  # (2, rows, cols)
        self.noise_gain = np.sum(solved[:, 1, :].astype(np.float64) ** 2, axis=1)
        texture = np.einsum("rx,x->r", derivative**2, weight)
        flat = texture <= 1e-9 * max(float(texture.max()), 1e-300)
        self.noise_gain[flat] = np.inf

    def displacement(self, frames: np.ndarray) -> np.ndarray:
        """``(frames, rows)`` displacement of every row, pixels (positive: towards larger x)."""
        gain, shift = np.einsum("nrx,krx->knr", np.asarray(frames, dtype=np.float32), self._weights,
                                dtype=np.float64)
        return -shift / np.where(np.abs(gain) > 1e-6, gain, np.nan)


class DriftingRowMotion:
    """:class:`RowMotion` that follows slow drift of the camera, chunk by chunk.

    Each row is measured against its reference row, a fit linear in a fraction of
    a pixel: a camera creeping by half a pixel would already cost several dB, by
    two the sound (measured: 10.8, 7.1 and -0.3 dB at 0, 0.5 and 2 px). Each
    chunk's mean frame is therefore compared with the reference image as in
    :mod:`visualmic.drift` (its lowest spatial frequencies, windowed); a chunk
    that moved is measured against the reference moved by as much, in both
    directions (rows that drifted vertically meet their own texture again), and
    the horizontal part of the shift is added back. Chunks stay independent.

    Parameters
    ----------
    reference : ndarray
        ``(rows, cols)`` reference image (the mean of many frames).

    Examples
    --------
    >>> from visualmic.synth import procedural_texture
    >>> ref = procedural_texture((64, 64), seed=0)
    >>> moved = np.roll(ref, 2, axis=1)[None]  # the camera crept 2 px: every row moved by +2
    >>> d = DriftingRowMotion(ref).displacement(moved)
    >>> bool(np.allclose(d, 2.0, atol=0.01))
    True
    """

    def __init__(self, reference: np.ndarray) -> None:
        self.reference = np.asarray(reference, dtype=np.float64)
        self.still = RowMotion(self.reference)
        self._spectrum = np.fft.rfft2(self.reference)
        self._estimate_shift = ShiftEstimator(self._spectrum, self.reference.shape)

    @property
    def noise_gain(self) -> np.ndarray:
        """The reference's :attr:`RowMotion.noise_gain`."""
        return self.still.noise_gain

    def displacement(self, frames: np.ndarray) -> np.ndarray:
        """``(frames, rows)`` horizontal displacement of every row, pixels, drift included."""
        frames = np.asarray(frames, dtype=np.float32)
        shift = self._estimate_shift(np.fft.rfft2(frames.mean(axis=0))[None])
        if shift is None:
            return self.still.displacement(frames)
        shape = self.reference.shape
        moved = np.fft.irfft2(shift_spectrum(self._spectrum, -shift, shape), s=shape)  # the reference, moved by shift
        return RowMotion(moved).displacement(frames) + shift[1]


def aligned_mean(frames: np.ndarray) -> np.ndarray:
    """The mean of ``frames``, each first moved back by its own shift from their plain mean (see
    :mod:`visualmic.drift`; frames that did not move are taken as they are).

    A reference averaged over a second of a camera creeping by half a pixel would be blurred by as
    much: its rows would measure the sound with less gain and more noise.

    Examples
    --------
    >>> from visualmic.synth import procedural_texture
    >>> ref = procedural_texture((64, 64), seed=0)
    >>> frames = np.stack([np.roll(ref, k, axis=1) for k in (-1, 0, 1)])  # a creep over the reference
    >>> error = lambda image: float(np.abs(image - ref).max() / np.ptp(ref))
    >>> round(error(frames.mean(axis=0)), 3), round(error(aligned_mean(frames)), 3)  # plain mean: blurred
    (0.078, 0.001)
    """
    frames = np.asarray(frames, dtype=np.float64)
    spectra = np.fft.rfft2(frames)
    estimate_shift = ShiftEstimator(spectra.mean(axis=0), frames.shape[1:])
    moved_back = []
    for spectrum in spectra:
        shift = estimate_shift(spectrum[None])
        moved_back.append(spectrum if shift is None else shift_spectrum(spectrum, shift, frames.shape[1:]))
    return np.fft.irfft2(np.mean(moved_back, axis=0), s=frames.shape[1:])


def remove_slow_drift(displacement: np.ndarray, *, fps: float, cutoff_hz: float) -> np.ndarray:
    """Subtract from every row the frames' common slow motion: their mean over rows, low-passed at
    ``cutoff_hz`` (zero-phase), per frame.

    A camera creeping by a fraction of a pixel is far below the sound's band, but the
    frame delay's gaps are filled by autoregressive interpolation fitted to the rows, and a
    slow motion a hundred times the sound's size dominates that fit (measured at 60 fps,
    0.05 px of melody: 10.8 dB without drift, 7.2 dB with a 0.5 px creep, 10.0 dB once it
    is taken out first).

    Examples
    --------
    >>> frames = np.arange(100.0)
    >>> rows = np.tile(0.01 * frames[:, None], (1, 4))  # all rows creeping together
    >>> bool(np.abs(remove_slow_drift(rows, fps=60.0, cutoff_hz=5.0)).max() < 1e-3)
    True
    """
    common = np.nanmean(displacement, axis=1)
    known = np.isfinite(common)
    if known.sum() < 16:
        return displacement
    common = np.interp(np.arange(common.size), np.flatnonzero(known), common[known])
    sos = scipy.signal.butter(2, min(cutoff_hz, 0.4 * fps), fs=fps, output="sos")
    slow = scipy.signal.sosfiltfilt(sos, common, padtype="odd", padlen=min(common.size - 1, 15))
    return displacement - slow[:, None]


def remove_row_offsets(displacement: np.ndarray, *, per_frame: bool = False) -> np.ndarray:
    """Subtract each row's mean over time (and, with ``per_frame``, each frame's mean over rows).

    A per-frame offset (the whole frame shifted: camera shake) repeats at the
    frame rate and would leave a comb of lines at its harmonics.

    Examples
    --------
    >>> d = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> remove_row_offsets(d).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """
    out = displacement - np.nanmean(displacement, axis=0, keepdims=True)
    if per_frame:
        out = out - np.nanmean(out, axis=1, keepdims=True)
    return out


def place_on_grid(
    values: np.ndarray, times_s: np.ndarray, *, rate_hz: float, cutoff_hz: float, duration_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows' samples on a uniform grid: each frame's readout low-passed, then interpolated at the grid's times.

    Within a frame, rows are uniform samples at the line rate; each frame's
    run is low-passed at ``cutoff_hz`` (zero-phase Butterworth, odd reflection
    at its ends) and evaluated at the grid times it covers by a cubic spline.
    Grid times outside every readout are gaps.

    Parameters
    ----------
    values : ndarray
        ``(frames, rows)`` samples (NaN: unusable row).
    times_s : ndarray
        ``(frames, rows)`` their times, increasing along rows.
    rate_hz : float
        Rate of the output grid, ``t_k = k / rate_hz``.
    cutoff_hz : float
        Low-pass cut-off (below ``rate_hz / 2``).
    duration_s : float, optional
        Length of the grid [default: to the last sample].

    Returns
    -------
    signal : ndarray
        Samples on the grid (0 in the gaps).
    observed : ndarray of bool
        Which grid samples lie inside a frame's readout.

    Examples
    --------
    >>> times = np.arange(3)[:, None] / 100 + np.arange(50)[None, :] * 1e-4  # 3 frames, 50 rows
    >>> signal, observed = place_on_grid(np.sin(2 * np.pi * 200 * times), times, rate_hz=4000, cutoff_hz=1500)
    >>> int(observed.sum()), bool(np.allclose(signal[observed],
    ...     np.sin(2 * np.pi * 200 * np.flatnonzero(observed) / 4000), atol=0.01))
    (60, True)
    """
    total = duration_s if duration_s is not None else float(np.nanmax(times_s))
    signal = np.zeros(int(np.floor(total * rate_hz)) + 1)
    observed = np.zeros(signal.size, dtype=bool)
    for row_values, row_times in zip(values, times_s):
        usable = np.isfinite(row_values)
        if usable.sum() < 4:
            continue
        t, v = row_times[usable], row_values[usable]
        first = max(int(np.ceil(t[0] * rate_hz)), 0)
        last = min(int(np.floor(t[-1] * rate_hz)), signal.size - 1)
        if last < first:
            continue
        line_nyquist = 0.5 / float(np.median(np.diff(t)))
        if cutoff_hz < 0.9 * line_nyquist and v.size > 15:
            b, a = scipy.signal.butter(4, cutoff_hz / line_nyquist)
            v = scipy.signal.filtfilt(b, a, v, padtype="odd", padlen=min(v.size - 1, 48))
        grid = np.arange(first, last + 1) / rate_hz
        signal[first : last + 1] = scipy.interpolate.CubicSpline(t, v)(grid)
        observed[first : last + 1] = True
    return signal, observed


def _autoregression(segments: list[np.ndarray], order: int) -> np.ndarray:
    """AR coefficients ``[1, a1, ..., ap]`` by forward-backward least squares over several segments.

    The modified covariance method: no window, so a sum of sinusoids is
    modelled exactly (the autocorrelation method's windowing would not).
    """
    rows, targets = [], []
    for seg in segments:
        if seg.size <= order:
            continue
        past = np.lib.stride_tricks.sliding_window_view(seg, order + 1)  # (n - p, p + 1)
        rows += [past[:, -2::-1], past[:, 1:]]  # forward: z[t-1..t-p] -> z[t]; backward: z[t+1..t+p] -> z[t]
        targets += [past[:, -1], past[:, 0]]
    if not rows:
        return np.concatenate(([1.0], np.zeros(order)))
    design, target = np.concatenate(rows), np.concatenate(targets)
    normal = design.T @ design
    normal += 1e-9 * np.trace(normal) / order * np.eye(order)  # keeps a rank-deficient fit (few tones) stable
    coefficients = np.linalg.solve(normal, design.T @ target)
    return np.concatenate(([1.0], -coefficients))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def fill_gaps(signal: np.ndarray, observed: np.ndarray, *, order: int = 32, context: int | None = None) -> np.ndarray:
    """Fill the unobserved samples by least-squares autoregressive interpolation.

    For each gap, an AR model of the given order is fitted to the observed
    samples around it (``context`` on each side), and the missing samples are
    those that minimise the model's prediction error over the whole window:
    tones continue through the gap with their phase, from both sides.

    Parameters
    ----------
    signal : ndarray
        Samples (values in the gaps are ignored).
    observed : ndarray of bool
        Which samples are known.
    order : int
        AR order.
    context : int, optional
        Known samples used on each side [default: max(3 x order, 2 x the gap)].

    Examples
    --------
    >>> t = np.arange(400) / 8000
    >>> tone = np.sin(2 * np.pi * 440 * t)
    >>> known = np.ones(400, bool); known[180:230] = False
    >>> filled = fill_gaps(np.where(known, tone, 0.0), known, order=16)
    >>> bool(np.max(np.abs(filled - tone)) < 1e-3)
    True
    """
    out = np.where(observed, signal, 0.0).astype(np.float64)
    gaps = _runs(~observed)
    for start, stop in gaps:
        length = stop - start
        reach = context or max(3 * order, 2 * length)
        left = max(0, start - reach)
        right = min(out.size, stop + reach)
        # Only the known samples next to this gap, up to the neighbouring gaps.
        before = np.flatnonzero(~observed[left:start])
        left = left + (before[-1] + 1 if before.size else 0)
        after = np.flatnonzero(~observed[stop:right])
        right = stop + (after[0] if after.size else right - stop)
        segments = [seg for seg in (out[left:start], out[stop:right]) if seg.size > order]
        if not segments:
            continue  # nothing to model from: the gap stays at zero
        a = _autoregression(segments, order)
        window = out[left:right].copy()
        unknown = np.zeros(window.size, dtype=bool)
        unknown[start - left : stop - left] = True
        p = order
        if window.size <= p:
            continue
        # Prediction-error matrix: e[t] = sum_j a[j] z[t - j], t = p..L-1.
        rows = window.size - p
        matrix = np.zeros((rows, window.size))
        for j, coefficient in enumerate(a):
            matrix[np.arange(rows), np.arange(rows) + p - j] = coefficient
        known_part = matrix[:, ~unknown] @ window[~unknown]
        solution, *_ = np.linalg.lstsq(matrix[:, unknown], -known_part, rcond=None)
        out[start:stop] = solution
    return out


def usable_band_hz(*, rate_hz: float, line_delay_s: float, exposure_s: float) -> float:
    """Highest frequency worth recovering: below the grid's and the line rate's Nyquist, and below
    the exposure's first null (its box filter's response is -3 dB at ``0.443 / exposure`` and
    zero at ``1 / exposure``; 0.9 of the null keeps what is attenuated but still there).

    Examples
    --------
    >>> round(usable_band_hz(rate_hz=16000, line_delay_s=40e-6, exposure_s=1e-3))
    900
    """
    top = 0.45 * min(rate_hz, 1.0 / line_delay_s)
    if exposure_s > 0:
        top = min(top, 0.9 / exposure_s)
    return float(top)


def estimate_line_delay(row_brightness: np.ndarray, *, fps: float, flicker_hz: float) -> tuple[float, float, float]:
    """Line delay from a light flickering at a known frequency: the bands' spacing in rows.

    Every row sees the light at its own instant, so the brightness of row
    ``y`` of frame ``n`` varies as ``cos(2 pi f (n / fps + y * line_delay) + p)``.
    Demodulating each row's brightness over frames at ``f`` leaves a phase
    that grows along the rows by ``2 pi f line_delay`` per row; a weighted line
    through the unwrapped phases gives its slope and the slope's uncertainty.

    Parameters
    ----------
    row_brightness : ndarray
        ``(frames, rows)`` mean brightness of every row.
    fps : float
        Frame rate.
    flicker_hz : float
        The light's flicker frequency (twice the mains frequency for lamps on mains).

    Returns
    -------
    line_delay_s : float
        Positive when rows are read top to bottom, negative bottom to top.
    uncertainty_s : float
        One standard deviation of the estimate.
    contrast : float
        Amplitude of the flicker relative to the mean brightness.

    Raises
    ------
    ValueError
        When the flicker aliases to 0 Hz at this frame rate, or is not seen.

    Examples
    --------
    >>> n, y = np.arange(120)[:, None], np.arange(400)[None, :]
    >>> rows = 100 + 20 * np.cos(2 * np.pi * 100 * (n / 60 + y * 30e-6) + 0.3)
    >>> delay, sigma, contrast = estimate_line_delay(rows, fps=60, flicker_hz=100)
    >>> round(delay * 1e6, 3), round(contrast, 2)
    (30.0, 0.2)
    """
    frames, rows = row_brightness.shape
    alias = (flicker_hz / fps) % 1.0
    if min(alias, 1 - alias) < 2.0 / frames:
        raise ValueError(f"a {flicker_hz:g} Hz flicker is (nearly) a multiple of {fps:g} fps: every frame sees it at "
                         "the same phase, so it cannot be told from the scene; film it at another frame rate")
    slope, slope_var, amplitude = _flicker_phase_slope(row_brightness, fps=fps, flicker_hz=flicker_hz)
    noise = np.sqrt(np.mean((row_brightness - row_brightness.mean(axis=0)) ** 2) / frames) + 1e-30
    if np.median(amplitude) < 3 * noise:
        raise ValueError(f"no {flicker_hz:g} Hz flicker is visible in the rows' brightness "
                         f"(amplitude {np.median(amplitude):.3g} against noise {noise:.3g})")
    # The fit's own uncertainty ignores errors shared by neighbouring rows (texture, motion): the
    # spread of the estimates from four separate quarters of the video measures those too.
    groups = 4 if frames >= 64 else 1
    if groups > 1:
        edges = np.linspace(0, frames, groups + 1).astype(int)
        parts = [_flicker_phase_slope(row_brightness[a:b], fps=fps, flicker_hz=flicker_hz, first_frame=a)[0]
                 for a, b in zip(edges[:-1], edges[1:])]
        slope_var = max(slope_var, float(np.var(parts, ddof=1)) / groups)
    scale = 2 * np.pi * flicker_hz
    contrast = float(np.median(amplitude) / max(float(np.mean(row_brightness)), 1e-30))
    return float(slope / scale), float(np.sqrt(slope_var) / scale), contrast


def _flicker_phase_slope(row_brightness: np.ndarray, *, fps: float, flicker_hz: float,
                         first_frame: int = 0) -> tuple[float, float, np.ndarray]:
    """Slope (rad per row) of the flicker's phase along the rows, its variance, and each row's flicker amplitude."""
    frames, rows = row_brightness.shape
    centred = row_brightness - row_brightness.mean(axis=0, keepdims=True)
    demodulate = np.exp(-2j * np.pi * flicker_hz * (first_frame + np.arange(frames)) / fps)
    phasor = demodulate @ centred * 2 / frames  # (rows,)
    amplitude = np.abs(phasor)
    phase = np.unwrap(np.angle(phasor))
    weight = amplitude**2
    y = np.arange(rows, dtype=float)
    y_mean = np.sum(weight * y) / np.sum(weight)
    phase_mean = np.sum(weight * phase) / np.sum(weight)
    spread = np.sum(weight * (y - y_mean) ** 2)
    slope = np.sum(weight * (y - y_mean) * (phase - phase_mean)) / spread
    residual = phase - phase_mean - slope * (y - y_mean)
    slope_var = np.sum(weight * residual**2) / max(rows - 2, 1) / spread
    return float(slope), float(slope_var), amplitude
