"""The public functions: recover sound from frames.

This is where the stages meet: a source streams frames, the pyramid and the
motion stage reduce every chunk to a few numbers per band and frame, the
combination stage makes one signal of the bands, and the audio stage turns it
into sound. Nothing here computes; everything here decides what to compute.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from . import __version__
from .audio import (
    SPEECH_LOWEST_HZ, default_highpass_hz, highpass, lowpass, mmse_lsa, normalize_peak, resample, spectral_subtraction,
)
from .cache import ChunkCache, cache_key
from .cluster import dask_client, frame_ranges, measure_range
from .combine import (
    Combination, combine_bands, davis2014_combine, estimated_snr_db, joint_displacement, project_band_motion,
)
from .codec import repeated_frames
from .config import (
    AUTO_FLOOR_DB, AUTO_MARGIN_DB, AUTO_SOFT_MAX_PIXEL_FRAMES, MIN_COPIED_SHARE, MIN_FRAMES, SOFT_FLOOR_DB,
    SOFT_MARGIN_DB,
    RecoverOptions, check_fps,
)
from .drift import ShiftEstimator, shift_spectrum
from .engine import default_chunk_frames, map_ordered, measuring_threads, stack_chunks, stream_frames
from .errors import InputError
from .fftlib import limited_fft_threads, planned_work
from .frames import check_roi, prepared_shape
from .intercoded import (
    BLOCK_PX, COPY_DEPTH, MIN_OBSERVED_SHARE, BlockMeasurements, BlockMeter, block_grid, predicts_between_frames,
    recover_copied_motion,
)
from .linear import CHUNK_BYTES, LinearSums, linear_available
from .motion import (
    BandReference,
    band_noise_covariance,
    davis2014_band_signals,
    merge_regions,
    phase_gradient_sums,
    prepare_references,
)
from .pyramid import SteerablePyramid, choose_scales, edge_strips, wraps_smoothly
from .seams import STRIP_PX, WRAPPING_SEAM_GAIN, seam_gain_of_strips
from .rolling import (
    DriftingRowMotion,
    RowTiming,
    aligned_mean,
    estimate_line_delay,
    fill_gaps,
    place_on_grid,
    remove_row_offsets,
    remove_slow_drift,
    usable_band_hz,
)
from .gpu import TorchPhaseSums, device_description, resolve_device
from .texture import motion_noise_floor_px, suggest_roi, temporal_noise, texture_energy
from .vibration import CellMotion, RunningDFT, dominant_phasors, spectrum_peaks
from .sources import FrameSource, Meta, open_source

__all__ = [
    "recover", "Recovery", "resolve_fps", "vibration_map", "VibrationMap", "measure_motion", "MotionSeries",
    "inspect", "Inspection", "recover_rolling", "RollingRecovery", "calibrate_line_delay",
]

MAX_AUTO_SCALES = 5
S = TypeVar("S")


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
        0 to fps/2), measured from the bands' disagreement (with ``copies`` filled:
        from predicting each frame that kept blocks of its own from the others);
        NaN for ``"davis2014"``.
    device : str
        Where the frames were measured (see :mod:`visualmic.gpu`).
    region_grid : int
        Regions per side of the combination kept (1: the frame as a whole).
    region_choice : dict
        With ``regions="auto"``: the estimated SNR (dB) of the whole-frame and
        the regional combinations, from which ``region_grid`` was chosen.
    repeated_frames : int
        Frames that measured exactly as the one before: a codec copied them,
        keeping no motion (see :mod:`visualmic.codec`).
    chunks_measured_by : dict
        How many chunks of frames this process measured to first order (``"first_order"``,
        :mod:`visualmic.linear`) and by their phases (``"phases"``); empty where the phase path
        was the only one (a device, the 2014 recipe) or a cluster's workers measured them.
    dequantized : str
        MJPEG: ``"soft"`` when the frames' coefficients were taken at their means given their
        quantisation levels (:mod:`visualmic.dequantize`), else ``"decoded"``.
    edges : str
        ``"cut"`` when each frame's periodic component was analysed (the frame's edges taken
        as joining unrelated content), ``"wrap"`` when the frames were analysed as they are
        (see :attr:`visualmic.config.RecoverOptions.edges`).
    copies : str
        ``"filled"`` when the blocks a codec copied from earlier frames were set aside as missing
        and the motion measured from the others (see :attr:`visualmic.config.RecoverOptions.copies`),
        else ``"kept"``.
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
    device: str = "cpu"
    region_grid: int = 1
    region_choice: dict = field(default_factory=dict)
    repeated_frames: int = 0
    chunks_measured_by: dict = field(default_factory=dict)
    dequantized: str = "decoded"
    edges: str = "wrap"
    copies: str = "kept"

    @property
    def region_weights(self) -> np.ndarray:
        """Where the sound came from: each region's share of the combination, ``(regions, regions)``.

        The absolute weights of a region's channels times their measured noise
        (a weight's contribution to the signal, comparable across bands), summed
        and normalised to 1.
        """
        grid = self.region_grid
        share = np.abs(self.band_weights) * np.nan_to_num(self.band_noise_px, nan=1.0)
        share = share.reshape(-1, grid * grid).sum(axis=0).reshape(grid, grid)
        total = share.sum()
        return share / total if total > 0 else share

    @property
    def estimated_snr_db(self) -> float:
        """The recovered sound's SNR as estimated without the truth (NaN when unmeasured);
        see :func:`visualmic.combine.estimated_snr_db`."""
        return estimated_snr_db(self.displacement_px, self.noise_floor_px, rate_hz=self.fps,
                                band_hz=(self.highpass_hz, self.fps / 2))

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
            "regions": self.region_grid,
            "region_choice": self.region_choice,
            "orientations": self.options.orientations,
            "direction_deg": self.direction_deg,
            "noise_floor_px": None if not np.isfinite(self.noise_floor_px) else self.noise_floor_px,
            "estimated_snr_db": None if not np.isfinite(self.estimated_snr_db) else self.estimated_snr_db,
            "estimated_snr_is_upper_bound": bool(self.meta.lossy) and self.copies != "filled",
            "repeated_frames": self.repeated_frames,
            "chunks_measured_by": self.chunks_measured_by,
            "dequantized": self.dequantized,
            "edges": self.edges,
            "copies": self.copies,
            "wall_s": self.wall_s,
            "frames_per_s": self.frames / self.wall_s if self.wall_s > 0 else None,
            "device": self.device,
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


def _channels(pyramid: SteerablePyramid, regions: int) -> list[dict]:
    """Description of every combined channel (band, and region when the frame is split)."""
    out = []
    for b in pyramid.bands_info:
        for region in range(regions * regions):
            channel = {"level": b.level, "orientation": b.orientation, "shape": list(b.shape)}
            if regions > 1:
                channel["region"] = [region // regions, region % regions]  # row, column of the grid
            out.append(channel)
    return out


def resolve_fps(meta: Meta, fps: float | None, *, high_speed: bool = True) -> tuple[float, str, list[str], list[str]]:
    """Decide the capture rate: the user's, else the file's (saying so), else fail.

    With ``high_speed`` (the global-shutter method), a container's rate of 120
    fps or less is suspected of being a playback rate; a rolling-shutter
    recovery expects such rates.

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
    ...          frame_count_exact=False, fps=30.0, fps_origin="container")
    >>> resolve_fps(m, None)[1], resolve_fps(m, None)[3]
    ('container', ['30 fps looks like a playback rate, not a high-speed capture rate'])
    >>> resolve_fps(m, None, high_speed=False)[3]
    []
    >>> resolve_fps(m, 2200.0)
    (2200.0, 'user', [], [])
    """
    if fps is not None:
        return float(fps), "user", [], []
    if meta.fps is None:
        raise InputError(f"{meta.path}: the input stores no frame rate; pass the camera's capture rate with --fps")
    note = (f"capture rate {meta.fps:g} fps taken from the {meta.fps_origin}; "
            "pass --fps if the camera recorded at another rate")
    warnings = list(meta.rate_warnings)
    if high_speed and meta.fps_origin == "container" and meta.fps <= 120.0:
        warnings.append(f"{meta.fps:g} fps looks like a playback rate, not a high-speed capture rate")
    return meta.fps, meta.fps_origin, [note], warnings


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
        periodic=opts.method == "phase" and (opts.edges == "cut" or (opts.edges == "auto"
                                                                     and not wraps_smoothly(first_frame))),
    )


def recover(
    source: str | Path | np.ndarray | FrameSource,
    *,
    options: RecoverOptions | None = None,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
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
    cache_dir : str or Path, optional
        Keep every chunk's measurements there: a run interrupted (Ctrl-C, a
        crash) continues where it stopped when started again with the same
        file and options, and gives the same output as an uninterrupted run.
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
        clustered = scheduler is not None or workers is not None
        soft, soft_notes = _dequantize_softly(src, opts, clustered=clustered, cached=cache_dir is not None,
                                              progress=progress)
        if soft is not None and opts.dequantize == "auto":
            return _better_of_decoded_and_soft(src, opts, soft, soft_notes, progress=progress, started=started)
        reading, opts = (src, opts) if soft is None else soft

        def cache_for(options: RecoverOptions) -> ChunkCache | None:
            return None if cache_dir is None else _chunk_cache(cache_dir, source, options, src.meta)

        if clustered:
            with dask_client(scheduler=scheduler, workers=workers) as client:
                recovery = _recover_choosing_edges(reading, opts, progress=progress, started=started,
                                                   cache_for=cache_for, client=client)
        else:
            recovery = _recover_choosing_edges(reading, opts, progress=progress, started=started, cache_for=cache_for)
            recovery.dequantized = "decoded" if soft is None else "soft"
        recovery.notes += soft_notes
        return recovery
    finally:
        src.close()


def _better_of_decoded_and_soft(src: FrameSource, opts: RecoverOptions,
                                soft_reading: tuple[FrameSource, RecoverOptions], soft_notes: list[str], *,
                                progress: bool, started: float) -> Recovery:
    """``dequantize="auto"`` where soft values apply: both recoveries, the soft one (read and made as
    ``soft_reading`` says, with ``soft_notes``) kept only when its estimated SNR is at least the decoded
    one's plus ``SOFT_MARGIN_DB`` and at least ``SOFT_FLOOR_DB``."""
    decoded = _recover_choosing_edges(src, opts, progress=progress, started=started)
    soft = _recover_choosing_edges(*soft_reading, progress=progress, started=started)
    keep_soft = soft.estimated_snr_db >= max(decoded.estimated_snr_db + SOFT_MARGIN_DB, SOFT_FLOOR_DB)
    kept = soft if keep_soft else decoded
    soft.dequantized = "soft"
    kept.notes += (soft_notes if keep_soft else []) + [
        f"MJPEG: {'soft' if keep_soft else 'decoded'} frames kept (estimated SNR {soft.estimated_snr_db:.1f} dB "
        f"soft, {decoded.estimated_snr_db:.1f} dB decoded)"]
    kept.wall_s = time.perf_counter() - started
    return kept


# Frames read again, at most, to test whether a seamed video's scene wraps (see :mod:`visualmic.seams`),
# and the most memory their strips along the edges take.
SEAM_TEST_FRAMES = 1024
SEAM_TEST_BYTES = 64e6


def _recover_choosing_edges(src: FrameSource, opts: RecoverOptions, *, progress: bool, started: float,
                            cache_for: Callable[[RecoverOptions], ChunkCache | None] | None = None,
                            client: Any = None) -> Recovery:
    """:func:`_recover`, and with ``edges="auto"`` where it cut the frame's edges (the first frame does
    not wrap smoothly): if the seam where opposite edges meet moves with the recovered motion
    (:func:`visualmic.seams.seam_gain`, on up to ``SEAM_TEST_FRAMES`` frames read again), the scene
    wraps, as a texture shifted periodically by a simulation does, and it is recovered again with its
    edges wrapped: the moving seam then counts as the information it is (up to 5 dB). Each recovery
    keeps its measurements in ``cache_for(its options)`` and runs on ``client`` where given."""

    def recovered(options: RecoverOptions) -> Recovery:
        cache = None if cache_for is None else cache_for(options)
        return _recover(src, options, progress=progress, started=started, cache=cache, client=client)

    cut = recovered(opts)
    if opts.edges != "auto" or cut.edges != "cut" or cut.direction_deg is None:
        return cut
    roi = check_roi(opts.roi, width=src.meta.width, height=src.meta.height)
    strips = edge_strips(cut.frame_shape, STRIP_PX)
    count = int(min(cut.frames, SEAM_TEST_FRAMES, SEAM_TEST_BYTES / (4 * strips.sum())))
    total, kept = np.zeros(cut.frame_shape), []
    for _, frames in stream_frames(src, chunk_frames=default_chunk_frames(cut.frame_shape), roi=roi,
                                   downsample=opts.downsample, stop=count):
        total += frames.sum(axis=0, dtype=np.float64)
        kept.append(frames[:, strips])
    strip_values = np.concatenate(kept)
    gain = seam_gain_of_strips(total / len(strip_values), strip_values, cut.displacement_px[: len(strip_values)],
                               direction_deg=cut.direction_deg)
    if not gain > WRAPPING_SEAM_GAIN:
        how = (f"the seam where they meet moves {gain:.2f} times as the scene does" if np.isfinite(gain)
               else "the seam where they meet shows no gradient along the motion to tell")
        cut.notes.append(f"the frame's edges are taken as cut, as in a camera's view ({how}; --edges)")
        return cut
    wrap = recovered(replace(opts, edges="wrap"))
    wrap.notes.append(f"the scene continues across the frame's edges (the seam where they meet moves {gain:.2f} "
                      f"times as it does: a texture shifted periodically, as simulations shift it), so the frames "
                      f"are analysed as they are (estimated SNR {wrap.estimated_snr_db:.1f} dB, "
                      f"{cut.estimated_snr_db:.1f} dB with the edges cut; --edges)")
    wrap.wall_s = time.perf_counter() - started
    return wrap


def _chunk_cache(cache_dir: str | Path, source: object, opts: RecoverOptions, meta: Meta) -> ChunkCache:
    """The cache of this input's measurements under these options (not the audio stage's)."""
    if not isinstance(source, (str, Path)):
        raise InputError("a cache folder needs the input to be a file or folder (arrays are not kept)")
    path = Path(source).absolute()
    stat = path.stat()
    measuring = {k: v for k, v in opts.to_dict().items()
                 if k in ("fps", "roi", "downsample", "scales", "orientations", "method", "reference_frames",
                          "regions", "border_px", "chunk_frames", "device", "dequantize", "edges")}
    key = cache_key(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, frames=meta.frame_count,
                    version=__version__, **measuring)
    return ChunkCache(cache_dir, key)


def _dequantize_softly(src: FrameSource, opts: RecoverOptions, *, clustered: bool, cached: bool,
                       progress: bool) -> tuple[tuple[FrameSource, RecoverOptions] | None, list[str]]:
    """The softly dequantised frames and the options of a recovery from them (the frame combined as a
    whole: the regions' noise model does not describe them), or None where there is none to make: not
    asked for, not MJPEG, or the motion too large (the source's decision). ``"auto"`` does not try it
    with a cache folder or a cluster; ``"soft"`` says why it cannot. With the notes that say what was
    decided (those of soft frames belong to a recovery made from them)."""
    if opts.dequantize == "decoded" or opts.method != "phase":
        return None, []
    if not getattr(src, "can_dequantize_softly", False):
        kind = src.meta.codec or src.meta.format
        return None, ([f"--dequantize soft applies to MJPEG video; this input ({kind}) is used as read"]
                      if opts.dequantize == "soft" else [])
    size = _fft_pixel_frames(src.meta, (src.meta.height, src.meta.width))
    if opts.dequantize == "auto" and (math.inf if size is None else size) > AUTO_SOFT_MAX_PIXEL_FRAMES:
        return None, ["MJPEG: frames used as decoded; on a video this long, --dequantize soft must be asked "
                      "for (a first pass over the file, then about 0.1 us per pixel and frame)"]
    if clustered or (cached and opts.dequantize == "auto"):
        if opts.dequantize == "soft":
            raise InputError("--dequantize soft does not run on a Dask cluster yet (its workers read the file "
                             "themselves)")
        return None, ["MJPEG: frames used as decoded (soft values are not tried on a cluster yet)" if clustered
                      else "MJPEG: frames used as decoded (with --cache, soft values are not tried: "
                           "--dequantize soft asks for them)"]
    plan = src.dequantize_softly(progress=progress)
    if not plan.applied:
        return None, [plan.note()]
    whole = [] if opts.regions == 1 else ["softly dequantised frames are combined as a whole frame (--regions 1)"]
    return (src.softly_dequantized(), replace(opts, regions=1)), [plan.note()] + whole


# The kernels' set-up (0.22 s for 2 bands at 512², 1 s for 10 bands at 334x250) against the phase path's
# per-frame FFTs (1.9 ms at 512²): 120 frames to break even at 512², more with many bands.
FIRST_ORDER_MIN_FRAMES = 500
READ_AHEAD_BYTES = 256e6  # a video read ahead while the references are prepared (0.5 s of FFV1 at 512²), as float32
Measure = Callable[[list[np.ndarray]], np.ndarray]
MeasureFrames = Callable[[np.ndarray], np.ndarray]


def _stream_measurements(
    src: FrameSource, opts: RecoverOptions, roi: tuple[int, int, int, int], shape: tuple[int, int], progress: bool,
    prepare: Callable[[SteerablePyramid, list[np.ndarray], np.ndarray, np.ndarray],
                      tuple[S, Measure, MeasureFrames | None]],
    cache: ChunkCache | None = None, client: Any = None, device: str | None = None, chunk_frames: int | None = None,
) -> tuple[SteerablePyramid, S, Iterator[tuple[int, np.ndarray]]]:
    """Stream every frame through the pyramid and a measurement of its bands.

    The reference is the mean of the first ``opts.reference_frames`` frames'
    bands (the 2014 recipe: frame 0 alone), computed as the bands of their mean
    frame; ``prepare(pyramid, references, mean_frame, frame_spectrum)`` (that frame and
    its own rfft2, see :mod:`visualmic.drift`) returns what the caller keeps of it, the
    function measuring a chunk's bands, and optionally one measuring a chunk of frames on
    its own (the GPU backend: frames go to the device whole; :mod:`visualmic.linear`;
    None: the pyramid's bands, then the first). Returns the pyramid, that state, and
    ``(first_frame, measurement)`` of every chunk in order, computed lazily on all
    threads, in chunks of ``opts.chunk_frames``, else ``chunk_frames``, else the phase
    path's default (:func:`visualmic.engine.default_chunk_frames`). Without a cache or a
    cluster, one stream reads every frame once: the reference's come first, and while
    the references are prepared a video's stream reads ahead (``READ_AHEAD_BYTES``), so
    its decoding overlaps the set-up. With a
    ``cache``, chunks measured by an earlier, interrupted run are reused and the
    frames after them only are read; every new chunk is saved as soon as it is
    known. With a Dask ``client``, the frames are measured by the cluster's
    workers, each reading its own range of the file.
    """
    chunk = opts.chunk_frames or chunk_frames or default_chunk_frames(shape)
    # A decoder is slow enough to fall behind while the set-up holds the consumer; files and arrays are not.
    read_ahead = max(2, int(READ_AHEAD_BYTES // (4 * chunk * shape[0] * shape[1]))) if src.decodes_on_threads else 2

    def frames(start: int, stop: int | None, label: str, prefetch: int = 2):
        # Frames stay in their stored type until the pyramid's transform converts them (less memory traffic).
        return stream_frames(src, chunk_frames=chunk, roi=roi, downsample=opts.downsample, start=start, stop=stop,
                             progress=progress, description=label, stored=True, prefetch=prefetch)

    n_ref = 1 if opts.method == "davis2014" else opts.reference_frames
    one_stream = cache is None and client is None
    head: list[tuple[int, np.ndarray]] = []
    stream = frames(0, None, "recovering", prefetch=read_ahead) if one_stream else frames(0, n_ref, "reference")
    try:  # the stream's reader stops with an error here (it goes on reading ahead otherwise)
        for item in stream:
            head.append(item)
            if item[0] + item[1].shape[0] >= n_ref:
                break
        if not head:
            raise InputError(f"{src.meta.path}: no frame could be decoded")
        first_frames = np.concatenate([block for _, block in head])[:n_ref]
        if np.ptp(first_frames[0]) == 0:
            raise InputError(f"{src.meta.path}: the frames are uniform: there is no texture to measure motion from "
                             "(choose a textured region with --roi)")
        threads = measuring_threads(src, opts.threads)
        # Chunks run in ``threads`` parallel threads, so each of scipy's FFTs uses one.
        pyramid = _pyramid_for(shape, opts, first_frames[0], fft_workers=1)
        # The pyramid is linear: the reference (the first frames' mean bands and spectrum) is the
        # bands and spectrum of their mean frame, one transform instead of one per frame.
        mean_frame = first_frames.mean(axis=0, dtype=np.float64)[None].astype(np.float32)
        frame_spectrum = pyramid.frame_spectrum(mean_frame)
        reference_spectrum = pyramid.periodic_spectrum(frame_spectrum.copy(), mean_frame)
        references = [band[0] for band in pyramid.bands_of_spectrum(reference_spectrum)]
        state, measure, measure_frames = prepare(pyramid, references, mean_frame[0], frame_spectrum[0])
    except BaseException:
        stream.close()
        raise
    if not one_stream:
        stream.close()  # the reference's frames only
    if measure_frames is None:
        measure_frames = lambda chunk_frames: measure(pyramid.bands(chunk_frames))  # noqa: E731

    def measurements() -> Iterator[tuple[int, np.ndarray]]:
        done = cache.resume() if cache is not None else []
        yield from done
        position = done[-1][0] + done[-1][1].shape[0] if done else 0
        if client is not None:
            measured_ranges = _on_cluster(client, src, opts, roi, chunk, position, measure_frames)
        else:
            rest = itertools.chain(head, stream) if one_stream else frames(position, None, "recovering")
            measured_ranges = map_ordered(lambda item: (item[0], measure_frames(item[1])), rest,
                                          threads=1 if device else threads)
        for first, measured in measured_ranges:
            if cache is not None:
                cache.save(first, measured)
            yield first, measured

    return pyramid, state, measurements()


def _on_cluster(client: Any, src: FrameSource, opts: RecoverOptions, roi: tuple[int, int, int, int], chunk: int,
                start: int, measure_frames: MeasureFrames) -> Iterator[tuple[int, np.ndarray]]:
    """Measurements of frames ``start`` onwards by a Dask cluster's workers, in order, each chunk
    measured by ``measure_frames`` as in one process (drift following included)."""
    path = src.meta.path
    if not Path(path).exists():
        raise InputError("a cluster reads the input from its file: give a file path, not an array")
    total = src.meta.frame_count
    if total is None:
        raise InputError(f"{path}: the frame count is unknown, so the frames cannot be split between workers")
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    # About four tasks per worker, each a whole number of chunks: the chunks (the unit drift is
    # followed in) are then the single process's.
    span = chunk * max(1, -(-(total - start) // (4 * workers * chunk)))
    # The pyramid and the references go to every worker once, not inside every task.
    [measure_on_worker] = client.scatter([measure_frames], broadcast=True)
    tasks = [(a, client.submit(measure_range, path, roi=roi, downsample=opts.downsample, chunk_frames=chunk,
                               start=a, stop=b, measure_frames=measure_on_worker, pure=False))
             for a, b in frame_ranges(start, total, span)]
    for first, task in tasks:
        measured = task.result()
        if measured.shape[0]:
            yield first, measured


def _measure(
    src: FrameSource, opts: RecoverOptions, roi: tuple[int, int, int, int], shape: tuple[int, int], progress: bool,
    cache: ChunkCache | None = None, client: Any = None, device: str | None = None,
) -> tuple[SteerablePyramid, list[BandReference] | None, np.ndarray, dict[str, int]]:
    """The pyramid, the prepared references (None for the 2014 recipe), the per-frame
    measurements: ``(frames, channels, 2)`` normal-equation sums (channels: band x region),
    or ``(frames, bands)`` 2014 band signals, and how many chunks this process measured by
    each path (see :class:`Recovery`). ``device``: a torch device for the phase method's
    chunks (see :mod:`visualmic.gpu`), None for numpy."""
    counts = _ChunkCounts()
    first_order = device is None and _plans_first_order(src.meta, opts)

    def prepare(pyramid: SteerablePyramid, references: list[np.ndarray], mean_frame: np.ndarray,
                frame_spectrum: np.ndarray):
        if opts.method == "davis2014":
            return None, lambda bands: davis2014_band_signals(bands, references), None
        prepared = prepare_references(pyramid, references, border_px=opts.border_px,
                                      grid=opts.measurement_grid(shape))
        estimate_shift = ShiftEstimator(frame_spectrum, pyramid.shape)
        measure = lambda bands: phase_gradient_sums(bands, prepared)  # noqa: E731
        if device:
            return prepared, measure, TorchPhaseSums(pyramid, prepared, device, estimate_shift)
        linear = LinearSums.when_faster(pyramid, prepared, mean_frame) if first_order else None
        # A cluster's workers measure copies of the function: they could not count here.
        return prepared, measure, _drift_following(pyramid, prepared, estimate_shift, linear,
                                                   None if client else counts)

    # float32 halves the one array that grows with the video: the phase method's sums have noise far above
    # float32's steps (benchmarks/quality.py unchanged); the 2014 recipe's A²-weighted phases carry large
    # offsets and keep float64, so that the baseline stays the 2014 code's.
    dtype = np.float64 if opts.method == "davis2014" else np.float32
    # The chunks (measured lazily, inside stack_chunks) run on parallel threads, each FFT on one of them as
    # scipy's are (torch's would otherwise spread over every core from every thread, and beside a video's
    # decoder take 1.4x as long); a device's run one at a time, with the threads asked for. The first-order
    # path's matrix products likewise take one core each (OpenBLAS's own threads, beside the chunks' threads,
    # made a 512² recovery 1.4x slower).
    with limited_fft_threads(opts.threads if device else 1), threadpool_limits(None if device else 1, "blas"):
        # A device (see visualmic.gpu) takes large chunks; the CPU's first-order path too (its kernels are
        # read once a chunk), in whole pieces of the phase path's 4 MB (see _drift_following), so that chunks
        # it leaves to the phase path are measured in the phase path's own units.
        piece = default_chunk_frames(shape)
        chunk = (default_chunk_frames(shape, target_bytes=64e6, most=512) if device
                 else piece * max(1, default_chunk_frames(shape, target_bytes=CHUNK_BYTES) // piece) if first_order
                 else None)
        pyramid, prepared, chunks = _stream_measurements(src, opts, roi, shape, progress, prepare, cache, client,
                                                         device, chunk)
        measured = stack_chunks((measured for _, measured in chunks), expected_rows=src.meta.frame_count,
                                dtype=dtype)
        return pyramid, prepared, measured, counts.by_path()


class _ChunkCounts:
    """Chunks measured by each path (first order, phases), counted from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"first_order": 0, "phases": 0}

    def add(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def by_path(self) -> dict[str, int]:
        """The counts, or nothing where no chunk was counted (the first-order path was not on)."""
        return dict(self._counts) if any(self._counts.values()) else {}


def _drift_following(pyramid: SteerablePyramid, prepared: list[BandReference], estimate_shift: ShiftEstimator,
                     linear: LinearSums | None = None, counts: _ChunkCounts | None = None) -> MeasureFrames:
    """Measure a chunk of frames relative to where it has drifted (see :mod:`visualmic.drift`); with
    ``linear``, a chunk that moved little (drift included) is measured to first order (:mod:`visualmic.linear`),
    and ``counts`` counts the chunks of each path. The phase path measures a chunk in pieces of about
    4 MB (:func:`visualmic.engine.default_chunk_frames`), where its FFTs are fastest, each piece followed
    on its own."""
    fisher = np.concatenate([r.fisher for r in prepared])
    piece = default_chunk_frames(pyramid.shape)

    def by_phases(frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        # The shift from the frames' own spectrum: the periodic components' low frequencies, where the
        # shift is read, also hold the smooth components', which change as texture enters the view.
        spectrum = pyramid.frame_spectrum(frames)
        shift = estimate_shift(spectrum)
        spectrum = pyramid.periodic_spectrum(spectrum, frames)
        if shift is None:
            return phase_gradient_sums(pyramid.bands_of_spectrum(spectrum), prepared)
        moved_back = shift_spectrum(spectrum, shift, pyramid.shape)
        # A channel's displacement is -F^-1 S: adding the shift back subtracts F shift from its sums.
        return phase_gradient_sums(pyramid.bands_of_spectrum(moved_back), prepared) - fisher @ shift

    def measure(frames: np.ndarray) -> np.ndarray:
        if linear is not None:
            # No drift check first: a chunk that drifted enough for the phase path to follow it (0.1 px)
            # changed its bands' phases too much for the first order, and is left to the phase path.
            sums = linear(frames)
            if counts is not None:
                counts.add("phases" if sums is None else "first_order")
            if sums is not None:
                return sums
        return np.concatenate([by_phases(frames[k : k + piece]) for k in range(0, frames.shape[0], piece)])

    return measure


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


def _recover(src: FrameSource, opts: RecoverOptions, *, progress: bool, started: float,
             cache: ChunkCache | None = None, client: Any = None) -> Recovery:
    meta = src.meta
    fps, fps_origin, notes, warnings = resolve_fps(meta, opts.fps)
    warnings += meta.warnings
    if meta.frame_count_exact and meta.frame_count is not None and meta.frame_count < MIN_FRAMES:
        raise InputError(f"{meta.path}: {meta.frame_count} frames; at least {MIN_FRAMES} are needed")
    roi = check_roi(opts.roi, width=meta.width, height=meta.height)
    shape = prepared_shape(roi, opts.downsample)
    most_hz = math.inf if opts.method == "davis2014" else SPEECH_LOWEST_HZ  # the 2014 recipe keeps the paper's rule
    highpass_hz = default_highpass_hz(fps, most_hz=most_hz) if opts.highpass_hz is None else float(opts.highpass_hz)
    if highpass_hz >= fps / 2:
        raise InputError(f"high-pass cut-off {highpass_hz:g} Hz is not below the Nyquist frequency {fps / 2:g} Hz")

    with planned_work(_fft_pixel_frames(meta, shape, opts)):
        device = resolve_device(opts.device)
        if device is not None and (client is not None or opts.method != "phase"):
            if opts.device != "auto":
                notes.append(f"--device {opts.device} is not used " + ("by cluster workers (they measure on their CPUs)"
                             if client is not None else f"by --method {opts.method}"))
            device = None
        pyramid, prepared, measured, measured_by = _measure(src, opts, roi, shape, progress, cache, client, device)
        count = measured.shape[0]
        if count < MIN_FRAMES:
            raise InputError(f"{meta.path}: {count} frames decoded; at least {MIN_FRAMES} are needed")
        if not meta.frame_count_exact and meta.frame_count is not None and meta.frame_count != count:
            notes.append(f"the header claims {meta.frame_count} frames; {count} decoded, and those were used")
        if meta.duration_s and meta.fps and meta.duration_s - count / meta.fps > 2.0 / meta.fps:
            warnings.append(f"the file ends early: the container announces {meta.duration_s:.3f} s, "
                            f"{count / meta.fps:.3f} s decoded ({count} frames); truncated or damaged file?")

        direction: float | None = None
        grid, choice = 1, {}
        if prepared is not None:
            band_signals, direction, combo, displacement, grid, choice = _combine_channels(
                measured, pyramid, prepared, fps=fps, highpass_hz=highpass_hz, opts=opts, notes=notes)
        else:
            band_signals = measured.T
            combo = davis2014_combine(band_signals)
            displacement = highpass(combo.signal_px, fps=fps, cutoff_hz=highpass_hz, zero_phase=False)
        repeated = int(np.count_nonzero(repeated_frames(measured)))
        copies, noise_floor_px = "kept", combo.noise_floor_px
        if direction is not None and _measures_blocks(meta, opts):
            displacement, copies, copied_floor_px = _measured_by_fresh_blocks(
                src, opts, roi, displacement, direction_deg=direction, fps=fps, highpass_hz=highpass_hz,
                progress=progress, notes=notes)
            noise_floor_px = copied_floor_px if copies == "filled" else noise_floor_px
        warnings += _codec_warnings(meta, repeated, count, copies_filled=copies == "filled")

        sound, kept, denoise_notes = _denoise(displacement, fps=fps, opts=opts, noise_floor_px=noise_floor_px)
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
            bands=_channels(pyramid, grid),
            direction_deg=direction,
            noise_floor_px=noise_floor_px,
            frames=count,
            frame_shape=shape,
            meta=meta,
            options=opts,
            highpass_hz=highpass_hz,
            wall_s=time.perf_counter() - started,
            notes=notes + denoise_notes + rate_notes,
            warnings=warnings,
            kept_tones_hz=kept,
            device=device_description(device),
            region_grid=grid,
            region_choice=choice,
            repeated_frames=repeated,
            chunks_measured_by=measured_by,
            edges="cut" if pyramid.periodic else "wrap",
            copies=copies,
        )


# Frames averaged into the still frame against which blocks are measured when a codec's copies are set
# aside (:mod:`visualmic.intercoded`), and the most memory the per-block measurements may take (larger
# blocks beyond: a block of several macroblocks counts as copied when all of them are).
COPY_REFERENCE_FRAMES = 64
COPY_MEASUREMENT_BYTES = 512e6


def _measures_blocks(meta: Meta, opts: RecoverOptions) -> bool:
    """Whether ``copies`` asks for the block measurement: ``"fill"``, or ``"auto"`` on lossy video from a
    codec that predicts frames from others; the default method only."""
    if opts.method != "phase" or opts.copies == "keep":
        return False
    return opts.copies == "fill" or bool(meta.lossy and predicts_between_frames(meta.codec))


def _measured_by_fresh_blocks(src: FrameSource, opts: RecoverOptions, roi: tuple[int, int, int, int],
                              guide_px: np.ndarray, *, direction_deg: float, fps: float, highpass_hz: float,
                              progress: bool, notes: list[str]) -> tuple[np.ndarray, str, float]:
    """The displacement measured again from the blocks a codec did not copy, the frames it copied whole
    filled in (:func:`visualmic.intercoded.recover_copied_motion`, guided by ``guide_px``), ``"filled"``
    and its noise floor (the error predicting each observed frame from the others, taken as white); or
    ``guide_px``, ``"kept"`` and NaN where fewer than ``MIN_COPIED_SHARE`` of the textured blocks were
    copied (``copies="auto"``) or none, or too few frames kept a block of their own. The frames are read
    twice more: the first ``COPY_REFERENCE_FRAMES`` for the still frame, then all of them."""
    shape = prepared_shape(roi, opts.downsample)
    count = len(guide_px)
    block = max(1, BLOCK_PX // opts.downsample)
    while count * (shape[0] // block) * (shape[1] // block) * 4 > COPY_MEASUREMENT_BYTES:
        block *= 2
    # Where the codec's grid starts in the processed frame (rounded up: no block straddles a grid line
    # it can avoid).
    origin = (-(-((-roi[1]) % BLOCK_PX) // opts.downsample), -(-((-roi[0]) % BLOCK_PX) // opts.downsample))
    grid = block_grid(shape, origin=origin, block_px=block)
    if grid[2] * grid[3] == 0:
        notes.append(f"the frame is smaller than a codec block ({block} px): copied blocks are not set aside")
        return guide_px, "kept", math.nan
    chunk = default_chunk_frames(shape)
    total, averaged = np.zeros(shape), 0
    for _, frames in stream_frames(src, chunk_frames=chunk, roi=roi, downsample=opts.downsample,
                                   stop=min(count, COPY_REFERENCE_FRAMES)):
        total += frames.sum(axis=0, dtype=np.float64)
        averaged += len(frames)
    angle = np.radians(direction_deg)
    meter = BlockMeter(total / averaged, np.array([-np.sin(angle), np.cos(angle)]), grid=grid, block_px=block)
    displacement = np.zeros((count, grid[2] * grid[3]), np.float32)
    copied = np.zeros(displacement.shape, bool)
    before = np.zeros((0, *shape), np.float32)
    for first, frames in stream_frames(src, chunk_frames=chunk, roi=roi, downsample=opts.downsample, stop=count,
                                       progress=progress, description="blocks"):
        part = slice(first, first + len(frames))
        displacement[part], copied[part] = meter(frames, before, guide_px[part])
        before = np.concatenate([before, frames[-COPY_DEPTH:]])[-COPY_DEPTH:]  # not the whole chunk again
    information = meter.information
    share = float(copied.mean(axis=0) @ information / max(information.sum(), 1e-300))
    if share == 0 or (opts.copies == "auto" and share < MIN_COPIED_SHARE):
        notes.append(f"{100 * share:.1f} % of the textured blocks were copied from earlier frames: "
                     "measured as decoded (--copies)")
        return guide_px, "kept", math.nan
    highpassed = highpass(displacement.T, fps=fps, cutoff_hz=highpass_hz).T
    bipredicted = src.bipredicted_frames(count)
    filled = recover_copied_motion(BlockMeasurements(highpassed, copied, information), guide_px,
                                   bipredicted=bipredicted)
    if filled is None:
        notes.append(f"{100 * share:.0f} % of the textured blocks were copied from earlier frames by the codec, "
                     f"leaving fewer than {100 * MIN_OBSERVED_SHARE:.0f} % of the frames with a block of their own: "
                     "too few to fill the others from; measured as decoded (--copies)")
        return guide_px, "kept", math.nan
    factor = filled.bipredicted_noise_factor
    b_frames = ("" if bipredicted is None or not bipredicted.any() else
                f"; the B-frames ({100 * bipredicted.mean():.0f} %) weighted as "
                + ("the others" if factor == 1 else f"{factor:g} times noisier"))
    guided = ("" if not np.isfinite(filled.guide_noise_variance_px2) else
              "; the pyramid's recovery counted as a second observation of every frame")
    notes.append(f"{100 * share:.0f} % of the textured blocks were copied from earlier frames by the codec: they "
                 f"were set aside, the motion measured from the others in {block}-pixel blocks, and the "
                 f"{100 * (1 - filled.observed.mean()):.0f} % of frames without any filled from the sound's "
                 f"spectrum{b_frames}{guided} (--copies)")
    return highpass(filled.signal_px, fps=fps, cutoff_hz=highpass_hz), "filled", math.sqrt(filled.prediction_error_px2)


def _plans_first_order(meta: Meta, opts: RecoverOptions) -> bool:
    """Whether a recovery on the CPU will try the first-order path (:mod:`visualmic.linear`): the phase
    method, ``VISUALMIC_LINEAR`` not ``0``, and at least ``FIRST_ORDER_MIN_FRAMES`` frames (or an unknown
    count): building its kernels costs as much as the phase path's FFTs of a few hundred frames."""
    return (opts.method == "phase" and linear_available()
            and (meta.frame_count is None or meta.frame_count >= FIRST_ORDER_MIN_FRAMES))


def _fft_pixel_frames(meta: Meta, shape: tuple[int, int], opts: RecoverOptions | None = None) -> float | None:
    """Pixels times frames that a job will transform (None: the frame count is unknown), for the FFT
    library's choice (see :data:`visualmic.fftlib.SMALL_JOB_PIXEL_FRAMES`). A recovery planned on the
    CPU's first-order path (``opts``) transforms no frame, only its kernels: importing torch for MKL's
    FFTs (a second, 190 MB) would not pay, and would make the peak memory of long jobs differ from
    short ones'; its chunks that go to the phase path use scipy's FFTs then."""
    if opts is not None and opts.device in ("auto", "cpu") and _plans_first_order(meta, opts):
        return 0.0
    return None if meta.frame_count is None else float(meta.frame_count) * shape[0] * shape[1]


def _codec_warnings(meta: Meta, repeated: int, count: int, *, copies_filled: bool = False) -> list[str]:
    """What a lossy codec means for the sound and for its estimated SNR (``copies_filled``: the noise
    floor came from predicting the frames that kept blocks of their own, see ``copies``)."""
    warnings = []
    if repeated > 0.01 * count:
        warnings.append(f"{repeated} of {count} frames ({100 * repeated / count:.0f} %) are exact copies of the one "
                        "before: the codec kept no motion in them, and it moves the others in steps of a fraction "
                        "of a pixel (a quarter for H.264 and HEVC), so motion well under a quarter pixel is mostly "
                        "not in the file" + ("; most of the motion is lost, expect little of the sound"
                                             if repeated > count / 2 else ""))
    if meta.lossy and copies_filled:
        warnings.append("the estimated SNR is how well each frame that kept blocks of its own is predicted from "
                        "the others (the codec's errors included), a rough figure: on 15 H.264 scenes it was "
                        "1.6-5.0 dB under the truth at the default quality (CRF 23; 4.5 dB over it on a drifting "
                        "surface) and 3.8-9.4 dB over it at CRF 10-18, where the codec's errors carry over from "
                        "frame to frame")
    elif meta.lossy:
        warnings.append("the estimated SNR counts camera noise only: a codec's errors are common to neighbouring "
                        "bands and rows, whose disagreement measures the noise, so it cannot see them; on this "
                        "lossy input treat it as an upper bound")
    return warnings


def _combine_channels(
    measured: np.ndarray, pyramid: SteerablePyramid, prepared: list[BandReference], *, fps: float,
    highpass_hz: float, opts: RecoverOptions, notes: list[str],
) -> tuple[np.ndarray, float, Combination, np.ndarray, int, dict]:
    """Channel signals, direction, combination, its high-passed displacement, regions per side and
    (``regions="auto"``) the choice.

    Measured in regions, a band can also be combined as a whole (its regions'
    sums added up: exactly the whole band's measurement). ``"auto"`` combines
    both ways and keeps the regions only when their estimated SNR is higher by
    ``AUTO_MARGIN_DB`` and above ``AUTO_FLOOR_DB`` (below it, the regions' many
    gains fit noise and their estimate is optimistic): on a rigid surface the whole-frame combination is the
    better estimator (fewer gains to estimate), on surfaces whose parts move
    differently the regional one is, by up to tens of dB.
    """
    regions = prepared[0].regions  # per band: grid x grid
    grid = int(round(np.sqrt(regions)))
    fisher = np.concatenate([r.fisher for r in prepared])

    def combined(merge: bool):
        sums, info = merge_regions(measured, fisher, regions) if merge else (measured, fisher)
        motion = project_band_motion(sums, info, fps=fps, highpass_hz=highpass_hz, coherent=merge or regions == 1)
        noise_model = band_noise_covariance(pyramid, prepared, motion.unit_vector, merge_regions=merge)
        combo = combine_bands(motion.signals_px, noise_covariance=noise_model, fps=fps, highpass_hz=highpass_hz,
                              max_lag=opts.max_lag)
        return motion, combo, highpass(combo.signal_px, fps=fps, cutoff_hz=highpass_hz)

    def snr(result) -> float:
        return estimated_snr_db(result[2], result[1].noise_floor_px, rate_hz=fps, band_hz=(highpass_hz, fps / 2))

    if regions == 1 or opts.regions != "auto":
        motion, combo, displacement = combined(False)
        return motion.signals_px, motion.direction_deg, combo, displacement, grid, {}
    whole, regional = combined(True), combined(False)
    whole_db, regions_db = snr(whole), snr(regional)
    keep_regions = regions_db > max(whole_db + AUTO_MARGIN_DB, AUTO_FLOOR_DB)
    motion, combo, displacement = regional if keep_regions else whole
    choice = {"whole_frame_db": whole_db, "regions_db": regions_db, "grid": grid,
              "chosen": "regions" if keep_regions else "whole frame"}
    if keep_regions:
        notes.append(f"parts of the surface move differently: combined in {grid}x{grid} regions "
                     f"(estimated SNR {regions_db:.1f} dB against {whole_db:.1f} dB for the frame as a whole)")
    return motion.signals_px, motion.direction_deg, combo, displacement, grid if keep_regions else 1, choice


@dataclass
class VibrationMap:
    """Where and how the surface vibrates at chosen frequencies (see :func:`vibration_map`).

    Attributes
    ----------
    frequencies_hz : ndarray
        ``(F,)`` the frequencies mapped.
    phasors_px : ndarray
        ``(F, rows, cols)`` complex motion of every cell along ``direction_deg``:
        amplitude in pixels (peak), phase relative to the strongest cell.
    direction_deg : ndarray
        ``(F,)`` main direction of motion at each frequency (degrees counter-clockwise from x).
    information : ndarray
        ``(rows, cols)`` texture available in each cell (0: nothing to measure).
    cell_px : int
        Cell side in processed pixels (the region of interest after downsampling).
    frame : ndarray
        The first processed frame, for overlays.
    chosen_by : str
        ``"user"`` or ``"spectrum peaks"``.
    """

    frequencies_hz: np.ndarray
    phasors_px: np.ndarray
    direction_deg: np.ndarray
    information: np.ndarray
    cell_px: int
    frame: np.ndarray
    fps: float
    fps_origin: str
    frames: int
    roi: tuple[int, int, int, int]
    downsample: int
    meta: Meta
    chosen_by: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def amplitude_px(self) -> np.ndarray:
        """``(F, rows, cols)`` peak amplitude in pixels (NaN where a cell has no texture)."""
        amplitude = np.abs(self.phasors_px)
        return np.where(self.measured[None], amplitude, np.nan)

    @property
    def phase_rad(self) -> np.ndarray:
        """``(F, rows, cols)`` phase in radians relative to the strongest cell (NaN where unmeasured)."""
        return np.where(self.measured[None], np.angle(self.phasors_px), np.nan)

    @property
    def measured(self) -> np.ndarray:
        """``(rows, cols)`` cells with texture enough to measure (1 % of the median cell's information)."""
        positive = self.information[self.information > 0]
        floor = 0.01 * float(np.median(positive)) if positive.size else np.inf
        return self.information > floor

    def summary(self) -> dict[str, object]:
        """A JSON-ready description."""
        return {
            "visualmic_version": __version__,
            "input": self.meta.path,
            "frames": self.frames,
            "fps": self.fps,
            "fps_origin": self.fps_origin,
            "roi": list(self.roi),
            "downsample": self.downsample,
            "cell_px": self.cell_px,
            "grid": list(self.information.shape),
            "frequencies_hz": self.frequencies_hz.tolist(),
            "chosen_by": self.chosen_by,
            "direction_deg": self.direction_deg.tolist(),
            "max_amplitude_px": [float(np.nanmax(a)) if np.any(np.isfinite(a)) else None for a in self.amplitude_px],
            "notes": self.notes,
            "warnings": self.warnings,
        }


def vibration_map(
    source: str | Path | np.ndarray | FrameSource,
    frequencies_hz: list[float] | np.ndarray | None = None,
    *,
    cell_px: int = 8,
    peaks: int = 3,
    options: RecoverOptions | None = None,
    progress: bool = False,
    **overrides: object,
) -> VibrationMap:
    """Map the vibration: amplitude and phase of every cell of the frame at chosen frequencies.

    Streams the frames once (twice when the frequencies are found from the
    sound first), keeping only running Fourier sums per cell and frequency.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        As for :func:`recover`.
    frequencies_hz : sequence of float, optional
        Frequencies to map. Default: the ``peaks`` strongest peaks of the
        recovered sound's spectrum.
    cell_px : int
        Cell side in processed pixels (smaller: finer map, noisier cells).
    peaks : int
        How many spectrum peaks to map when no frequencies are given.
    options : RecoverOptions, optional
        ``fps``, ``roi``, ``downsample``, ``scales``, ``orientations``,
        ``reference_frames``... (keyword arguments override its fields).
    progress : bool
        Progress bars on stderr (only on a terminal).

    Returns
    -------
    VibrationMap

    Raises
    ------
    InputError
        As :func:`recover`, and frequencies outside 0 to fps/2 or cells larger than the frame.

    Examples
    --------
    >>> from visualmic.synth import make_scene
    >>> t = np.arange(1100) / 2200
    >>> scene = make_scene(np.sin(2 * np.pi * 300 * t), fps=2200, size=(64, 64), amplitude_px=0.05,
    ...                    mode="opposite")
    >>> m = vibration_map(np.concatenate(list(scene.frames())), [300.0], fps=2200, cell_px=16)
    >>> m.amplitude_px.shape
    (1, 4, 4)
    >>> bool(abs(abs(m.phase_rad[0, 2, 0] - m.phase_rad[0, 2, 3]) - np.pi) < 0.3)  # halves opposite
    True
    """
    opts = replace(options or RecoverOptions(), **overrides)  # type: ignore[arg-type]
    if opts.method != "phase":
        raise InputError("vibration maps use the phase method")
    src = open_source(source)
    try:
        meta = src.meta
        fps, fps_origin, notes, warnings = resolve_fps(meta, opts.fps)
        roi = check_roi(opts.roi, width=meta.width, height=meta.height)
        shape = prepared_shape(roi, opts.downsample)
        if not 1 <= cell_px <= min(shape):
            raise InputError(f"cells of {cell_px} px do not fit the processed frame of {shape[1]}x{shape[0]} pixels")
        chosen_by = "user"
        if frequencies_hz is None or len(frequencies_hz) == 0:
            # Regions: a mode whose parts move in opposite directions cancels in a global sum.
            sound = _recover(src, replace(opts, regions=2), progress=progress, started=time.perf_counter())
            frequencies_hz = spectrum_peaks(sound.displacement_px, fps=fps, count=peaks, lowest_hz=sound.highpass_hz)
            if len(frequencies_hz) == 0:
                raise InputError(f"{meta.path}: the recovered sound has no spectral peak to map; give --freq")
            chosen_by = "spectrum peaks"
            notes.append("mapped the strongest peaks of the recovered sound: "
                         + ", ".join(f"{f:.1f} Hz" for f in frequencies_hz))
        frequencies = np.asarray(frequencies_hz, dtype=float).reshape(-1)
        bad = frequencies[~((frequencies > 0) & (frequencies < fps / 2))]
        if bad.size:
            raise InputError(f"frequency {bad[0]:g} Hz is not between 0 and the Nyquist frequency {fps / 2:g} Hz")

        def prepare(pyramid: SteerablePyramid, references: list[np.ndarray], mean_frame: np.ndarray,
                    frame_spectrum: np.ndarray):
            cells = CellMotion(pyramid, references, cell_px=cell_px)
            return cells, cells.displacement, None

        with planned_work(_fft_pixel_frames(meta, shape)):
            _, cells, chunks = _stream_measurements(src, opts, roi, shape, progress, prepare)
            dft = RunningDFT(frequencies, fps=fps, shape=(*cells.grid, 2))
            for first, displacement in chunks:
                dft.add(displacement, first=first)
        if dft.count < MIN_FRAMES:
            raise InputError(f"{meta.path}: {dft.count} frames decoded; at least {MIN_FRAMES} are needed")
        first_frame = next(stream_frames(src, chunk_frames=1, roi=roi, downsample=opts.downsample, stop=1))[1][0]
        projected, directions = dominant_phasors(dft.phasors(), weights=cells.information)
        return VibrationMap(
            frequencies_hz=frequencies, phasors_px=projected, direction_deg=directions,
            information=cells.information, cell_px=cell_px, frame=first_frame, fps=fps, fps_origin=fps_origin,
            frames=dft.count, roi=roi, downsample=opts.downsample, meta=meta, chosen_by=chosen_by,
            notes=notes, warnings=warnings + meta.warnings,
        )
    finally:
        src.close()


@dataclass
class MotionSeries:
    """Displacement time series of regions of the frame (see :func:`measure_motion`).

    Attributes
    ----------
    displacement_px : ndarray
        ``(frames, regions, 2)`` displacement (y down the rows, x along them) in
        pixels of the input frame, relative to the mean of the first frames.
    rois : list of tuple
        ``(x, y, width, height)`` of every region.
    """

    displacement_px: np.ndarray
    rois: list[tuple[int, int, int, int]]
    fps: float
    fps_origin: str
    meta: Meta
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def time_s(self) -> np.ndarray:
        """Time of every frame from the first, seconds."""
        return np.arange(self.displacement_px.shape[0]) / self.fps


def measure_motion(
    source: str | Path | np.ndarray | FrameSource,
    rois: list[tuple[int, int, int, int]] | None = None,
    *,
    options: RecoverOptions | None = None,
    progress: bool = False,
    **overrides: object,
) -> MotionSeries:
    """Measure the 2-D displacement of regions of the frame, frame by frame.

    Each region is treated as a rigid surface: all bands of the pyramid solved
    together (the efficient estimate under white pixel noise). Nothing is
    filtered: slow motion and offsets stay in, as an engineer expects.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        As for :func:`recover`.
    rois : list of (x, y, width, height), optional
        Regions to measure [default: the whole frame].
    options : RecoverOptions, optional
        ``fps``, ``downsample``, ``scales``, ``reference_frames``...

    Returns
    -------
    MotionSeries

    Examples
    --------
    >>> from visualmic.synth import procedural_texture, moving_frames
    >>> motion = 0.2 * np.sin(np.arange(64) / 5)
    >>> frames = np.concatenate(list(moving_frames(procedural_texture((64, 64)), motion)))
    >>> series = measure_motion(frames, [(0, 0, 32, 64), (32, 0, 32, 64)], fps=1000)
    >>> series.displacement_px.shape
    (64, 2, 2)
    >>> bool(np.corrcoef(series.displacement_px[:, 0, 1], motion)[0, 1] > 0.999)
    True
    """
    opts = replace(options or RecoverOptions(), **overrides)  # type: ignore[arg-type]
    opts = replace(opts, method="phase", regions=1)
    src = open_source(source)
    try:
        meta = src.meta
        fps, fps_origin, notes, warnings = resolve_fps(meta, opts.fps)
        regions = [check_roi(roi, width=meta.width, height=meta.height) for roi in (rois or [None])]
        series = []
        for roi in regions:
            shape = prepared_shape(roi, opts.downsample)
            _, prepared, sums, _ = _measure(src, replace(opts, roi=roi), roi, shape, progress)
            fisher = np.concatenate([r.fisher for r in prepared])
            series.append(joint_displacement(sums, fisher) * opts.downsample)
        count = min(s.shape[0] for s in series)
        if count < MIN_FRAMES:
            raise InputError(f"{meta.path}: {count} frames decoded; at least {MIN_FRAMES} are needed")
        return MotionSeries(
            displacement_px=np.stack([s[:count] for s in series], axis=1), rois=regions, fps=fps,
            fps_origin=fps_origin, meta=meta, notes=notes, warnings=warnings + meta.warnings,
        )
    finally:
        src.close()


@dataclass
class Inspection:
    """What a user should know about a video before recovering sound from it (see :func:`inspect`).

    Attributes
    ----------
    meta : Meta
        Format, codec, size, bit depth, frame count, rate and where it came from.
    frame : ndarray
        The first frame (grey).
    texture_energy : ndarray
        Local gradient energy of the first frame.
    suggested_roi : tuple of int or None
        ``(x, y, width, height)`` around the textured part.
    noise_grey : float
        Camera noise, grey levels (std), from the first frames' differences.
    motion_floor_px : tuple of float
        Best per-frame motion noise along x and y for a rigid surface in the
        suggested region (Cramér-Rao bound), pixels.
    """

    meta: Meta
    frame: np.ndarray
    texture_energy: np.ndarray
    suggested_roi: tuple[int, int, int, int] | None
    noise_grey: float
    motion_floor_px: tuple[float, float]
    frames_examined: int
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """A JSON-ready description."""
        meta = self.meta
        return {
            "visualmic_version": __version__,
            "input": meta.path,
            "format": meta.format,
            "codec": meta.codec,
            "lossless": None if meta.lossy is None else not meta.lossy,
            "width": meta.width,
            "height": meta.height,
            "bit_depth": meta.bit_depth,
            "effective_bit_depth": meta.effective_bit_depth,
            "frame_count": meta.frame_count,
            "frame_count_exact": meta.frame_count_exact,
            "fps": meta.fps,
            "fps_origin": meta.fps_origin,
            "exposure_s": meta.exposure_s,
            "duration_s": None if not meta.fps or meta.frame_count is None else meta.frame_count / meta.fps,
            "noise_grey": self.noise_grey,
            "frames_examined": self.frames_examined,
            "suggested_roi": None if self.suggested_roi is None else list(self.suggested_roi),
            "motion_floor_px": {"x": self.motion_floor_px[0], "y": self.motion_floor_px[1]},
            "warnings": self.warnings,
        }


def inspect(source: str | Path | np.ndarray | FrameSource, *, frames: int = 32) -> Inspection:
    """Look at a video before recovering sound: format, rate, noise, texture, a region to use.

    Reads the first ``frames`` frames only.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> video = 100 + rng.normal(0, 2.0, (8, 48, 64))
    >>> video[:, 10:30, 20:50] += 50 * rng.random((20, 30))
    >>> info = inspect(video)
    >>> info.suggested_roi, round(info.noise_grey)
    ((13, 3, 44, 34), 2)
    """
    src = open_source(source)
    try:
        blocks = [block for _, block in src.chunks(chunk_frames=max(frames, 2), stop=max(frames, 2))]
    finally:
        src.close()
    if not blocks:
        raise InputError(f"{src.meta.path}: no frame could be decoded")
    first = np.concatenate(blocks)
    energy = texture_energy(first[0])
    roi = suggest_roi(energy)
    noise = temporal_noise(first) if first.shape[0] > 1 else float("nan")
    region = first[0] if roi is None else first[0, roi[1] : roi[1] + roi[3], roi[0] : roi[0] + roi[2]]
    warnings = list(src.meta.warnings) + list(src.meta.rate_warnings)
    if roi is None:
        warnings.append("the first frame has no texture: motion cannot be measured in it")
    if first.shape[0] < 2:
        warnings.append("a single frame: the noise cannot be measured")
    return Inspection(
        meta=src.meta, frame=first[0], texture_energy=energy, suggested_roi=roi, noise_grey=noise,
        motion_floor_px=motion_noise_floor_px(region, noise) if np.isfinite(noise) else (np.nan, np.nan),
        frames_examined=first.shape[0], warnings=warnings,
    )


@dataclass
class RollingRecovery:
    """What :func:`recover_rolling` found.

    Attributes
    ----------
    audio : ndarray
        float32 sound at ``rate_hz``, peak-normalised to 0.99.
    grid_signal : ndarray
        The displacement (pixels) on the uniform grid at ``grid_rate_hz``, gaps filled.
    observed : ndarray of bool
        Which grid samples were seen (False: filled in the frame delay).
    row_displacement_px : ndarray
        ``(frames, rows)`` horizontal displacement of every row, offsets removed
        (NaN: rows without horizontal texture).
    band_hz : tuple of float
        The band kept: from the high-pass to the exposure's and the grid's limit.
    noise_floor_px : float
        Noise of one row's displacement (std), from neighbouring rows' disagreement.
    repeated_frames : int
        Frames whose rows measured exactly as the frame before: a codec copied them
        (see :mod:`visualmic.codec`).
    """

    audio: np.ndarray
    rate_hz: int
    grid_signal: np.ndarray
    grid_rate_hz: float
    observed: np.ndarray
    row_displacement_px: np.ndarray
    band_hz: tuple[float, float]
    noise_floor_px: float
    timing: RowTiming
    fps_origin: str
    frames: int
    roi: tuple[int, int, int, int]
    meta: Meta
    wall_s: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repeated_frames: int = 0

    @property
    def observed_fraction(self) -> float:
        """Share of the time the rows saw (the rest was filled)."""
        return float(np.mean(self.observed))

    @property
    def estimated_snr_db(self) -> float:
        """SNR in the band, estimated without the truth from the rows' noise floor (white at the line rate)."""
        return estimated_snr_db(self.grid_signal[self.observed], self.noise_floor_px,
                                rate_hz=1.0 / abs(self.timing.line_delay_s), band_hz=self.band_hz)

    def summary(self) -> dict[str, object]:
        """A JSON-ready description of the run."""
        timing = self.timing
        return {
            "visualmic_version": __version__,
            "input": self.meta.path,
            "format": self.meta.format,
            "codec": self.meta.codec,
            "lossy": self.meta.lossy,
            "rolling_shutter": {
                "fps": timing.fps, "fps_origin": self.fps_origin, "line_delay_s": timing.line_delay_s,
                "line_rate_hz": 1.0 / timing.line_delay_s, "exposure_s": timing.exposure_s,
                "row_order": "bottom-up" if timing.bottom_up else "top-down", "first_row": timing.first_row,
                "frame_delay_s": 1.0 / timing.fps - self.meta.height * timing.line_delay_s,
            },
            "frames": self.frames,
            "roi": list(self.roi),
            "rows_used": int(np.sum(np.any(np.isfinite(self.row_displacement_px), axis=0))),
            "grid_rate_hz": self.grid_rate_hz,
            "observed_fraction": self.observed_fraction,
            "band_hz": list(self.band_hz),
            "rate_hz": self.rate_hz,
            "noise_floor_px": self.noise_floor_px,
            "estimated_snr_db": self.estimated_snr_db,
            "estimated_snr_is_upper_bound": bool(self.meta.lossy),
            "repeated_frames": self.repeated_frames,
            "duration_s": self.frames / timing.fps,
            "wall_s": self.wall_s,
            "notes": self.notes,
            "warnings": self.warnings,
        }


def recover_rolling(
    source: str | Path | np.ndarray | FrameSource,
    *,
    line_delay_s: float,
    fps: float | None = None,
    exposure_s: float = 0.0,
    roi: tuple[int, int, int, int] | None = None,
    bottom_up: bool = False,
    grid_rate_hz: float = 16000.0,
    highpass_hz: float = 80.0,
    ar_order: int = 32,
    reference_frames: int = 64,
    frame_offsets: bool = False,
    rate: int | str = 48000,
    progress: bool = False,
) -> RollingRecovery:
    """Recover sound above the frame rate from a rolling-shutter video.

    Every row is a sample at its own instant (see :mod:`visualmic.rolling`):
    rows' horizontal motion is measured against per-row references, offsets are
    removed, samples are placed at their capture times on a uniform grid, and
    the frame delay's gaps are filled by autoregressive interpolation.

    Parameters
    ----------
    source : str, Path, ndarray or FrameSource
        The video.
    line_delay_s : float
        Time between the starts of two rows (``visualmic calibrate`` measures it).
    fps : float, optional
        Frame rate [default: the file's].
    exposure_s : float
        Exposure of a row: it low-passes the motion, and the band is limited to
        its -3 dB point.
    roi : tuple of int, optional
        ``(x, y, width, height)``; row times stay those of the sensor's rows.
    bottom_up : bool
        The sensor reads rows from the bottom up.
    grid_rate_hz : float
        Rate of the uniform signal the rows are placed on.
    highpass_hz : float
        High-pass cut-off of the sound.
    ar_order : int
        Order of the autoregressive gap filler.
    reference_frames : int
        Frames averaged into the rows' references.
    frame_offsets : bool
        Also remove each frame's mean displacement (camera shake; it would
        leave lines at the frame rate's harmonics).
    rate : int or "native"
        Output rate (or the grid's).

    Returns
    -------
    RollingRecovery

    Raises
    ------
    InputError
        A line delay whose readout does not fit in the frame period, no
        horizontal texture, bad parameters.

    Examples
    --------
    >>> from visualmic.synth import RollingShutter, make_scene
    >>> t = np.arange(48000) / 48000
    >>> scene = make_scene(np.sin(2 * np.pi * 440 * t), fps=60, size=(200, 128), amplitude_px=0.1,
    ...                    rolling_shutter=RollingShutter(line_delay_s=60e-6), audio_rate_hz=48000)
    >>> rec = recover_rolling(np.concatenate(list(scene.frames())), fps=60, line_delay_s=60e-6)
    >>> spectrum = np.abs(np.fft.rfft(rec.audio)); peak_hz = np.argmax(spectrum) * rec.rate_hz / rec.audio.size
    >>> round(peak_hz), round(rec.observed_fraction, 2)
    (440, 0.72)
    """
    started = time.perf_counter()
    check_fps(fps)
    src = open_source(source)
    try:
        meta = src.meta
        capture_fps, fps_origin, notes, warnings = resolve_fps(meta, fps, high_speed=False)
        roi_checked = check_roi(roi, width=meta.width, height=meta.height)
        timing = RowTiming(fps=capture_fps, line_delay_s=float(line_delay_s), exposure_s=float(exposure_s),
                           first_row=roi_checked[1], bottom_up=bottom_up, sensor_rows=meta.height)
        try:
            timing.check(meta.height)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if not (grid_rate_hz > 0 and 0 <= highpass_hz < grid_rate_hz / 2 and ar_order >= 2):
            raise InputError("the grid rate must be positive, the high-pass below its Nyquist, the AR order >= 2")
        shape = (roi_checked[3], roi_checked[2])
        chunk = default_chunk_frames(shape)

        def frames(start: int, stop: int | None, label: str):
            return stream_frames(src, chunk_frames=chunk, roi=roi_checked, downsample=1, start=start, stop=stop,
                                 progress=progress, description=label)

        blocks = [block for _, block in frames(0, reference_frames, "reference")]
        if not blocks:
            raise InputError(f"{meta.path}: no frame could be decoded")
        motion = DriftingRowMotion(aligned_mean(np.concatenate(blocks)))
        usable = np.isfinite(motion.noise_gain)
        if not usable.any():
            raise InputError(f"{meta.path}: the rows have no horizontal texture: their horizontal motion cannot be "
                             "measured (choose a textured region with --roi)")
        typical = float(np.median(motion.noise_gain[usable]))
        usable &= motion.noise_gain < 20 * typical
        if usable.mean() < 0.5:
            warnings.append(f"only {usable.mean():.0%} of the rows have horizontal texture; the others are gaps")
        threads = measuring_threads(src)
        # One float per row and frame: the row samples are the sound itself (a WAV at the line rate).
        rows = stack_chunks(map_ordered(lambda item: motion.displacement(item[1]), frames(0, None, "rows"),
                                        threads=threads), dtype=np.float64,
                            expected_rows=meta.frame_count)
        if rows.shape[0] < 2:
            raise InputError(f"{meta.path}: {rows.shape[0]} frame decoded; a rolling-shutter recovery needs several")
        repeated = int(np.count_nonzero(repeated_frames(rows[:, usable])))
        warnings += _codec_warnings(meta, repeated, rows.shape[0])
        rows[:, ~usable] = np.nan
        rows = remove_row_offsets(rows, per_frame=frame_offsets)
        if not frame_offsets:  # a camera's slow creep out before the gaps are filled (far below the band)
            rows = remove_slow_drift(rows, fps=capture_fps, cutoff_hz=min(capture_fps / 12, max(highpass_hz, 1.0) / 4))
        neighbours = np.diff(rows, axis=1)
        noise_floor = float(np.sqrt(np.nanmedian(neighbours**2) / 2 / 0.4549))  # median of chi2(1) = 0.4549
        top = usable_band_hz(rate_hz=grid_rate_hz, line_delay_s=timing.line_delay_s, exposure_s=timing.exposure_s)
        if top <= highpass_hz:
            raise InputError(f"nothing is left to recover: the band tops out at {top:g} Hz (exposure, line rate) "
                             f"below the high-pass at {highpass_hz:g} Hz")
        if timing.exposure_s > 0:
            notes.append(f"the exposure of {timing.exposure_s * 1e3:g} ms averages the motion (a low-pass: -3 dB at "
                         f"{0.443 / timing.exposure_s:.0f} Hz, nothing left at {1 / timing.exposure_s:.0f} Hz); "
                         f"the sound is kept up to {top:.0f} Hz")
        times = timing.times_s(np.arange(rows.shape[0]), rows=rows.shape[1])
        duration = rows.shape[0] / capture_fps
        # Each frame's run is only anti-aliased for the grid: a low-pass at the band's top inside
        # 10-ms runs would ring at their ends, every frame (lines at the frame rate's harmonics).
        anti_alias = usable_band_hz(rate_hz=grid_rate_hz, line_delay_s=timing.line_delay_s, exposure_s=0.0)
        grid, observed = place_on_grid(rows, times, rate_hz=grid_rate_hz, cutoff_hz=anti_alias, duration_s=duration)
        sound = fill_gaps(grid, observed, order=ar_order)
        if highpass_hz > 0:
            sound = highpass(sound, fps=grid_rate_hz, cutoff_hz=highpass_hz)
        if top < anti_alias:
            sound = lowpass(sound, fps=grid_rate_hz, cutoff_hz=top)
        notes.append(f"rows saw {observed.mean():.0%} of the time; the frame delay's gaps "
                     f"({(1 / capture_fps - meta.height * timing.line_delay_s) * 1e3:.2f} ms per frame) were filled "
                     f"by order-{ar_order} autoregressive interpolation")
        if rate == "native":
            audio, rate_hz = normalize_peak(sound), int(round(grid_rate_hz))
        else:
            rate_hz = int(rate)
            audio = normalize_peak(resample(sound, rate_in_hz=grid_rate_hz, rate_out_hz=rate_hz))
        return RollingRecovery(
            audio=audio.astype(np.float32), rate_hz=rate_hz, grid_signal=sound, grid_rate_hz=float(grid_rate_hz),
            observed=observed, row_displacement_px=rows, band_hz=(float(highpass_hz), top),
            noise_floor_px=noise_floor, timing=timing, fps_origin=fps_origin, frames=rows.shape[0],
            roi=roi_checked, meta=meta, wall_s=time.perf_counter() - started, notes=notes,
            warnings=warnings + meta.warnings, repeated_frames=repeated,
        )
    finally:
        src.close()


def calibrate_line_delay(
    source: str | Path | np.ndarray | FrameSource, *, flicker_hz: float, fps: float | None = None,
    roi: tuple[int, int, int, int] | None = None, progress: bool = False,
) -> dict[str, object]:
    """Measure a rolling shutter's line delay from a video of a light flickering at ``flicker_hz``.

    Returns a dict with ``line_delay_s``, its ``uncertainty_s``, ``line_rate_hz``,
    ``row_order`` ("top-down" or "bottom-up", from the sign of the bands' drift),
    the flicker's ``contrast``, ``fps`` and the frames used.

    Examples
    --------
    >>> n, y = np.arange(120)[:, None, None], np.arange(300)[None, :, None]
    >>> video = 100 + 20 * np.cos(2 * np.pi * 100 * (n / 60 + y * 25e-6)) + np.zeros((1, 1, 16))
    >>> found = calibrate_line_delay(video, flicker_hz=100, fps=60)
    >>> round(found["line_delay_s"] * 1e6, 3), found["row_order"]
    (25.0, 'top-down')
    """
    if not (np.isfinite(flicker_hz) and flicker_hz > 0):
        raise InputError(f"the flicker frequency must be positive, got {flicker_hz:g} Hz")
    check_fps(fps)
    src = open_source(source)
    try:
        meta = src.meta
        capture_fps, fps_origin, notes, warnings = resolve_fps(meta, fps, high_speed=False)
        roi_checked = check_roi(roi, width=meta.width, height=meta.height)
        shape = (roi_checked[3], roi_checked[2])
        brightness = np.concatenate([
            block.mean(axis=2) for _, block in stream_frames(
                src, chunk_frames=default_chunk_frames(shape), roi=roi_checked, downsample=1,
                progress=progress, description="rows")
        ])
    finally:
        src.close()
    if brightness.shape[0] < MIN_FRAMES:
        raise InputError(f"{meta.path}: {brightness.shape[0]} frames; at least {MIN_FRAMES} are needed")
    try:
        delay, sigma, contrast = estimate_line_delay(brightness, fps=capture_fps, flicker_hz=flicker_hz)
    except ValueError as exc:
        raise InputError(f"{meta.path}: {exc}") from None
    if abs(delay) * meta.height >= 1.0 / capture_fps:
        warnings.append(f"the estimated readout ({abs(delay) * meta.height * 1e3:.3f} ms) is longer than the frame "
                        "period: is the flicker frequency right? (lamps on mains flicker at twice its frequency)")
    return {
        "visualmic_version": __version__, "input": meta.path, "fps": capture_fps, "fps_origin": fps_origin,
        "frames": int(brightness.shape[0]), "rows": int(brightness.shape[1]), "flicker_hz": float(flicker_hz),
        "line_delay_s": abs(delay), "uncertainty_s": sigma, "line_rate_hz": 1.0 / abs(delay) if delay else None,
        "row_order": "top-down" if delay > 0 else "bottom-up", "contrast": contrast,
        "readout_s": abs(delay) * meta.height, "notes": notes, "warnings": warnings + meta.warnings,
    }
