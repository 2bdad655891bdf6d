"""Any video FFmpeg decodes, through PyAV: streamed, grey, 8 or 16 bits."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from .. import dequantize
from ..errors import InputError
from .base import FrameSource, Meta, stored_type

__all__ = ["VideoSource", "LOSSLESS_CODECS", "rate_storage_problem"]

LOSSLESS_CODECS = frozenset(
    "ffv1 png apng rawvideo huffyuv ffvhuff utvideo magicyuv qtrle tiff zlib gif bmp pam pgm ppm "
    "v210 v410 r210 r10k dpx ljpeg cllc lagarith msrle targa sgi".split()
)

# Pixel formats whose first plane is the luma (or grey) plane.
B_PICTURE = 3  # FFmpeg's AV_PICTURE_TYPE_B
_LUMA_FIRST = ("gray", "yuv", "yuvj", "yuva", "nv12", "nv16", "nv21", "nv24", "p010", "p016", "y210", "ya")


def _grey(frame: av.VideoFrame) -> np.ndarray:
    """Grey plane of a decoded frame: luma for YUV as stored, a view of the frame's own buffer (valid
    until the decoder reuses it; :func:`stored_type` says what to keep it as), or the channel
    mean for RGB (float32)."""
    fmt = frame.format
    bits = fmt.components[0].bits
    if fmt.name.startswith(_LUMA_FIRST) and not fmt.name.startswith(("ya8", "ya16")):
        dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(">u2" if fmt.name.endswith("be") else "<u2")
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // dtype.itemsize)
        return rows[: frame.height, : frame.width]
    rgb = frame.to_ndarray(format="rgb48le" if bits > 8 else "rgb24")
    return rgb.mean(axis=-1, dtype=np.float32)


def _is_bipredicted(frame: av.VideoFrame) -> bool:
    """Whether the codec coded this frame as a B-frame (PyAV gives FFmpeg's picture type as an
    integer, 3 for B, or in older releases as an enumeration named "B")."""
    kind = frame.pict_type
    name = getattr(kind, "name", kind)
    return name == "B" if isinstance(name, str) else int(kind) == B_PICTURE


def rate_storage_problem(container_format: str, fps: float) -> str | None:
    """Why a container cannot store a frame rate exactly, or None if it can.

    Examples
    --------
    >>> rate_storage_problem("matroska", 2200)
    'Matroska stores timestamps in milliseconds and cannot represent 2200 fps exactly'
    >>> rate_storage_problem("mov", 2200) is None
    True
    """
    if container_format == "matroska" and abs(1000.0 / fps - round(1000.0 / fps)) > 1e-6:
        return f"Matroska stores timestamps in milliseconds and cannot represent {fps:g} fps exactly"
    if container_format == "avi" and fps > 600.0:
        return f"FFmpeg's AVI writer stores at most 600 fps, not {fps:g}"
    return None


def _rate_from_timestamps(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                          packets: int = 100) -> float | None:
    """Frame rate from the mean spacing of the first packets' timestamps (rounding averages out)."""
    stamps = []
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                stamps.append(packet.pts)
            if len(stamps) >= packets:
                break
    except av.error.FFmpegError:
        return None
    finally:
        container.seek(0)
    if len(stamps) < 3 or max(stamps) == min(stamps):
        return None
    return float((len(stamps) - 1) / ((max(stamps) - min(stamps)) * stream.time_base))


@dataclass
class SoftDequantization:
    """How a JPEG-coded video's frames are dequantised (see :mod:`visualmic.dequantize`).

    Attributes
    ----------
    groups : list of tuple
        ``(start, stop, quantiser)`` runs of frames that share one law; ``quantiser`` is None
        for runs left as decoded (too short, or no table found).
    noise_grey : float
        Camera noise estimated from the levels (NaN: no coefficient to estimate it from).
    change_to_noise : float
        The largest :func:`~visualmic.dequantize.change_to_noise_ratio` of the groups.
    shift_rms_px : float
        The largest rms shift of the groups (:func:`~visualmic.dequantize.explained_change`).
    applied : bool
        Whether the frames come out soft (the motion small enough against the noise).
    """

    groups: list[tuple[int, int, np.ndarray | None]]
    noise_grey: float
    change_to_noise: float
    shift_rms_px: float
    applied: bool

    def note(self) -> str:
        """One line for the user."""
        if self.applied:
            return (f"MJPEG: every DCT coefficient taken at its mean given its quantisation level (soft "
                    f"dequantisation; camera noise {self.noise_grey:.2f} grey levels, from the levels)")
        if not np.isfinite(self.noise_grey):
            return "MJPEG: the quantisation levels give no estimate of the noise; frames used as decoded"
        return (f"MJPEG: frames used as decoded; soft dequantisation would bend motion this large (change "
                f"{self.change_to_noise:.3g} x the noise power, limit {dequantize.MAX_CHANGE_TO_NOISE}; rms shift "
                f"{self.shift_rms_px:.3f} px, limit {dequantize.MAX_SHIFT_RMS_PX})")


def _frame_runs(tables: list[np.ndarray | None], group_frames: int) -> list[tuple[int, int, np.ndarray | None]]:
    """Runs of frames coded with the same table, cut into near-equal groups of ``group_frames`` to
    twice that; runs shorter than :data:`~visualmic.dequantize.MIN_FRAMES` (or without a table) are
    left as decoded."""
    runs, start = [], 0
    for index in range(1, len(tables) + 1):
        if index < len(tables) and tables[index] is not None and tables[start] is not None \
                and np.array_equal(tables[index], tables[start]):
            continue
        length, table = index - start, tables[start]
        if table is None or length < dequantize.MIN_FRAMES:
            runs.append((start, index, None))
        else:
            edges = np.linspace(start, index, max(1, length // group_frames) + 1).astype(int)
            runs += [(int(a), int(b), table) for a, b in zip(edges[:-1], edges[1:])]
        start = index
    return runs


class VideoSource(FrameSource):
    """Frames of the first video stream of a file, decoded one chunk at a time.

    The frame count in :attr:`meta` is the container's claim; the frames that
    decode are what counts (see :meth:`chunks`).

    Examples
    --------
    >>> src = VideoSource(Path("clip.mkv"))  # doctest: +SKIP
    >>> src.meta.codec, src.meta.lossy, src.meta.fps  # doctest: +SKIP
    ('ffv1', False, 2200.0)
    """

    decodes_on_threads = True  # FFmpeg's frame and slice threads

    def __init__(self, path: Path) -> None:
        self._path = path
        self._soft: SoftDequantization | None = None
        self._bipredicted = bytearray()  # per frame, as decoded: 1 for a B-frame
        try:
            container = av.open(str(path))
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: not a video FFmpeg can read ({exc.strerror or exc})") from None
        try:
            if not container.streams.video:
                raise InputError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if not ctx.width or not ctx.height:
                raise InputError(f"{path}: the video stream has no frame size (corrupt header?)")
            rate, origin = stream.average_rate, "container"
            if not rate:  # e.g. NUT stores none, and its base rate is the time base
                rate, origin = _rate_from_timestamps(container, stream), "timestamps"
            if not rate:
                rate, origin = stream.guessed_rate or stream.base_rate, "container"
            codec = ctx.name
            pix = ctx.format
            bits = pix.components[0].bits if pix is not None else 8
            self.meta = Meta(
                path=str(path),
                format=container.format.name.split(",")[0],
                width=int(ctx.width),
                height=int(ctx.height),
                bit_depth=int(bits),
                frame_count=int(stream.frames) or None,
                frame_count_exact=False,
                fps=float(rate) if rate else None,
                fps_origin=origin if rate else "none",
                codec=codec,
                lossy=codec not in LOSSLESS_CODECS,
                duration_s=container.duration / 1e6 if container.duration else None,
            )
        finally:
            container.close()
        self._note_container_quirks()

    def _note_container_quirks(self) -> None:
        meta = self.meta
        if meta.lossy:
            meta.warnings.append(
                f"the video is compressed with {meta.codec}, a lossy codec: it quantises away part of "
                "the sub-pixel motion; record raw or lossless (FFV1, PNG) footage where possible"
            )
        if meta.fps is None:
            return
        problem = rate_storage_problem(meta.format, meta.fps)
        if problem:
            meta.rate_warnings.append(problem)
        if meta.format == "avi" and meta.fps >= 599.0:
            meta.rate_warnings.append("FFmpeg's AVI writer stores at most 600 fps, so this rate may be a cap")

    @property
    def can_dequantize_softly(self) -> bool:
        """Whether :meth:`dequantize_softly` applies: JPEG-coded frames (MJPEG)."""
        return self.meta.codec == "mjpeg"

    def dequantize_softly(self, *, progress: bool = False) -> SoftDequantization:
        """Decide, once, whether this MJPEG video's frames come out softly dequantised, and how
        (a first pass over the file, with a progress bar on a terminal if asked: the noise from the
        levels of up to three groups, the motion from every group). The frames themselves come from
        :meth:`softly_dequantized`; this source's own reads stay as decoded."""
        if not self.can_dequantize_softly:
            raise ValueError(f"soft dequantisation needs JPEG-coded frames, not {self.meta.codec}")
        if self._soft is None:
            self._soft = self._plan_soft_dequantization(progress)
        return self._soft

    def softly_dequantized(self, *, progress: bool = False) -> FrameSource:
        """This video's frames as :meth:`dequantize_softly` decided: softly dequantised where the
        decision applies them, else as decoded (this source itself). It reads through this source,
        which stays open and owns the file.

        Examples
        --------
        >>> src = VideoSource(Path("clip.mov"))  # doctest: +SKIP
        >>> soft = src.softly_dequantized()  # doctest: +SKIP
        >>> first, frames = next(soft.chunks(chunk_frames=256))  # doctest: +SKIP
        """
        plan = self.dequantize_softly(progress=progress)
        return _SoftlyDequantizedVideo(self, plan) if plan.applied else self

    @property
    def _whole_blocks(self) -> tuple[int, int]:
        """Rows and columns of the frame's whole 8 x 8 JPEG blocks (those the soft values replace)."""
        block = dequantize.BLOCK
        return self.meta.height // block * block, self.meta.width // block * block

    def _plan_soft_dequantization(self, progress: bool) -> SoftDequantization:
        height, width = self._whole_blocks
        group_frames = int(np.clip(dequantize.GROUP_BYTES / (4 * max(height * width, 1)),
                                   dequantize.MIN_FRAMES, dequantize.GROUP_FRAMES))
        tables = [table for table, _ in self._packets_and_frames(frames=False)]
        groups = _frame_runs(tables, group_frames)
        coded = [g[0] for g in groups if g[2] is not None]  # first frames of the groups with a law
        sampled = {coded[0], coded[len(coded) // 2], coded[-1]} if coded else set()  # for the noise
        noises, powers = [], []
        bar = tqdm(total=groups[-1][1] if groups else 0, unit="frame", desc="MJPEG levels", file=sys.stderr,
                   disable=not (progress and sys.stderr.isatty()), leave=False)
        for (first, last, table), frames in self._groups(groups, slice(0, height), slice(0, width)):
            bar.update(last - first)
            if table is None:
                continue
            powers.append(dequantize.explained_change(frames))
            if first in sampled:
                noises.append(dequantize.estimate_level_noise(dequantize.block_levels(frames, table), table))
        bar.close()
        finite = [n for n in noises if np.isfinite(n)]
        noise = min(finite) if finite else float("nan")  # motion only ever adds spread
        ratio = max((dequantize.change_to_noise_ratio(p, noise) for p, _ in powers), default=float("inf")) \
            if finite else float("inf")
        shift = max((s for _, s in powers), default=float("inf"))
        applied = ratio < dequantize.MAX_CHANGE_TO_NOISE and shift < dequantize.MAX_SHIFT_RMS_PX
        return SoftDequantization(groups, noise, ratio, shift, bool(applied))

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        """The file opened for decoding, its video stream on FFmpeg's threads."""
        try:
            container = av.open(str(self._path))
        except av.error.FFmpegError as exc:
            raise InputError(f"{self._path}: cannot open the video ({exc.strerror or exc})") from None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _packets_and_frames(self, *, frames: bool = True) -> Iterator[tuple[np.ndarray | None, np.ndarray | None]]:
        """Every frame's luma quantisation table and (with ``frames``) its grey plane, in order (an
        intra-only codec decodes its packets in order, so the n-th frame is the n-th packet's)."""
        container, stream = self._open()
        tables: list[np.ndarray | None] = []
        index = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    tables.append(dequantize.jpeg_luma_quantiser(bytes(packet)))
                    if not frames:
                        yield tables[-1], None
                        continue
                if frames:
                    for frame in packet.decode():
                        yield (tables[index] if index < len(tables) else None), _grey(frame)
                        index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{self._path}: corrupt video data after frame {index} ({exc.strerror or exc})") from None
        finally:
            container.close()

    def _groups(self, groups: list[tuple[int, int, np.ndarray | None]], rows: slice, cols: slice,
                soft: SoftDequantization | None = None, from_frame: int = 0,
                ) -> Iterator[tuple[tuple[int, int, np.ndarray | None], np.ndarray]]:
        """The frames of each group that ends after ``from_frame``, as float32, cropped; dequantised
        softly with ``soft`` where it applies (the group before the first one yielded is fitted too,
        for its law to pass smoothly to the next)."""
        height, width = self._whole_blocks
        softly = soft is not None and soft.applied
        wanted = next((i for i, g in enumerate(groups) if g[1] > from_frame), len(groups))
        frames = iter(self._packets_and_frames())
        law, law_table = None, None  # the previous group's law, and its table
        for index, group in enumerate(groups):
            first, last, table = group
            if index < wanted - (1 if softly else 0):
                if any(next(frames, None) is None for _ in range(last - first)):
                    return  # the decoder gave fewer frames than the file has packets (damaged data)
                continue
            block = np.empty((last - first, self.meta.height, self.meta.width), dtype=np.float32)
            for i in range(last - first):
                item = next(frames, None)
                if item is None:
                    block, table = block[:i], (table if i >= dequantize.MIN_FRAMES else None)
                    break
                block[i] = item[1]
            if softly and table is not None:
                previous = law if law_table is not None and np.array_equal(law_table, table) else None
                block[:, :height, :width], law = dequantize.soft_dequantize(
                    block[:, :height, :width], table, noise_grey=soft.noise_grey, previous=previous)
                law_table = table
            else:
                law, law_table = None, None
            if index >= wanted and len(block):
                yield (first, first + len(block), table), block[:, rows, cols]
            if len(block) < last - first:
                return

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        container, stream = self._open()
        block: np.ndarray | None = None
        filled = index = 0
        first = max(start, 0)
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    break
                if index == len(self._bipredicted):
                    self._bipredicted.append(_is_bipredicted(frame))
                if index >= first:
                    grey = _grey(frame)[rows, cols]
                    if block is None:  # each frame is copied once, from the decoder's buffer into its chunk
                        block = np.empty((chunk_frames, *grey.shape), dtype=stored_type(grey.dtype))
                    block[filled] = grey
                    filled += 1
                    if filled == chunk_frames:
                        yield first, block
                        first, block, filled = first + filled, None, 0
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{self._path}: corrupt video data after frame {index} ({exc.strerror or exc})") from None
        finally:
            container.close()
        if filled:
            yield first, block[:filled]

    def bipredicted_frames(self, count: int) -> np.ndarray | None:
        """See :meth:`FrameSource.bipredicted_frames` (known once the frames have been read in order)."""
        if len(self._bipredicted) < count:
            return None
        return np.frombuffer(bytes(self._bipredicted[:count]), dtype=np.uint8).astype(bool)

    def _soft_chunks(self, soft: SoftDequantization, chunk_frames: int, start: int, stop: int | None,
                     rows: slice, cols: slice) -> Iterator[tuple[int, np.ndarray]]:
        """Chunks of softly dequantised frames: whole groups are dequantised, then cut into chunks."""
        start = max(start, 0)
        end = soft.groups[-1][1] if stop is None else min(stop, soft.groups[-1][1])
        groups = [g for g in soft.groups if g[0] < end]
        pending: list[np.ndarray] = []
        held, first = 0, start
        for (group_first, group_last, _), frames in self._groups(groups, rows, cols, soft, from_frame=start):
            pending.append(frames[max(start - group_first, 0):min(end, group_last) - group_first])
            held += pending[-1].shape[0]
            while held >= chunk_frames:
                joined = np.concatenate(pending)
                yield first, joined[:chunk_frames]
                first, held = first + chunk_frames, joined.shape[0] - chunk_frames
                pending = [joined[chunk_frames:]]
        if held:
            yield first, np.concatenate(pending)


class _SoftlyDequantizedVideo(FrameSource):
    """A :class:`VideoSource`'s frames softly dequantised under a plan (see
    :meth:`VideoSource.softly_dequantized`); the video stays the owner of the file."""

    decodes_on_threads = True

    def __init__(self, video: VideoSource, plan: SoftDequantization) -> None:
        self._video, self._plan = video, plan
        self.meta = video.meta

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        return self._video._soft_chunks(self._plan, chunk_frames, start, stop, rows, cols)
