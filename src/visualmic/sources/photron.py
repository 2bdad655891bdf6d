"""Photron high-speed camera files: a ``.cih`` (text) or ``.cihx`` (XML) header and ``.mraw`` data.

The ``.mraw`` file is the frames one after another, without padding: 8-bit
bytes, packed 12-bit (two pixels in three bytes, see
:func:`visualmic.sources.packing.unpack_12bit_msb`) or little-endian 16-bit.
The capture interval is ``save step / record rate``: Photron's viewer can save
every n-th recorded frame, and the header's record rate is then not the rate of
the saved frames.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import Meta
from .packing import unpack_12bit_msb
from .rawfile import RawFrameFile

__all__ = ["PhotronHeader", "parse_cih", "parse_cihx", "open_photron", "PHOTRON_SUFFIXES"]

PHOTRON_SUFFIXES = (".cih", ".cihx", ".mraw")


@dataclass(frozen=True)
class PhotronHeader:
    """What a Photron header says about its ``.mraw`` frames.

    Attributes
    ----------
    width, height : int
        Frame size in pixels.
    frame_count : int
        Frames saved in the ``.mraw``.
    bit_depth : int
        Bits per stored pixel: 8, 12 (packed) or 16.
    effective_bit_depth : int or None
        Bits the sensor filled, and ``effective_side`` ("lower"/"higher") where they sit.
    record_rate_hz : float
        The camera's recording rate.
    save_step : int
        Every ``save_step``-th recorded frame was saved.
    colour : str
        The header's colour type ("mono", "raw", "color"...).
    file_format : str
        The data format ("mraw"; others are not frames in one file).
    exposure_s : float or None
        Exposure (shutter) time.
    camera : str
        Camera model.
    recorded_frames : int or None
        Frames the camera recorded, of which these were saved.
    """

    width: int
    height: int
    frame_count: int
    bit_depth: int
    record_rate_hz: float
    save_step: int = 1
    effective_bit_depth: int | None = None
    effective_side: str = "lower"
    colour: str = "mono"
    file_format: str = "mraw"
    exposure_s: float | None = None
    camera: str = ""
    recorded_frames: int | None = None

    @property
    def fps(self) -> float:
        """Rate of the saved frames: record rate over save step."""
        return self.record_rate_hz / self.save_step

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame in the ``.mraw``."""
        return self.width * self.height * self.bit_depth // 8


def _number(source: str, key: str, text: str | None, kind: type = float) -> float:
    if text is None or not text.strip():
        raise InputError(f"{source}: the header has no {key!r}")
    try:
        value = kind(text.strip())
    except ValueError:
        raise InputError(f"{source}: the header's {key!r} is {text.strip()!r}, not a number") from None
    return value


def _exposure_from_text(text: str | None) -> float | None:
    """``"1/15371"`` or ``"0.0001"`` seconds; None when absent or unreadable."""
    if not text:
        return None
    match = re.fullmatch(r"\s*1\s*/\s*([0-9.]+)\s*", text)
    try:
        value = 1.0 / float(match.group(1)) if match else float(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _optional_int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _checked(header: PhotronHeader, source: str) -> PhotronHeader:
    if header.width <= 0 or header.height <= 0:
        raise InputError(f"{source}: the header gives a frame size of {header.width}x{header.height}")
    if header.frame_count <= 0:
        raise InputError(f"{source}: the header announces {header.frame_count} frames")
    if header.bit_depth not in (8, 12, 16):
        raise InputError(f"{source}: {header.bit_depth}-bit frames are not supported (8, 12 packed and 16 are)")
    if header.bit_depth == 12 and (header.width * header.height) % 2:
        raise InputError(f"{source}: packed 12-bit frames of {header.width}x{header.height} (an odd pixel count)")
    if not (np.isfinite(header.record_rate_hz) and header.record_rate_hz > 0):
        raise InputError(f"{source}: the header's record rate {header.record_rate_hz:g} is not a frame rate")
    if header.save_step < 1:
        raise InputError(f"{source}: the header's save step is {header.save_step}")
    if header.file_format.lower() != "mraw":
        raise InputError(f"{source}: images saved as {header.file_format!r}; only MRAW files are read "
                         "(a folder of TIFF or PNG images can be given directly)")
    return header


def parse_cih(text: str, *, source: str = "header") -> PhotronHeader:
    """Parse a text ``.cih`` header (``Key : Value`` lines).

    Parameters
    ----------
    text : str
        The file's text.
    source : str
        Name for error messages.

    Raises
    ------
    InputError
        A required key is missing or not a number, or the values are impossible.

    Examples
    --------
    >>> h = parse_cih("Record Rate(fps) : 15000\\nTotal Frame : 75\\nSave Step : 100\\n"
    ...               "Image Width : 640\\nImage Height : 40\\nColor Bit : 8\\nFile Format : MRaw\\n")
    >>> h.fps, h.frame_count, h.frame_bytes
    (150.0, 75, 25600)
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    effective = fields.get("EffectiveBit Depth")
    header = PhotronHeader(
        width=int(_number(source, "Image Width", fields.get("Image Width"), int)),
        height=int(_number(source, "Image Height", fields.get("Image Height"), int)),
        frame_count=int(_number(source, "Total Frame", fields.get("Total Frame"), int)),
        bit_depth=int(_number(source, "Color Bit", fields.get("Color Bit"), int)),
        record_rate_hz=_number(source, "Record Rate(fps)", fields.get("Record Rate(fps)")),
        save_step=int(_number(source, "Save Step", fields.get("Save Step", "1"), int)),
        effective_bit_depth=int(_number(source, "EffectiveBit Depth", effective, int)) if effective else None,
        effective_side=fields.get("EffectiveBit Side", "Lower").lower(),
        colour=fields.get("Color Type", "Mono").lower(),
        file_format=fields.get("File Format", "MRaw"),
        exposure_s=_exposure_from_text(fields.get("Shutter Speed(s)")),
        camera=fields.get("Camera Type", ""),
        recorded_frames=_optional_int(fields.get("Original Total Frame")),
    )
    return _checked(header, source)


def parse_cihx(data: bytes, *, source: str = "header") -> PhotronHeader:
    """Parse an XML ``.cihx`` header (a binary preamble, then a ``<cih>`` document).

    Parameters
    ----------
    data : bytes
        The whole file.
    source : str
        Name for error messages.

    Raises
    ------
    InputError
        No ``<cih>`` document, malformed XML, or missing or impossible values.

    Examples
    --------
    >>> xml = (b"\\x00\\x01<cih><imageDataInfo><resolution><width>384</width><height>384</height>"
    ...        b"</resolution><colorInfo><bit>12</bit></colorInfo></imageDataInfo><frameInfo>"
    ...        b"<totalFrame>15</totalFrame><skipFrame>1</skipFrame></frameInfo><recordInfo>"
    ...        b"<recordRate>30000</recordRate></recordInfo></cih>")
    >>> h = parse_cihx(xml)
    >>> h.fps, h.bit_depth, h.frame_bytes
    (30000.0, 12, 221184)
    """
    start, end = data.find(b"<cih>"), data.rfind(b"</cih>")
    if start < 0 or end < start:
        raise InputError(f"{source}: no <cih> document: not a Photron .cihx header")
    try:
        root = ElementTree.fromstring(data[start : end + len(b"</cih>")])
    except ElementTree.ParseError as exc:
        raise InputError(f"{source}: the <cih> document is not well-formed XML ({exc})") from None

    def text(path: str) -> str | None:
        node = root.find(path)
        return None if node is None else (node.text or "")

    shutter_ns = text("recordInfo/shutterSpeedNsec")
    shutter = text("recordInfo/shutterSpeed")
    exposure = (float(shutter_ns) * 1e-9 if shutter_ns and shutter_ns.strip().isdigit() and int(shutter_ns) > 0
                else _exposure_from_text(f"1/{shutter}") if shutter else None)
    effective = text("imageDataInfo/effectiveBit/depth")
    header = PhotronHeader(
        width=int(_number(source, "resolution/width", text("imageDataInfo/resolution/width"), int)),
        height=int(_number(source, "resolution/height", text("imageDataInfo/resolution/height"), int)),
        frame_count=int(_number(source, "frameInfo/totalFrame", text("frameInfo/totalFrame"), int)),
        bit_depth=int(_number(source, "colorInfo/bit", text("imageDataInfo/colorInfo/bit"), int)),
        record_rate_hz=_number(source, "recordInfo/recordRate", text("recordInfo/recordRate")),
        save_step=int(_number(source, "frameInfo/skipFrame", text("frameInfo/skipFrame") or "1", int)),
        effective_bit_depth=int(_number(source, "effectiveBit/depth", effective, int)) if effective else None,
        effective_side=(text("imageDataInfo/effectiveBit/side") or "Lower").lower(),
        colour=(text("imageDataInfo/colorInfo/type") or "Mono").lower(),
        file_format=text("imageFileInfo/fileFormat") or "Mraw",
        exposure_s=exposure,
        camera=text("deviceInfo/deviceName") or "",
        recorded_frames=_optional_int(text("frameInfo/recordedFrame")),
    )
    return _checked(header, source)


def _companion(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def _decoder(header: PhotronHeader):
    shape = (header.height, header.width)
    if header.bit_depth == 8:
        return lambda raw: raw.reshape(-1, *shape)
    if header.bit_depth == 12:
        return lambda raw: unpack_12bit_msb(raw).reshape(-1, *shape)
    return lambda raw: raw.view("<u2").reshape(-1, *shape)


def open_photron(path: Path) -> RawFrameFile:
    """Open a Photron recording from its ``.cih``, ``.cihx`` or ``.mraw`` file.

    The header and the data share a name (``rec.cihx`` and ``rec.mraw``);
    either may be given.

    Raises
    ------
    InputError
        The companion file is missing, the header is unreadable, or the data's
        size does not match the header (truncated or mismatched files).
    """
    if path.suffix.lower() == ".mraw":
        header_path, data_path = _companion(path, (".cihx", ".cih")), path
        if header_path is None:
            raise InputError(f"{path}: no .cihx or .cih header beside it ({path.stem}.cihx): "
                             "the frame size and rate are in the header")
    else:
        header_path, data_path = path, _companion(path, (".mraw",))
        if data_path is None:
            raise InputError(f"{path}: no {path.stem}.mraw beside the header: the frames are in the .mraw file")
    raw_header = header_path.read_bytes()
    if header_path.suffix.lower() == ".cihx":
        header = parse_cihx(raw_header, source=str(header_path))
    else:
        header = parse_cih(raw_header.decode("latin-1"), source=str(header_path))

    expected = header.frame_count * header.frame_bytes
    found = data_path.stat().st_size
    if found != expected:
        whole = found // header.frame_bytes
        problem = ("is truncated" if found < expected else "holds more than the header announces")
        raise InputError(
            f"{data_path}: {problem}: {found} bytes, the header {header_path.name} announces {header.frame_count} "
            f"frames of {header.width}x{header.height} at {header.bit_depth} bits ({expected} bytes); "
            f"{whole} whole frames are there: header and data do not match"
        )

    warnings = []
    if header.colour.startswith("colo"):
        warnings.append("colour camera: its frames are read as the raw sensor mosaic, whose fixed colour pattern "
                        "the motion stage sees as texture")
    rate_warnings = []
    span = (header.frame_count - 1) * header.save_step + 1
    if header.recorded_frames is not None and span > header.recorded_frames:
        rate_warnings.append(
            f"the header's save step {header.save_step} and its {header.recorded_frames} recorded frames do not agree "
            f"({header.frame_count} frames saved every {header.save_step} span {span}); the rate "
            f"{header.fps:g} fps assumes the save step is right: pass --fps if it is not"
        )
    effective = header.effective_bit_depth
    filled_lower = effective is not None and effective < header.bit_depth and header.effective_side == "lower"
    note_bits = effective if filled_lower else None
    meta = Meta(
        path=str(data_path),
        format="photron-" + header_path.suffix.lower().lstrip("."),
        width=header.width,
        height=header.height,
        bit_depth=header.bit_depth,
        effective_bit_depth=note_bits,
        frame_count=header.frame_count,
        frame_count_exact=True,
        fps=header.fps,
        fps_origin="header" if header.save_step == 1 else
        f"header (record rate {header.record_rate_hz:g} fps / save step {header.save_step})",
        codec="raw",
        lossy=False,
        warnings=warnings,
        rate_warnings=rate_warnings,
        exposure_s=header.exposure_s,
    )
    offsets = np.arange(header.frame_count, dtype=np.int64) * header.frame_bytes
    return RawFrameFile(data_path, meta, frame_offsets=offsets, frame_bytes=header.frame_bytes,
                        decode=_decoder(header))
