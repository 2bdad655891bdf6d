import numpy as np
import pytest

import visualmic
from visualmic.combine import combine_bands
from visualmic.errors import InputError
from visualmic.metrics import snr_db
from visualmic.synth import Camera, creep, make_scene, melody, speech

BAND = (80.0, 1000.0)


def test_rigid_scene_within_1_5_db_of_the_cramer_rao_bound(melody_scene, melody_frames):
    rec = visualmic.recover(melody_frames, fps=melody_scene.fps)
    snr = snr_db(rec.displacement_px, melody_scene.displacement_px, fps=melody_scene.fps, band_hz=BAND, trim=100)
    bound = melody_scene.bound_snr_db(BAND)
    assert bound - 1.5 < snr < bound + 0.5, (snr, bound)
    # The combined displacement is calibrated in pixels.
    gain = np.dot(rec.displacement_px, melody_scene.displacement_px) / np.sum(melody_scene.displacement_px**2)
    assert gain == pytest.approx(1.0, abs=0.1)


def test_speech_at_a_high_frame_rate_keeps_its_fundamental():
    """At 6000 fps the 2014 paper's high-pass (0.05 x Nyquist = 150 Hz) cuts a voice's
    fundamental; the default, at most 60 Hz, keeps the recovery at the bound."""
    fps = 6000.0
    sound = speech(rate_hz=fps)[: int(2.0 * fps)]
    scene = make_scene(sound, fps=fps, size=(48, 48), amplitude_px=0.05, camera=Camera(read_noise=2.0), seed=5)
    frames = np.concatenate(list(scene.frames()))
    band = (80.0, 0.48 * fps)
    bound = scene.bound_snr_db(band)
    rec = visualmic.recover(frames, fps=fps)
    assert rec.highpass_hz == 60.0
    assert snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=band, trim=300) > bound - 1.0
    papers = visualmic.recover(frames, fps=fps, highpass_hz=150.0)
    assert snr_db(papers.native_audio, scene.displacement_px, fps=fps, band_hz=band, trim=300) < bound - 2.0


def test_at_least_10_db_better_than_davis2014():
    """On a well-lit scene the 2014 recipe is capped near 10 dB by its causal high-pass
    and its equal band weights; this method follows the bound."""
    fps = 2200.0
    scene = make_scene(melody(2.0, rate_hz=fps, seed=5), fps=fps, size=(64, 64), amplitude_px=0.1,
                        camera=Camera(read_noise=1.0), seed=2)
    frames = np.concatenate(list(scene.frames()))
    truth = scene.displacement_px
    assert scene.bound_snr_db(BAND) > 20
    ours = visualmic.recover(frames, fps=fps)
    theirs = visualmic.recover(frames, fps=fps, method="davis2014")
    ours_db = snr_db(ours.native_audio, truth, fps=fps, band_hz=BAND, trim=100)
    theirs_db = snr_db(theirs.native_audio, truth, fps=fps, band_hz=BAND, trim=100)
    assert ours_db > theirs_db + 10, (ours_db, theirs_db)


@pytest.mark.parametrize("direction", [90.0, -30.0])
def test_motion_in_any_direction(direction):
    fps = 2200.0
    scene = make_scene(melody(1.0, rate_hz=fps), fps=fps, size=(64, 64), amplitude_px=0.05,
                        direction_deg=direction, camera=Camera(read_noise=1.0), seed=1)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    assert np.isclose(rec.direction_deg % 180, direction % 180, atol=3)
    snr = snr_db(rec.displacement_px, scene.displacement_px, fps=fps, band_hz=BAND, trim=100)
    assert snr > scene.bound_snr_db(BAND) - 2


def test_noise_only_and_flipped_bands_do_not_hurt():
    rng = np.random.default_rng(0)
    n = 8000
    truth = np.sin(np.arange(n) * 2 * np.pi * 300 / 2200) * np.sin(np.arange(n) / 500.0)
    good = np.stack([truth + 0.3 * rng.standard_normal(n), -np.roll(truth, 1) + 0.3 * rng.standard_normal(n)])
    alone = combine_bands(good, noise_covariance=np.eye(2), fps=2200, highpass_hz=0)
    junk = np.concatenate([good, 3.0 * rng.standard_normal((4, n))])
    more = combine_bands(junk, noise_covariance=np.eye(6), fps=2200, highpass_hz=0)
    snr_alone = snr_db(alone.signal_px, truth, fps=2200, trim=10)
    snr_more = snr_db(more.signal_px, truth, fps=2200, trim=10)
    assert snr_more > snr_alone - 0.3
    assert more.weights[1] < 0 and more.lags[1] == 1  # band 1 is flipped and one frame late
    assert np.all(np.abs(more.weights[2:]) < 0.05 * np.abs(more.weights[:2]).min())


def test_path_and_array_give_the_same_sound(tmp_path, melody_frames):
    np.save(tmp_path / "f.npy", melody_frames[:800])
    a = visualmic.recover(tmp_path / "f.npy", fps=2200, chunk_frames=100)
    b = visualmic.recover(melody_frames[:800], fps=2200, chunk_frames=333)
    assert np.allclose(a.audio, b.audio, atol=1e-5)


def test_roi_and_downsample_shrink_the_processed_frames(melody_frames):
    rec = visualmic.recover(melody_frames[:400], fps=2200, roi=(8, 16, 64, 48), downsample=2)
    assert rec.frame_shape == (24, 32)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"fps": 2200, "roi": (90, 0, 20, 20)}, "outside"),
        ({"fps": 0}, "positive"),
        ({"fps": float("nan")}, "positive"),
        ({}, "no frame rate"),
        ({"fps": 2200, "method": "magic"}, "unknown method"),
        ({"fps": 2200, "threads": 0}, "threads must be at least 1"),
        ({"fps": 2200, "chunk_frames": 0}, "chunk_frames must be at least 1"),
    ],
)
def test_bad_parameters_are_input_errors(melody_frames, kwargs, message):
    with pytest.raises(InputError, match=message):
        visualmic.recover(melody_frames[:100], **kwargs)


def test_too_few_frames(melody_frames):
    with pytest.raises(InputError, match="at least"):
        visualmic.recover(melody_frames[:5], fps=2200)


def test_a_crop_of_a_larger_scene_is_within_1_db_of_its_bound():
    """Real frames are not periodic: their FFT wraps unrelated edges together. The periodic
    component (Moisan) removes that seam; the bound is the cropped region's own."""
    from visualmic.synth import cramer_rao_snr_db, moving_frames, procedural_texture, scaled_to_peak

    fps = 2200.0
    motion = scaled_to_peak(melody(1.5, rate_hz=fps, seed=11), 0.05)
    big = procedural_texture((128, 144), seed=3)
    crop = (slice(24, 104), slice(24, 120))
    clean = np.concatenate(list(moving_frames(big, motion)))[:, crop[0], crop[1]]
    frames = np.clip(np.rint(clean + 2 * np.random.default_rng(0).standard_normal(clean.shape)), 0, 255)
    gradient = np.fft.irfft2(np.fft.rfft2(big) * 2j * np.pi * np.fft.rfftfreq(144)[None, :], s=big.shape)[crop]
    bound = cramer_rao_snr_db(motion, 1 / np.sum(gradient**2 / (4 + 1 / 12)), fps=fps, band_hz=BAND)
    rec = visualmic.recover(frames.astype(np.uint8), fps=fps)
    assert snr_db(rec.native_audio, motion, fps=fps, band_hz=BAND, trim=100) > bound - 1.0


def test_flat_frames_are_an_input_error():
    with pytest.raises(InputError, match="no texture"):
        visualmic.recover(np.full((40, 32, 32), 128, np.uint8), fps=2200)


def test_a_grating_moving_along_its_detail_is_recovered():
    """Texture with detail in one direction only: the motion across it is not observable,
    the motion along it is recovered. (A texture of two pure tones is the worst case of the
    linear band-noise model: the finest band measures 13x its predicted noise, and the result
    stays about 3 dB from the bound, against 0.1-0.7 dB for natural textures.)"""
    fps = 2200.0
    x = np.arange(64)
    grating = 128 + 40 * np.sin(2 * np.pi * 6 * x / 64) + 20 * np.sin(2 * np.pi * 11 * x / 64)
    scene = make_scene(melody(1.0, rate_hz=fps), fps=fps, size=(64, 64), amplitude_px=0.05,
                       texture=np.tile(grating, (64, 1)), camera=Camera(read_noise=1.0), seed=1)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    assert abs(rec.direction_deg) < 3
    snr = snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100)
    assert snr > scene.bound_snr_db(BAND) - 4


@pytest.mark.parametrize("mode,regions,margin_db", [("opposite", 4, 1.5), ("membrane", 4, 1.5), ("rigid", 4, 0.5),
                                                     ("opposite", 8, 1.5)])
def test_regions_recover_objects_whose_parts_move_differently(mode, regions, margin_db):
    """Two halves in opposition cancel in a global sum; measured per region, each part gets
    its own sign and the sound comes back, while a rigid surface loses nothing. A finer grid
    (8 x 8: the noise model is singular, channels being combinations of others) too."""
    fps = 2200.0
    scene = make_scene(melody(1.5, rate_hz=fps, seed=3), fps=fps, size=(96, 96), amplitude_px=0.05, mode=mode,
                       camera=Camera(read_noise=2.0), seed=2)
    frames = np.concatenate(list(scene.frames()))
    rec = visualmic.recover(frames, fps=fps, regions=regions)
    snr = snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100)
    assert snr > scene.bound_snr_db(BAND) - margin_db
    assert rec.region_weights.shape == (regions, regions) and rec.region_weights.sum() == pytest.approx(1)
    if mode == "opposite":
        assert snr_db(visualmic.recover(frames, fps=fps, regions=1).native_audio, scene.displacement_px, fps=fps,
                      band_hz=BAND, trim=100) < snr - 20  # the global sum cancels
        left, right = rec.bands[0], rec.bands[regions - 1]
        assert left["region"] == [0, 0] and right["region"] == [0, regions - 1]
        assert np.sign(rec.band_weights[0]) != np.sign(rec.band_weights[regions - 1])


@pytest.mark.parametrize("mode,amplitude_px,chosen,margin_db", [
    ("opposite", 0.05, "regions", 1.5), ("membrane", 0.05, "regions", 1.5),
    ("rigid", 0.05, "whole frame", 0.5), ("rigid", 0.002, "whole frame", 1.5),
])
def test_auto_regions_choose_the_better_model(mode, amplitude_px, chosen, margin_db):
    """By default (regions="auto") the frame is measured in regions and combined both ways: the
    regions are kept where parts move differently, the whole frame where the surface is rigid
    (at low SNR too, where the regions' many gains would fit noise)."""
    fps = 2200.0
    scene = make_scene(melody(1.5, rate_hz=fps, seed=4), fps=fps, size=(96, 96), amplitude_px=amplitude_px,
                       mode=mode, camera=Camera(read_noise=2.0), seed=11)
    frames = np.concatenate(list(scene.frames()))
    rec = visualmic.recover(frames, fps=fps)
    assert rec.region_choice["chosen"] == chosen
    assert rec.region_grid == (4 if chosen == "regions" else 1)
    snr = snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100)
    assert snr > scene.bound_snr_db(BAND) - margin_db, (snr, scene.bound_snr_db(BAND))
    if chosen == "whole frame":  # exactly what measuring the frame as a whole gives
        whole = visualmic.recover(frames, fps=fps, regions=1)
        assert np.corrcoef(whole.displacement_px, rec.displacement_px)[0, 1] > 0.99999
    summary = rec.summary()
    assert summary["region_choice"]["chosen"] == chosen and summary["regions"] == rec.region_grid


def test_slow_drift_of_pixels_and_mains_flicker_cost_almost_nothing():
    """The camera creeps 3 px and back while the light flickers at 100 Hz: every chunk is
    measured relative to where it drifted, and the flicker does not leak into the sound."""
    fps = 2200.0
    sound = melody(1.5, rate_hz=fps, seed=6)
    audio = 0.05 * sound / np.abs(sound).max() + creep(sound.size, 3.0)  # px
    scene = make_scene(audio, fps=fps, size=(96, 96), amplitude_px=float(np.abs(audio).max()),
                       camera=Camera(read_noise=2.0), seed=9, flicker_hz=100.0, flicker_depth=0.1)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    bound = scene.bound_snr_db(BAND)
    assert snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100) > bound - 1.5


def test_drift_over_a_larger_scene_is_followed():
    """The camera drifts 5 px over a surface larger than its view: texture leaves the frame and new
    texture enters, so the low frequencies fit a shift less well the further it went (0.07 px of
    error at 3 px), though the shift they give stays exact; every chunk is still followed. (Measured:
    17.7 dB against a bound of 20.1; until chunks whose fit erred by over 0.05 px were left where they
    were, -13 dB.) The texture that wrapped round the edges of a moved chunk costs the rest."""
    fps = 2200.0
    sound = melody(1.5, rate_hz=fps, seed=6)
    audio = 0.05 * sound / np.abs(sound).max() + creep(sound.size, 5.0)  # px
    scene = make_scene(audio, fps=fps, size=(144, 144), view=(96, 96), amplitude_px=float(np.abs(audio).max()),
                       camera=Camera(read_noise=2.0), seed=9)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    bound = scene.bound_snr_db(BAND)
    assert snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100) > bound - 3


def test_memory_mapped_pages_are_released(tmp_path):
    frames = (np.random.default_rng(0).random((64, 64, 64)) * 255).astype(np.uint8)
    np.save(tmp_path / "f.npy", frames)
    src = visualmic.sources.open_source(tmp_path / "f.npy")
    out = np.concatenate([c for _, c in src.chunks(chunk_frames=5)])
    assert np.array_equal(out, frames.astype(np.float32))  # data intact after the pages were dropped


def test_channels_without_information_get_no_weight():
    rng = np.random.default_rng(1)
    truth = np.sin(np.arange(3000) / 7.0)
    signals = np.stack([truth + 0.1 * rng.standard_normal(3000), truth + 0.1 * rng.standard_normal(3000),
                        np.zeros(3000)])
    model = np.diag([0.01, 0.01, 0.0])  # the empty channel: no signal, no predicted noise
    c = combine_bands(signals, noise_covariance=model, fps=2200, highpass_hz=0)
    assert c.weights[2] == 0 and np.isnan(c.noise_px[2])
    assert c.weights[:2] == pytest.approx([0.5, 0.5], abs=0.05)


def test_estimated_snr_tells_a_good_recovery_from_noise(melody_scene, melody_frames):
    rec = visualmic.recover(melody_frames, fps=melody_scene.fps)
    true = snr_db(rec.displacement_px, melody_scene.displacement_px, fps=melody_scene.fps,
                  band_hz=(rec.highpass_hz, melody_scene.fps / 2), trim=100)
    assert rec.estimated_snr_db == pytest.approx(true, abs=1.5)
    noise_only = visualmic.recover(
        np.random.default_rng(0).integers(0, 255, size=(800, 48, 48)).astype(np.uint8), fps=2200)
    assert noise_only.estimated_snr_db < 0
    assert rec.summary()["estimated_snr_db"] == pytest.approx(rec.estimated_snr_db)


def test_interrupted_run_resumes_from_its_cache_with_identical_output(tmp_path, melody_frames, monkeypatch):
    from visualmic.sources.arrays import ArraySource

    path = tmp_path / "clip.npy"
    np.save(path, melody_frames[:1100])
    uncached = visualmic.recover(path, fps=2200, chunk_frames=50)
    original = ArraySource._chunks
    read = []

    def interrupted(self, *args):
        for first, block in original(self, *args):
            if first >= 600:
                raise KeyboardInterrupt
            read.append(block.shape[0])
            yield first, block

    monkeypatch.setattr(ArraySource, "_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        visualmic.recover(path, fps=2200, chunk_frames=50, cache_dir=tmp_path / "cache")

    def counted(self, *args):
        for first, block in original(self, *args):
            read.append(block.shape[0])
            yield first, block

    monkeypatch.setattr(ArraySource, "_chunks", counted)
    read.clear()
    resumed = visualmic.recover(path, fps=2200, chunk_frames=50, cache_dir=tmp_path / "cache")
    assert np.array_equal(resumed.audio, uncached.audio)
    assert sum(read) < 1100 - 400  # the reference frames again, then only what was not measured
    read.clear()
    # Other options:
    changed = visualmic.recover(path, fps=2200, chunk_frames=50, cache_dir=tmp_path / "cache", scales=1)
    assert sum(read) >= 1100 and not np.array_equal(changed.audio, uncached.audio)


def test_frames_a_codec_copied_are_counted_and_the_estimate_is_flagged(tmp_path):
    """H.264 at its default quality copies most frames of a 0.05 px vibration: the recovery says so,
    and says its estimated SNR cannot see the codec's errors; a lossless file has no repeats."""
    from visualmic.outputs import write_video

    sound = melody(0.5, rate_hz=2200, seed=3)
    scene = make_scene(sound, amplitude_px=0.05, fps=2200, size=(64, 64), camera=Camera(read_noise=2.0), seed=4)
    results = {}
    for name, codec in (("v.mp4", "h264"), ("v.mkv", "ffv1")):
        write_video(tmp_path / name, scene.frames(), fps=2200, codec=codec)
        results[codec] = visualmic.recover(tmp_path / name, fps=2200)
    lossy, lossless = results["h264"], results["ffv1"]
    assert lossy.repeated_frames > lossy.frames / 2
    assert any("exact copies" in w and "most of the motion is lost" in w for w in lossy.warnings)
    assert any("upper bound" in w for w in lossy.warnings)
    assert lossy.summary()["estimated_snr_is_upper_bound"] and lossy.summary()["repeated_frames"] > 0
    assert lossless.repeated_frames == 0 and not lossless.summary()["estimated_snr_is_upper_bound"]
    assert not any("exact copies" in w or "upper bound" in w for w in lossless.warnings)


def test_codec_noise_in_fine_regions_is_not_trusted_to_cancel(tmp_path):
    """MJPEG's damage is not camera noise and does not share its correlations between channels: counted
    as each channel's own noise, a fine grid of regions (8 x 8) recovers as well as the whole frame
    (with the camera noise's correlations scaled up: 8.7 dB against 11.7 for the whole frame)."""
    from visualmic.outputs import write_video

    fps = 2200.0
    scene = make_scene(melody(1.5, rate_hz=fps, seed=3), fps=fps, size=(96, 96), amplitude_px=0.1,
                       camera=Camera(read_noise=2.0), seed=2)
    write_video(tmp_path / "v.mov", scene.frames(), fps=fps, codec="mjpeg")

    def snr(regions: int) -> float:
        rec = visualmic.recover(tmp_path / "v.mov", fps=fps, regions=regions, dequantize="decoded")
        return snr_db(rec.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=100)

    whole = snr(1)
    assert whole > 10
    assert snr(8) > whole - 1.0


def _smooth_texture(size: int, seed: int) -> np.ndarray:
    """Smoothed noise whose opposite edges differ (it is not periodic)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), 4.0)


def test_edges_that_move_with_a_periodically_shifted_scene_are_measured():
    """A simulation shifts its texture periodically: the jumps where opposite edges meet move with it
    and carry its motion. Analysed as a camera's view (cut), they are lost: 4 dB under the bound."""
    fps = 2200.0
    scene = make_scene(melody(1.0, rate_hz=fps, seed=41), fps=fps, size=(96, 96), amplitude_px=0.05,
                       camera=Camera(read_noise=2.0), texture=_smooth_texture(96, 7), seed=3, direction_deg=35.0)
    frames = np.concatenate(list(scene.frames()))
    auto = visualmic.recover(frames, fps=fps)
    cut = visualmic.recover(frames, fps=fps, edges="cut")
    score = {r.edges: snr_db(r.native_audio, scene.displacement_px, fps=fps, band_hz=BAND, trim=200)
             for r in (auto, cut)}
    assert auto.edges == "wrap" and cut.edges == "cut" and auto.summary()["edges"] == "wrap"
    assert score["wrap"] > scene.bound_snr_db(BAND) - 1.0, score  # measured: 0.2 dB under it
    assert score["wrap"] > score["cut"] + 2.0, score
    assert any("continues across the frame's edges" in n for n in auto.notes)
    assert np.array_equal(visualmic.recover(frames, fps=fps, edges="wrap").displacement_px, auto.displacement_px)


def test_a_view_of_a_larger_scene_keeps_its_edges_cut():
    fps = 2200.0
    scene = make_scene(melody(1.0, rate_hz=fps, seed=41), fps=fps, size=(144, 144), view=(96, 96), amplitude_px=0.05,
                       camera=Camera(read_noise=2.0), texture=_smooth_texture(144, 8), seed=3)
    frames = np.concatenate(list(scene.frames()))
    auto = visualmic.recover(frames, fps=fps)
    assert auto.edges == "cut" and any("edges are taken as cut" in n for n in auto.notes)
    assert np.array_equal(visualmic.recover(frames, fps=fps, edges="cut").displacement_px, auto.displacement_px)


def test_a_frame_that_wraps_smoothly_is_recovered_once():
    fps = 2200.0
    scene = make_scene(melody(0.5, rate_hz=fps, seed=41), fps=fps, size=(64, 64), amplitude_px=0.05, seed=3)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    assert rec.edges == "wrap" and not any("edges" in n for n in rec.notes)
    with pytest.raises(InputError, match="unknown edges"):
        visualmic.recover(np.zeros((64, 16, 16)), fps=fps, edges="mirror")


def test_edges_are_chosen_the_same_with_a_cache(tmp_path):
    """The wrapped recovery keeps its own measurements in the cache (its options differ): a cached run
    chooses as an uncached one, and a run resumed from the cache gives the same sound."""
    fps = 2200.0
    scene = make_scene(melody(1.0, rate_hz=fps, seed=41), fps=fps, size=(64, 64), amplitude_px=0.05,
                       camera=Camera(read_noise=2.0), texture=_smooth_texture(64, 9), seed=3)
    path = tmp_path / "scene.npy"
    np.save(path, np.concatenate(list(scene.frames())))
    plain = visualmic.recover(path, fps=fps)
    cached = visualmic.recover(path, fps=fps, cache_dir=tmp_path / "cache")
    again = visualmic.recover(path, fps=fps, cache_dir=tmp_path / "cache")
    assert plain.edges == cached.edges == again.edges == "wrap"
    assert np.array_equal(cached.displacement_px, plain.displacement_px)
    assert np.array_equal(again.displacement_px, plain.displacement_px)
