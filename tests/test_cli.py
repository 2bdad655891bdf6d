import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from visualmic.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "visualmic", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, melody_frames):
    path = tmp_path_factory.mktemp("clip") / "clip.npy"
    np.save(path, melody_frames[:1100])
    return path


def test_recover_writes_a_playable_wav_and_json(tmp_path, clip):
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(main, ["recover", str(clip), "-o", str(out), "--fps", "2200", "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == 1100 and summary["fps"] == 2200 and summary["fps_origin"] == "user"
    assert summary["rate_hz"] == 48000 and len(summary["bands"]) == summary["scales"] * 2
    assert 10 < summary["peak_memory_mb"] < 20_000
    info = soundfile.info(str(out))
    assert (info.samplerate, info.subtype) == (48000, "PCM_16")
    assert info.frames == 24000


@pytest.mark.parametrize("edges", ["cut", "wrap"])
def test_edges_are_taken_as_told(tmp_path, clip, edges):
    result = CliRunner().invoke(main, ["recover", str(clip), "-o", str(tmp_path / "o.wav"), "--fps", "2200",
                                       "--edges", edges, "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["edges"] == edges


def test_native_rate_is_float(tmp_path, clip):
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(main, ["recover", str(clip), "-o", str(out), "--fps", "2200", "--rate", "native", "-q"])
    assert result.exit_code == 0, result.output
    info = soundfile.info(str(out))
    assert (info.samplerate, info.subtype, info.frames) == (2200, "FLOAT", 1100)


def test_synth_then_recover_from_video(tmp_path):
    video = tmp_path / "s.mkv"
    r = run("synth", "tone:440", "-o", video, "--fps", "2200", "--duration", "0.5", "--size", "48x48", "-q")
    assert r.returncode == 0, r.stderr
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["frames"] == 1100 and sidecar["bound_snr_db"]["snr_db"] > 10
    r = run("recover", video, "-o", tmp_path / "s.wav")  # no --fps: the container's, with a note
    assert r.returncode == 0, r.stderr
    assert "taken from the container" in r.stderr
    audio, rate = soundfile.read(str(tmp_path / "s.wav"))
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * rate / audio.size == pytest.approx(440, abs=2)


def test_synth_drift_over_a_larger_scene_then_recover(tmp_path):
    """`--drift` and `--view` render a camera creeping 5 px over a surface larger than its view; the truth
    is the sound alone, and the recovery comes within 3 dB of the sidecar's bound (measured: 18.2 dB
    against 20.0). A view where it cannot apply is a one-line error, exit 2."""
    video = tmp_path / "d.npy"
    args = ["--fps", "2200", "--duration", "1.5", "--size", "144x144", "--view", "96x96", "--drift", "5",
            "--noise", "2", "--amplitude", "0.05", "--seed", "9", "-q"]
    result = CliRunner().invoke(main, ["synth", "melody", "-o", str(video), *args])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "d.json").read_text())
    assert sidecar["size"] == {"width": 96, "height": 96} and sidecar["drift_px"] == 5
    truth, _ = soundfile.read(str(tmp_path / "d.truth.wav"))
    assert np.abs(truth).max() == pytest.approx(1.0)  # the sound alone, in units of --amplitude
    result = CliRunner().invoke(main, ["recover", str(video), "-o", str(tmp_path / "d.wav"), "--fps", "2200",
                                       "--rate", "native", "-q"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "d.wav"), str(tmp_path / "d.truth.wav"),
                                       "--band", "80,1000", "--json"])
    assert json.loads(result.stdout)["snr_db"] > sidecar["bound_snr_db"]["snr_db"] - 3
    for bad, message in ((["--view", "200x200"], "does not fit"),
                         (["--mode", "membrane", "--view", "64x64"], "rigidly"),
                         (["--rolling-shutter", "--line-delay", "1e-6", "--view", "64x64"], "global shutter")):
        r = run("synth", "melody", "-o", tmp_path / "bad.npy", "--fps", "2200", "--duration", "0.2", *bad)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "make,args,message",
    [
        (None, ["--fps", "2200"], "no such file"),
        (b"", ["--fps", "2200"], "empty"),
        (b"garbage" * 100, ["--fps", "2200"], "not a video"),
        ("clip", ["--fps", "-5"], "positive"),
        ("clip", ["--fps", "nan"], "positive"),
        ("clip", ["--fps", "2200", "--roi", "90,90,20,20"], "outside"),
        ("clip", ["--fps", "2200", "--roi", "1,2,3"], "four integers"),
        ("clip", [], "no frame rate"),
        ("few", ["--fps", "2200"], "at least"),
        ("clip", ["--fps", "2200", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, clip, make, args, message):
    if make == "clip":
        source = clip
    elif make == "few":
        source = tmp_path / "few.npy"
        np.save(source, np.zeros((3, 32, 32), np.uint8))
    else:
        source = tmp_path / "input.mkv"
        if make is not None:
            source.write_bytes(make)
    out = tmp_path / "out.wav"
    r = run("recover", source, "-o", out, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.wav*"))


def test_interrupt_leaves_no_partial_output(tmp_path, clip, monkeypatch):
    import visualmic.outputs as outputs

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.soundfile, "write", explode)
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous")
    result = CliRunner().invoke(main, ["recover", str(clip), "-o", str(out), "--fps", "2200", "-q"])
    assert result.exit_code == 130
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_input_is_never_modified(tmp_path, clip):
    before = clip.read_bytes()
    CliRunner().invoke(main, ["recover", str(clip), "-o", str(tmp_path / "o.wav"), "--fps", "2200", "-q"])
    assert clip.read_bytes() == before


def test_evaluate_reports_all_metrics(tmp_path):
    rng = np.random.default_rng(0)
    ref = np.convolve(rng.standard_normal(16000), np.ones(3) / 3, mode="same")
    est = 0.5 * np.roll(ref, 20) + 0.05 * rng.standard_normal(16000)
    soundfile.write(str(tmp_path / "ref.wav"), ref / 2, 8000, subtype="FLOAT")
    soundfile.write(str(tmp_path / "est.wav"), est / 2, 8000, subtype="FLOAT")
    r = run("evaluate", tmp_path / "est.wav", tmp_path / "ref.wav", "--json")
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    assert figures["snr_db"] == pytest.approx(10 * np.log10(0.25 * np.var(ref) / 0.0025), abs=0.5)
    assert figures["lag_s"] == pytest.approx(20 / 8000) and figures["stoi"] > 0.9
    table = run("evaluate", tmp_path / "est.wav", tmp_path / "ref.wav", "--band", "100,3000")
    assert "segmental SNR" in table.stdout and "100-3000 Hz" in table.stdout
    bad = run("evaluate", tmp_path / "est.wav", tmp_path / "missing.wav")
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_missing_output_folder_fails_before_any_work(tmp_path, clip):
    r = run("recover", clip, "-o", tmp_path / "nowhere" / "out.wav", "--fps", "2200")
    assert r.returncode == 2 and "output folder" in r.stderr and "does not exist" in r.stderr
    r = run("recover", clip, "-o", tmp_path / "out.mp3", "--fps", "2200")
    assert r.returncode == 2 and ".wav" in r.stderr


def test_a_truncated_video_is_recovered_with_a_warning(tmp_path):
    from visualmic.outputs import write_video

    frames = (np.random.default_rng(0).random((400, 48, 48)) * 255).astype(np.uint8)
    write_video(tmp_path / "full.mkv", [frames], fps=1000, codec="ffv1")
    data = (tmp_path / "full.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    r = run("recover", tmp_path / "cut.mkv", "-o", tmp_path / "cut.wav", "--fps", "1000", "--json", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert 100 < summary["frames"] < 400
    assert any("ends early" in w for w in summary["warnings"]) and "ends early" in r.stderr
    r = run("recover", tmp_path / "full.mkv", "-o", tmp_path / "full.wav", "--fps", "1000", "--json", "-q")
    assert json.loads(r.stdout)["warnings"] == []
