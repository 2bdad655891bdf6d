"""Recovered-sound quality on simulated scenes, against the physical limit and the 2014 method.

The paper's simulated experiment: a textured surface (128x128, 8-bit) translated
by sub-pixel amounts that follow a sound (exact Fourier shifts), camera noise
added, frames quantised. For every motion amplitude and noise level the table
gives the SNR of the recovered waveform against the true motion (80-1000 Hz,
after the best lag, sign and gain), for this project's default method and for
``--method davis2014`` run on the same frames, next to the Cramér-Rao bound:
the SNR an efficient unbiased estimator would reach on that scene.

Real sounds follow: the bundled speech (CMU ARCTIC) filmed at 2200 fps (as in the
paper) and at 6000 fps, and a melody, each scored with SNR, segmental SNR, LLR and
STOI (``visualmic evaluate``'s figures) for both methods.

The scenes of issue 4 follow, each written to a video file and recovered from
it with the default options (what ``visualmic recover VIDEO --fps HZ -o OUT.wav``
does): a rigid surface; a membrane on a still background; two halves moving in
opposition; a rigid surface whose texture (smoothed noise) does not match across
opposite edges, shifted periodically as simulations shift textures (the jumps
where the edges meet move with it: ``--edges``); the camera drifting 3 px and back under light flickering at 100 Hz;
a 128² view drifting 5 px and back over a larger surface (texture leaves the
view and new texture enters: the frames are not periodic) under 120 Hz flicker;
the rigid scene through MJPEG and through H.264 at the codecs' default quality
(FFmpeg's: a 200 kb/s rate control that at 2200 fps holds MJPEG between its
quantiser scales 16 and 31; CRF 23 for H.264), and through MJPEG at the fixed
scales 3 (fine) and 31 (the coarsest); MJPEG also with ``--dequantize decoded``
(the default, ``auto``, takes the coefficients at their means given their levels
where that is estimated to be better, :mod:`visualmic.dequantize`).
At 0.05 px H.264 copies almost every frame (nothing is left to recover), so
the rigid scene also goes through H.264 at 0.3 and 1 px, where the codec keeps
some of the motion; there also with ``--copies keep`` (the decoded frames measured
as they are; the default sets the blocks the codec copied aside,
:mod:`visualmic.intercoded`). Two more columns put these figures in context: the 2014
recipe with a zero-phase high-pass instead of its causal one (what the better
public ports do: 4-5 dB under the bound on the rigid scene), and an oracle that
combines visualmic's own channel signals with the weights the truth makes best
(no combination of those channels can beat it). For each, the median of the recovered motion on the frames
where the sound moved the surface by 0.10-0.15 px shows how much of such motion the file
still holds (H.264 quantises it away).

One scene is also run end to end through the command line on an FFV1 video, to
show that the file path gives the same figure as the in-memory one.

Usage::

    python benchmarks/quality.py           # writes benchmarks/results/quality.{json,md,png}
    python benchmarks/quality.py --quick   # a few scenes, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from scipy.ndimage import gaussian_filter

import visualmic
from visualmic.audio import highpass
from visualmic.combine import davis2014_combine
from visualmic.metrics import evaluate, snr_db
from visualmic.synth import Camera, creep, make_scene, melody, speech

RESULTS = Path(__file__).parent / "results"
FPS = 2200.0
BAND = (80.0, 1000.0)


def measure(amplitude_px: float, noise: float, *, seconds: float, seed: int) -> dict:
    """SNR of both methods and the bound on one scene."""
    scene = make_scene(
        melody(seconds, rate_hz=FPS, seed=seed), fps=FPS, size=(128, 128), amplitude_px=amplitude_px,
        camera=Camera(read_noise=noise, bit_depth=8), seed=seed,
    )
    frames = np.concatenate(list(scene.frames()))
    # Without camera noise, quantisation is a deterministic function of the image, not
    # independent noise: the texture dithers it and no bound follows from sigma^2 = 1/12.
    bound = scene.bound_snr_db(BAND) if noise > 0 else float("nan")
    row = {"amplitude_px": amplitude_px, "noise_grey": noise, "bound_db": bound}
    for method in ("phase", "davis2014"):
        start = time.perf_counter()
        rec = visualmic.recover(frames, fps=FPS, method=method)
        row[f"{method}_s"] = time.perf_counter() - start
        row[f"{method}_db"] = snr_db(rec.native_audio, scene.displacement_px, fps=FPS, band_hz=BAND, trim=200)
    row["gap_to_bound_db"] = row["bound_db"] - row["phase_db"]
    row["gain_over_davis2014_db"] = row["phase_db"] - row["davis2014_db"]
    return row


def sound_examples(quick: bool) -> list[dict]:
    """Speech and music through both methods, scored with every metric of ``evaluate``."""
    cases = [("speech", 2200.0), ("melody", 2200.0)]
    if not quick:
        cases.insert(1, ("speech", 6000.0))
    rows = []
    for name, fps in cases:
        sound = speech(rate_hz=fps) if name == "speech" else melody(4.0, rate_hz=fps, seed=7)
        scene = make_scene(sound, fps=fps, size=(128, 128), amplitude_px=0.02, camera=Camera(read_noise=2.0), seed=5)
        frames = np.concatenate(list(scene.frames()))
        band = (80.0, 0.48 * fps)  # the bound and every metric over the same band
        row = {"sound": name, "fps": fps, "amplitude_px": 0.02, "noise_grey": 2.0, "band_hz": band,
               "bound_db": scene.bound_snr_db(band)}
        for method in ("phase", "davis2014"):
            rec = visualmic.recover(frames, fps=fps, method=method)
            row[method] = evaluate(rec.native_audio, fps, scene.displacement_px, fps, band_hz=band).to_dict()
        rows.append(row)
        p, d = row["phase"], row["davis2014"]
        print(f"{name:>7} @ {fps:5.0f} fps  SNR {p['snr_db']:6.2f} / {d['snr_db']:6.2f} dB  "
              f"segSNR {p['segmental_snr_db']:6.2f} / {d['segmental_snr_db']:6.2f} dB  "
              f"LLR {p['llr']:.3f} / {d['llr']:.3f}  STOI {p['stoi']:.3f} / {d['stoi']:.3f}  (visualmic / davis2014)",
              flush=True)
    return rows


def command_line_check(seconds: float) -> dict:
    """The same kind of scene through ``visualmic synth`` and ``visualmic recover`` on FFV1."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "scene.mov"
        cli = [sys.executable, "-m", "visualmic"]
        subprocess.run([*cli, "synth", "melody", "-o", str(video), "--fps", str(FPS), "--duration", str(seconds),
                        "--amplitude", "0.02", "--noise", "2", "-q"], check=True)
        out = Path(tmp) / "out.wav"
        subprocess.run([*cli, "recover", str(video), "--fps", str(FPS), "--rate", "native", "-o", str(out), "-q"],
                       check=True)
        recovered, _ = soundfile.read(str(out))
        truth, _ = soundfile.read(str(Path(tmp) / "scene.truth.wav"))
        sidecar = json.loads((Path(tmp) / "scene.json").read_text())
    snr = snr_db(recovered, truth, fps=FPS, band_hz=BAND, trim=200)
    return {"command": ("visualmic synth melody -o scene.mov --amplitude 0.02 --noise 2; "
                        "visualmic recover --rate native"),
            "snr_db": snr, "bound_db": sidecar["bound_snr_db"]["snr_db"]}


def issue_scenes(seconds: float) -> list[dict]:
    """The issue-4 scene set: bound, visualmic (defaults) and the 2014 recipe, from video files."""
    from visualmic.outputs import write_video

    sound = melody(seconds, rate_hz=FPS, seed=41)
    drifting = 0.05 * sound / np.abs(sound).max() + creep(sound.size, 3.0)  # px, back to 0
    drifting_far = 0.05 * sound / np.abs(sound).max() + creep(sound.size, 5.0)
    camera = Camera(read_noise=2.0)
    common = dict(fps=FPS, size=(128, 128), camera=camera)
    rigid = make_scene(sound, amplitude_px=0.05, seed=51, **common)
    cases = [
        ("rigid", rigid, "ffv1"),
        ("membrane, still background",
         make_scene(sound, amplitude_px=0.05, mode="membrane", seed=52, **common), "ffv1"),
        ("opposite halves", make_scene(sound, amplitude_px=0.05, mode="opposite", seed=53, **common), "ffv1"),
        ("rigid, smoothed-noise texture whose edges do not match (shifted periodically)",
         make_scene(sound, amplitude_px=0.05, seed=56, texture=gaussian_filter(
             np.random.default_rng(56).standard_normal((128, 128)), 4.0), **common), "ffv1"),
        ("drift 3 px + 100 Hz flicker", make_scene(drifting, amplitude_px=float(np.abs(drifting).max()), seed=54,
                                                    flicker_hz=100.0, flicker_depth=0.1, **common), "ffv1"),
        ("drift 5 px over a larger scene + 120 Hz flicker", make_scene(
            drifting_far, amplitude_px=float(np.abs(drifting_far).max()), seed=55, flicker_hz=120.0, flicker_depth=0.1,
            **{**common, "size": (192, 192)}, view=(128, 128)), "ffv1"),
        ("rigid, MJPEG", rigid, "mjpeg"),
        ("rigid, MJPEG, --dequantize decoded", rigid, "mjpeg+dequantize=decoded"),
        ("rigid, MJPEG qscale 3", rigid, "mjpeg:3"),
        ("rigid, MJPEG qscale 31", rigid, "mjpeg:31"),
        ("rigid, MJPEG qscale 31, --dequantize decoded", rigid, "mjpeg:31+dequantize=decoded"),
        ("rigid, H.264", rigid, "h264"),
        ("rigid 0.3 px, H.264", make_scene(sound, amplitude_px=0.3, seed=51, **common), "h264"),
        ("rigid 0.3 px, H.264, --copies keep", make_scene(sound, amplitude_px=0.3, seed=51, **common),
         "h264+copies=keep"),
        ("rigid 1 px, H.264", make_scene(sound, amplitude_px=1.0, seed=51, **common), "h264"),
        ("rigid 1 px, H.264, --copies keep", make_scene(sound, amplitude_px=1.0, seed=51, **common),
         "h264+copies=keep"),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, scene, codec_quality in cases:
            codec_quality, _, override = codec_quality.partition("+")
            overrides = dict([override.split("=")]) if override else {}
            codec, _, quality = codec_quality.partition(":")
            video = Path(tmp) / f"scene.{'mkv' if codec == 'ffv1' else 'mov'}"
            write_video(video, scene.frames(), fps=FPS, codec=codec, quality=int(quality) if quality else None)
            row = {"scene": name, "codec": codec, "quality": int(quality) if quality else None,
                   "bound_db": scene.bound_snr_db(BAND)}

            def score(sound: np.ndarray) -> float:
                return snr_db(sound, scene.displacement_px, fps=FPS, band_hz=BAND, trim=200)

            for method in ("phase", "davis2014"):
                rec = visualmic.recover(video, fps=FPS, method=method, **overrides)
                row[f"{method}_db"] = score(rec.native_audio)
                if method == "davis2014":
                    row["davis2014_zero_phase_db"] = score(zero_phase_2014(rec))
                else:
                    row["best_linear_combination_db"] = score(best_linear_combination(rec, scene.displacement_px))
                    row["estimated_snr_db"] = rec.estimated_snr_db
                    row["estimated_snr_is_upper_bound"] = rec.summary()["estimated_snr_is_upper_bound"]
                    row["repeated_frames_fraction"] = rec.repeated_frames / rec.frames
                    # Where the surface moved by 0.10-0.15 px, how far the recovered motion says it moved:
                    # a codec that drops sub-pixel motion leaves nothing there to recover.
                    sound_px = highpass(scene.displacement_px, fps=FPS, cutoff_hz=rec.highpass_hz)  # drift aside
                    zone = (sound_px > 0.10) & (sound_px < 0.15)
                    row["recovered_px_where_moved_0_10_to_0_15"] = (
                        float(np.median(rec.displacement_px[zone])) if zone.any() else None)
                    row["regions"] = rec.region_grid
            row["gap_to_bound_db"] = row["bound_db"] - row["phase_db"]
            row["gain_over_davis2014_db"] = row["phase_db"] - row["davis2014_db"]
            row["gain_over_davis2014_zero_phase_db"] = row["phase_db"] - row["davis2014_zero_phase_db"]
            rows.append(row)
            print(f"{name:30s} bound {row['bound_db']:6.1f}  visualmic {row['phase_db']:6.1f} "
                  f"(estimated {'<=' if row['estimated_snr_is_upper_bound'] else ''}{row['estimated_snr_db']:5.1f}, "
                  f"regions {row['regions']}, repeated frames {100 * row['repeated_frames_fraction']:.0f} %, "
                  f"oracle combination {row['best_linear_combination_db']:6.1f})  davis2014 {row['davis2014_db']:6.1f} "
                  f"(zero-phase {row['davis2014_zero_phase_db']:6.1f})", flush=True)
    return rows


def zero_phase_2014(rec: visualmic.Recovery) -> np.ndarray:
    """The 2014 recipe with a zero-phase high-pass instead of its causal one: its bands aligned and
    summed as in 2014, then filtered forwards and backwards (as the better public ports do)."""
    return highpass(davis2014_combine(rec.band_signals_px).signal_px, fps=rec.fps, cutoff_hz=rec.highpass_hz)


def best_linear_combination(rec: visualmic.Recovery, truth_px: np.ndarray) -> np.ndarray:
    """An oracle: the recovery's channel signals combined with the weights that the truth makes best
    (``C^-1 g``, from each channel's true gain g and the covariance C of its errors). No combination
    of these channels without the truth can do better than this (nor than the bound)."""
    signals = highpass(rec.band_signals_px, fps=rec.fps, cutoff_hz=rec.highpass_hz)
    fitted = signals[:, 200:-200]
    truth = highpass(truth_px, fps=rec.fps, cutoff_hz=rec.highpass_hz)[200:-200]
    gains = fitted @ truth / (truth @ truth)
    errors = fitted - np.outer(gains, truth)
    weights = np.linalg.lstsq(np.cov(errors), gains, rcond=None)[0]
    return weights @ signals


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({r["noise_grey"] for r in rows})
    fig, axes = plt.subplots(1, len(noises), figsize=(4.2 * len(noises), 3.8), sharey=True)
    for ax, noise in zip(np.atleast_1d(axes), noises):
        sub = sorted((r for r in rows if r["noise_grey"] == noise), key=lambda r: r["amplitude_px"])
        amp = [r["amplitude_px"] for r in sub]
        if noise > 0:
            ax.semilogx(amp, [r["bound_db"] for r in sub], "k--", label="Cramér-Rao bound")
        ax.semilogx(amp, [r["phase_db"] for r in sub], "o-", label="visualmic")
        ax.semilogx(amp, [r["davis2014_db"] for r in sub], "s-", label="davis2014")
        ax.set_title(f"camera noise {noise:g} grey levels" + (" (quantisation only)" if noise == 0 else ""))
        ax.set_xlabel("motion amplitude (pixels, peak)")
        ax.grid(True, alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("SNR of recovered waveform, 80-1000 Hz (dB)")
    np.atleast_1d(axes)[-1].legend()
    fig.suptitle("Rigid textured surface, 128x128, 8-bit, 2200 fps, melody")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few short scenes")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality.json")
    args = parser.parse_args()
    amplitudes = [0.003, 0.03] if args.quick else [0.001, 0.003, 0.01, 0.03, 0.1]
    noises = [2.0] if args.quick else [0.0, 2.0, 8.0]
    seconds = 1.0 if args.quick else 2.0
    rows = []
    print(f"{'amp px':>8} {'noise':>6} {'bound':>7} {'visualmic':>9} {'gap':>6} {'davis2014':>9} {'gain':>6}")
    for i, noise in enumerate(noises):
        for j, amplitude in enumerate(amplitudes):
            row = measure(amplitude, noise, seconds=seconds, seed=10 * i + j)
            rows.append(row)
            print(f"{amplitude:8.3f} {noise:6.1f} {row['bound_db']:7.2f} {row['phase_db']:9.2f} "
                  f"{row['gap_to_bound_db']:6.2f} {row['davis2014_db']:9.2f} {row['gain_over_davis2014_db']:6.2f}",
                  flush=True)
    scenes = issue_scenes(seconds)
    sounds = sound_examples(args.quick)
    check = command_line_check(seconds)
    print(f"command line, PNG in MOV: {check['snr_db']:.2f} dB (bound {check['bound_db']:.2f} dB)")
    meaningful = [r["gap_to_bound_db"] for r in rows if r["bound_db"] > 0]  # audible: bound above 0 dB
    summary = {
        "scenes_with_bound_above_0db": len(meaningful),
        "mean_gap_to_bound_db": float(np.mean(meaningful)) if meaningful else float("nan"),
        "max_gap_to_bound_db": float(np.max(meaningful)) if meaningful else float("nan"),
        "min_gain_over_davis2014_db_where_bound_above_20db": float(
            min((r["gain_over_davis2014_db"] for r in rows if r["bound_db"] > 20), default=float("nan"))
        ),
    }
    print(json.dumps(summary))
    result = {"benchmark": "quality", "visualmic_version": visualmic.__version__, "fps": FPS, "band_hz": BAND,
              "scene": "rigid procedural texture 128x128, 8-bit, melody", "rows": rows, "sounds": sounds,
              "command_line": check, "issue_scenes": scenes,
              "summary": summary}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    table = ["| amplitude (px) | noise (grey) | bound (dB) | visualmic (dB) | gap (dB) | davis2014 (dB) | gain (dB) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['amplitude_px']:g} | {r['noise_grey']:g} | {r['bound_db']:.1f} | {r['phase_db']:.1f} | "
              f"{r['gap_to_bound_db']:.2f} | {r['davis2014_db']:.1f} | {r['gain_over_davis2014_db']:.1f} |"
              for r in rows]
    table = [line.replace("| nan |", "| n/a |") for line in table]
    table.append("")
    table.append("n/a: without camera noise, 8-bit quantisation is deterministic, not independent noise, "
                 "so no Cramér-Rao bound applies.")
    table.append(f"Summary: {json.dumps(summary)}")
    table += ["", "Scenes of issue 4 (128x128, 8-bit, 2 grey levels of noise, 0.05 px unless said, melody; "
              "recovered from the video file with default options):", "",
              "| scene | codec | bound (dB) | visualmic (dB) | gap (dB) | estimated (dB; ≤: an upper bound, lossy) |"
              " repeated frames | recovered motion where it moved 0.10-0.15 px (median, px) | regions |"
              " oracle combination of visualmic's channels (dB) | davis2014 (dB) | gain (dB) |"
              " davis2014, zero-phase high-pass (dB) | gain (dB) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['scene']} | {r['codec']} | {r['bound_db']:.1f} | {r['phase_db']:.1f} | "
              f"{r['gap_to_bound_db']:.2f} | "
              f"{'≤ ' if r['estimated_snr_is_upper_bound'] else ''}{r['estimated_snr_db']:.1f} | "
              f"{100 * r['repeated_frames_fraction']:.0f} % | "
              + ("n/a" if r["recovered_px_where_moved_0_10_to_0_15"] is None
                 else f"{r['recovered_px_where_moved_0_10_to_0_15']:.3f}")
              + f" | {r['regions']} | {r['best_linear_combination_db']:.1f} | {r['davis2014_db']:.1f} | "
              f"{r['gain_over_davis2014_db']:.1f} | {r['davis2014_zero_phase_db']:.1f} | "
              f"{r['gain_over_davis2014_zero_phase_db']:.1f} |" for r in scenes]
    table += ["", "Real sounds (128x128, 0.02 px, 2 grey levels of noise), visualmic / davis2014, "
              "band 80 Hz-0.48 fps:", "",
              "| sound | fps | bound (dB) | SNR (dB) | segmental SNR (dB) | LLR | STOI |",
              "|---|---:|---:|---|---|---|---|"]
    for r in sounds:
        p, d = r["phase"], r["davis2014"]
        table.append(f"| {r['sound']} | {r['fps']:g} | {r['bound_db']:.1f} | {p['snr_db']:.1f} / {d['snr_db']:.1f} | "
                     f"{p['segmental_snr_db']:.1f} / {d['segmental_snr_db']:.1f} | {p['llr']:.2f} / {d['llr']:.2f} | "
                     f"{p['stoi']:.2f} / {d['stoi']:.2f} |")
    args.output.with_suffix(".md").write_text("\n".join(table) + "\n")
    plot(rows, args.output.with_suffix(".png"))
    print(f"wrote {args.output} (.md, .png)")


if __name__ == "__main__":
    main()
