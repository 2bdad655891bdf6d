import json
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

import visualmic
from visualmic.synth import (
    Camera, cramer_rao_variance, make_scene, melody, mode_shape, moving_frames, procedural_texture,
)


def run(*args):
    return subprocess.run([sys.executable, "-m", "visualmic", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name,codec", [("v.mkv", "ffv1"), ("v.mov", "png"), ("m.mov", "mjpeg"), ("v.mp4", "h264")])
def test_synth_videos_decode_with_the_right_count_and_rate(tmp_path, name, codec):
    out = tmp_path / name
    r = run("synth", "tone:300", "-o", out, "--fps", "2200", "--duration", "0.2", "--size", "32x24",
            "--codec", codec, "-q")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(2200)
        frames = [f for f in container.decode(stream)]
    assert len(frames) == 440 and (frames[0].width, frames[0].height) == (32, 24)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["frames"] == 440 and sidecar["codec"] == codec


def test_requested_amplitude_is_measured_back():
    fps = 2200.0
    scene = make_scene(melody(1.0, rate_hz=fps, seed=1), fps=fps, size=(64, 64), amplitude_px=0.05,
                       camera=Camera(read_noise=0.5), seed=3)
    rec = visualmic.recover(np.concatenate(list(scene.frames())), fps=fps)
    truth = visualmic.audio.highpass(scene.displacement_px, fps=fps, cutoff_hz=rec.highpass_hz)
    gain = np.dot(rec.displacement_px, truth) / np.dot(truth, truth)
    assert gain == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("direction", [0.0, 90.0])
def test_bound_matches_the_analytic_value_for_a_grating(direction):
    """I = A sin(2 pi f (x or -y)): sum (u.grad I)^2 = N (2 pi f A)^2 / 2 along the grating."""
    n, f, amp, var = 64, 5 / 64, 20.0, 4.0
    coord = np.arange(n)
    wave = amp * np.sin(2 * np.pi * f * coord)
    texture = np.tile(wave, (n, 1)) if direction == 0 else np.tile(-wave[:, None], (1, n))
    expected = var / (n * n * (2 * np.pi * f * amp) ** 2 / 2)
    got = cramer_rao_variance(texture, np.full((n, n), var), direction_deg=direction)
    assert got == pytest.approx(expected, rel=1e-9)
    across = cramer_rao_variance(texture, np.full((n, n), var), direction_deg=direction + 90)
    assert across > 1e6 * got  # no information across the grating


def test_an_efficient_estimator_reaches_the_bound():
    """Monte Carlo: least squares with the true gradient, on noisy frames, has the bound's variance."""
    rng = np.random.default_rng(0)
    tex = procedural_texture((48, 48), seed=2)
    sigma = 3.0
    frames = np.concatenate(list(moving_frames(tex, np.full(400, 0.01))))
    noisy = frames + sigma * rng.standard_normal(frames.shape)
    grad = (np.roll(tex, -1, 1) - np.roll(tex, 1, 1)) / 2  # central difference, close to the spectral one
    spectral = np.real(np.fft.ifft2(np.fft.fft2(tex) * 2j * np.pi * np.fft.fftfreq(48)[None, :]))
    estimates = -np.einsum("tyx,yx->t", noisy - tex, spectral) / np.sum(spectral**2)
    bound = cramer_rao_variance(tex, np.full(tex.shape, sigma**2))
    assert np.var(estimates) == pytest.approx(bound, rel=0.2)
    assert np.mean(estimates) == pytest.approx(0.01, abs=5 * np.sqrt(bound / 400))
    assert np.corrcoef(grad.ravel(), spectral.ravel())[0, 1] > 0.95


def test_taylor_rendering_equals_the_exact_shift():
    tex = procedural_texture((32, 32), seed=1)
    d = np.array([0.0, 0.05, -0.2, 0.3])
    exact = next(moving_frames(tex, d))
    series = next(moving_frames(tex, d, shape=np.ones((32, 32))))
    assert np.max(np.abs(series - exact)) < 1e-5 * tex.std()


def test_mode_shapes():
    membrane = mode_shape("membrane", (64, 64))
    assert membrane[32, 32] == pytest.approx(1.0, abs=0.01) and membrane[0, 0] == 0
    opposite = mode_shape("opposite", (16, 64))
    assert np.allclose(opposite[:, :8], 1, atol=0.02) and np.allclose(opposite[:, -8:], -1, atol=0.02)
    with pytest.raises(ValueError):
        mode_shape("wobble", (8, 8))


def test_bit_depth_and_seed():
    scene = make_scene(melody(0.05, rate_hz=2200), fps=2200, size=(16, 16), camera=Camera(bit_depth=12), seed=7)
    a, b = next(scene.frames()), next(scene.frames())
    assert a.dtype == np.uint16 and a.max() <= 4095 and a.max() > 2000
    assert np.array_equal(a, b)


def test_synth_with_an_image_texture_and_a_mode(tmp_path):
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "tex.png")
    out = tmp_path / "s.npy"
    r = run("synth", "melody", "-o", out, "--fps", "1000", "--duration", "0.1", "--size", "64x48",
            "--texture", tmp_path / "tex.png", "--mode", "opposite", "--bit-depth", "16", "-q")
    assert r.returncode == 0, r.stderr
    frames = np.load(out)
    assert frames.shape == (100, 48, 64) and frames.dtype == np.uint16
    assert json.loads((tmp_path / "s.json").read_text())["mode"] == "opposite"


def test_synth_bad_input(tmp_path):
    for args, message in [
        (["nosuch.wav"], "no such audio file"),
        (["tone:5000"], "cannot be sampled"),
        (["melody", "--amplitude", "-1"], "amplitude"),
    ]:
        r = run("synth", *args, "-o", tmp_path / "x.mkv", "--fps", "2200")
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_rolling_shutter_rows_follow_their_capture_times():
    from visualmic.synth import RollingShutter, exposed_displacement

    fps, rows, rate = 60.0, 64, 48000.0
    shutter = RollingShutter(line_delay_s=50e-6, exposure_s=1e-4)
    t = np.arange(int(0.2 * rate)) / rate
    sound = np.sin(2 * np.pi * 700 * t)
    scene = make_scene(sound, fps=fps, size=(rows, 64), amplitude_px=0.2, camera=Camera(read_noise=0, bit_depth=0),
                       rolling_shutter=shutter, audio_rate_hz=rate, seed=1)
    frames = np.concatenate(list(scene.frames()))
    assert frames.shape[0] == 12
    # Measure each row's shift from the phase of its lowest textured frequencies.
    ratio = np.fft.rfft(frames, axis=2)[..., 1:4] / np.fft.rfft(scene.texture, axis=1)[None, :, 1:4]
    measured = -np.angle(ratio) / (2 * np.pi * np.arange(1, 4) / 64)
    expected = exposed_displacement(0.2 * sound, rate, shutter.row_times(12, rows, fps), 1e-4)
    assert np.allclose(measured.mean(axis=2), expected, atol=1e-6)
    # Exposure averaging: a 700 Hz tone over 0.1 ms keeps sinc(0.07) of its amplitude
    # (768 row samples land within 0.2 % of a crest).
    assert np.abs(expected).max() == pytest.approx(0.2 * np.sinc(700 * 1e-4), rel=2e-3)
    assert np.abs(expected).max() < 0.2 * np.sinc(700 * 1e-4) * (1 + 1e-9)


def test_rolling_shutter_bad_timing_is_an_input_error(tmp_path):
    r = run("synth", "melody", "-o", tmp_path / "x.mkv", "--fps", "60", "--size", "64x700", "--rolling-shutter",
            "--line-delay", "30e-6")
    assert r.returncode == 2 and "do not fit" in r.stderr
    r = run("synth", "melody", "-o", tmp_path / "x.mkv", "--fps", "60", "--rolling-shutter")
    assert r.returncode == 2 and "--line-delay" in r.stderr


def test_synth_warns_when_the_container_cannot_keep_the_rate(tmp_path):
    r = run("synth", "tone:300", "-o", tmp_path / "v.mkv", "--fps", "2200", "--duration", "0.05", "--size", "16x16")
    assert r.returncode == 0 and "cannot represent 2200 fps exactly" in r.stderr
    assert json.loads((tmp_path / "v.json").read_text())["container_rate_exact"] is False
    r = run("synth", "tone:300", "-o", tmp_path / "w.mov", "--fps", "2200", "--duration", "0.05", "--size", "16x16")
    assert r.returncode == 0 and "warning" not in r.stderr
