"""Simulated videos of a surface moving with a sound, and the physical limit of recovery.

As in the 2014 paper's simulations: a texture is translated by sub-pixel amounts
that follow an audio waveform (an exact Fourier shift, not an interpolation),
camera noise is added and the frames are quantised.  Because the texture and the
noise are known, the best SNR any unbiased motion estimator can reach is known
too: the Cramér-Rao bound (:func:`cramer_rao_snr_db`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.special

from .audio import bandpass_power
from .rolling import RowTiming

__all__ = [
    "Camera",
    "procedural_texture",
    "moving_frames",
    "mode_shape",
    "creep",
    "central",
    "cramer_rao_variance",
    "cramer_rao_snr_db",
    "melody",
    "speech",
    "Scene",
    "RollingShutter",
    "exposed_displacement",
    "rolling_shutter_frames",
    "make_scene",
    "scaled_to_peak",
    "load_texture",
]


@dataclass(frozen=True)
class Camera:
    """A simple camera noise model, in grey levels of the output bit depth.

    Attributes
    ----------
    read_noise : float
        Standard deviation of the signal-independent noise (grey levels).
    shot_noise : float
        Standard deviation of the photon noise at full scale (grey levels); it
        scales with the square root of the intensity.
    bit_depth : int
        Quantisation of the output (8, 12 or 16 bits); 0 keeps float frames.
    """

    read_noise: float = 1.0
    shot_noise: float = 0.0
    bit_depth: int = 8

    @property
    def full_scale(self) -> float:
        """Largest grey level (255 for 8 bits; 1.0 for float frames)."""
        return float(2**self.bit_depth - 1) if self.bit_depth else 1.0

    def noise_variance(self, intensity: np.ndarray) -> np.ndarray:
        """Variance of the camera noise at each pixel, quantisation included."""
        var = self.read_noise**2 + self.shot_noise**2 * np.clip(intensity, 0, None) / self.full_scale
        if self.bit_depth:
            var = var + 1.0 / 12.0
        return np.broadcast_to(var, np.shape(intensity)).astype(np.float64)

    def expose(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Add noise to ideal frames and quantise them."""
        std = np.sqrt(self.read_noise**2 + self.shot_noise**2 * np.clip(frames, 0, None) / self.full_scale)
        noisy = frames + std * rng.standard_normal(frames.shape)
        if not self.bit_depth:
            return noisy.astype(np.float32)
        dtype = np.uint8 if self.bit_depth <= 8 else np.uint16
        return np.clip(np.rint(noisy), 0, self.full_scale).astype(dtype)


def procedural_texture(
    shape: tuple[int, int], *, seed: int = 0, mean: float = 128.0, contrast: float = 40.0, smoothness_px: float = 1.0
) -> np.ndarray:
    """A periodic random texture with a natural (1/f) spectrum, like a crumpled surface.

    Parameters
    ----------
    shape : tuple of int
        Rows and columns.
    seed : int
        Random seed.
    mean, contrast : float
        Mean grey level and standard deviation of the texture.
    smoothness_px : float
        Scale (pixels) of the optical blur: sharper textures carry more motion information.

    Examples
    --------
    >>> tex = procedural_texture((64, 64), seed=1)
    >>> round(float(tex.mean())), round(float(tex.std()))
    (128, 40)
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    radius = np.hypot(fy, fx)
    spectrum = 1.0 / np.maximum(radius, 1.0 / max(shape)) * np.exp(-((np.pi * smoothness_px * radius) ** 2))
    noise = scipy.fft.rfft2(rng.standard_normal(shape))
    texture = scipy.fft.irfft2(noise * spectrum, s=shape)
    texture = (texture - texture.mean()) / texture.std()
    return mean + contrast * texture


def _directional_frequencies(shape: tuple[int, int], direction_deg: float) -> np.ndarray:
    """Frequency (cycles/px) along the direction of motion, for every bin of an ``rfft2``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    theta = np.deg2rad(direction_deg)
    return fx * np.cos(theta) - fy * np.sin(theta)  # rows grow downwards


def directional_gradient(texture: np.ndarray, direction_deg: float) -> np.ndarray:
    """Derivative of a periodic texture along a direction, computed spectrally (exact if band-limited).

    Examples
    --------
    >>> x = np.arange(32)
    >>> ramp = np.tile(np.sin(2 * np.pi * x / 32), (4, 1))
    >>> bool(np.allclose(directional_gradient(ramp, 0.0)[0], 2 * np.pi / 32 * np.cos(2 * np.pi * x / 32)))
    True
    """
    k_dir = _directional_frequencies(texture.shape, direction_deg)
    return scipy.fft.irfft2(scipy.fft.rfft2(texture) * 2j * np.pi * k_dir, s=texture.shape)


def mode_shape(kind: str, shape: tuple[int, int]) -> np.ndarray:
    """Spatial shape of the motion: how much each pixel moves per unit of the sound.

    Parameters
    ----------
    kind : {"rigid", "membrane", "opposite"}
        ``"rigid"``: everything moves together. ``"membrane"``: the fundamental mode
        of a circular drum (Bessel J0) of radius 0.4 x the smaller side, the
        background still. ``"opposite"``: the left half moves one way, the right
        half the other (a smooth 8-pixel transition), as in a vibration mode
        whose global sum cancels.
    shape : tuple of int
        Rows and columns.

    Examples
    --------
    >>> phi = mode_shape("opposite", (8, 64))
    >>> float(phi[0, 0]), float(phi[0, -1])
    (1.0, -1.0)
    """
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    if kind == "rigid":
        return np.ones(shape)
    if kind == "membrane":
        radius = 0.4 * min(shape)
        r = np.hypot(y - (rows - 1) / 2, x - (cols - 1) / 2)
        return np.where(r < radius, scipy.special.j0(2.404825557695773 * r / radius), 0.0)
    if kind == "opposite":
        return -np.tanh((x - (cols - 1) / 2) / 4.0) / np.tanh((cols - 1) / 8.0)
    raise ValueError(f"unknown mode shape {kind!r}: rigid, membrane or opposite")


TAYLOR_TERMS = 8


def moving_frames(
    texture: np.ndarray,
    displacement_px: np.ndarray,
    *,
    direction_deg: float = 0.0,
    shape: np.ndarray | None = None,
    chunk_frames: int = 256,
) -> Iterator[np.ndarray]:
    """Yield chunks of a periodic texture moved by sub-pixel amounts, band-limited and exact.

    Frame t is ``I(x - u * shape(x) * d[t])``: with no ``shape`` (rigid motion), an
    exact Fourier shift; otherwise a Taylor series of the same band-limited shift
    with spectrally exact derivatives, ``sum_n (-shape d)^n / n! (u.grad)^n I``
    (8 terms: error below 1e-6 of the texture's contrast while ``d |k| <= 1`` rad).

    Parameters
    ----------
    texture : ndarray
        Periodic 2-D texture.
    displacement_px : ndarray
        The sound: displacement of every frame, pixels, where ``shape`` is 1.
    direction_deg : float
        Direction of motion, degrees counter-clockwise from the x axis (columns);
        90 is up the image (towards row 0).
    shape : ndarray, optional
        Mode shape (see :func:`mode_shape`); None for rigid motion.
    chunk_frames : int
        Frames per yielded chunk.

    Examples
    --------
    >>> tex = procedural_texture((32, 32))
    >>> chunk = next(moving_frames(tex, np.array([0.0, 1.0])))
    >>> bool(np.allclose(chunk[1], np.roll(tex, 1, axis=1)))
    True
    """
    spec = scipy.fft.rfft2(texture)
    k_dir = _directional_frequencies(texture.shape, direction_deg)
    disp = np.asarray(displacement_px, dtype=np.float64)
    if shape is None:
        for first in range(0, disp.size, chunk_frames):
            d = disp[first : first + chunk_frames, None, None]
            yield scipy.fft.irfft2(spec * np.exp(-2j * np.pi * k_dir * d), s=texture.shape)
        return
    derivatives = [
        scipy.fft.irfft2(spec * (2j * np.pi * k_dir) ** n, s=texture.shape) / scipy.special.factorial(n)
        for n in range(1, TAYLOR_TERMS + 1)
    ]
    for first in range(0, disp.size, chunk_frames):
        d = -disp[first : first + chunk_frames, None, None] * shape[None]
        frames = np.repeat(texture[None].astype(np.float64), d.shape[0], axis=0)
        power = np.ones_like(d)
        for term in derivatives:
            power *= d
            frames += power * term
        yield frames


def creep(samples: int, peak_px: float) -> np.ndarray:
    """A camera creeping ``peak_px`` and back over ``samples`` samples: ``peak sin^2(pi k / (samples - 1))``,
    slow, far below an audio band.

    Examples
    --------
    >>> creep(5, 2.0).round(3).tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0]
    """
    return peak_px * np.sin(np.pi * np.arange(samples) / max(samples - 1, 1)) ** 2


def central(values: np.ndarray, view: tuple[int, int]) -> np.ndarray:
    """The central ``view`` rows and columns of ``values`` (last two axes).

    Examples
    --------
    >>> central(np.arange(16).reshape(4, 4), (2, 2))
    array([[ 5,  6],
           [ 9, 10]])
    """
    top, left = (values.shape[-2] - view[0]) // 2, (values.shape[-1] - view[1]) // 2
    return values[..., top : top + view[0], left : left + view[1]]


def cramer_rao_variance(
    texture: np.ndarray, noise_variance: np.ndarray, *, direction_deg: float = 0.0, shape: np.ndarray | None = None,
    view: tuple[int, int] | None = None,
) -> float:
    """Cramér-Rao bound on the variance (px²) of one frame's estimate of the sound.

    ``var >= 1 / sum_x (shape(x) u.grad I(x))**2 / sigma**2(x)`` for a texture I
    moving along u by ``shape(x) * s`` with independent pixel noise of variance
    sigma**2(x); the gradient is computed spectrally, exact for a band-limited
    periodic texture. A rigid scene has ``shape = 1``. With ``view``, only the
    central ``view`` of a larger surface is seen (and counts).

    Examples
    --------
    >>> tex = procedural_texture((64, 64))
    >>> v1 = cramer_rao_variance(tex, np.ones((64, 64)))
    >>> v4 = cramer_rao_variance(tex, 4 * np.ones((64, 64)))
    >>> round(v4 / v1, 6)
    4.0
    """
    gradient = directional_gradient(texture, direction_deg)
    if view is not None:
        noise_variance = central(np.broadcast_to(noise_variance, texture.shape), view)
        gradient = central(gradient, view)
    if shape is not None:
        gradient = gradient * shape
    return float(1.0 / np.sum(gradient**2 / noise_variance))


def cramer_rao_snr_db(
    displacement_px: np.ndarray, variance_px2: float, *, fps: float, band_hz: tuple[float, float]
) -> float:
    """SNR (dB) of an efficient estimator within a frequency band.

    The bound's error is white over ``[0, fps/2]``; only the part inside
    ``band_hz`` counts, as does only the signal inside it.

    Examples
    --------
    >>> t = np.arange(2200) / 2200
    >>> s = 0.01 * np.sin(2 * np.pi * 440 * t)
    >>> round(cramer_rao_snr_db(s, 1e-6, fps=2200, band_hz=(0, 1100)), 1)
    17.0
    """
    signal = bandpass_power(displacement_px, fps=fps, band_hz=band_hz)
    noise = variance_px2 * (min(band_hz[1], fps / 2) - max(band_hz[0], 0.0)) / (fps / 2)
    return float(10 * np.log10(signal / noise))


def speech(*, rate_hz: float) -> np.ndarray:
    """4 s of real read speech (CMU ARCTIC, bundled with its licence), resampled to ``rate_hz``, peak 1.

    Examples
    --------
    >>> x = speech(rate_hz=2200)
    >>> x.shape, float(np.abs(x).max())
    ((8800,), 1.0)
    """
    import soundfile

    from .audio import resample

    path = Path(__file__).parent / "data" / "arctic_a0007.wav"
    data, rate = soundfile.read(str(path))
    out = resample(data, rate_in_hz=rate, rate_out_hz=rate_hz)
    return out / np.abs(out).max()


def melody(duration_s: float, *, rate_hz: float, seed: int = 0) -> np.ndarray:
    """A short synthetic melody (notes with harmonics and soft attacks), peak 1.

    Examples
    --------
    >>> x = melody(1.0, rate_hz=2200)
    >>> x.shape, float(np.abs(x).max())
    ((2200,), 1.0)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
    notes = 220.0 * 2 ** (rng.choice([0, 2, 3, 5, 7, 8, 10, 12], size=max(1, int(duration_s * 4))) / 12)
    note_len = duration_s / notes.size
    out = np.zeros_like(t)
    for i, f0 in enumerate(notes):
        local = t - i * note_len
        inside = (local >= 0) & (local < note_len)
        envelope = np.minimum(1.0, local / 0.01) * np.exp(-3.0 * local / note_len)
        for h, amp in ((1, 1.0), (2, 0.5), (3, 0.25)):
            if h * f0 < rate_hz / 2:
                out[inside] += amp * envelope[inside] * np.sin(2 * np.pi * h * f0 * local[inside])
    return out / np.abs(out).max()


@dataclass(frozen=True)
class RollingShutter:
    """Timing of a rolling-shutter camera: row ``y`` of frame ``n`` is exposed over
    ``[n / fps + y * line_delay_s, ... + exposure_s]``.

    Attributes
    ----------
    line_delay_s : float
        Delay between the starts of two consecutive rows (the line rate's reciprocal).
    exposure_s : float
        Exposure time of each row; it averages (low-passes) the motion. 0: instantaneous.
    """

    line_delay_s: float
    exposure_s: float = 0.0

    def check(self, rows: int, fps: float) -> None:
        """Raise ValueError when the frame's readout does not fit in the frame period."""
        RowTiming(fps=fps, line_delay_s=self.line_delay_s, exposure_s=self.exposure_s).check(rows)

    def row_times(self, frames: int, rows: int, fps: float) -> np.ndarray:
        """Start of every row's exposure, seconds, shape ``(frames, rows)``."""
        return np.arange(frames)[:, None] / fps + np.arange(rows)[None, :] * self.line_delay_s


def exposed_displacement(
    displacement_px: np.ndarray, rate_hz: float, starts_s: np.ndarray, exposure_s: float
) -> np.ndarray:
    """Mean displacement over ``[start, start + exposure]`` (the exposure's box filter), at any times.

    ``displacement_px`` is sampled at ``rate_hz`` (fine enough for linear
    interpolation of its content); with ``exposure_s = 0`` it is interpolated.

    Examples
    --------
    >>> d = np.arange(10.0)  # a ramp, 1 px per sample at 10 Hz
    >>> exposed_displacement(d, 10.0, np.array([0.2]), 0.2).round(6).tolist()
    [3.0]
    """
    t = np.arange(displacement_px.size) / rate_hz
    if exposure_s <= 0:
        return np.interp(starts_s, t, displacement_px)
    # Integral by the trapezoid rule, then difference of the interpolated integral.
    integral = np.concatenate(([0.0], np.cumsum(0.5 * (displacement_px[1:] + displacement_px[:-1])) / rate_hz))
    return (np.interp(starts_s + exposure_s, t, integral) - np.interp(starts_s, t, integral)) / exposure_s


def rolling_shutter_frames(
    texture: np.ndarray, row_displacement_px: np.ndarray, *, chunk_frames: int = 256
) -> Iterator[np.ndarray]:
    """Yield chunks of frames whose rows are shifted horizontally, each by its own amount (exact 1-D Fourier shifts).

    Parameters
    ----------
    texture : ndarray
        Texture, periodic along x.
    row_displacement_px : ndarray
        ``(frames, rows)`` displacement of every row of every frame, pixels along x.
    chunk_frames : int
        Frames per yielded chunk.

    Examples
    --------
    >>> tex = procedural_texture((8, 16))
    >>> shifts = np.zeros((1, 8)); shifts[0, 3] = 1.0
    >>> frame = next(rolling_shutter_frames(tex, shifts))[0]
    >>> bool(np.allclose(frame[3], np.roll(tex[3], 1)) and np.allclose(frame[2], tex[2]))
    True
    """
    spec = np.fft.rfft(texture, axis=1)
    kx = np.fft.rfftfreq(texture.shape[1])
    for first in range(0, row_displacement_px.shape[0], chunk_frames):
        d = row_displacement_px[first : first + chunk_frames, :, None]
        yield np.fft.irfft(spec[None] * np.exp(-2j * np.pi * kx * d), n=texture.shape[1], axis=2)


@dataclass(frozen=True)
class Scene:
    """A simulated recording: a texture moving with a sound, seen by a camera.

    Attributes
    ----------
    texture : ndarray
        The noiseless, periodic texture (grey levels): the whole surface.
    displacement_px : ndarray
        The sound as displacement per frame, pixels along ``direction_deg``,
        where the mode shape is 1.
    fps : float
        Capture rate.
    direction_deg : float
        Direction of motion (degrees counter-clockwise from the x axis).
    camera : Camera
        Noise and quantisation.
    shape : ndarray or None
        Mode shape (None: rigid).
    seed : int
        Seed of the camera noise.
    rolling_shutter : RollingShutter or None
        Row timing of a rolling-shutter camera (None: global shutter).
    row_displacement_px : ndarray or None
        With a rolling shutter, ``(frames, rows)``: the displacement each row saw.
    flicker_hz, flicker_depth : float
        The light's flicker (see :func:`make_scene`).
    view : tuple of int or None
        The camera sees only this many central rows and columns of the texture
        (None: all of it).
    """

    texture: np.ndarray
    displacement_px: np.ndarray
    fps: float
    direction_deg: float
    camera: Camera
    shape: np.ndarray | None = None
    seed: int = 0
    rolling_shutter: RollingShutter | None = None
    row_displacement_px: np.ndarray | None = None
    flicker_hz: float = 0.0
    flicker_depth: float = 0.0
    view: tuple[int, int] | None = None

    def _in_view(self, values: np.ndarray) -> np.ndarray:
        """What the camera sees of ``values`` (last two axes)."""
        return values if self.view is None else central(values, self.view)

    def light(self, first: int, count: int) -> np.ndarray:
        """Relative brightness of the light for frames ``first`` to ``first + count - 1``, ``(count, rows, 1)``.

        ``1 + depth cos(2 pi f t)`` averaged over each row's exposure (a
        rolling shutter sees it at every row's own time: dark and bright bands).
        """
        rows = self._in_view(self.texture).shape[0]
        if self.flicker_hz <= 0 or self.flicker_depth == 0:
            return np.ones((count, 1, 1))
        shutter = self.rolling_shutter or RollingShutter(line_delay_s=0.0)
        starts = (first + np.arange(count))[:, None] / self.fps + np.arange(rows)[None, :] * shutter.line_delay_s
        omega = 2 * np.pi * self.flicker_hz
        if shutter.exposure_s > 0:
            rise = np.sin(omega * (starts + shutter.exposure_s)) - np.sin(omega * starts)
            wave = rise / (omega * shutter.exposure_s)
        else:
            wave = np.cos(omega * starts)
        return (1 + self.flicker_depth * wave)[:, :, None]

    def frames(self, *, chunk_frames: int = 256) -> Iterator[np.ndarray]:
        """Yield chunks of noisy, quantised frames (reproducible for a given seed)."""
        rng = np.random.default_rng(self.seed)
        if self.row_displacement_px is not None:
            clean_chunks = rolling_shutter_frames(self.texture, self.row_displacement_px, chunk_frames=chunk_frames)
        else:
            clean_chunks = moving_frames(
                self.texture, self.displacement_px, direction_deg=self.direction_deg, shape=self.shape,
                chunk_frames=chunk_frames,
            )
        first = 0
        for clean in clean_chunks:
            clean = self._in_view(clean)
            yield self.camera.expose(clean * self.light(first, clean.shape[0]), rng)
            first += clean.shape[0]

    def cramer_rao_variance(self) -> float:
        """Bound on the per-frame variance (px²) of the sound's estimate, see :func:`cramer_rao_variance`."""
        return cramer_rao_variance(
            self.texture, self.camera.noise_variance(self.texture), direction_deg=self.direction_deg, shape=self.shape,
            view=self.view,
        )

    def bound_snr_db(self, band_hz: tuple[float, float]) -> float:
        """SNR an efficient estimator reaches in ``band_hz``, see :func:`cramer_rao_snr_db`.

        With a rolling shutter every row is one sample (``rows x fps`` samples
        per second, with gaps), each bounded by its own row's information.
        """
        if self.rolling_shutter is None:
            return cramer_rao_snr_db(self.displacement_px, self.cramer_rao_variance(), fps=self.fps, band_hz=band_hz)
        gradient = directional_gradient(self.texture, 0.0)  # rows see motion along x only
        per_row = 1.0 / np.sum(gradient**2 / self.camera.noise_variance(self.texture), axis=1)
        samples_per_s = self.texture.shape[0] * self.fps
        truth = self.row_displacement_px.reshape(-1)  # in capture order; gaps are ignored for the power
        signal = bandpass_power(truth, fps=1.0 / self.rolling_shutter.line_delay_s, band_hz=band_hz)
        noise = float(np.mean(per_row)) * 2 * (band_hz[1] - band_hz[0]) / samples_per_s
        return float(10 * np.log10(signal / noise))


def load_texture(path: str, shape: tuple[int, int]) -> np.ndarray:
    """A grey texture from an image file, centre-cropped (or tiled) to ``shape``, made periodic.

    The image is windowed towards its mean near the edges over 1/8 of each side,
    so that the periodic extension a Fourier shift implies has no seam.
    """
    from .sources.images import _as_grey, _read_image

    image = _as_grey(_read_image(Path(path)), Path(path)).astype(np.float64)
    reps = (-(-shape[0] // image.shape[0]), -(-shape[1] // image.shape[1]))
    image = np.tile(image, reps)
    top = (image.shape[0] - shape[0]) // 2
    left = (image.shape[1] - shape[1]) // 2
    image = image[top : top + shape[0], left : left + shape[1]]
    ramp_y = _edge_ramp(shape[0])
    ramp_x = _edge_ramp(shape[1])
    window = ramp_y[:, None] * ramp_x[None, :]
    mean = image.mean()
    return mean + (image - mean) * window


def _edge_ramp(n: int) -> np.ndarray:
    """1 in the middle, falling to 0 with a raised cosine over the outer 1/8 at each end."""
    width = max(1, n // 8)
    ramp = np.ones(n)
    edge = np.sin(0.5 * np.pi * (np.arange(width) + 0.5) / width) ** 2
    ramp[:width] = edge
    ramp[n - width :] = edge[::-1]
    return ramp


def scaled_to_peak(audio: np.ndarray, peak: float) -> np.ndarray:
    """``audio`` scaled so that its largest magnitude is ``peak`` (silence stays silence).

    Examples
    --------
    >>> scaled_to_peak(np.array([0.5, -2.0]), 0.1).tolist()
    [0.025, -0.1]
    """
    audio = np.asarray(audio, dtype=np.float64)
    top = np.max(np.abs(audio)) if audio.size else 0.0
    return peak * audio / top if top > 0 else np.zeros_like(audio)


def make_scene(
    audio: np.ndarray,
    *,
    fps: float,
    size: tuple[int, int] = (128, 128),
    amplitude_px: float = 0.02,
    direction_deg: float = 0.0,
    mode: str = "rigid",
    camera: Camera | None = None,
    texture: np.ndarray | None = None,
    seed: int = 0,
    rolling_shutter: RollingShutter | None = None,
    audio_rate_hz: float | None = None,
    flicker_hz: float = 0.0,
    flicker_depth: float = 0.2,
    view: tuple[int, int] | None = None,
) -> Scene:
    """A textured surface whose displacement follows ``audio`` (peak ``amplitude_px``).

    Parameters
    ----------
    audio : ndarray
        The sound, one sample per frame.
    fps : float
        Capture rate.
    size : tuple of int
        Rows and columns.
    amplitude_px : float
        Peak displacement, pixels (where the mode shape is 1).
    direction_deg : float
        Direction of motion.
    mode : {"rigid", "membrane", "opposite"}
        Spatial shape of the motion (see :func:`mode_shape`).
    camera : Camera, optional
        Noise and bit depth (default: 1 grey level of read noise, 8 bits).
    texture : ndarray, optional
        Grey texture of ``size`` (default: :func:`procedural_texture`), rescaled
        to 10-90 % of the camera's range.
    seed : int
        Seed of the texture and of the noise.
    rolling_shutter : RollingShutter, optional
        Render a rolling-shutter camera: every row sees the motion at its own
        time, averaged over its exposure. Motion must be horizontal (0 or 180 deg).
    audio_rate_hz : float, optional
        With a rolling shutter, the rate of ``audio`` (at least 48 kHz advised);
        otherwise ``audio`` has one sample per frame.
    flicker_hz, flicker_depth : float
        A light flickering at this frequency (0: steady) with this relative
        depth: lamps on 50 Hz mains flicker at 100 Hz. With a rolling shutter it
        draws dark and bright bands whose spacing gives the line delay.
    view : tuple of int, optional
        The camera sees only the central ``view`` rows and columns of the
        ``size`` surface: what moves out of the view is gone and new texture
        comes in, as when a camera drifts over a larger scene (the frames are
        not periodic). Rigid, global-shutter scenes only.

    Examples
    --------
    >>> scene = make_scene(melody(0.1, rate_hz=2200), fps=2200, size=(32, 32))
    >>> chunk = next(scene.frames())
    >>> chunk.shape, chunk.dtype
    ((220, 32, 32), dtype('uint8'))
    """
    camera = camera or Camera()
    displacement = scaled_to_peak(audio, amplitude_px)
    full = camera.full_scale if camera.bit_depth else 255.0
    if texture is None:
        texture = procedural_texture(size, seed=seed + 1, mean=0.5 * full, contrast=0.157 * full)
    else:
        texture = np.asarray(texture, dtype=np.float64)
        if texture.shape != tuple(size):
            raise ValueError(f"texture is {texture.shape}, the scene {tuple(size)}")
        lo, hi = texture.min(), texture.max()
        texture = full * (0.1 + 0.8 * (texture - lo) / (hi - lo if hi > lo else 1.0))
    if view is not None:
        view = (int(view[0]), int(view[1]))
        if mode != "rigid" or rolling_shutter is not None:
            raise ValueError("a scene seen through a smaller view moves rigidly, with a global shutter")
        if not (0 < view[0] <= size[0] and 0 < view[1] <= size[1]):
            raise ValueError(f"view {view} does not fit in the scene {tuple(size)}")
    rows_displacement = None
    if rolling_shutter is not None:
        if mode != "rigid" or direction_deg % 180 != 0:
            raise ValueError("a rolling-shutter scene moves rigidly and horizontally (direction 0 or 180)")
        if audio_rate_hz is None:
            raise ValueError("a rolling-shutter scene needs the audio's own rate (audio_rate_hz)")
        rolling_shutter.check(size[0], fps)
        sign = 1.0 if direction_deg % 360 == 0 else -1.0
        frames = int(np.floor((displacement.size / audio_rate_hz - rolling_shutter.exposure_s) * fps
                              - size[0] * rolling_shutter.line_delay_s * fps)) + 1
        starts = rolling_shutter.row_times(frames, size[0], fps)
        rows_displacement = sign * exposed_displacement(displacement, audio_rate_hz, starts, rolling_shutter.exposure_s)
        displacement = sign * rows_displacement[:, 0]
    return Scene(
        texture=texture,
        displacement_px=displacement,
        fps=float(fps),
        direction_deg=float(direction_deg),
        camera=camera,
        shape=None if mode == "rigid" else mode_shape(mode, tuple(size)),
        seed=seed,
        rolling_shutter=rolling_shutter,
        row_displacement_px=rows_displacement,
        flicker_hz=float(flicker_hz),
        flicker_depth=float(flicker_depth) if flicker_hz > 0 else 0.0,
        view=view,
    )
