import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from visualmic.engine import stack_chunks
from visualmic.errors import InputError
from visualmic.outputs import write_video
from visualmic.sources import open_source


def _frames(n=20, shape=(24, 32), dtype=np.uint8, seed=0):
    top = 250 if dtype == np.uint8 else 60000
    return np.random.default_rng(seed).integers(0, top, size=(n, *shape)).astype(dtype)


def _read_all(src, stored_dtype=None, **kw):
    """Every frame as float32, checked to equal the frames read in their stored type, ``stored_dtype``."""
    chunks = list(src.chunks(chunk_frames=7, **kw))
    assert [i for i, _ in chunks] == list(range(0, sum(c.shape[0] for _, c in chunks), 7))
    frames = np.concatenate([c for _, c in chunks])
    stored = np.concatenate([c for _, c in src.chunks(chunk_frames=7, stored=True, **kw)])
    assert frames.dtype == np.float32 and stored.dtype == stored_dtype and stored.dtype.isnative
    assert np.array_equal(stored, frames)
    return frames


def test_npy_is_memory_mapped_and_exact(tmp_path):
    frames = _frames(dtype=np.uint16)
    np.save(tmp_path / "f.npy", frames)
    src = open_source(tmp_path / "f.npy")
    assert isinstance(src._frames, np.memmap)
    assert (src.meta.frame_count, src.meta.bit_depth, src.meta.fps) == (20, 16, None)
    assert np.array_equal(_read_all(src, np.uint16), frames.astype(np.float32))


def test_roi_crops_x_along_columns(tmp_path):
    frames = _frames()
    src = open_source(frames)
    out = _read_all(src, np.uint8, roi=(5, 3, 10, 6))
    assert np.array_equal(out, frames[:, 3:9, 5:15].astype(np.float32))


def test_colour_array_becomes_channel_mean():
    rgb = _frames(shape=(8, 8, 3))
    out = _read_all(open_source(rgb), np.float32)
    assert np.allclose(out, rgb.mean(axis=-1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_image_folder_in_natural_order(tmp_path, suffix, dtype):
    frames = _frames(n=12, dtype=dtype)
    for i, f in enumerate(frames):
        path = tmp_path / f"frame_{i}{suffix}"
        Image.fromarray(f).save(path) if suffix == ".png" else tifffile.imwrite(path, f)
    src = open_source(tmp_path)
    assert src.meta.frame_count == 12 and src.meta.bit_depth == np.dtype(dtype).itemsize * 8
    assert np.array_equal(_read_all(src, dtype), frames.astype(np.float32))  # frame_10 after frame_9


def test_multipage_tiff(tmp_path):
    frames = _frames(dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    src = open_source(tmp_path / "stack.tif")
    assert src.meta.frame_count == 20
    assert np.array_equal(_read_all(src, np.uint16), frames.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_ffv1_video_is_lossless_grey(tmp_path, dtype):
    frames = _frames(dtype=dtype)
    write_video(tmp_path / "v.mkv", [frames[:9], frames[9:]], fps=2200, codec="ffv1")
    src = open_source(tmp_path / "v.mkv")
    assert (src.meta.codec, src.meta.lossy, src.meta.bit_depth) == ("ffv1", False, 8 * np.dtype(dtype).itemsize)
    assert src.meta.fps == pytest.approx(2200)
    assert np.array_equal(_read_all(src, dtype), frames.astype(np.float32))


def test_lossy_video_is_flagged_and_grey(tmp_path):
    frames = np.repeat(_frames(n=1, shape=(32, 32)), 20, axis=0)
    write_video(tmp_path / "v.mp4", [frames], fps=500, codec="h264", quality=10)
    src = open_source(tmp_path / "v.mp4")
    assert src.meta.lossy and any("lossy" in n for n in src.meta.warnings)
    out = _read_all(src, np.uint8)  # the luma plane as stored
    assert out.shape == (20, 32, 32)
    # H.264 in limited range: Y = 16 + 219/255 * grey, within compression error.
    assert np.corrcoef(out[0].ravel(), frames[0].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("codec, suffix, qualities", [("mjpeg", ".avi", (2, 8, 31)), ("h264", ".mp4", (5, 25, 45))])
def test_lossy_quality_sets_the_codec_error(tmp_path, codec, suffix, qualities):
    """``quality`` reaches the encoder: a finer quantiser (MJPEG qscale, H.264 CRF) keeps the frames closer."""
    x = np.linspace(0, 6 * np.pi, 48)
    frames = np.stack([np.clip(128 + 60 * np.sin(x[None, :] + 0.3 * k) * np.cos(0.7 * x[:, None]), 0, 255)
                       for k in range(6)]).astype(np.uint8)
    errors = []
    for quality in qualities:
        path = tmp_path / f"v{quality}{suffix}"
        write_video(path, [frames], fps=500, codec=codec, quality=quality)
        decoded = _read_all(open_source(path), np.uint8)
        reference = frames if codec == "mjpeg" else 16 + 219 / 255 * frames.astype(np.float32)  # limited range
        errors.append(float(np.sqrt(np.mean((decoded - reference) ** 2))))
    assert errors[0] < 0.7 * errors[1] and errors[1] < 0.7 * errors[2], errors


def test_playback_rate_is_noted_for_high_speed_work_only(tmp_path):
    from visualmic.api import resolve_fps

    write_video(tmp_path / "v.mkv", [_frames()], fps=30, codec="ffv1")
    meta = open_source(tmp_path / "v.mkv").meta
    assert any("playback rate" in w for w in resolve_fps(meta, None)[3])
    assert not any("playback rate" in w for w in resolve_fps(meta, None, high_speed=False)[3])  # rolling shutter


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.mkv", None, "no such file"),
        ("empty.mkv", b"", "empty"),
        ("garbage.mkv", b"\x00not a video at all" * 50, "not a video"),
        ("garbage.npy", b"\x93NUMPY garbage", "not a readable .npy"),
        ("bad.tif", b"II*\x00garbage", "TIFF"),
    ],
)
def test_bad_files_raise_input_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_source(path)


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no PNG or TIFF"):
        open_source(tmp_path)


def test_rate_from_timestamps_when_the_container_stores_none(tmp_path):
    """NUT keeps exact timestamps but no frame rate (its base rate is the time base)."""
    import fractions

    import av

    path = tmp_path / "v.nut"
    with av.open(str(path), "w", format="nut") as out:
        stream = out.add_stream("ffv1", rate=fractions.Fraction(2200))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "gray"
        for frame in _frames(n=120, shape=(32, 32)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    meta = open_source(path).meta
    assert meta.fps == pytest.approx(2200, rel=1e-6) and meta.fps_origin == "timestamps"
    assert _read_all(open_source(path), np.uint8).shape == (120, 32, 32)  # the probe left the file at its start


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.one_of(st.none(), st.integers(0, 120)))
def test_stacked_chunks_equal_their_concatenation_whatever_the_claimed_length(sizes, claimed):
    rng = np.random.default_rng(len(sizes))
    chunks = [rng.standard_normal((n, 3, 2)) for n in sizes]
    stacked = stack_chunks(iter(chunks), expected_rows=claimed, dtype=np.float64)
    np.testing.assert_array_equal(stacked, np.concatenate(chunks))
    assert stacked.base is None or stacked.base.shape[0] == stacked.shape[0]  # no oversized buffer kept alive
    as_float32 = stack_chunks(iter(chunks), expected_rows=claimed)
    assert as_float32.dtype == np.float32
    np.testing.assert_array_equal(as_float32, np.concatenate(chunks).astype(np.float32))


def test_stacking_no_chunk_is_an_error():
    with pytest.raises(ValueError, match="no chunk"):
        stack_chunks(iter([]))


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_a_video_leaves_its_decoder_a_core(tmp_path, monkeypatch, cores):
    """FFmpeg decodes on threads of its own: a video is measured on one thread fewer than the cores
    (at least one); other sources on every core; an explicit count is kept."""
    from visualmic.engine import measuring_threads

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    write_video(tmp_path / "v.mkv", [_frames()], fps=2200, codec="ffv1")
    np.save(tmp_path / "f.npy", _frames())
    video, array = open_source(tmp_path / "v.mkv"), open_source(tmp_path / "f.npy")
    assert (measuring_threads(video), measuring_threads(array)) == (max(1, cores - 1), cores)
    assert measuring_threads(video, 3) == measuring_threads(array, 3) == 3
