"""The public functions: recover sound from frames.

This is where the stages meet: a source streams frames, the pyramid and the
motion stage reduce every chunk to a few numbers per band and frame, the
combination stage makes one signal of the bands, and the audio stage turns it
into sound. Nothing here computes; everything here decides what to compute.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__
from .audio import default_highpass_hz, highpass, mmse_lsa, normalize_peak, resample, spectral_subtraction
from .combine import combine_bands, davis2014_combine, project_band_motion
from .config import MIN_FRAMES, RecoverOptions
from .engine import default_chunk_frames, map_ordered, stream_frames
from .errors import InputError
from .frames import check_roi, prepared_shape
from .motion import (
    BandReference,
    band_noise_covariance,
    davis2014_band_signals,
    phase_gradient_sums,
    prepare_references,
    reference_bands,
)
from .pyramid import SteerablePyramid, choose_scales, wraps_smoothly
from .sources import FrameSource, Meta, open_source

__all__ = ["recover", "Recovery", "resolve_fps"]

MAX_AUTO_SCALES = 5


@dataclass
class Recovery:
    """What :func:`recover` found.

    Attributes
    ----------
    audio : ndarray
        float32 sound at ``rate_hz``, peak-normalised to 0.99.
    rate_hz : int
        Sampling rate of ``audio``.
    native_audio : ndarray
        float32 sound at the capture rate (one sample per frame), peak 0.99.
    fps : float
        Capture rate used, and ``fps_origin`` where it came from.
    displacement_px : ndarray
        Combined displacement along ``direction_deg`` in pixels, high-passed.
    band_signals_px : ndarray
        ``(bands, frames)`` per-band signals (pixels for ``"phase"``; the 2014
        recipe's phase units for ``"davis2014"``).
    band_weights, band_lags, band_noise_px : ndarray
        How the bands were combined (see :class:`visualmic.combine.Combination`).
    bands : list of dict
        Level, orientation and cropped size of every band.
    noise_floor_px : float
        Estimated noise of ``displacement_px`` per frame (pixels, white over
        0 to fps/2), measured from the bands' disagreement; NaN for ``"davis2014"``.
    """

    audio: np.ndarray
    rate_hz: int
    native_audio: np.ndarray
    fps: float
    fps_origin: str
    displacement_px: np.ndarray
    band_signals_px: np.ndarray
    band_weights: np.ndarray
    band_lags: np.ndarray
    band_noise_px: np.ndarray
    bands: list[dict]
    direction_deg: float | None
    noise_floor_px: float
    frames: int
    frame_shape: tuple[int, int]
    meta: Meta
    options: RecoverOptions
    highpass_hz: float
    wall_s: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept_tones_hz: list[float] = field(default_factory=list)

    @property
    def region_weights(self) -> np.ndarray:
        """Where the sound came from: each region's share of the combination, ``(regions, regions)``.

        The absolute weights of a region's channels times their measured noise
        (a weight's contribution to the signal, comparable across bands), summed
        and normalised to 1.
        """
        grid = self.options.region_grid
        share = np.abs(self.band_weights) * np.nan_to_num(self.band_noise_px, nan=1.0)
        share = share.reshape(-1, grid * grid).sum(axis=0).reshape(grid, grid)
        total = share.sum()
        return share / total if total > 0 else share

    @property
    def estimated_snr_db(self) -> float:
        """The recovered sound's SNR as estimated without the truth (NaN when unmeasured).

        The combination measures the noise of the displacement per frame; it is
        white over 0 to fps/2, so the high-passed band holds ``(fps/2 - highpass)
        / (fps/2)`` of it. The signal is what the displacement holds beyond that.
        """
        if not np.isfinite(self.noise_floor_px):
            return float("nan")
        nyquist = self.fps / 2
        noise = self.noise_floor_px**2 * (nyquist - self.highpass_hz) / nyquist
        signal = float(np.var(self.displacement_px)) - noise
        return float(10 * np.log10(max(signal, 1e-3 * noise) / noise))

    @property
    def duration_s(self) -> float:
        """Duration of the recording in seconds."""
        return self.frames / self.fps

    def summary(self) -> dict[str, object]:
        """A JSON-ready description of the run."""
        return {
            "visualmic_version": __version__,
            "input": self.meta.path,
            "format": self.meta.format,
            "codec": self.meta.codec,
            "lossy": self.meta.lossy,
            "frames": self.frames,
            "frame_size": {"width": self.meta.width, "height": self.meta.height},
            "processed_size": {"width": self.frame_shape[1], "height": self.frame_shape[0]},
            "fps": self.fps,
            "fps_origin": self.fps_origin,
            "duration_s": self.duration_s,
            "rate_hz": self.rate_hz,
            "method": self.options.method,
            "highpass_hz": self.highpass_hz,
            "scales": 1 + max(band["level"] for band in self.bands),
            "regions": self.options.region_grid,
            "orientations": self.options.orientations,
            "direction_deg": self.direction_deg,
            "noise_floor_px": None if not np.isfinite(self.noise_floor_px) else self.noise_floor_px,
            "estimated_snr_db": None if not np.isfinite(self.estimated_snr_db) else self.estimated_snr_db,
            "wall_s": self.wall_s,
            "frames_per_s": self.frames / self.wall_s if self.wall_s > 0 else None,
            "bands": [
                dict(band, weight=float(w), lag_frames=int(lag), noise_px=None if not np.isfinite(n) else float(n))
                for band, w, lag, n in zip(self.bands, self.band_weights, self.band_lags, self.band_noise_px)
            ],
            "region_weights": self.region_weights.round(4).tolist(),
            "kept_tones_hz": self.kept_tones_hz,
            "notes": self.notes,
            "warnings": self.warnings,
            "options": self.options.to_dict(),
        }


def _channels(pyramid: SteerablePyramid, opts: RecoverOptions) -> list[dict]:
    """Description of every measured channel (band, and region when the frame is split)."""
    regions = opts.region_grid
    out = []
    for b in pyramid.bands_info:
        for region in range(regions * regions):
            channel = {"level": b.level, "orientation": b.orientation, "shape": list(b.shape)}
            if regions > 1:
                channel["region"] = [region // regions, region % regions]  # row, column of the grid
            out.append(channel)
    return out


def resolve_fps(meta: Meta, fps: float | None) -> tuple[float, str, list[str], list[str]]:
    """Decide the capture rate: the user's, else the file's (saying so), else fail.

    Returns
    -------
    fps : float
    origin : str
        ``"user"`` or the file's origin (``"container"``, ``"header"``).
    notes, warnings : list of str
        What the user should know about that choice, and what may be wrong with it.

    Examples
    --------
    >>> m = Meta(path="x.avi", format="avi", width=8, height=8, bit_depth=8, frame_count=10,
    ...          frame_count_exact=False, fps=30.0, fps_origin="container",
    ...          rate_warnings=["30 fps looks like a playback rate"])
    >>> resolve_fps(m, None)[1], resolve_fps(m, None)[3]
    ('container', ['30 fps looks like a playback rate'])
    >>> resolve_fps(m, 2200.0)
    (2200.0, 'user', [], [])
    """
    if fps is not None:
        return float(fps), "user", [], []
    if meta.fps is None:
        raise InputError(f"{meta.path}: the input stores no frame rate; pass the camera's capture rate with --fps")
    note = f"capture rate {meta.fps:g} fps taken from the {meta.fps_origin}; pass --fps if the camera recorded at another rate"
    return meta.fps, meta.fps_origin, [note], list(meta.rate_warnings)


def _pyramid_for(
    shape: tuple[int, int], opts: RecoverOptions, first_frame: np.ndarray, *, fft_workers: int | None
) -> SteerablePyramid:
    max_scales = int(np.floor(np.log2(min(shape)))) - 2
    if max_scales < 1:
        raise InputError(f"the processed frames are {shape[1]}x{shape[0]} pixels: at least 8x8 are needed")
    scales = choose_scales(first_frame, max_scales=MAX_AUTO_SCALES) if opts.scales is None else opts.scales
    if scales > max_scales:
        raise InputError(f"{scales} scales need larger frames than {shape[1]}x{shape[0]} (at most {max_scales} here)")
    return SteerablePyramid(
        shape,
        scales=scales,
        orientations=opts.orientations,
        highpass="merge" if opts.method == "phase" else "drop",
        workers=fft_workers,
        periodic=opts.method == "phase" and not wraps_smoothly(first_frame),
    )


def recover(
    source: str | Path | np.ndarray | FrameSource,
    *,
    options: RecoverOptions | None = None,
    progress: bool = False,
    **overrides: object,
) -> Recovery:
    """Recover sound from a video of a vibrating surface.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        A video file, ``.npy`` array, TIFF stack, folder of PNG/TIFF frames, or
        an array ``(frames, rows, cols[, channels])``.
    options : RecoverOptions, optional
        All options at once; keyword arguments override its fields.
    progress : bool
        Progress bar on stderr (only when it is a terminal).
    **overrides
        Any field of :class:`visualmic.config.RecoverOptions` (``fps``, ``roi``,
        ``scales``, ``method``, ``denoise``, ``rate``...).

    Returns
    -------
    Recovery

    Raises
    ------
    InputError
        Bad input: missing or unreadable file, no frame rate, region outside
        the frame, too few frames...

    Examples
    --------
    >>> from visualmic.synth import procedural_texture, moving_frames
    >>> t = np.arange(2200) / 2200
    >>> motion = 0.05 * np.sin(2 * np.pi * 440 * t)
    >>> frames = np.concatenate(list(moving_frames(procedural_texture((64, 64)), motion)))
    >>> rec = recover(frames, fps=2200)
    >>> rec.rate_hz, rec.audio.dtype, round(rec.direction_deg)
    (48000, dtype('float32'), 0)
    """
    opts = replace(options or RecoverOptions(), **overrides)  # type: ignore[arg-type]
    started = time.perf_counter()
    src = open_source(source)
    try:
        return _recover(src, opts, progress=progress, started=started)
    finally:
        src.close()


def _measure(
    src: FrameSource, opts: RecoverOptions, roi: tuple[int, int, int, int], shape: tuple[int, int], progress: bool
) -> tuple[SteerablePyramid, list[BandReference] | None, np.ndarray]:
    """Stream every frame through the pyramid and the motion stage.

    Returns the pyramid, the prepared references (None for the 2014 recipe) and
    the per-frame measurements: ``(frames, channels, 2)`` normal-equation sums
    (channels: band x region), or ``(frames, bands)`` 2014 band signals.
    """
    chunk = opts.chunk_frames or default_chunk_frames(shape)

    def frames(start: int, stop: int | None, label: str):
        return stream_frames(src, chunk_frames=chunk, roi=roi, downsample=opts.downsample, start=start, stop=stop,
                             progress=progress, description=label)

    # Reference: the mean of the first frames (the 2014 recipe: frame 0 alone).
    n_ref = 1 if opts.method == "davis2014" else opts.reference_frames
    blocks = [block for _, block in frames(0, n_ref, "reference")]
    if not blocks:
        raise InputError(f"{src.meta.path}: no frame could be decoded")
    first_frames = np.concatenate(blocks)
    if np.ptp(first_frames[0]) == 0:
        raise InputError(f"{src.meta.path}: the frames are uniform: there is no texture to measure motion from "
                         "(choose a textured region with --roi)")
    threads = opts.threads or os.cpu_count() or 1
    # Chunks run in parallel threads, so each FFT uses one.
    pyramid = _pyramid_for(shape, opts, first_frames[0], fft_workers=1 if threads > 1 else None)
    # The reference frames' bands, computed in parallel like every other chunk.
    pieces = (first_frames[i : i + chunk] for i in range(0, first_frames.shape[0], chunk))
    per_piece = list(map_ordered(pyramid.bands, pieces, threads=threads))
    first_bands = [np.concatenate([piece[b] for piece in per_piece]) for b in range(len(pyramid.bands_info))]
    references = reference_bands(first_bands)
    prepared = (
        prepare_references(pyramid, references, border_px=opts.border_px, grid=opts.region_grid)
        if opts.method == "phase"
        else None
    )

    def measure(bands: list[np.ndarray]) -> np.ndarray:
        if prepared is not None:
            return phase_gradient_sums(bands, prepared)
        return davis2014_band_signals(bands, references)

    per_chunk = [measure(first_bands)]
    del first_bands
    rest = (block for _, block in frames(first_frames.shape[0], None, "recovering"))
    per_chunk += map_ordered(lambda block: measure(pyramid.bands(block)), rest, threads=threads)
    return pyramid, prepared, np.concatenate(per_chunk)


def _denoise(
    sound: np.ndarray, *, fps: float, opts: RecoverOptions, noise_floor_px: float
) -> tuple[np.ndarray, list[float], list[str]]:
    """The optional denoiser: the sound, the steady tones it kept, and what to tell the user."""
    if opts.denoise == "none":
        return sound, [], []
    if opts.denoise == "mmse":
        return mmse_lsa(sound, fps=fps, noise_variance=noise_floor_px**2), [], []
    sound, kept = spectral_subtraction(sound, fps=fps)
    notes = []
    if kept:
        notes.append("spectral subtraction kept steady tones at " + ", ".join(f"{f:.0f} Hz" for f in kept)
                     + " (it would have erased them)")
    return sound, kept, notes


def _at_output_rate(sound: np.ndarray, *, fps: float, opts: RecoverOptions) -> tuple[np.ndarray, int, list[str]]:
    """The WAV's samples (peak-normalised) and rate, and what to tell the user."""
    if opts.rate != "native":
        rate_hz = int(opts.rate)
        return normalize_peak(resample(sound, rate_in_hz=fps, rate_out_hz=rate_hz)), rate_hz, []
    rate_hz = int(round(fps))
    notes = []
    if abs(rate_hz - fps) > 1e-6 * fps:
        notes.append(f"WAV files store whole-number rates: the native {fps:g} Hz is written as {rate_hz} Hz "
                     f"({abs(rate_hz - fps) / fps:.4%} pitch error); the default standard rate converts exactly")
    return normalize_peak(sound), rate_hz, notes


def _recover(src: FrameSource, opts: RecoverOptions, *, progress: bool, started: float) -> Recovery:
    meta = src.meta
    fps, fps_origin, notes, warnings = resolve_fps(meta, opts.fps)
    warnings += meta.warnings
    if meta.frame_count_exact and meta.frame_count is not None and meta.frame_count < MIN_FRAMES:
        raise InputError(f"{meta.path}: {meta.frame_count} frames; at least {MIN_FRAMES} are needed")
    roi = check_roi(opts.roi, width=meta.width, height=meta.height)
    shape = prepared_shape(roi, opts.downsample)
    highpass_hz = default_highpass_hz(fps) if opts.highpass_hz is None else float(opts.highpass_hz)
    if highpass_hz >= fps / 2:
        raise InputError(f"high-pass cut-off {highpass_hz:g} Hz is not below the Nyquist frequency {fps / 2:g} Hz")

    pyramid, prepared, measured = _measure(src, opts, roi, shape, progress)
    count = measured.shape[0]
    if count < MIN_FRAMES:
        raise InputError(f"{meta.path}: {count} frames decoded; at least {MIN_FRAMES} are needed")
    if not meta.frame_count_exact and meta.frame_count is not None and meta.frame_count != count:
        notes.append(f"the header claims {meta.frame_count} frames; {count} decoded, and those were used")
    if meta.duration_s and meta.fps and meta.duration_s - count / meta.fps > 2.0 / meta.fps:
        warnings.append(f"the file ends early: the container announces {meta.duration_s:.3f} s, "
                        f"{count / meta.fps:.3f} s decoded ({count} frames); truncated or damaged file?")

    direction: float | None = None
    if prepared is not None:
        fisher = np.concatenate([r.fisher for r in prepared])
        motion = project_band_motion(measured, fisher, fps=fps, highpass_hz=highpass_hz, coherent=opts.region_grid == 1)
        noise_model = band_noise_covariance(pyramid, prepared, motion.unit_vector)
        combo = combine_bands(
            motion.signals_px, noise_covariance=noise_model, fps=fps, highpass_hz=highpass_hz, max_lag=opts.max_lag
        )
        band_signals, direction = motion.signals_px, motion.direction_deg
        displacement = highpass(combo.signal_px, fps=fps, cutoff_hz=highpass_hz)
    else:
        band_signals = measured.T
        combo = davis2014_combine(band_signals)
        displacement = highpass(combo.signal_px, fps=fps, cutoff_hz=highpass_hz, zero_phase=False)

    sound, kept, denoise_notes = _denoise(displacement, fps=fps, opts=opts, noise_floor_px=combo.noise_floor_px)
    audio, rate_hz, rate_notes = _at_output_rate(sound, fps=fps, opts=opts)
    return Recovery(
        audio=audio,
        rate_hz=rate_hz,
        native_audio=normalize_peak(sound),
        fps=fps,
        fps_origin=fps_origin,
        displacement_px=np.asarray(displacement, dtype=np.float64),
        band_signals_px=band_signals,
        band_weights=combo.weights,
        band_lags=combo.lags,
        band_noise_px=combo.noise_px,
        bands=_channels(pyramid, opts),
        direction_deg=direction,
        noise_floor_px=combo.noise_floor_px,
        frames=count,
        frame_shape=shape,
        meta=meta,
        options=opts,
        highpass_hz=highpass_hz,
        wall_s=time.perf_counter() - started,
        notes=notes + denoise_notes + rate_notes,
        warnings=warnings,
        kept_tones_hz=kept,
    )
