"""Any video FFmpeg decodes, through PyAV: streamed, grey, 8 or 16 bits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from ..errors import InputError
from .base import FrameSource, Meta, stored_type

__all__ = ["VideoSource", "LOSSLESS_CODECS", "rate_storage_problem"]

LOSSLESS_CODECS = frozenset(
    "ffv1 png apng rawvideo huffyuv ffvhuff utvideo magicyuv qtrle tiff zlib gif bmp pam pgm ppm "
    "v210 v410 r210 r10k dpx ljpeg cllc lagarith msrle targa sgi".split()
)

# Pixel formats whose first plane is the luma (or grey) plane.
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

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        try:
            container = av.open(str(self._path))
        except av.error.FFmpegError as exc:
            raise InputError(f"{self._path}: cannot open the video ({exc.strerror or exc})") from None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        block: np.ndarray | None = None
        filled = index = 0
        first = max(start, 0)
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    break
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
