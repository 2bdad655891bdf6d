"""Files the tool writes, always atomically: a temporary file in the same folder, then a rename.

An interrupted run (Ctrl-C, a crash, a full disk) leaves either the old file
or nothing, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile

from .errors import InputError

__all__ = [
    "atomic_path", "write_wav", "write_json", "write_bytes", "write_npy", "write_video", "container_format",
    "VIDEO_CODECS",
]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Give a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: the output folder {folder} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get ordinary permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_wav(path: str | Path, audio: np.ndarray, *, rate_hz: int, subtype: str = "PCM_16") -> None:
    """Write mono audio in [-1, 1] to a WAV file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination.
    audio : ndarray
        Samples.
    rate_hz : int
        Sampling rate stored in the file.
    subtype : str
        ``"PCM_16"`` (plays everywhere) or ``"FLOAT"`` (32-bit float, exact).
    """
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), np.asarray(audio, dtype=np.float32), int(rate_hz), subtype=subtype, format="WAV")


def write_json(path: str | Path, data: object) -> None:
    """Write a JSON document, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes (a PNG, an HTML report...), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write an array as ``.npy``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


# Codec -> (PyAV encoder, pixel format for 8 bits, pixel format for 16 bits, containers).
VIDEO_CODECS = {
    "ffv1": ("ffv1", "gray", "gray16le", (".mkv", ".avi")),
    "png": ("png", "gray", "gray16be", (".mov",)),
    "mjpeg": ("mjpeg", "yuvj420p", None, (".mov", ".avi")),
    "h264": ("libx264", "yuv420p", None, (".mp4", ".mov", ".mkv")),
}


def container_format(path: str | Path) -> str:
    """FFmpeg's name of the container a file's suffix asks for.

    Examples
    --------
    >>> container_format("clip.mkv"), container_format("clip.MOV")
    ('matroska', 'mov')
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"mkv": "matroska"}.get(suffix, suffix)


def write_video(
    path: str | Path,
    chunks: Iterable[np.ndarray],
    *,
    fps: float,
    codec: str = "ffv1",
    quality: int | None = None,
    frame_count: int | None = None,
) -> int:
    """Encode chunks of grey frames (uint8 or uint16) into a video file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its suffix chooses the container (``.mkv``, ``.mov``, ``.mp4``, ``.avi``),
        or ``.npy`` for a raw array.
    chunks : iterable of ndarray
        ``(n, rows, cols)`` uint8 or uint16 frames.
    fps : float
        Frame rate stored in the container.
    codec : {"ffv1", "png", "mjpeg", "h264"}
        Lossless (``ffv1``, ``png``) or lossy (``mjpeg``, ``h264``).
    quality : int, optional
        Lossy codecs only: H.264 CRF (0-51, lower is better) or MJPEG qscale (2-31).
    frame_count : int, optional
        Number of frames; required for ``.npy`` (written through a memory map).

    Returns
    -------
    int
        Frames written.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _write_npy(path, chunks, frame_count)
    if codec not in VIDEO_CODECS:
        raise InputError(f"unknown codec {codec!r}: choose one of {', '.join(VIDEO_CODECS)}")
    encoder, pix8, pix16, containers = VIDEO_CODECS[codec]
    if path.suffix.lower() not in containers:
        raise InputError(f"{path}: codec {codec} goes in a {' or '.join(containers)} file")
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format=container_format(path))
        try:
            stream = None
            for frames in chunks:
                if stream is None:
                    deep = frames.dtype == np.uint16
                    if deep and pix16 is None:
                        raise InputError(f"codec {codec} stores 8-bit frames only")
                    stream = container.add_stream(encoder, rate=rate)
                    stream.height, stream.width = frames.shape[1:]
                    stream.pix_fmt = pix16 if deep else pix8
                    if quality is not None and codec == "h264":
                        stream.options = {"crf": str(quality)}
                    elif quality is not None and codec == "mjpeg":
                        # A fixed quantiser scale: FFmpeg's rate control held at it (the codec context's
                        # qscale flag alone gives every value the same, finest, file)
                        stream.options = {"qmin": str(quality), "qmax": str(quality)}
                    in_format = "gray16le" if deep else "gray"
                for frame in frames:
                    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=in_format)
                    for packet in stream.encode(picture):
                        container.mux(packet)
                    count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        finally:
            container.close()
    return count


def _write_npy(path: Path, chunks: Iterable[np.ndarray], frame_count: int | None) -> int:
    """Stream chunks into a ``.npy`` file through a memory map."""
    if frame_count is None:
        raise ValueError("writing a .npy file needs the frame count in advance")
    count = 0
    with atomic_path(path) as tmp:
        array = None
        for frames in chunks:
            if array is None:
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=frames.dtype,
                                                  shape=(frame_count, *frames.shape[1:]))
            array[count : count + frames.shape[0]] = frames
            count += frames.shape[0]
        if array is not None:
            array.flush()
            del array
    if count != frame_count:
        raise ValueError(f"expected {frame_count} frames, got {count}")
    return count
