import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import visualmic
from visualmic.cli import main
from visualmic.errors import InputError
from visualmic.intercoded import (
    COPY_DEPTH, MIN_OBSERVED_SHARE, BlockMeasurements, BlockMeter, block_displacements, block_grid, copied_blocks,
    fill_missing, fresh_block_average, predicts_between_frames, recover_copied_motion,
)
from visualmic.metrics import snr_db
from visualmic.outputs import write_video
from visualmic.sources import ArraySource, open_source
from visualmic.synth import Camera, creep, make_scene, melody, moving_frames, procedural_texture

FPS = 2200.0
BAND = (80.0, 1000.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), chunk=st.integers(1, 9), block=st.sampled_from([4, 8]))
def test_copies_found_chunk_by_chunk_are_those_of_the_whole_video(seed, chunk, block):
    """A block is a copy when it equals the same block in one of the COPY_DEPTH frames before, however
    the frames are cut into chunks (each chunk given the frames before it)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 4, (20, 16, 16)).astype(np.uint8)
    for t in range(1, 20):  # plant copies from 1 to COPY_DEPTH + 1 frames back
        for by, bx in rng.integers(0, 16 // block, (3, 2)):
            back = min(t, int(rng.integers(1, COPY_DEPTH + 2)))
            part = np.s_[by * block:(by + 1) * block, bx * block:(bx + 1) * block]
            frames[t][part] = frames[t - back][part]
    grid = block_grid((16, 16), block_px=block)
    whole = copied_blocks(frames, frames[:0], grid=grid, block_px=block)
    pieces = np.concatenate([copied_blocks(frames[i:i + chunk], frames[:i], grid=grid, block_px=block)
                             for i in range(0, 20, chunk)])
    assert np.array_equal(pieces, whole)
    blocks = frames.reshape(20, 16 // block, block, 16 // block, block).swapaxes(2, 3).reshape(20, -1, block * block)
    expected = np.zeros_like(whole)
    for t in range(20):
        for back in range(1, min(t, COPY_DEPTH) + 1):
            expected[t] |= np.all(blocks[t] == blocks[t - back], axis=-1)
    assert np.array_equal(whole, expected)


def test_block_grid_follows_the_codecs_grid_and_drops_partial_blocks():
    assert block_grid((100, 70), origin=(4, 20), block_px=16) == (slice(4, 100), slice(4, 68), 6, 4)
    assert block_grid((100, 70), origin=(4, 20)) == (slice(4, 100), slice(4, 68), 12, 8)
    assert block_grid((7, 7)) == (slice(0, 0), slice(0, 0), 0, 0)


def test_block_motion_is_measured_and_flicker_does_not_pass_for_it():
    texture = procedural_texture((64, 64), seed=3).astype(np.float64)
    motion = 0.2 * np.sin(np.arange(50) / 3)
    frames = np.concatenate(list(moving_frames(texture, motion, chunk_frames=50))).astype(np.float64)
    flicker = (1 + 0.1 * np.sin(np.arange(50) * 1.7))[:, None, None]
    grid, right = block_grid((64, 64)), np.array([0.0, 1.0])
    measured, info = block_displacements(frames, texture, right, grid=grid)
    assert info.shape == (64,) and np.all(info > 0)
    # Calibrated central differences: no gain error (uncalibrated they read 1.19 here).
    average = measured.mean(axis=1)
    gain = average @ motion / (motion @ motion)
    assert 0.97 < gain < 1.03 and np.abs(average - gain * motion).max() < 0.002
    # Light: no motion from a still surface under flicker (a plain fit of the gradient reads up to 0.6 px
    # in single blocks), and the moving one's motion scaled by it, not added to.
    still, _ = block_displacements(texture * flicker + 5, texture, right, grid=grid)
    assert np.abs(still).max() < 1e-3
    lit, _ = block_displacements(frames * flicker + 5, texture, right, grid=grid)
    assert np.abs(lit.mean(axis=1) / flicker[:, 0, 0] - gain * motion).max() < 0.002
    across, _ = block_displacements(frames, texture, np.array([1.0, 0.0]), grid=grid)
    assert np.abs(across.mean(axis=1)).max() < 0.2 * np.abs(motion).max()


def test_blocks_follow_a_drift_without_steps_between_chunks():
    """A surface drifting 3 px while it vibrates 0.1 px: measured chunk by chunk against the still frame
    moved to each chunk's drift, the blocks' motion has no step where chunks meet and keeps the vibration
    (measured against the first frames only, the first order breaks beyond a pixel)."""
    from visualmic.audio import highpass

    t = np.arange(640)
    vibration = 0.1 * np.sin(2 * np.pi * t / 9.0)
    motion = 3.0 * t / t[-1] + vibration
    frames = np.concatenate(list(moving_frames(procedural_texture((64, 64), seed=2), motion, chunk_frames=64)))
    grid = block_grid((64, 64))
    meter = BlockMeter(frames[:16].mean(axis=0), np.array([0.0, 1.0]), grid=grid)
    measured = np.concatenate([meter(frames[i:i + 32], frames[max(0, i - COPY_DEPTH):i])[0]
                               for i in range(0, 640, 32)]).mean(axis=1)
    steps = np.abs(np.diff(measured))
    assert steps[31::32].max() < 2 * np.abs(np.diff(motion)).max()  # where chunks meet: no larger jumps
    fixed, _ = block_displacements(frames, frames[:16].mean(axis=0), np.array([0.0, 1.0]), grid=grid)

    def kept(x):  # correlation of the vibration band with the truth's
        return float(np.corrcoef(highpass(x, fps=2200, cutoff_hz=100)[50:-50], vibration[50:-50])[0, 1])

    assert kept(measured) > 0.98 and kept(fixed.mean(axis=1)) < 0.9


def test_fresh_blocks_are_averaged_and_copies_left_out():
    rng = np.random.default_rng(0)
    s = np.sin(np.arange(600) / 2.3)
    blocks = s[:, None] * np.array([1.0, 0.5, -1.0]) + 0.01 * rng.standard_normal((600, 3))
    copied = rng.random((600, 3)) < 0.5
    stale = np.where(copied, 7.0, blocks)  # whatever a copied block holds must not count
    signal, observed = fresh_block_average(stale, copied, s, np.array([1.0, 1.0, 0.0]))  # third: no texture
    assert np.array_equal(observed, ~copied[:, :2].all(axis=1))
    assert np.abs(signal - s)[observed].max() < 0.1  # the stale 7 would be 6 off


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), missing=st.floats(0.0, 0.7), period=st.floats(3.0, 30.0))
def test_missing_frames_of_a_tone_are_filled(seed, missing, period):
    """A tone seen on a random part of its frames, with a little noise: the fill is within 20 dB of it
    everywhere (linear interpolation is not, at periods of a few frames)."""
    rng = np.random.default_rng(seed)
    s = np.sin(2 * np.pi * np.arange(2048) / period + rng.uniform(0, 6))
    seen = rng.random(2048) >= missing
    noisy = s + 0.01 * rng.standard_normal(2048)
    filled = fill_missing(np.where(seen, noisy, 0.0), seen, s, noise_variance=1e-4)
    error = (filled - s)[128:-128]
    assert 10 * np.log10(0.5 / np.mean(error**2)) > 20


def test_a_fully_observed_signal_comes_back_as_observed():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000)
    filled = fill_missing(x, np.ones(1000, bool), x, noise_variance=1e-4)
    assert np.abs(filled - x).max() < 5e-3


def test_the_fill_beats_its_guide_and_copies():
    """Blocks seeing a tone through copies, guided by a noisy, attenuated recovery of it."""
    rng = np.random.default_rng(2)
    s = np.sin(2 * np.pi * np.arange(4000) / 6.1) * (1 + 0.5 * np.sin(np.arange(4000) / 300))
    blocks = s[:, None] + 0.1 * rng.standard_normal((4000, 8))
    copied = rng.random((4000, 8)) < 0.6
    copied[rng.random(4000) < 0.5] = True
    held = np.where(copied, 0.0, blocks)  # copies hold stale values; here zero, as a codec's dead zone would
    guide = 0.4 * s + 0.3 * rng.standard_normal(4000)
    out = recover_copied_motion(BlockMeasurements(held, copied, np.ones(8)), guide)

    def snr(x):
        return snr_db(x, s, fps=FPS, band_hz=None, trim=100)

    assert snr(out.signal_px) > snr(guide) + 10 and snr(out.signal_px) > snr(held.mean(axis=1)) + 3
    assert 0.3 < out.observed.mean() < 0.6 and out.noise_variance_px2 > 0


def test_noisier_b_frames_are_told_apart():
    """Observations on every other frame much noisier (as a codec's interpolated B-frames are): told
    which, the noise ratio chosen by cross-validation is above 1 and the fill closer to the truth."""
    rng = np.random.default_rng(3)
    s = np.sin(2 * np.pi * np.arange(4000) / 5.3) * (1 + 0.5 * np.sin(np.arange(4000) / 250))
    b_frames = np.arange(4000) % 4 != 0
    blocks = s[:, None] + np.where(b_frames, 0.5, 0.05)[:, None] * rng.standard_normal((4000, 4))
    copied = rng.random((4000, 4)) < 0.3
    guide = 0.7 * s + 0.2 * rng.standard_normal(4000)
    measurements = BlockMeasurements(blocks, copied, np.ones(4))
    told = recover_copied_motion(measurements, guide, bipredicted=b_frames)
    untold = recover_copied_motion(measurements, guide)
    assert told.bipredicted_noise_factor > 1 and untold.bipredicted_noise_factor == 1

    def snr(x):
        return snr_db(x, s, fps=FPS, band_hz=None, trim=100)

    assert snr(told.signal_px) > snr(untold.signal_px) + 2


def test_the_guide_counts_as_an_observation_only_where_it_predicts_well():
    """A guide with a little noise of its own is fused with sparse noisy blocks (its variance finite,
    the result better than either); a guide that is mostly noise only shapes the spectrum."""
    rng = np.random.default_rng(4)
    s = np.sin(2 * np.pi * np.arange(4000) / 6.7) * (1 + 0.5 * np.sin(np.arange(4000) / 200))
    blocks = s[:, None] + 0.4 * rng.standard_normal((4000, 2))
    copied = rng.random((4000, 2)) < 0.7
    measurements = BlockMeasurements(blocks, copied, np.ones(2))

    def snr(x):
        return snr_db(x, s, fps=FPS, band_hz=None, trim=100)

    good_guide = s + 0.15 * rng.standard_normal(4000)
    fused = recover_copied_motion(measurements, good_guide)
    assert np.isfinite(fused.guide_noise_variance_px2)
    assert snr(fused.signal_px) > max(snr(good_guide), snr(np.where(copied, 0, blocks).mean(axis=1))) + 1
    noise_guide = 0.2 * s + rng.standard_normal(4000)
    assert recover_copied_motion(measurements, noise_guide).guide_noise_variance_px2 == np.inf


def test_too_few_observed_frames_are_not_filled():
    s = np.sin(np.arange(2000) / 2.0)
    copied = np.ones((2000, 2), bool)
    copied[:: int(1.5 / MIN_OBSERVED_SHARE)] = False  # fewer than MIN_OBSERVED_SHARE of the frames
    assert recover_copied_motion(BlockMeasurements(np.stack([s, s], 1), copied, np.ones(2)), s) is None


def test_a_videos_b_frames_are_known_once_read(h264_scene, tmp_path):
    import av

    _, path = h264_scene
    with av.open(str(path)) as container:
        kinds = [getattr(f.pict_type, "name", f.pict_type) for f in container.decode(video=0)]
    expected = np.array([k in ("B", 3) for k in kinds])
    assert expected.mean() > 0.3  # x264's default: up to 3 B-frames between references
    with open_source(path) as src:
        assert src.bipredicted_frames(100) is None
        for _ in src.chunks(chunk_frames=300, stop=400):
            pass
        assert np.array_equal(src.bipredicted_frames(400), expected[:400]) and src.bipredicted_frames(401) is None
    write_video(tmp_path / "v.mkv", [np.zeros((20, 16, 16), np.uint8)], fps=FPS, codec="ffv1")
    with open_source(tmp_path / "v.mkv") as src:
        list(src.chunks(chunk_frames=8))
        assert not src.bipredicted_frames(20).any()
    assert ArraySource(np.zeros((20, 16, 16), np.uint8)).bipredicted_frames(20) is None


def test_codecs_that_predict_between_frames():
    assert predicts_between_frames("h264") and predicts_between_frames("hevc") and predicts_between_frames("vp9")
    assert not any(map(predicts_between_frames, ("mjpeg", "ffv1", "prores", "png", None)))


@pytest.fixture(scope="module")
def h264_scene(tmp_path_factory):
    """A rigid surface moving 0.3 px, through H.264 at its default quality (CRF 23)."""
    scene = make_scene(melody(1.0, rate_hz=FPS, seed=4), amplitude_px=0.3, fps=FPS, size=(96, 96),
                       camera=Camera(read_noise=2.0), seed=5)
    path = tmp_path_factory.mktemp("h264") / "v.mp4"
    write_video(path, scene.frames(), fps=FPS, codec="h264")
    return scene, path


def test_h264_copies_set_aside_recover_more_of_the_sound(h264_scene):
    """Measured 1.7 dB kept, 5.2 dB filled (3.4 dB more; 2.8 with 16-pixel blocks, 2.3 without the
    B-frames told apart): the criterion is 2 dB."""
    scene, path = h264_scene
    results = {c: visualmic.recover(path, fps=FPS, copies=c) for c in ("keep", "auto")}
    snr = {c: snr_db(r.native_audio, scene.displacement_px, fps=FPS, band_hz=BAND, trim=100)
           for c, r in results.items()}
    assert results["keep"].copies == "kept" and results["auto"].copies == "filled"
    assert snr["auto"] > snr["keep"] + 2
    assert any("copied from earlier frames by the codec" in n for n in results["auto"].notes)
    assert results["auto"].summary()["copies"] == "filled"
    # Self-assessment: decoded as they are, the estimate sees camera noise only (33.5 dB estimated for 1.7:
    # flagged an upper bound); filled, it comes from predicting the observed frames (2.4 for 5.2).
    assert results["keep"].summary()["estimated_snr_is_upper_bound"]
    assert not results["auto"].summary()["estimated_snr_is_upper_bound"]
    assert abs(results["auto"].estimated_snr_db - snr["auto"]) < 4
    assert any("predicted from the others" in w for w in results["auto"].warnings)


def test_a_drifting_flickering_surface_through_h264(tmp_path):
    """Drifting 2 px and back under 100 Hz flicker: the blocks are measured against the still frame
    moved to where each chunk drifted, with the light's gain fitted. Measured 1.3 dB kept, 2.5 filled
    (before the blocks followed the drift, 3 px of it on 128² frames left 1.1 dB kept, -7.9 filled)."""
    sound = melody(1.0, rate_hz=FPS, seed=4)
    motion = 0.3 * sound / np.abs(sound).max() + creep(sound.size, 2.0)
    scene = make_scene(motion, amplitude_px=float(np.abs(motion).max()), fps=FPS, size=(96, 96),
                       camera=Camera(read_noise=2.0), seed=5, flicker_hz=100.0, flicker_depth=0.1)
    write_video(tmp_path / "v.mp4", scene.frames(), fps=FPS, codec="h264")
    snr = {c: snr_db(visualmic.recover(tmp_path / "v.mp4", fps=FPS, copies=c).native_audio, scene.displacement_px,
                     fps=FPS, band_hz=BAND, trim=100) for c in ("keep", "fill")}
    assert snr["fill"] > snr["keep"] + 0.5


def test_large_motion_through_h264(tmp_path):
    """2.5 px: each frame is measured against the still frame moved to where the pyramid's recovery puts
    it, so the first order holds. Measured 21.3 dB kept, 23.5 filled (before the frames followed the
    recovery, 2 and 3 px on 128² lost 1.5 and 7.8 dB filled)."""
    scene = make_scene(melody(1.0, rate_hz=FPS, seed=4), amplitude_px=2.5, fps=FPS, size=(96, 96),
                       camera=Camera(read_noise=2.0), seed=5)
    write_video(tmp_path / "v.mp4", scene.frames(), fps=FPS, codec="h264")
    snr = {c: snr_db(visualmic.recover(tmp_path / "v.mp4", fps=FPS, copies=c).native_audio, scene.displacement_px,
                     fps=FPS, band_hz=BAND, trim=100) for c in ("keep", "fill")}
    assert snr["fill"] > snr["keep"] + 1


def test_lossless_video_is_measured_as_decoded(tmp_path):
    scene = make_scene(melody(0.3, rate_hz=FPS, seed=1), amplitude_px=0.05, fps=FPS, size=(48, 48),
                       camera=Camera(read_noise=2.0), seed=1)
    write_video(tmp_path / "v.mkv", scene.frames(), fps=FPS, codec="ffv1")
    auto = visualmic.recover(tmp_path / "v.mkv", fps=FPS)
    forced = visualmic.recover(tmp_path / "v.mkv", fps=FPS, copies="fill")
    assert auto.copies == forced.copies == "kept"
    assert not any("copied" in n for n in auto.notes)
    assert any("0.0 % of the textured blocks were copied" in n for n in forced.notes)
    assert np.array_equal(auto.audio, forced.audio)


def test_copies_option_on_the_command_line(h264_scene, tmp_path):
    _, path = h264_scene
    runner = CliRunner()
    out = runner.invoke(main, ["recover", str(path), "--fps", "2200", "-o", str(tmp_path / "a.wav"), "--copies",
                               "keep", "--json", "-q"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["copies"] == "kept"
    bad = runner.invoke(main, ["recover", str(path), "-o", str(tmp_path / "b.wav"), "--copies", "all"])
    assert bad.exit_code == 2 and "all" in bad.output
    with pytest.raises(InputError, match="unknown copies"):
        visualmic.RecoverOptions(copies="all")
