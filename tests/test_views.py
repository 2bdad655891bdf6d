"""Looking at the vibration: inspect, map, motion and the HTML report (rendered in headless Chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from PIL import Image

from visualmic.api import vibration_map
from visualmic.cli import main
from visualmic.synth import Camera, make_scene, mode_shape
from visualmic.vibration import RunningDFT

FPS = 2200.0


def _two_tones(seconds=0.5):
    t = np.arange(int(seconds * FPS)) / FPS
    return np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 700 * t)


def _mode_scene(kind, seed):
    return make_scene(_two_tones(), fps=FPS, size=(128, 128), amplitude_px=0.05, mode=kind,
                      camera=Camera(read_noise=2.0, bit_depth=8), seed=seed)


def _cell_means(image, cell):
    rows, cols = image.shape
    return image.reshape(rows // cell, cell, cols // cell, cell).mean(axis=(1, 3))


@pytest.mark.parametrize("cell", [8, 16])
def test_membrane_map_follows_the_mode_shape(cell):
    scene = _mode_scene("membrane", seed=11)
    found = vibration_map(np.concatenate(list(scene.frames())), fps=FPS, cell_px=cell)
    assert np.allclose(sorted(found.frequencies_hz), [440, 700], atol=2)  # found from the sound's peaks
    truth = _cell_means(mode_shape("membrane", (128, 128)), cell)
    first = int(np.argmin(abs(found.frequencies_hz - 440)))
    r = np.corrcoef(found.amplitude_px[first].ravel(), np.abs(truth).ravel())[0, 1]
    assert r >= 0.97, r
    # Peak amplitude: 440 Hz is 1/1.5 of the 0.05 px peak (the 700 Hz tone has half of it), centre cells ~J0 mean.
    assert np.nanmax(found.amplitude_px[first]) == pytest.approx(0.05 / 1.5 * truth.max(), rel=0.15)


def test_opposite_halves_map_shows_opposite_phase():
    scene = _mode_scene("opposite", seed=12)
    found = vibration_map(np.concatenate(list(scene.frames())), [440.0, 700.0], fps=FPS, cell_px=8)
    truth = _cell_means(mode_shape("opposite", (128, 128)), 8)
    for f in range(2):
        signed = (found.phasors_px[f] * np.exp(-1j * np.angle(found.phasors_px[f][0, 0]))).real
        assert abs(np.corrcoef(signed.ravel(), truth.ravel())[0, 1]) >= 0.95
        left, right = found.phase_rad[f][:, :6], found.phase_rad[f][:, 10:]
        gap = np.angle(np.exp(1j * (np.median(left) - np.median(right))))
        assert abs(abs(gap) - np.pi) < 0.2


def test_running_dft_is_order_free_and_mergeable():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 3, 2))
    whole = RunningDFT([50.0, 123.0], fps=1000, shape=(3, 2))
    whole.add(values, first=0)
    a, b = RunningDFT([50.0, 123.0], fps=1000, shape=(3, 2)), RunningDFT([50.0, 123.0], fps=1000, shape=(3, 2))
    b.add(values[200:], first=200)
    a.add(values[100:200], first=100)
    a.add(values[:100], first=0)
    a.merge(b)
    assert np.allclose(a.phasors(), whole.phasors())
    t = np.arange(300) / 1000
    direct = 2 / 300 * np.exp(-2j * np.pi * 50 * t) @ (values[:, 0, 0] - values[:, 0, 0].mean())
    assert np.isclose(whole.phasors()[0, 0, 0], direct)


def test_map_command_writes_png_numbers_and_sidecar(tmp_path):
    frames = np.concatenate(list(_mode_scene("membrane", seed=3).frames()))
    np.save(tmp_path / "v.npy", frames.astype(np.uint8))
    out = tmp_path / "m.png"
    result = CliRunner().invoke(main, ["map", str(tmp_path / "v.npy"), "-o", str(out), "--fps", "2200",
                                       "--freq", "440", "--cell", "16", "-q"])
    assert result.exit_code == 0, result.output
    numbers = np.load(tmp_path / "m.npy")
    summary = json.loads((tmp_path / "m.json").read_text())
    assert numbers.shape == (1, 8, 8) and np.iscomplexobj(numbers)
    assert summary["frequencies_hz"] == [440.0] and summary["chosen_by"] == "user"
    assert Image.open(out).size[0] > 600


@pytest.mark.parametrize(("args", "message"), [
    (["--freq", "1500"], "not between 0 and the Nyquist frequency 1100"),
    (["--cell", "500"], "do not fit"),
])
def test_map_command_rejects_impossible_requests(tmp_path, args, message):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).integers(0, 255, (40, 32, 32)).astype(np.uint8))
    result = CliRunner().invoke(main, ["map", str(tmp_path / "v.npy"), "-o", str(tmp_path / "m.png"),
                                       "--fps", "2200", *args])
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "m.png").exists()


def test_motion_command_writes_displacement_of_each_region(tmp_path):
    scene = make_scene(_two_tones(), fps=FPS, size=(96, 96), amplitude_px=0.3, mode="opposite",
                       camera=Camera(read_noise=1.0, bit_depth=8), seed=5)
    np.save(tmp_path / "v.npy", np.concatenate(list(scene.frames())).astype(np.uint8))
    out = tmp_path / "motion.csv"
    result = CliRunner().invoke(main, ["motion", str(tmp_path / "v.npy"), "--fps", "2200", "--roi", "0,0,40,96",
                                       "--roi", "56,0,40,96", "--scale", "0.02", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert table.dtype.names[:5] == ("time_s", "roi1_x_px", "roi1_y_px", "roi1_x_mm", "roi1_y_mm")
    assert np.allclose(table["roi1_x_mm"], table["roi1_x_px"] * 0.02)
    truth = scene.displacement_px / np.max(np.abs(scene.displacement_px))
    left = table["roi1_x_px"] - table["roi1_x_px"].mean()
    right = table["roi2_x_px"] - table["roi2_x_px"].mean()
    assert np.corrcoef(left, truth)[0, 1] > 0.99 and np.corrcoef(right, truth)[0, 1] < -0.99
    assert np.std(left) == pytest.approx(np.std(truth * 0.3), rel=0.1)  # pixels of the input frame
    assert (tmp_path / "motion.png").stat().st_size > 10_000


def test_inspect_reports_rate_noise_and_textured_region(tmp_path):
    rng = np.random.default_rng(1)
    frames = 60 + rng.normal(0, 3.0, (24, 80, 120))
    frames[:, 20:60, 40:100] += 120 * rng.random((40, 60))
    np.save(tmp_path / "v.npy", np.clip(frames, 0, 255).astype(np.float32))
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "v.npy"), "--png", str(tmp_path / "i.png"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["fps"] is None and found["lossless"] is True and found["frame_count"] == 24
    assert found["noise_grey"] == pytest.approx(3.0, rel=0.1)
    x, y, w, h = found["suggested_roi"]
    assert 30 <= x <= 40 and 10 <= y <= 20 and 60 <= w <= 80 and 40 <= h <= 60
    assert Image.open(tmp_path / "i.png").size[0] > 600


def test_inspect_warns_about_lossy_video(tmp_path):
    scene = make_scene(_two_tones(0.1), fps=FPS, size=(64, 64), amplitude_px=0.05, seed=2)
    from visualmic.outputs import write_video

    write_video(tmp_path / "v.mp4", scene.frames(), fps=FPS, codec="h264", frame_count=scene.displacement_px.size)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "v.mp4")])
    assert result.exit_code == 0 and "LOSSY" in result.stdout and "lossy" in result.output.lower()


# --- the report --------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    scene = make_scene(_two_tones(), fps=FPS, size=(96, 96), amplitude_px=0.05, seed=7,
                       camera=Camera(read_noise=1.0, bit_depth=8))
    np.save(folder / "v.npy", np.concatenate(list(scene.frames())).astype(np.uint8))
    soundfile.write(folder / "truth.wav", scene.displacement_px / 0.05, int(FPS), subtype="FLOAT")
    result = CliRunner().invoke(main, ["recover", str(folder / "v.npy"), "--fps", "2200", "-o",
                                       str(folder / "r.wav"), "--report", str(folder / "r.html"), "--reference",
                                       str(folder / "truth.wav"), "--regions", "2", "--json", "-q"])
    assert result.exit_code == 0, result.output
    return folder / "r.html", json.loads(result.stdout)


def test_report_is_self_contained_and_complete(report):
    path, summary = report
    page = path.read_text()
    assert page.count("<audio") == 2 and page.count('src="data:audio/wav;base64,') == 2
    assert page.count('src="data:image/png;base64,') == 4  # waveform, 2 spectrograms, map
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert summary["evaluation"]["snr_db"] > 15 and "estimated SNR" in page and summary["visualmic_version"] in page
    counts = summary["chunks_measured_by"]  # how it was measured, as --json says
    assert f"{counts['first_order']} to first order, {counts['phases']} by their phases" in page


def test_report_needs_report_for_reference(tmp_path):
    result = CliRunner().invoke(main, ["recover", "x.npy", "-o", str(tmp_path / "r.wav"), "--reference", "t.wav"])
    assert result.exit_code == 2 and "--report" in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt install chromium) to render the report")
def test_report_renders_and_plays_in_headless_chromium(report, tmp_path):
    path, _ = report
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--autoplay-policy=no-user-gesture-required", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*base, "--virtual-time-budget=8000", "--dump-dom", f"{path.as_uri()}#selftest"],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    assert not console_errors, console_errors
    assert "data-errors" not in dom.stdout
    assert dom.stdout.count('data-played="yes"') == 2  # both players started
    assert dom.stdout.count('data-state="loaded"') == 2 + 4 and 'data-state="error"' not in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([*base, "--window-size=1100,2600", f"--screenshot={shot}", path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    # The spectrogram's magma colours (dark purple/orange) and the map's viridis are on the page.
    reds, blues = pixels[..., 0], pixels[..., 2]
    assert pixels.std() > 20 and np.mean((reds > 150) & (blues < 100)) > 0.001
