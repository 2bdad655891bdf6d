"""The ``visualmic`` command: a thin shell over :mod:`visualmic.api` and :mod:`visualmic.synth`.

Bad input is reported as one line on stderr with exit status 2; Ctrl-C exits
with status 130 and leaves no partial output.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import soundfile

from . import __version__
from .api import calibrate_line_delay, inspect, measure_motion, recover, recover_rolling, vibration_map
from .config import (
    COPIES, DENOISERS, DEQUANTIZERS, DEVICES_HELP, EDGES, METHODS, STANDARD_RATE_HZ, RecoverOptions,
)
from .engine import peak_memory_mb
from .errors import InputError
from .outputs import (
    VIDEO_CODECS, atomic_path, container_format, write_bytes, write_json, write_npy, write_video, write_wav,
)
from .sources.base import parse_roi
from .sources.video import rate_storage_problem
from .synth import (
    Camera,
    RollingShutter,
    creep,
    exposed_displacement,
    load_texture,
    make_scene,
    melody,
    scaled_to_peak,
    speech,
)

__all__ = ["main"]

ROLLING_AUDIO_RATE_HZ = 48000  # the sound's grid for rolling-shutter rendering and its truth file


def _friendly(command: Callable) -> Callable:
    """Turn input errors into one line and exit 2; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            click.echo(f"visualmic: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("visualmic: interrupted; no output was written", err=True)
            sys.exit(130)

    return wrapper


def _word_or_int(text: str, word: str, problem: str) -> int | str:
    """``word`` itself, or ``text`` as a whole number; else InputError(``problem``)."""
    if text.lower() == word:
        return word
    try:
        return int(text)
    except ValueError:
        raise InputError(problem) from None


def _parse_rate(text: str) -> int | str:
    return _word_or_int(text, "native", f"output rate {text!r} must be 'native' or a whole number of Hz")


def _parse_regions(text: str) -> int | str:
    return _word_or_int(text, "auto", f"--regions {text!r} must be 'auto' or a whole number from 1 to 16")


def _parse_downsample(value: float) -> int:
    """Accept a factor (2 = half size) or a scale below 1 (0.5 = half size)."""
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"downsample factor must be positive, got {value:g}")
    factor = 1.0 / value if value < 1 else value
    if not factor <= 4096:
        raise InputError(f"downsample {value:g}: a factor of at most 4096")
    if abs(factor - round(factor)) > 1e-6:
        raise InputError(f"downsample {value:g}: use a whole factor (2, 3...) or its reciprocal (0.5, 0.25...)")
    return int(round(factor))


def _tell(notes: list[str], warnings: list[str], quiet: bool) -> None:
    """Warnings always reach stderr; notes unless ``--quiet``."""
    for line in warnings:
        click.echo(f"visualmic: warning: {line}", err=True)
    if not quiet:
        for line in notes:
            click.echo(f"visualmic: note: {line}", err=True)


def _frame_options(command: Callable) -> Callable:
    """The options every measuring command shares: rate, region of interest, downsampling, scales."""
    options = [
        click.option("--fps", type=float, default=None,
                     help="Capture rate in frames per second (default: the file's, with a note)."),
        click.option("--roi", default=None, metavar="X,Y,W,H", help="Region of interest in pixels."),
        click.option("--downsample", type=float, default=1.0, show_default=True,
                     help="Block-average factor (2, or 0.5 for half size)."),
        click.option("--scales", type=int, default=None,
                     help="Pyramid scales [default: enough to cover the texture's detail, at most 5]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Say before any work that an output cannot be written."""
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{path}: the output must be a {' or '.join(suffixes)} file")
    if not path.absolute().parent.is_dir():
        raise InputError(f"{path}: the output folder {path.absolute().parent} does not exist")


def _line_delay(line_delay_s: float | None, line_rate_hz: float | None, rolling_shutter: bool) -> float:
    """The line delay from --line-delay or --line-rate (exactly one), with --rolling-shutter."""
    if not rolling_shutter:
        raise InputError("--line-delay and --line-rate describe a rolling shutter: add --rolling-shutter")
    if (line_delay_s is None) == (line_rate_hz is None):
        raise InputError("--rolling-shutter needs the line delay: give --line-delay SECONDS or --line-rate HZ "
                         "(one of them; 'visualmic calibrate' measures it)")
    value = line_delay_s if line_delay_s is not None else line_rate_hz
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"the line {'delay' if line_delay_s is not None else 'rate'} must be positive, got {value:g}")
    return line_delay_s if line_delay_s is not None else 1.0 / line_rate_hz


def _first_frame(video: Path, options: RecoverOptions) -> np.ndarray:
    """The first processed frame (region of interest, downsampled), for figures."""
    from .engine import stream_frames
    from .frames import check_roi
    from .sources import open_source

    with open_source(video) as src:
        roi = check_roi(options.roi, width=src.meta.width, height=src.meta.height)
        return next(stream_frames(src, chunk_frames=1, roi=roi, downsample=options.downsample, stop=1))[1][0]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="visualmic")
def main() -> None:
    """Recover sound from video of vibrating surfaces (the visual microphone)."""


@main.command("recover")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="WAV file to write.")
@_frame_options
@click.option("--orientations", type=int, default=RecoverOptions.orientations, show_default=True,
              help="Pyramid orientations per scale.")
@click.option("--method", type=click.Choice(METHODS), default=RecoverOptions.method, show_default=True,
              help="'phase': this project's estimator; 'davis2014': the paper's recipe, for comparison.")
@click.option("--reference-frames", type=int, default=RecoverOptions.reference_frames, show_default=True,
              help="Frames averaged into the reference.")
@click.option("--highpass", "highpass_hz", type=float, default=None,
              help="High-pass cut-off in Hz [default: 0.05 x Nyquist, at most 60 Hz; 0: off].")
@click.option("--denoise", type=click.Choice(DENOISERS), default=RecoverOptions.denoise, show_default=True,
              help="'mmse': MMSE log-spectral amplitude with the measured noise floor (keeps tones); "
                   "'spectral': spectral subtraction for speech in steady noise.")
@click.option("--rate", default=str(STANDARD_RATE_HZ), show_default=True,
              help="Output rate in Hz (16-bit WAV), or 'native' for the capture rate as 32-bit float.")
@click.option("--regions", default=RecoverOptions.regions, show_default=True, metavar="auto|N",
              help="Combine N x N parts of the frame separately (objects whose parts vibrate differently); "
                   "auto: measure in parts and keep them only when they give a clearly better estimate.")
@click.option("--border", "border_px", type=float, default=RecoverOptions.border_px, show_default=True,
              help="Pixels over which weights fade out at the frame's edges.")
@click.option("--dequantize", type=click.Choice(DEQUANTIZERS), default=RecoverOptions.dequantize, show_default=True,
              help="MJPEG: 'soft' takes every DCT coefficient at its mean given its quantisation level "
                   "(small motion of a surface moving as one: +1 to +3 dB; the frame is combined as a whole); "
                   "'auto' recovers both ways and keeps soft values only when clearly better.")
@click.option("--edges", type=click.Choice(EDGES), default=RecoverOptions.edges, show_default=True,
              help="What lies beyond the frame's edges: 'cut' (a camera's view of a larger scene), 'wrap' (the "
                   "scene continues across them: a texture shifted periodically, as simulations do); 'auto' "
                   "cuts them where the frame does not wrap smoothly, and wraps them if the seam where they "
                   "meet moves with the recovered motion.")
@click.option("--copies", type=click.Choice(COPIES), default=RecoverOptions.copies, show_default=True,
              help="H.264, HEVC and other codecs that copy blocks between frames: 'fill' sets the copied "
                   "blocks aside, measures the motion from the others and fills the frames without any "
                   "(+1 to +5 dB at H.264's default quality, in about twice the time); 'keep' measures the "
                   "frames as decoded; 'auto' fills on such video where blocks were copied.")
@click.option("--rolling-shutter", is_flag=True,
              help="Every row is a sample at its own time: sound above the frame rate (needs --line-delay).")
@click.option("--line-delay", "line_delay_s", type=float, default=None,
              help="Rolling shutter: seconds between the starts of two rows (see 'visualmic calibrate').")
@click.option("--line-rate", "line_rate_hz", type=float, default=None, help="Rolling shutter: rows per second.")
@click.option("--exposure", "exposure_s", type=float, default=0.0, show_default=True,
              help="Rolling shutter: exposure of a row in seconds (it low-passes the motion; the band is limited).")
@click.option("--row-order", type=click.Choice(["top-down", "bottom-up"]), default="top-down", show_default=True,
              help="Rolling shutter: the order the sensor reads rows.")
@click.option("--frame-offsets", is_flag=True,
              help="Rolling shutter: also remove each frame's mean motion (camera shake).")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Also write a self-contained HTML report (players, waveform, spectrogram, map, diagnostics).")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="A reference sound (the truth) to play and compare in the report.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster (tcp://host:8786); workers read the file themselves.")
@click.option("--workers", type=int, default=None, help="Run on a local Dask cluster of N worker processes.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), default=None,
              help="Keep per-chunk results in this folder: an interrupted run continues where it stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--threads", type=int, default=None,
              help="Threads processing chunks [default: all cores; a video's decoder keeps one].")
@click.option("--device", default=RecoverOptions.device, show_default=True, metavar="DEVICE",
              help=f"Where frames are measured: {DEVICES_HELP}.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes (warnings still show).")
@_friendly
def recover_command(video: Path, output: Path, fps: float | None, roi: str | None, downsample: float,
                    scales: int | None, orientations: int, method: str, reference_frames: int,
                    highpass_hz: float | None, denoise: str, rate: str, regions: str, border_px: float,
                    dequantize: str, edges: str, copies: str, rolling_shutter: bool, line_delay_s: float | None,
                    line_rate_hz: float | None, exposure_s: float, row_order: str, frame_offsets: bool,
                    report: Path | None, reference: Path | None, scheduler: str | None, workers: int | None,
                    cache_dir: Path | None, threads: int | None, device: str, as_json: bool, quiet: bool) -> None:
    """Recover the sound in VIDEO and write it to a WAV file.

    VIDEO is any video FFmpeg decodes, a Photron .cih/.cihx/.mraw or Phantom
    .cine recording, a .npy array (frames, rows, cols), a multi-page TIFF or a
    folder of PNG/TIFF frames.
    """
    _check_output(output, (".wav",))
    if rolling_shutter or line_delay_s is not None or line_rate_hz is not None:
        if (report is not None or regions not in ("auto", "1") or method != "phase" or denoise != "none"
                or downsample != 1 or cache_dir is not None or scheduler is not None or workers is not None
                or dequantize == "soft"):
            raise InputError("--rolling-shutter works on full-resolution rows with the phase method; it does not "
                             "take --report, --regions, --method davis2014, --denoise, --downsample, --cache, "
                             "--scheduler, --workers or --dequantize yet")
        delay = _line_delay(line_delay_s, line_rate_hz, rolling_shutter)
        result = recover_rolling(
            video, line_delay_s=delay, fps=fps, exposure_s=exposure_s, roi=parse_roi(roi) if roi else None,
            bottom_up=row_order == "bottom-up", highpass_hz=80.0 if highpass_hz is None else highpass_hz,
            frame_offsets=frame_offsets, rate=_parse_rate(rate), progress=not quiet,
        )
        write_wav(output, result.audio, rate_hz=result.rate_hz, subtype="FLOAT" if rate == "native" else "PCM_16")
        _tell(result.notes, result.warnings, quiet)
        summary = dict(result.summary(), output=str(output), peak_memory_mb=peak_memory_mb())
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        elif not quiet:
            click.echo(f"{output}: {summary['duration_s']:.2f} s at {result.rate_hz} Hz from {result.frames} frames "
                       f"of rows ({result.timing.fps:g} fps, line rate {1 / delay:.0f} Hz, "
                       f"{result.observed_fraction:.0%} observed, band {result.band_hz[0]:.0f}-"
                       f"{result.band_hz[1]:.0f} Hz)", err=True)
        return
    if report is not None:
        _check_output(report, (".html", ".htm"))
    if reference is not None and report is None:
        raise InputError("--reference is shown in the report: give --report REPORT.html too")
    reference_audio = _read_audio(reference, min_samples=16) if reference is not None else None
    options = RecoverOptions(
        fps=fps,
        roi=parse_roi(roi) if roi else None,
        downsample=_parse_downsample(downsample),
        scales=scales,
        orientations=orientations,
        method=method,
        reference_frames=reference_frames,
        highpass_hz=highpass_hz,
        denoise=denoise,
        rate=_parse_rate(rate),
        regions=_parse_regions(regions),
        border_px=border_px,
        threads=threads,
        device=device,
        dequantize=dequantize,
        edges=edges,
        copies=copies,
    )
    result = recover(video, options=options, progress=not quiet, cache_dir=cache_dir, scheduler=scheduler,
                     workers=workers)
    native = options.rate == "native"
    write_wav(output, result.audio, rate_hz=result.rate_hz, subtype="FLOAT" if native else "PCM_16")
    _tell(result.notes, result.warnings, quiet)
    summary = dict(result.summary(), output=str(output), peak_memory_mb=peak_memory_mb())
    if report is not None:
        from .report import render_report

        evaluation = None
        if reference_audio is not None:
            from .metrics import evaluate

            evaluation = evaluate(result.audio, result.rate_hz, *reference_audio).to_dict()
            summary["evaluation"] = evaluation
        page = render_report(result, frame=_first_frame(video, options), reference=reference_audio,
                             evaluation=evaluation)
        write_bytes(report, page.encode("utf-8"))
        summary["report"] = str(report)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(
            f"{output}: {result.duration_s:.2f} s at {result.rate_hz} Hz from {result.frames} frames "
            f"({result.fps:g} fps, {result.fps_origin}); {summary['frames_per_s']:.0f} frames/s",
            err=True,
        )


def _read_audio(path: Path, *, min_samples: int, missing: str = "no such file") -> tuple[np.ndarray, int]:
    """A sound file as mono samples and its rate; input errors for what cannot be used."""
    if not path.exists():
        raise InputError(f"{path}: {missing}")
    try:
        data, rate = soundfile.read(str(path), always_2d=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable audio file ({exc})") from None
    if data.shape[0] < min_samples:
        raise InputError(f"{path}: {data.shape[0]} samples, too short (at least {min_samples} are needed)")
    return data.mean(axis=1), rate


def _load_audio(spec: str, *, fps: float, duration_s: float) -> np.ndarray:
    """A WAV file resampled to the capture rate, or a built-in sound (``melody``, ``tone:HZ``)."""
    from .audio import resample

    if spec == "melody":
        return melody(duration_s, rate_hz=fps)
    if spec == "speech":
        return speech(rate_hz=fps)
    if spec.startswith("tone:"):
        try:
            freq = float(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"{spec!r}: write a tone as tone:HZ, for example tone:440") from None
        if not 0 < freq < fps / 2:
            raise InputError(f"a {freq:g} Hz tone cannot be sampled at {fps:g} fps (Nyquist {fps / 2:g} Hz)")
        return np.sin(2 * np.pi * freq * np.arange(int(round(duration_s * fps))) / fps)
    data, rate = _read_audio(Path(spec), min_samples=1,
                             missing="no such audio file (or use 'speech', 'melody' or 'tone:HZ')")
    return resample(data, rate_in_hz=rate, rate_out_hz=fps)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"frame size {text!r} must look like 128x128") from None
    if width < 8 or height < 8:
        raise InputError(f"frame size {text}: at least 8x8 pixels")
    return height, width


@main.command("synth")
@click.argument("audio")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Video to write: .mov (PNG; exact rate), .mkv (FFV1), .mp4 (H.264) or .npy.")
@click.option("--fps", type=float, required=True, help="Capture rate of the simulated camera.")
@click.option("--duration", "duration_s", type=float, default=2.0, show_default=True,
              help="Seconds, for built-in sounds.")
@click.option("--size", default="128x128", show_default=True, help="Frame size WxH.")
@click.option("--texture", default="procedural", show_default=True, help="'procedural' or an image file.")
@click.option("--mode", type=click.Choice(["rigid", "membrane", "opposite"]), default="rigid", show_default=True,
              help="Spatial shape of the motion: rigid, a drum's fundamental mode, two halves in opposition.")
@click.option("--amplitude", "amplitude_px", type=float, default=0.02, show_default=True, help="Peak motion in pixels.")
@click.option("--direction", "direction_deg", type=float, default=0.0, show_default=True,
              help="Degrees from the x axis.")
@click.option("--noise", "read_noise", type=float, default=1.0, show_default=True,
              help="Read noise, grey levels of the output bit depth (std).")
@click.option("--shot-noise", type=float, default=0.0, show_default=True,
              help="Photon noise at full scale, grey levels (std).")
@click.option("--bit-depth", type=click.Choice(["8", "12", "16"]), default="8", show_default=True)
@click.option("--codec", type=click.Choice(sorted(VIDEO_CODECS)), default=None,
              help="[default: from the file's suffix]")
@click.option("--quality", type=int, default=None, help="Lossy codecs: H.264 CRF (0-51) or MJPEG qscale (2-31).")
@click.option("--rolling-shutter", is_flag=True,
              help="Simulate a rolling-shutter camera (rows read one after another).")
@click.option("--line-delay", "line_delay_s", type=float, default=None, help="Rolling shutter: seconds between rows.")
@click.option("--exposure", "exposure_s", type=float, default=0.0, show_default=True,
              help="Rolling shutter: exposure of each row in seconds (it low-passes the motion).")
@click.option("--flicker-hz", type=float, default=0.0, show_default=True,
              help="A light flickering at this frequency (lamps on 50 Hz mains: 100); bands on a rolling shutter.")
@click.option("--flicker-depth", type=float, default=0.2, show_default=True,
              help="Relative depth of the flicker.")
@click.option("--drift", "drift_px", type=float, default=0.0, show_default=True,
              help="The camera creeps this many pixels along --direction and back over the clip (slow, not sound).")
@click.option("--view", default=None, metavar="WxH",
              help="The camera sees only the central WxH of the --size surface: texture leaves and enters the view "
                   "as it drifts (rigid, global shutter).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
@_friendly
def synth_command(audio: str, output: Path, fps: float, duration_s: float, size: str, texture: str, mode: str,
                  amplitude_px: float, direction_deg: float, read_noise: float, shot_noise: float, bit_depth: str,
                  codec: str | None, quality: int | None, rolling_shutter: bool, line_delay_s: float | None,
                  exposure_s: float, flicker_hz: float, flicker_depth: float, drift_px: float, view: str | None,
                  seed: int, quiet: bool) -> None:
    """Render a video of a textured surface moving with AUDIO.

    AUDIO is a sound file, 'speech' (4 s of bundled real speech), 'melody' or
    'tone:HZ'. Motion is exact and sub-pixel
    (band-limited shifts), then camera noise and quantisation are applied. Next to
    the video go the true motion as a WAV at the capture rate (NAME.truth.wav,
    pixels / amplitude) and a JSON sidecar (NAME.json) with the scene and its
    Cramér-Rao bound: the best SNR any unbiased estimator can reach on it.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"frame rate must be positive, got {fps:g}")
    if not (math.isfinite(amplitude_px) and amplitude_px > 0):
        raise InputError(f"amplitude must be a positive number of pixels, got {amplitude_px:g}")
    suffix = output.suffix.lower()
    if suffix not in (".npy", ".mkv", ".avi", ".mov", ".mp4"):
        raise InputError(f"{output}: write a .mkv, .mov, .mp4, .avi or .npy file")
    codec = codec or {".mkv": "ffv1", ".avi": "ffv1", ".mov": "png", ".mp4": "h264"}.get(suffix, "ffv1")
    rows_cols = _parse_size(size)
    shutter = None
    if rolling_shutter:
        if line_delay_s is None:
            raise InputError("--rolling-shutter needs --line-delay SECONDS (the time between two rows)")
        shutter = RollingShutter(line_delay_s=line_delay_s, exposure_s=exposure_s)
        try:
            shutter.check(rows_cols[0], fps)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    audio_rate = ROLLING_AUDIO_RATE_HZ if shutter else fps
    signal = _load_audio(audio, fps=audio_rate, duration_s=duration_s)
    camera = Camera(read_noise=read_noise, shot_noise=shot_noise, bit_depth=int(bit_depth))
    image = None if texture == "procedural" else load_texture(texture, rows_cols)
    if not math.isfinite(drift_px):
        raise InputError(f"drift must be a number of pixels, got {drift_px:g}")
    sound_px = scaled_to_peak(signal, amplitude_px)
    motion_px = sound_px + creep(sound_px.size, drift_px)  # the camera's creep: there and back over the clip
    try:
        scene = make_scene(motion_px, fps=fps, size=rows_cols, amplitude_px=float(np.abs(motion_px).max()),
                           direction_deg=direction_deg, mode=mode, camera=camera, texture=image, seed=seed,
                           rolling_shutter=shutter, audio_rate_hz=audio_rate if shutter else None,
                           flicker_hz=flicker_hz, flicker_depth=flicker_depth,
                           view=None if view is None else _parse_size(view))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    frame_rows, frame_cols = scene.view or rows_cols
    count = write_video(output, scene.frames(), fps=fps, codec=codec, quality=quality,
                        frame_count=scene.displacement_px.size)
    problem = rate_storage_problem(container_format(output), fps)
    rate_exact = problem is None
    if problem:
        click.echo(f"visualmic: warning: {output.name}: {problem}; recover it with --fps, "
                   "or write .mov (PNG, lossless) for an exact rate", err=True)
    stem = output.with_suffix("")
    truth_path = stem.with_name(stem.name + ".truth.wav")
    if shutter:  # the motion every row saw, averaged over its exposure, at a standard rate
        truth = exposed_displacement(scaled_to_peak(signal, 1.0), audio_rate, np.arange(signal.size) / audio_rate,
                                     exposure_s)
        write_wav(truth_path, truth, rate_hz=int(audio_rate), subtype="FLOAT")
    else:
        # The sound's motion alone: the camera's creep is not sound.
        write_wav(truth_path, sound_px / amplitude_px, rate_hz=int(round(fps)), subtype="FLOAT")
    if shutter:  # up to 4 kHz, below half the line rate and the exposure's -3 dB point
        top = min(4000.0, 0.48 / line_delay_s, 0.44 / exposure_s if exposure_s > 0 else np.inf)
        band = (80.0, top)
    else:
        band = (80.0, min(1000.0, 0.48 * fps))
    sidecar = {
        "visualmic_version": __version__,
        "video": output.name,
        "truth": truth_path.name,
        "truth_scale_px": amplitude_px,
        "frames": count,
        "fps": fps,
        "size": {"width": frame_cols, "height": frame_rows},
        "surface": {"width": rows_cols[1], "height": rows_cols[0]},
        "drift_px": drift_px,
        "texture": texture,
        "mode": mode,
        "amplitude_px": amplitude_px,
        "direction_deg": direction_deg,
        "camera": {"read_noise": read_noise, "shot_noise": shot_noise, "bit_depth": int(bit_depth)},
        "codec": "npy" if suffix == ".npy" else codec,
        "container_rate_exact": rate_exact,
        "quality": quality,
        "seed": seed,
        "flicker": None if flicker_hz <= 0 else {"hz": flicker_hz, "depth": flicker_depth},
        "rolling_shutter": None if shutter is None else {
            "line_delay_s": line_delay_s, "exposure_s": exposure_s, "line_rate_hz": 1.0 / line_delay_s,
            "observed_fraction": rows_cols[0] * line_delay_s * fps, "truth_rate_hz": audio_rate,
        },
        "cramer_rao_variance_px2": None if shutter else scene.cramer_rao_variance(),
        "bound_snr_db": {"band_hz": list(band), "snr_db": scene.bound_snr_db(band)},
        "bound_note": "for the lossless frames; a lossy codec loses more" if codec in ("mjpeg", "h264") else "",
    }
    write_json(stem.with_name(stem.name + ".json"), sidecar)
    if not quiet:
        click.echo(f"{output}: {count} frames at {fps:g} fps; truth in {truth_path.name}; "
                   f"bound {sidecar['bound_snr_db']['snr_db']:.1f} dB in {band[0]:g}-{band[1]:g} Hz", err=True)


def _parse_band(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"band {text!r} must be LO,HI in Hz, for example 80,1000") from None
    if not (0 <= lo < hi and math.isfinite(hi)):
        raise InputError(f"band {text!r}: need 0 <= LO < HI")
    return lo, hi


@main.command("evaluate")
@click.argument("recovered", type=click.Path(path_type=Path))
@click.argument("reference", type=click.Path(path_type=Path))
@click.option("--band", default=None, metavar="LO,HI", help="Compare only within this band (Hz).")
@click.option("--max-lag", "max_lag_s", type=float, default=1.0, show_default=True, help="Largest offset searched (s).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@_friendly
def evaluate_command(recovered: Path, reference: Path, band: str | None, max_lag_s: float, as_json: bool) -> None:
    """Compare a RECOVERED sound with the REFERENCE (truth): SNR, segmental SNR, LLR, STOI.

    Both go to the lower of their two rates; the reference is delayed, sign-flipped
    and scaled to match best, since a video cannot tell any of the three.
    """
    from .metrics import evaluate

    rec, rec_rate = _read_audio(recovered, min_samples=16)
    ref, ref_rate = _read_audio(reference, min_samples=16)
    result = evaluate(rec, rec_rate, ref, ref_rate, band_hz=_parse_band(band), max_lag_s=max_lag_s)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    stoi = "n/a (pip install pystoi)" if result.stoi is None else f"{result.stoi:.3f}"
    band_text = "full band" if result.band_hz is None else f"{result.band_hz[0]:g}-{result.band_hz[1]:g} Hz"
    rows = [
        ("compared at", f"{result.rate_hz:g} Hz, {band_text}"),
        ("best lag", f"{result.lag_s * 1000:+.2f} ms"),
        ("gain (sign)", f"{result.gain:+.4g}"),
        ("SNR", f"{result.snr_db:.2f} dB"),
        ("segmental SNR", f"{result.segmental_snr_db:.2f} dB"),
        ("LLR (lower is better)", f"{result.llr:.3f}"),
        ("STOI", stoi),
    ]
    for name, value in rows:
        click.echo(f"{name:>22}  {value}")


@main.command("inspect")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--png", type=click.Path(path_type=Path), default=None,
              help="Write the first frame, its texture-energy map and the suggested region to this PNG.")
@click.option("--frames", type=int, default=32, show_default=True, help="Frames examined (from the start).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@_friendly
def inspect_command(video: Path, png: Path | None, frames: int, as_json: bool) -> None:
    """What to know about VIDEO before recovering sound: format, codec, rate, noise, texture.

    Reads the first frames only. The suggested region of interest holds the
    textured part of the frame (untextured surroundings add only noise).
    """
    if png is not None:
        _check_output(png, (".png",))
    if frames < 2:
        raise InputError(f"--frames {frames}: at least 2 frames are needed to measure the noise")
    found = inspect(video, frames=frames)
    if png is not None:
        from .plots import figure_png, texture_figure

        figure = texture_figure(found.frame, found.texture_energy, roi=found.suggested_roi,
                                title=f"{video.name}: texture and suggested region of interest")
        write_bytes(png, figure_png(figure))
    summary = found.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    meta = found.meta
    lossless = {True: "lossless", False: "LOSSY", None: "unknown"}[summary["lossless"]]
    bits = f"{meta.bit_depth}" + (f" ({meta.effective_bit_depth} effective)" if meta.effective_bit_depth else "")
    rate = "none stored: pass --fps" if meta.fps is None else f"{meta.fps:g} fps (from the {meta.fps_origin})"
    roi = found.suggested_roi
    rows = [
        ("file", meta.path),
        ("format", meta.format),
        ("codec", f"{meta.codec or 'n/a'} ({lossless})"),
        ("frame size", f"{meta.width}x{meta.height}"),
        ("bit depth", bits),
        ("frames", f"{meta.frame_count}" + ("" if meta.frame_count_exact else " (the header's claim)")),
        ("capture rate", rate),
        ("exposure", "n/a" if meta.exposure_s is None else f"{meta.exposure_s * 1e6:.3g} us"),
        ("noise", f"{found.noise_grey:.3g} grey levels (std of consecutive differences / sqrt 2, "
                  f"{found.frames_examined} frames; large motion between frames counts too)"),
        ("suggested --roi", "none (no texture)" if roi is None else ",".join(map(str, roi))),
        ("best motion noise", f"{found.motion_floor_px[0]:.2g} px along x, {found.motion_floor_px[1]:.2g} px "
                              "along y, per frame (Cramér-Rao, rigid surface in that region)"),
    ]
    for name, value in rows:
        click.echo(f"{name:>18}  {value}")
    for line in found.warnings:
        click.echo(f"visualmic: warning: {line}", err=True)


@main.command("map")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="PNG to write; the numbers go beside it as NAME.npy (complex, pixels) and NAME.json.")
@click.option("--freq", "frequencies_hz", type=float, multiple=True,
              help="Frequency to map, Hz (repeat for several) [default: the recovered sound's strongest peaks].")
@click.option("--peaks", type=int, default=3, show_default=True, help="Peaks to map when no --freq is given.")
@click.option("--cell", "cell_px", type=int, default=8, show_default=True, help="Cell size in processed pixels.")
@_frame_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes (warnings still show).")
@_friendly
def map_command(video: Path, output: Path, frequencies_hz: tuple[float, ...], peaks: int, cell_px: int,
                fps: float | None, roi: str | None, downsample: float, scales: int | None, as_json: bool,
                quiet: bool) -> None:
    """Map where VIDEO vibrates: amplitude and phase of every cell at chosen frequencies.

    Streams the frames once, keeping running Fourier sums per cell (twice
    without --freq: the sound is recovered first to find its peaks). Cells
    moving in opposite directions show phases pi apart.
    """
    _check_output(output, (".png",))
    if peaks < 1:
        raise InputError(f"--peaks {peaks}: at least 1")
    options = RecoverOptions(fps=fps, roi=parse_roi(roi) if roi else None, downsample=_parse_downsample(downsample),
                             scales=scales)
    found = vibration_map(video, list(frequencies_hz) or None, cell_px=cell_px, peaks=peaks, options=options,
                          progress=not quiet)
    from .plots import figure_png, vibration_map_figure

    write_bytes(output, figure_png(vibration_map_figure(found)))
    stem = output.with_suffix("")
    write_npy(stem.with_name(stem.name + ".npy"), found.phasors_px)
    summary = dict(found.summary(), output=str(output), numbers=stem.name + ".npy",
                   numbers_layout="complex (frequencies, cell rows, cell columns): amplitude in px and phase")
    write_json(stem.with_name(stem.name + ".json"), summary)
    _tell(found.notes, found.warnings, quiet)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        listed = ", ".join(f"{f:.1f} Hz" for f in found.frequencies_hz)
        click.echo(f"{output}: {found.information.shape[1]}x{found.information.shape[0]} cells of {cell_px} px "
                   f"at {listed}", err=True)


@main.command("motion")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="CSV to write; its spectrum plot goes beside it as NAME.png.")
@click.option("--roi", "rois", multiple=True, metavar="X,Y,W,H",
              help="Region to measure (repeat for several) [default: the whole frame].")
@click.option("--fps", type=float, default=None, help="Capture rate in frames per second (default: the file's).")
@click.option("--downsample", type=float, default=1.0, show_default=True,
              help="Block-average factor (2, or 0.5 for half size).")
@click.option("--scale", "units_per_px", type=float, default=None,
              help="Physical size of a pixel, in --unit, to add physical columns.")
@click.option("--unit", default="mm", show_default=True, help="Unit of --scale.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes (warnings still show).")
@_friendly
def motion_command(video: Path, output: Path, rois: tuple[str, ...], fps: float | None, downsample: float,
                   units_per_px: float | None, unit: str, quiet: bool) -> None:
    """Write the displacement of regions of VIDEO, frame by frame, as CSV (for engineers).

    Each region is measured as a rigid surface, in pixels of the input frame:
    x along the rows (to the right), y down the columns. Nothing is filtered;
    values are relative to the mean of the first 32 frames.
    """
    _check_output(output, (".csv",))
    if units_per_px is not None and not (math.isfinite(units_per_px) and units_per_px > 0):
        raise InputError(f"--scale {units_per_px:g}: a pixel's size must be positive")
    if not unit.replace("/", "").isalnum():
        raise InputError(f"--unit {unit!r}: letters only (mm, um, in...)")
    options = RecoverOptions(fps=fps, downsample=_parse_downsample(downsample))
    series = measure_motion(video, [parse_roi(r) for r in rois] or None, options=options, progress=not quiet)
    columns, labels, values = ["time_s"], [], [series.time_s[:, None]]
    for index, roi in enumerate(series.rois, start=1):
        name = f"roi{index}"
        xy = series.displacement_px[:, index - 1, ::-1]  # (x, y)
        columns += [f"{name}_x_px", f"{name}_y_px"]
        values.append(xy)
        labels += [f"{name} x ({','.join(map(str, roi))})", f"{name} y"]
        if units_per_px is not None:
            columns += [f"{name}_x_{unit}", f"{name}_y_{unit}"]
            values.append(xy * units_per_px)
    table = np.concatenate(values, axis=1)
    header = ",".join(columns)
    with atomic_path(output) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt="%.9g")
    from .plots import figure_png, motion_spectrum_figure

    scaled = units_per_px is not None
    displacement = series.displacement_px[:, :, ::-1].reshape(len(series.time_s), -1)
    figure = motion_spectrum_figure(displacement * (units_per_px if scaled else 1.0), fps=series.fps, labels=labels,
                                    unit=unit if scaled else "px",
                                    title=f"Displacement spectrum of {video.name} ({series.fps:g} fps)")
    stem = output.with_suffix("")
    write_bytes(stem.with_name(stem.name + ".png"), figure_png(figure))
    _tell(series.notes, series.warnings, quiet)
    if not quiet:
        click.echo(f"{output}: {len(series.time_s)} frames x {len(series.rois)} regions "
                   f"({series.fps:g} fps, {series.fps_origin})", err=True)


@main.command("calibrate")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--flicker-hz", type=float, required=True,
              help="Frequency of the light's flicker (lamps on 50 Hz mains: 100; on 60 Hz: 120).")
@click.option("--fps", type=float, default=None, help="Frame rate (default: the file's).")
@click.option("--roi", default=None, metavar="X,Y,W,H",
              help="Region lit by the flickering light (all rows by default).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes.")
@_friendly
def calibrate_command(video: Path, flicker_hz: float, fps: float | None, roi: str | None, as_json: bool,
                      quiet: bool) -> None:
    """Measure a rolling shutter's line delay from VIDEO of a light flickering at a known frequency.

    Film a surface lit by the lamp (a wall, a sheet of paper), with the same
    camera mode as the recording: dark and bright bands cross the frame, and
    their spacing in rows is 1 / (flicker x line delay). The result goes to
    'visualmic recover --rolling-shutter --line-delay'.
    """
    found = calibrate_line_delay(video, flicker_hz=flicker_hz, fps=fps, roi=parse_roi(roi) if roi else None,
                                 progress=not quiet)
    _tell(found["notes"], found["warnings"], quiet)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    delay, sigma = found["line_delay_s"], found["uncertainty_s"]
    click.echo(f"line delay {delay * 1e6:.4f} us +- {sigma * 1e6:.4f} us ({sigma / delay:.2%}); line rate "
               f"{found['line_rate_hz']:.1f} Hz; rows read {found['row_order']}; "
               f"readout {found['readout_s'] * 1e3:.3f} ms of {1e3 / found['fps']:.3f} ms; "
               f"flicker contrast {found['contrast']:.1%}")
