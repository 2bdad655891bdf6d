"""Vision Research Phantom ``.cine`` files.

Layout (all little-endian): a 44-byte file header (``"CI"``, image count,
offsets of the three parts below), a BITMAPINFOHEADER (frame size, bits per
pixel, packing), the camera SETUP block (frame rate at byte 768, exposure,
sensor bit depth) followed by tagged blocks (per-frame timestamps: type 1002),
and a table with every frame's file offset. Each frame is an annotation block
(its size in the first four bytes) and then the pixels: 8 or 16 bits with
rows padded to four bytes, or packed 10-bit codes of a companded 12-bit value
(:func:`visualmic.sources.packing.phantom_10bit_to_linear`). Rows are returned
in stored order, as FFmpeg and cine-handler return them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import Meta
from .packing import phantom_10bit_to_linear, unpack_10bit_msb
from .rawfile import RawFrameFile

__all__ = ["CineHeader", "parse_cine_header", "frame_times_from_tags", "open_cine"]

_FILE_HEADER = struct.Struct("<2sHHHiIiIIIIQ")
_BITMAP_HEADER = struct.Struct("<IiiHHIIiiII")
_SETUP_MIN_BYTES = 900
_PACKED_10BIT = 256
_PACKED_12BIT = 1024
_TIME_ONLY_BLOCK = 1002


@dataclass(frozen=True)
class CineHeader:
    """What a ``.cine`` file's headers say.

    Attributes
    ----------
    version : int
        File version (0: 32-bit frame offsets, 1: 64-bit).
    image_count : int
        Frames in the file.
    width, height : int
        Frame size in pixels (``height`` is the absolute value of biHeight).
    bit_count : int
        Bits per pixel in the BITMAPINFOHEADER (8, 16; 24 and 48 for colour).
    packing : int
        biCompression: 0 unpacked, 256 packed 10-bit, 1024 packed 12-bit.
    image_bytes : int
        Bytes of pixel data per frame.
    sensor_bits : int
        The sensor's bit depth (SETUP ``RealBPP``).
    fps : float
        The capture rate (SETUP ``FrameRate``).
    exposure_s : float or None
        Exposure of a frame.
    off_setup, off_image_offsets : int
        Where the SETUP block and the frame offset table start.
    setup_bytes : int
        Length of the SETUP block proper (tagged blocks follow it).
    """

    version: int
    image_count: int
    width: int
    height: int
    bit_count: int
    packing: int
    image_bytes: int
    sensor_bits: int
    fps: float
    exposure_s: float | None
    off_setup: int
    off_image_offsets: int
    setup_bytes: int


def parse_cine_header(data: bytes, *, source: str = "cine") -> CineHeader:
    """Parse the file header, bitmap header and SETUP block of a ``.cine`` file.

    Parameters
    ----------
    data : bytes
        The file's first bytes, up to the frame offset table at least.
    source : str
        Name for error messages.

    Raises
    ------
    InputError
        Not a cine file, truncated headers, or a layout this reader does not know.
    """
    if len(data) < _FILE_HEADER.size or data[:2] != b"CI":
        raise InputError(f"{source}: not a Phantom .cine file (it does not start with 'CI')")
    (_, header_size, compression, version, _, _, _, image_count,
     off_image_header, off_setup, off_image_offsets, _) = _FILE_HEADER.unpack_from(data)
    if version not in (0, 1):
        raise InputError(f"{source}: .cine version {version} is not known (0 and 1 are)")
    if compression == 1:
        raise InputError(f"{source}: JPEG-compressed .cine files are not supported")
    end_of_headers = max(off_image_header + _BITMAP_HEADER.size, off_setup + _SETUP_MIN_BYTES)
    if off_image_offsets < end_of_headers or len(data) < end_of_headers:
        raise InputError(f"{source}: the headers are truncated or their offsets are inconsistent")
    (_, width, height, _, bit_count, packing, image_bytes, *_) = _BITMAP_HEADER.unpack_from(data, off_image_header)
    height = abs(height)

    def setup_u32(offset: int) -> int:
        return struct.unpack_from("<I", data, off_setup + offset)[0]

    setup_bytes = struct.unpack_from("<H", data, off_setup + 142)[0]
    fps = float(setup_u32(768))
    shutter_us = setup_u32(772)
    shutter_ns = setup_u32(1568) if setup_bytes >= 1572 else 0
    exposure = shutter_ns * 1e-9 if shutter_ns else (shutter_us * 1e-6 if shutter_us else None)
    if setup_bytes >= 10408 and off_setup + 10408 <= len(data):
        precise = struct.unpack_from("<d", data, off_setup + 10400)[0]
        if np.isfinite(precise) and precise > 0:
            fps = precise
    if image_count <= 0:
        raise InputError(f"{source}: the header announces {image_count} frames")
    if width <= 0 or height <= 0:
        raise InputError(f"{source}: the header gives a frame size of {width}x{height}")
    return CineHeader(
        version=version, image_count=image_count, width=width, height=height, bit_count=bit_count,
        packing=packing, image_bytes=image_bytes, sensor_bits=setup_u32(896), fps=fps, exposure_s=exposure,
        off_setup=off_setup, off_image_offsets=off_image_offsets, setup_bytes=setup_bytes,
    )


def frame_times_from_tags(data: bytes, header: CineHeader) -> np.ndarray | None:
    """Frame capture times in seconds from the first frame, from the tagged blocks after SETUP.

    A "time only" block (type 1002) holds one TIME64 per frame: 32-bit
    fractions of a second, then 32-bit seconds. None when there is none.
    """
    position = header.off_setup + header.setup_bytes
    while position + 8 <= header.off_image_offsets:
        block_bytes, block_type = struct.unpack_from("<IH", data, position)
        if block_bytes < 8:
            break
        if block_type == _TIME_ONLY_BLOCK and block_bytes >= 8 + 8 * header.image_count:
            stamps = np.frombuffer(data, "<u4", 2 * header.image_count, position + 8).reshape(-1, 2)
            # Whole seconds and fractions apart: seconds since 1970 as float64 would lose 0.2 us.
            whole = stamps[:, 1].astype(np.int64) - int(stamps[0, 1])
            fraction = stamps[:, 0].astype(np.int64) - int(stamps[0, 0])
            return whole + fraction / 2.0**32
        position += block_bytes
    return None


def _timestamp_warnings(times: np.ndarray, fps: float) -> list[str]:
    """What the frames' timestamps say against the header's rate."""
    steps = np.diff(times)
    if steps.size == 0:
        return []
    typical = float(np.median(steps))
    warnings = []
    if typical > 0 and abs(1.0 / typical - fps) > 0.01 * fps:
        warnings.append(f"the frames' timestamps are {typical * 1e3:.4g} ms apart ({1 / typical:.6g} fps), "
                        f"the header says {fps:g} fps")
    odd = np.flatnonzero(np.abs(steps - typical) > 0.1 * typical)
    if odd.size:
        listed = ", ".join(f"frame {i + 1}: {steps[i]:+.4g} s" for i in odd[:3])
        warnings.append(f"{odd.size} of {steps.size} timestamp steps differ from the usual {typical * 1e3:.4g} ms "
                        f"({listed}{', ...' if odd.size > 3 else ''}); the frames are treated as evenly spaced")
    return warnings


def _decoder(header: CineHeader, source: str):
    shape = (header.height, header.width)
    if header.packing == _PACKED_10BIT:
        def linear(raw: np.ndarray) -> np.ndarray:
            return phantom_10bit_to_linear(unpack_10bit_msb(raw)).reshape(-1, *shape)

        return linear, 12, header.width * header.height * 10 // 8
    if header.packing == _PACKED_12BIT:
        raise InputError(f"{source}: packed 12-bit .cine frames are not supported yet; save the cine unpacked "
                         "(16-bit) in Phantom's software")
    if header.packing != 0:
        raise InputError(f"{source}: unknown pixel packing {header.packing} in the bitmap header")
    sample_bytes = {8: 1, 16: 2, 24: 1, 48: 2}.get(header.bit_count)
    if sample_bytes is None:
        raise InputError(f"{source}: {header.bit_count}-bit pixels are not supported (8, 16, 24, 48 are)")
    channels = 3 if header.bit_count in (24, 48) else 1
    row_bytes = header.width * channels * sample_bytes
    padded = -(-row_bytes // 4) * 4
    dtype = np.dtype(np.uint8 if sample_bytes == 1 else "<u2")

    def decode(raw: np.ndarray) -> np.ndarray:
        rows = raw.reshape(raw.shape[0], header.height, padded)[:, :, :row_bytes]
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(raw.shape[0], *shape, channels)
        return pixels[..., 0] if channels == 1 else pixels.mean(axis=-1, dtype=np.float32)

    bits = header.sensor_bits if sample_bytes == 2 and 8 < header.sensor_bits <= 16 else 8 * sample_bytes
    return decode, bits, header.height * padded


def open_cine(path: Path) -> RawFrameFile:
    """Open a Phantom ``.cine`` file for streaming.

    Raises
    ------
    InputError
        Not a cine file, an unsupported layout, or frames beyond the end of the
        file (truncated).
    """
    source = str(path)
    with open(path, "rb") as handle:
        start = handle.read(64 * 1024)
        header = parse_cine_header(start, source=source)
        table_bytes = (4 if header.version == 0 else 8) * header.image_count
        handle.seek(0)
        head = handle.read(header.off_image_offsets + table_bytes)
    if len(head) < header.off_image_offsets + table_bytes:
        raise InputError(f"{source}: truncated: the table of {header.image_count} frame offsets is incomplete")
    offsets = np.frombuffer(head, "<u4" if header.version == 0 else "<u8", header.image_count,
                            header.off_image_offsets).astype(np.int64)
    decode, bits, frame_bytes = _decoder(header, source)
    if header.image_bytes and header.image_bytes < frame_bytes:
        raise InputError(f"{source}: the bitmap header gives {header.image_bytes} bytes per frame, "
                         f"{header.width}x{header.height} at {header.bit_count} bits needs {frame_bytes}")

    size = path.stat().st_size
    mapped = np.memmap(path, np.uint8, mode="r")
    if offsets.min() < 0 or offsets.max() + 4 > size:
        raise InputError(f"{source}: truncated: frame offsets point beyond the end of the file ({size} bytes)")
    annotation = mapped[offsets[:, None] + np.arange(4)].copy().view("<u4")[:, 0].astype(np.int64)
    pixel_offsets = offsets + annotation
    complete = int(np.count_nonzero(pixel_offsets + frame_bytes <= size))
    del mapped
    if complete < header.image_count:
        raise InputError(f"{source}: truncated: {complete} of the {header.image_count} frames the header "
                         f"announces are complete in the file ({size} bytes)")

    times = frame_times_from_tags(head, header)
    warnings = []
    if header.packing == _PACKED_10BIT:
        warnings.append("packed 10-bit cine: companded codes were linearised to 12 bits with Vision Research's "
                        "table; the companding's coarse steps at bright levels add quantisation noise")
    if header.bit_count in (24, 48):
        warnings.append("colour cine: frames are read as the mean of the colour channels")
    meta = Meta(
        path=source,
        format="cine",
        width=header.width,
        height=header.height,
        bit_depth=bits,
        frame_count=header.image_count,
        frame_count_exact=True,
        fps=header.fps if header.fps > 0 else None,
        fps_origin="header" if header.fps > 0 else "none",
        codec="raw" if header.packing == 0 else "packed 10-bit",
        lossy=False,
        warnings=warnings,
        rate_warnings=_timestamp_warnings(times, header.fps) if times is not None and header.fps > 0 else [],
        frame_times_s=times,
        exposure_s=header.exposure_s,
    )
    return RawFrameFile(path, meta, frame_offsets=pixel_offsets, frame_bytes=frame_bytes, decode=decode)
