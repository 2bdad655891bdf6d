"""High-speed camera formats: Photron .cih/.cihx/.mraw and Phantom .cine.

Real files (../shared/data/cameras) are checked against the established
readers pyMRAW and cine-handler; files written here check every layout the
real ones do not cover, and the errors for truncated or mismatched files.
"""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from visualmic.cli import main
from visualmic.errors import InputError
from visualmic.sources import open_source
from visualmic.sources.packing import (
    pack_10bit_msb,
    pack_12bit_msb,
    phantom_10bit_to_linear,
    unpack_10bit_msb,
    unpack_12bit_msb,
)
from visualmic.sources.photron import parse_cih

from conftest import CAMERA_DATA

needs_camera_data = pytest.mark.skipif(not CAMERA_DATA.is_dir(), reason=f"camera files not found at {CAMERA_DATA}")


def _read_all(src):
    """Every frame as float32, checked to equal the frames read in their stored (unsigned) type."""
    frames = np.concatenate([block for _, block in src.chunks(chunk_frames=6)])
    stored = np.concatenate([block for _, block in src.chunks(chunk_frames=6, stored=True)])
    assert frames.dtype == np.float32 and stored.dtype.kind == "u" and stored.dtype.isnative
    assert np.array_equal(stored, frames)
    return frames


# --- real files against the established readers ------------------------------------------------

PHOTRON_FILES = [
    # header, frames, width, height, stored bits, effective bits, fps (record rate / save step)
    ("data_showcase.cih", 75, 640, 40, 8, None, 15000 / 100),
    ("ball_12bit.cihx", 15, 384, 384, 12, None, 30000.0),
    ("beam.cihx", 4, 1024, 80, 16, 12, 50000 / 2500),
]


@needs_camera_data
@pytest.mark.parametrize(("name", "frames", "width", "height", "bits", "effective", "fps"), PHOTRON_FILES)
def test_photron_files_match_pymraw(name, frames, width, height, bits, effective, fps):
    pymraw = pytest.importorskip("pyMRAW", reason="pyMRAW (the test oracle) is not installed")
    src = open_source(CAMERA_DATA / name)
    meta = src.meta
    assert (meta.frame_count, meta.width, meta.height) == (frames, width, height)
    assert (meta.bit_depth, meta.effective_bit_depth, meta.fps) == (bits, effective, fps)
    oracle, _ = pymraw.load_video(str(CAMERA_DATA / name))
    oracle = np.moveaxis(np.asarray(oracle), -1, 0) if oracle.shape[0] != frames else np.asarray(oracle)
    assert np.array_equal(_read_all(src), oracle.astype(np.float32))


@needs_camera_data
def test_mraw_given_directly_finds_its_header():
    assert open_source(CAMERA_DATA / "ball_12bit.mraw").meta.fps == 30000.0


@needs_camera_data
def test_beam_header_inconsistency_is_reported():
    # skipFrame 2500 with 400 recorded frames cannot both be right: say so rather than guess.
    meta = open_source(CAMERA_DATA / "beam.cihx").meta
    assert any("save step 2500" in w and "400 recorded" in w for w in meta.rate_warnings)


@needs_camera_data
def test_phantom_file_matches_cine_handler():
    cine_reader = pytest.importorskip("cine_reader", reason="cine-handler (the test oracle) is not installed")
    src = open_source(CAMERA_DATA / "data_small_cine.cine")
    meta = src.meta
    assert (meta.frame_count, meta.width, meta.height, meta.bit_depth, meta.fps) == (235, 256, 32, 12, 100.0)
    assert meta.exposure_s == pytest.approx(70e-6)
    steps = np.diff(meta.frame_times_s)
    assert np.median(steps) == pytest.approx(0.01, rel=1e-5)
    assert any("timestamp steps differ" in w for w in meta.rate_warnings)  # the file's last stamp is off
    oracle = cine_reader.Cine(str(CAMERA_DATA / "data_small_cine.cine"))
    expected = np.moveaxis(oracle.load_frames_batch(0, 235), -1, 0)
    assert np.array_equal(_read_all(src), expected.astype(np.float32))


@needs_camera_data
def test_recover_reads_photron_rate_with_save_step(tmp_path):
    result = CliRunner().invoke(
        main, ["recover", str(CAMERA_DATA / "data_showcase.cih"), "-o", str(tmp_path / "o.wav"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fps"] == 150.0 and summary["frames"] == 75 and summary["format"] == "photron-cih"


# --- packing: round trips on arbitrary values ----------------------------------------------------


@given(arrays(np.uint16, st.tuples(st.integers(1, 3), st.integers(1, 8).map(lambda k: 2 * k)),
              elements=st.integers(0, 4095)))
def test_12bit_packing_round_trips(values):
    packed = pack_12bit_msb(values)
    assert packed.shape[-1] == values.shape[-1] * 3 // 2
    assert np.array_equal(unpack_12bit_msb(packed), values)


@given(arrays(np.uint16, st.tuples(st.integers(1, 3), st.integers(1, 8).map(lambda k: 4 * k)),
              elements=st.integers(0, 1023)))
def test_10bit_packing_round_trips(values):
    assert np.array_equal(unpack_10bit_msb(pack_10bit_msb(values)), values)


def test_phantom_table_is_monotonic_and_spans_12_bits():
    table = phantom_10bit_to_linear(np.arange(1024))
    assert np.all(np.diff(table.astype(int)) >= 0) and table[0] < 8 and table[-1] == 4095


# --- Photron files written here ------------------------------------------------------------------


def _write_photron(folder, frames, *, bits, save_step=1, rate=20000, colour="Mono", frame_count=None):
    n, height, width = frames.shape
    header = (f"#Camera Information Header\nRecord Rate(fps) : {rate}\nShutter Speed(s) : 1/40000\n"
              f"Total Frame : {n if frame_count is None else frame_count}\nSave Step : {save_step}\n"
              f"Image Width : {width}\nImage Height : {height}\nColor Type : {colour}\n"
              f"Color Bit : {bits}\nFile Format : MRaw\nEffectiveBit Depth : 12\nEffectiveBit Side : Lower\n\n")
    (folder / "rec.cih").write_text(header)
    if bits == 8:
        data = frames.astype(np.uint8).tobytes()
    elif bits == 12:
        data = pack_12bit_msb(frames.reshape(n, -1)).tobytes()
    else:
        data = frames.astype("<u2").tobytes()
    (folder / "rec.mraw").write_bytes(data)
    return folder / "rec.cih"


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_photron_layouts_read_exactly(tmp_path, bits):
    frames = np.random.default_rng(bits).integers(0, 2 ** min(bits, 12), size=(13, 6, 10))
    src = open_source(_write_photron(tmp_path, frames, bits=bits, save_step=4))
    assert src.meta.fps == 5000.0 and src.meta.exposure_s == pytest.approx(1 / 40000)
    assert np.array_equal(_read_all(src), frames)
    roi = list(src.chunks(chunk_frames=20, roi=(2, 1, 5, 3)))[0][1]
    assert np.array_equal(roi, frames[:, 1:4, 2:7])


def test_truncated_mraw_is_an_error_naming_the_frames(tmp_path):
    header = _write_photron(tmp_path, np.zeros((5, 4, 4)), bits=8)
    data = tmp_path / "rec.mraw"
    data.write_bytes(data.read_bytes()[:-10])
    with pytest.raises(InputError, match="truncated.*4 whole frames"):
        open_source(header)


def test_mismatched_header_is_an_error(tmp_path):
    header = _write_photron(tmp_path, np.zeros((5, 4, 4)), bits=16, frame_count=3)
    with pytest.raises(InputError, match="more than the header announces"):
        open_source(header)


def test_missing_companion_files_are_named(tmp_path):
    header = _write_photron(tmp_path, np.zeros((5, 4, 4)), bits=8)
    shutil.move(tmp_path / "rec.mraw", tmp_path / "other.mraw")
    with pytest.raises(InputError, match=r"no rec\.mraw beside"):
        open_source(header)
    with pytest.raises(InputError, match=r"no \.cihx or \.cih header"):
        open_source(tmp_path / "other.mraw")


def test_colour_photron_is_read_with_a_warning(tmp_path):
    src = open_source(_write_photron(tmp_path, np.zeros((5, 4, 4)), bits=8, colour="Color"))
    assert any("colour camera" in w for w in src.meta.warnings)


@given(st.text(max_size=200))
def test_cih_parser_never_crashes_on_garbage(text):
    try:
        parse_cih(text)
    except InputError:
        pass


@pytest.mark.parametrize(("line", "message"), [
    ("Record Rate(fps) : fast", "not a number"),
    ("Record Rate(fps) : 0", "not a frame rate"),
    ("Save Step : 0", "save step is 0"),
    ("Color Bit : 10", "10-bit frames are not supported"),
    ("File Format : TIFF", "only MRAW"),
])
def test_cih_parser_names_the_bad_value(line, message):
    base = {"Record Rate(fps)": "1000", "Total Frame": "5", "Save Step": "1", "Image Width": "4",
            "Image Height": "4", "Color Bit": "8", "File Format": "MRaw"}
    key, value = (part.strip() for part in line.split(":"))
    base[key] = value
    with pytest.raises(InputError, match=message):
        parse_cih("\n".join(f"{k} : {v}" for k, v in base.items()))


# --- Phantom files written here ------------------------------------------------------------------


def _write_cine(path, frames, *, bit_count=16, packed10=False, version=1, fps=4000, timestamps=True):
    """A minimal but complete .cine: file header, bitmap header, SETUP with a time block, offsets, frames."""
    n, height, width = frames.shape
    setup_bytes = 1572
    time_block = struct.pack("<IHH", 8 + 8 * n, 1002, 0) + b"".join(
        struct.pack("<II", int((i / fps % 1) * 2**32), 1_700_000_000 + int(i / fps)) for i in range(n)
    ) if timestamps else b""
    off_image_header, off_setup = 44, 84
    off_offsets = off_setup + setup_bytes + len(time_block)
    if packed10:
        pixels = [pack_10bit_msb(f.reshape(-1)).tobytes() for f in frames]
        compression = 256
    else:
        sample = np.dtype(np.uint8 if bit_count == 8 else "<u2")
        row = width * sample.itemsize
        pad = -(-row // 4) * 4 - row
        pixels = [b"".join(r.astype(sample).tobytes() + b"\0" * pad for r in f) for f in frames]
        compression = 0
    annotation = struct.pack("<II", 8, len(pixels[0]))
    first = off_offsets + (4 if version == 0 else 8) * n
    offsets = [first + i * (len(annotation) + len(p)) for i, p in enumerate(pixels)]
    setup = bytearray(setup_bytes)
    struct.pack_into("<H", setup, 142, setup_bytes)
    struct.pack_into("<II", setup, 768, fps, 50)  # FrameRate, Shutter (us)
    struct.pack_into("<I", setup, 896, 10 if packed10 else 12 if bit_count == 16 else 8)  # RealBPP
    struct.pack_into("<I", setup, 1568, 50_000)  # ShutterNs
    data = struct.pack("<2sHHHiIiIIIIQ", b"CI", 44, 0, version, 0, n, 0, n, off_image_header, off_setup,
                       off_offsets, 0)
    data += struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16 if packed10 else bit_count, compression,
                        len(pixels[0]), 0, 0, 0, 0)
    data += bytes(setup) + time_block
    data += np.array(offsets, "<u4" if version == 0 else "<u8").tobytes()
    data += b"".join(annotation + p for p in pixels)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("bit_count", "width", "version"), [(8, 10, 1), (16, 7, 0), (16, 12, 1)])
def test_cine_layouts_read_exactly_with_row_padding(tmp_path, bit_count, width, version):
    frames = np.random.default_rng(width).integers(0, 255 if bit_count == 8 else 4095, size=(9, 5, width))
    src = open_source(_write_cine(tmp_path / "a.cine", frames, bit_count=bit_count, version=version))
    assert src.meta.fps == 4000.0 and src.meta.exposure_s == pytest.approx(50e-6)
    assert src.meta.bit_depth == (8 if bit_count == 8 else 12)
    assert np.allclose(np.diff(src.meta.frame_times_s), 1 / 4000, atol=1e-9) and not src.meta.rate_warnings
    assert np.array_equal(_read_all(src), frames)


def test_packed_10bit_cine_is_linearised(tmp_path):
    codes = np.random.default_rng(0).integers(0, 1024, size=(6, 4, 8))
    src = open_source(_write_cine(tmp_path / "p.cine", codes, packed10=True))
    assert src.meta.bit_depth == 12
    assert np.array_equal(_read_all(src), phantom_10bit_to_linear(codes))


def test_cine_timestamps_disagreeing_with_the_rate_are_reported(tmp_path):
    path = _write_cine(tmp_path / "t.cine", np.zeros((6, 4, 8)), fps=4000)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 84 + 768, 2000)  # the header now claims 2000 fps
    path.write_bytes(bytes(data))
    assert any("the header says 2000 fps" in w for w in open_source(path).meta.rate_warnings)


def test_truncated_cine_is_an_error(tmp_path):
    path = _write_cine(tmp_path / "t.cine", np.zeros((6, 4, 8)))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match="truncated: 5 of the 6 frames"):
        open_source(path)


def test_not_a_cine_file_is_named(tmp_path):
    (tmp_path / "x.cine").write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(InputError, match="not a Phantom .cine file"):
        open_source(tmp_path / "x.cine")
