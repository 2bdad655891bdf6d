"""Inter-coded video: sound and time with the blocks a codec copied set aside (``--copies``), side by side.

Simulated scenes (128x128, 8-bit, 2 grey levels of camera noise, 2200 fps) through
H.264 at its default quality (x264, CRF 23) and at CRF 18 and 10: a rigid surface moving
0.15 to 3 px with a melody, two halves moving in opposition, a membrane on a still
background, the surface seen at 35 degrees, a 128² view of a larger surface,
drift of 3 px under 100 Hz flicker, and speech. Each video is recovered with
``copies="keep"`` (the decoded frames measured as they are), with the default
(``"auto"``: the copied blocks set aside, :mod:`visualmic.intercoded`), and by the
2014 recipe and its zero-phase variant, on the same file in the same run. SNR
against the true motion over 80-1000 Hz after the best lag, sign and gain, next to
the Cramér-Rao bound of the lossless scene. Then one 10 s video (22,000 frames)
timed both ways, alternately three times, for the cost of the block pass.

Prints a table and writes benchmarks/results/copies.{json,md}.

    python benchmarks/copies.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import visualmic
from visualmic.metrics import snr_db
from visualmic.outputs import write_video
from visualmic.synth import Camera, creep, make_scene, melody, speech

from quality import zero_phase_2014  # noqa: E402  (benchmarks/ is the script's folder)

RESULTS = Path(__file__).parent / "results"
FPS = 2200.0
BAND = (80.0, 1000.0)


def scenes(seconds: float, quick: bool) -> list[tuple[str, object, int | None]]:
    """(name, scene, CRF) of every row."""
    sound = melody(seconds, rate_hz=FPS, seed=41)
    common = dict(fps=FPS, size=(128, 128), camera=Camera(read_noise=2.0))

    def rigid(px: float, seed: int = 51, **extra: object) -> object:
        return make_scene(sound, amplitude_px=px, seed=seed, **{**common, **extra})

    rows = [(f"rigid {px:g} px", rigid(px), None) for px in (0.15, 0.3, 0.6, 1.0, 2.0, 3.0)]
    if quick:
        return rows[1:2]
    drifting = 0.3 * sound / np.abs(sound).max() + creep(sound.size, 3.0)
    return rows + [
        ("rigid 0.3 px, CRF 18", rigid(0.3), 18),
        ("rigid 0.05 px, CRF 10", rigid(0.05), 10),
        ("rigid 0.3 px, another texture", rigid(0.3, seed=60), None),
        ("rigid 0.3 px at 35 degrees", rigid(0.3, seed=58, direction_deg=35.0), None),
        ("opposite halves 0.3 px", make_scene(sound, amplitude_px=0.3, mode="opposite", seed=53, **common), None),
        ("membrane 0.3 px, still background",
         make_scene(sound, amplitude_px=0.3, mode="membrane", seed=52, **common), None),
        ("128² view of a larger surface, 0.3 px", make_scene(
            sound, amplitude_px=0.3, seed=55, **{**common, "size": (192, 192)}, view=(128, 128)), None),
        ("drift 3 px + 100 Hz flicker, 0.3 px", make_scene(
            drifting, amplitude_px=float(np.abs(drifting).max()), seed=54, flicker_hz=100.0, flicker_depth=0.1,
            **common), None),
        ("speech 0.3 px", make_scene(speech(rate_hz=FPS)[: int(3 * FPS)], amplitude_px=0.3, seed=57, **common), None),
    ]


def quality_rows(seconds: float, quick: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "scene.mp4"
        for name, scene, crf in scenes(seconds, quick):
            write_video(video, scene.frames(), fps=FPS, codec="h264", quality=crf)

            def score(sound: np.ndarray) -> float:
                return snr_db(sound, scene.displacement_px, fps=FPS, band_hz=BAND, trim=200)

            keep = visualmic.recover(video, fps=FPS, copies="keep")
            auto = visualmic.recover(video, fps=FPS)
            davis = visualmic.recover(video, fps=FPS, method="davis2014")
            row = {"scene": name, "crf": crf or 23, "bound_db": scene.bound_snr_db(BAND),
                   "keep_db": score(keep.native_audio), "auto_db": score(auto.native_audio), "copies": auto.copies,
                   "keep_estimated_db": keep.estimated_snr_db, "auto_estimated_db": auto.estimated_snr_db,
                   "auto_estimate_is_upper_bound": auto.summary()["estimated_snr_is_upper_bound"],
                   "davis2014_db": score(davis.native_audio), "davis2014_zero_phase_db": score(zero_phase_2014(davis)),
                   "repeated_frames_fraction": keep.repeated_frames / keep.frames,
                   "note": next((n for n in auto.notes if "--copies" in n), "")}
            rows.append(row)
            print(f"{name:40s} CRF {row['crf']:2d}  bound {row['bound_db']:5.1f}  keep {row['keep_db']:6.2f}  "
                  f"auto {row['auto_db']:6.2f} ({auto.copies}; estimated {auto.estimated_snr_db:6.2f})  "
                  f"davis2014 {row['davis2014_db']:6.2f} "
                  f"(zero-phase {row['davis2014_zero_phase_db']:6.2f})", flush=True)
    return rows


def timing(seconds: float, repeats: int) -> dict:
    """Wall time of keep and auto on one video, alternately (the machine's load drifts)."""
    scene = make_scene(melody(seconds, rate_hz=FPS, seed=41), amplitude_px=0.3, fps=FPS, size=(128, 128),
                       camera=Camera(read_noise=2.0), seed=51)
    times: dict[str, list[float]] = {"keep": [], "auto": []}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        frames = write_video(video, scene.frames(), fps=FPS, codec="h264")
        for _ in range(repeats):
            for copies in ("keep", "auto"):
                start = time.perf_counter()
                visualmic.recover(video, fps=FPS, copies=copies)
                times[copies].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    result = {"frames": frames, "frame_size": [128, 128], "keep_s": best["keep"], "auto_s": best["auto"],
              "ratio": best["auto"] / best["keep"], "all_s": times}
    print(f"{frames} frames of 128²: keep {best['keep']:.1f} s, auto {best['auto']:.1f} s "
          f"(x{result['ratio']:.2f}; best of {repeats}, alternately)", flush=True)
    return result


def table(results: dict) -> str:
    lines = ["| scene | CRF | bound (dB) | --copies keep (dB) | estimated (dB, ≤: upper bound) | default (dB) | "
             "estimated (dB) | gain (dB) | davis2014 (dB) | zero-phase davis2014 (dB) | default over zero-phase (dB) | "
             "frames copied whole |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        bound = "≤ " if r["auto_estimate_is_upper_bound"] else ""
        lines.append(f"| {r['scene']} | {r['crf']} | {r['bound_db']:.1f} | {r['keep_db']:.1f} | "
                     f"≤ {r['keep_estimated_db']:.1f} | {r['auto_db']:.1f} | {bound}{r['auto_estimated_db']:.1f} | "
                     f"{r['auto_db'] - r['keep_db']:+.1f} | {r['davis2014_db']:.1f} | "
                     f"{r['davis2014_zero_phase_db']:.1f} | {r['auto_db'] - r['davis2014_zero_phase_db']:+.1f} | "
                     f"{100 * r['repeated_frames_fraction']:.0f} % |")
    t = results.get("timing")
    if t:
        lines += ["", f"Time, {t['frames']} frames of 128² through H.264 (best of {len(t['all_s']['keep'])}, "
                  f"alternately): keep {t['keep_s']:.1f} s, default {t['auto_s']:.1f} s (x{t['ratio']:.2f})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one scene, no timing")
    args = parser.parse_args()
    results = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                          f"python {platform.python_version()}, visualmic {visualmic.__version__}",
               "rows": quality_rows(1.0 if args.quick else 2.0, args.quick)}
    if not args.quick:
        results["timing"] = timing(10.0, 3)
    text = table(results)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "copies.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "copies.md").write_text(f"Machine: {results['machine']}\n\n{text}\n")


if __name__ == "__main__":
    main()
