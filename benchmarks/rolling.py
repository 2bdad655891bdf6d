"""Rolling-shutter benchmark: sound above the frame rate from a 60 fps camera, and line-delay calibration.

Simulated rolling-shutter videos (60 fps, a few hundred rows, line delays of tens of
microseconds, 8-bit with camera noise) of a 440 Hz tone, a melody and real speech,
and the melody again with the camera creeping 2 px and back over the clip;
each recovered by `visualmic.api.recover_rolling` and, side by side on the same
frames, by the same row measurements with the gaps filled by linear interpolation
(what simple implementations do). Also the calibration from flicker videos.

Prints a table and writes benchmarks/results/rolling.{json,md}.

    python benchmarks/rolling.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy.signal

from visualmic.api import calibrate_line_delay, recover_rolling
from visualmic.audio import highpass, normalize_peak, resample
from visualmic.metrics import evaluate
from visualmic.rolling import RowMotion, RowTiming, place_on_grid, remove_row_offsets
from visualmic.synth import (
    Camera, RollingShutter, creep, exposed_displacement, make_scene, melody, scaled_to_peak, speech,
)

RESULTS = Path(__file__).parent / "results"
AUDIO_RATE = 48000
FPS = 60.0


def tone_levels(audio: np.ndarray, rate_hz: int, tone_hz: float = 440.0) -> dict[str, float]:
    """Strongest frequency in 50-3000 Hz, the tone over the band's median and over the frame-rate sidebands (dB)."""
    freqs, power = scipy.signal.welch(audio, fs=rate_hz, nperseg=rate_hz // 2)
    band = (freqs >= 50) & (freqs <= 3000)

    def level(hz: float) -> float:
        k = int(np.argmin(np.abs(freqs - hz)))
        return float(10 * np.log10(power[k - 1 : k + 2].max()))

    return {
        "strongest_hz": float(freqs[band][np.argmax(power[band])]),
        "tone_over_median_db": level(tone_hz) - float(10 * np.log10(np.median(power[band]))),
        "tone_over_sidebands_db": level(tone_hz) - max(level(tone_hz + d) for d in (-120, -60, 60, 120)),
    }


def linear_gaps(frames: np.ndarray, *, line_delay_s: float, exposure_s: float) -> tuple[np.ndarray, int]:
    """The comparison: the same rows, gaps bridged by straight lines, at 16 kHz."""
    timing = RowTiming(fps=FPS, line_delay_s=line_delay_s, exposure_s=exposure_s)
    rows = remove_row_offsets(RowMotion(frames[:64].mean(axis=0)).displacement(frames))
    times = timing.times_s(np.arange(rows.shape[0]), rows=rows.shape[1])
    grid, observed = place_on_grid(rows, times, rate_hz=16000, cutoff_hz=7200, duration_s=rows.shape[0] / FPS)
    known = np.flatnonzero(observed)
    filled = np.interp(np.arange(grid.size), known, grid[known])
    return normalize_peak(resample(highpass(filled, fps=16000, cutoff_hz=80), rate_in_hz=16000,
                                   rate_out_hz=AUDIO_RATE)), AUDIO_RATE


def correlation(snr_db: float) -> float:
    """Correlation with the truth after best lag, sign and gain, from the SNR they give."""
    ratio = 10 ** (snr_db / 10)
    return float(np.sqrt(ratio / (1 + ratio)))


def run(quick: bool) -> dict:
    duration = 1.0 if quick else 2.0
    t = np.arange(int(duration * AUDIO_RATE)) / AUDIO_RATE
    sounds = {"tone 440 Hz": np.sin(2 * np.pi * 440 * t), "melody": melody(duration, rate_hz=AUDIO_RATE, seed=3)}
    if not quick:
        sounds["speech"] = speech(rate_hz=AUDIO_RATE)
    cameras = [(40e-6, 300, 0.0), (25e-6, 480, 2e-4)] if not quick else [(40e-6, 300, 0.0)]
    # (camera, sound, px the camera creeps and back over the clip): the last, a creeping camera.
    cases = [(camera, name, 0.0) for camera in cameras for name in sounds] + [(cameras[0], "melody", 2.0)]
    rows_out = []
    for (line_delay, rows, exposure), name, creep_px in cases:
        signal = sounds[name]
        if creep_px:  # the sound at 0.05 px peak plus the creep (the truth below stays the sound)
            name = f"{name}, camera creeping {creep_px:g} px"
        motion = 0.05 * scaled_to_peak(signal, 1.0) + creep(signal.size, creep_px)
        scene = make_scene(motion, fps=FPS, size=(rows, 256), amplitude_px=float(np.abs(motion).max()), seed=1,
                           camera=Camera(read_noise=1.0, bit_depth=8), audio_rate_hz=AUDIO_RATE,
                           rolling_shutter=RollingShutter(line_delay_s=line_delay, exposure_s=exposure))
        frames = np.concatenate(list(scene.frames()))
        started = time.perf_counter()
        rec = recover_rolling(frames, fps=FPS, line_delay_s=line_delay, exposure_s=exposure)
        wall = time.perf_counter() - started
        baseline, baseline_rate = linear_gaps(frames, line_delay_s=line_delay, exposure_s=exposure)
        truth = exposed_displacement(scaled_to_peak(signal, 1.0), AUDIO_RATE,
                                     np.arange(signal.size) / AUDIO_RATE, exposure)
        row = {"sound": name, "line_delay_us": line_delay * 1e6, "rows": rows, "exposure_ms": exposure * 1e3,
               "observed_fraction": rec.observed_fraction, "band_hz": list(rec.band_hz),
               "frames_per_s": frames.shape[0] / wall}
        for label, audio, rate in (("visualmic", rec.audio, rec.rate_hz), ("linear_gaps", baseline, baseline_rate)):
            if name.startswith("tone"):
                row[label] = tone_levels(audio, rate)
            else:
                band = (150.0, min(2000.0, rec.band_hz[1]))
                ev = evaluate(audio, rate, truth, AUDIO_RATE, band_hz=band)
                row[label] = {"band_hz": list(band), "snr_db": ev.snr_db, "r": correlation(ev.snr_db),
                              "segmental_snr_db": ev.segmental_snr_db, "stoi": ev.stoi}
        rows_out.append(row)
    calibrations = []
    for line_delay, rows, flicker, fps in [(31e-6, 300, 100.0, 60.0), (18.5e-6, 720, 120.0, 50.0)]:
        scene = make_scene(np.sin(2 * np.pi * 440 * t), fps=fps, size=(rows, 128), amplitude_px=0.05, seed=2,
                           camera=Camera(read_noise=1.0, bit_depth=8), audio_rate_hz=AUDIO_RATE,
                           rolling_shutter=RollingShutter(line_delay_s=line_delay, exposure_s=2e-4),
                           flicker_hz=flicker, flicker_depth=0.1)
        found = calibrate_line_delay(np.concatenate(list(scene.frames())), flicker_hz=flicker, fps=fps)
        calibrations.append({"line_delay_us": line_delay * 1e6, "rows": rows, "flicker_hz": flicker, "fps": fps,
                             "estimated_us": found["line_delay_s"] * 1e6,
                             "error_percent": 100 * (found["line_delay_s"] / line_delay - 1),
                             "uncertainty_percent": 100 * found["uncertainty_s"] / line_delay,
                             "row_order": found["row_order"]})
    return {"machine": f"{platform.machine()}, {platform.python_version()}, {platform.platform()}",
            "quick": quick, "recoveries": rows_out, "calibrations": calibrations}


def table(results: dict) -> str:
    lines = ["| sound | line delay | rows | exposure | observed | visualmic | linear gaps |",
             "|---|---|---|---|---|---|---|"]
    for row in results["recoveries"]:
        cells = []
        for label in ("visualmic", "linear_gaps"):
            m = row[label]
            if "tone_over_median_db" in m:
                cells.append(f"{m['strongest_hz']:.0f} Hz strongest, {m['tone_over_median_db']:.1f} dB over median, "
                             f"sidebands {m['tone_over_sidebands_db']:.1f} dB down")
            else:
                stoi = "" if m["stoi"] is None else f", STOI {m['stoi']:.2f}"
                cells.append(f"r {m['r']:.3f} ({m['band_hz'][0]:.0f}-{m['band_hz'][1]:.0f} Hz), "
                             f"segSNR {m['segmental_snr_db']:.1f} dB{stoi}")
        lines.append(f"| {row['sound']} | {row['line_delay_us']:g} us | {row['rows']} | {row['exposure_ms']:g} ms | "
                     f"{row['observed_fraction']:.0%} | {cells[0]} | {cells[1]} |")
    lines += ["", "| true line delay | rows | flicker | fps | estimated | error | stated uncertainty | order |",
              "|---|---|---|---|---|---|---|---|"]
    for c in results["calibrations"]:
        lines.append(f"| {c['line_delay_us']:g} us | {c['rows']} | {c['flicker_hz']:g} Hz | {c['fps']:g} | "
                     f"{c['estimated_us']:.4f} us | {c['error_percent']:+.3f} % | {c['uncertainty_percent']:.3f} % | "
                     f"{c['row_order']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one camera, 1 s sounds, no speech")
    args = parser.parse_args()
    results = run(args.quick)
    text = table(results)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "rolling.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "rolling.md").write_text(f"Machine: {results['machine']}\n\n{text}\n")


if __name__ == "__main__":
    main()
