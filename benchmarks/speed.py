"""Speed of sound recovery, side by side with its floors, in one run.

For each frame size (1 scale x 2 orientations, the configuration of the speed
goals) it measures, in frames per second:

* ``fft_floor``: one ``rfft2`` of the frame plus one inverse FFT per band at the
  band's cropped size, on all cores (the faster of two schedules: chunks in turn
  with every core in each FFT, or chunks in parallel threads with one core
  each), with the FFT library visualmic uses here
  (:mod:`visualmic.fftlib`: MKL through torch where installed): no implementation
  of the method that computes the bands of every frame can avoid this work (the
  first-order path, :mod:`visualmic.linear`, computes none); ``fft_floor_scipy``
  the same with scipy's pocketfft;
* ``npy``: ``visualmic.recover`` end to end from a memory-mapped ``.npy``, as by
  default (the motion, 0.05 px, is measured to first order); ``npy_phases`` the same
  by the phase path (``VISUALMIC_LINEAR=0``, numba's fused kernel when installed);
  ``npy_scipy_fft`` the phase path with scipy's FFTs (``VISUALMIC_FFT=scipy``);
* ``npy_numpy_kernel``: the phase path with its numpy per-pixel work (``VISUALMIC_NUMBA=0``);
* ``decode``: PyAV alone decoding the same frames from a lossless FFV1 file;
* ``ffv1``: ``visualmic.recover`` end to end from that FFV1 file (``ffv1_phases``: by the phase path);
* ``pyrtools_2014``: a plain implementation of the 2014 method on
  ``pyrtools.SteerablePyramidFreq`` (measured on fewer frames: it is slow);
* ``npy_3x4``: the same with 3 scales x 4 orientations;
* ``npy_1_thread``: one thread (one core) instead of all;
* ``dask_2_workers``: a local Dask cluster of 2 single-threaded worker processes
  (started once, outside the timing), each reading its own frame ranges;
* ``rolling``: rolling-shutter recovery of the same frames (every row a sample);
* ``torch_cpu``: the GPU backend's code run on the CPU (``device="torch:cpu"``),
  and ``cuda`` on a CUDA GPU when torch sees one;

and the ratios that the goals are stated in (each time the best of 3 runs; ``npy``
against ``fft_floor``: three such pairs taken in turn, the median of their ratios, and
at 512² the same on a video four times longer, ``npy_long``, where the set-up costs
that do not grow with the video weigh four times less).
``ffv1_cpu_bound`` estimates the least ``ffv1 / decode`` time any program could
reach here: PyAV's decoding already keeps every core busy (FFV1 slice threads), so the
CPU seconds of decoding and of recovering from ``.npy`` must share the cores:
``(decode_cpu + npy_cpu) / cores / decode_wall`` (an estimate, not a bound: beside the
decoder a video is measured on fewer threads, which can cost less CPU than ``npy_cpu``).
Then the peak memory of fresh processes recovering 1,000 and 20,000 frames of
256² from memory-mapped files, with the goals' configuration and with the
default options (all scales, regions): it must not grow with the video's length. The machine is shared and noisy:
only the ratios within one run mean much.

Usage::

    python benchmarks/speed.py            # writes benchmarks/results/speed.json
    python benchmarks/speed.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import scipy

import visualmic
import visualmic.engine
from visualmic import fftlib
from visualmic.outputs import write_video
from visualmic.pyramid import SteerablePyramid
from visualmic.synth import procedural_texture, moving_frames

RESULTS = Path(__file__).parent / "results"
LONG_SIZE = 512  # also measured on a 4x longer video (npy and floor only)


def best_of(fn, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def alternating(first, second, repeats: int) -> tuple[float, float, float]:
    """Best times of two measurements taken in turn, ``repeats`` times each, and the median ratio
    of the pairs (second / first): on a shared machine, pairs taken moments apart move together."""
    pairs = [(first(), second()) for _ in range(repeats)]
    a, b = zip(*pairs)
    return min(a), min(b), float(np.median([y / x for x, y in pairs]))


def cpu_seconds(fn) -> float:
    """CPU time (all threads of this process) of one call."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def with_environment(name: str, value: str, fn):
    """Run ``fn`` with the environment variable ``name`` set to ``value``."""
    os.environ[name] = value
    try:
        return fn()
    finally:
        del os.environ[name]


def torch_devices() -> dict[str, str]:
    """The torch devices to measure: the CPU always (when torch is installed), CUDA when present."""
    try:
        import torch
    except ImportError:
        return {}
    devices = {"torch_cpu": "torch:cpu"}
    if torch.cuda.is_available():
        devices["cuda"] = "cuda"
    return devices


def make_frames(size: int, count: int) -> np.ndarray:
    """8-bit frames of a texture moving with a 440 Hz tone, built chunk by chunk (little memory)."""
    motion = 0.05 * np.sin(2 * np.pi * 440 * np.arange(count) / 2200)
    texture = procedural_texture((size, size), seed=1)
    rng = np.random.default_rng(0)
    return np.concatenate([
        np.clip(np.rint(chunk + rng.standard_normal(chunk.shape)), 0, 255).astype(np.uint8)
        for chunk in moving_frames(texture, motion, chunk_frames=64)
    ])


def fft_floor(frames: np.ndarray, chunk: int, *, parallel_chunks: bool) -> None:
    """The pyramid's FFTs alone: chunks one after another with all cores in each FFT, or
    (``parallel_chunks``) chunks in parallel threads with one core each, as visualmic runs them."""
    pyr = SteerablePyramid(frames.shape[1:], scales=1, orientations=2)
    cores = os.cpu_count() or 1

    def transform(first: int, workers: int) -> None:
        spec = fftlib.rfft2(frames[first : first + chunk].astype(np.float32), workers=workers)
        for band in pyr.bands_info:
            # Same size of inverse FFT as the product; the gather itself is not counted.
            fftlib.ifft2(spec[:, : band.shape[0], : band.shape[1]].astype(np.complex64), workers=workers)

    starts = range(0, frames.shape[0], chunk)
    if parallel_chunks:
        list(visualmic.engine.map_ordered(lambda first: transform(first, 1), starts, threads=cores))
    else:
        for first in starts:
            transform(first, cores)


def fastest_fft_floor(frames: np.ndarray, chunk: int, repeats: int) -> float:
    """Seconds of the faster of :func:`fft_floor`'s two schedules (best of ``repeats`` each)."""
    return min(best_of(lambda: fft_floor(frames, chunk, parallel_chunks=parallel), repeats)
               for parallel in (False, True))


def decode_only(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray()
            count += 1
    return count


def pyrtools_2014(frames: np.ndarray) -> np.ndarray:
    """The 2014 method, plainly: a pyrtools pyramid per frame, A²-weighted phase per band."""
    import pyrtools as pt

    ref = pt.pyramids.SteerablePyramidFreq(frames[0].astype(float), height=1, order=1, is_complex=True)
    out = np.zeros((frames.shape[0], 2))
    for t, frame in enumerate(frames):
        pyr = pt.pyramids.SteerablePyramidFreq(frame.astype(float), height=1, order=1, is_complex=True)
        for b in range(2):
            coeffs = pyr.pyr_coeffs[(0, b)]
            amp = np.abs(coeffs)
            dphi = np.angle(coeffs * np.conj(ref.pyr_coeffs[(0, b)]))
            out[t, b] = np.sum(amp**2 * dphi) / np.sum(amp)
    return out


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_by_length(tmp: Path, size: int, counts: list[int], *, options: str) -> list[dict]:
    """Peak resident memory of a fresh process recovering ``count`` frames from a memory-mapped .npy
    with the keyword arguments ``options`` (Python source)."""
    rows = []
    block = make_frames(size, 200)
    for count in counts:
        path = tmp / f"m{count}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size))
        for first in range(0, count, block.shape[0]):
            array[first : first + block.shape[0]] = block[: count - first]
        array.flush()
        del array
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
        code = (
            "import re, visualmic; "
            f"visualmic.recover({str(path)!r}, fps=2200{options}); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows.append({"size": size, "frames": count, "options": f"fps=2200{options}",
                     "peak_rss_mb": float(out.stdout.strip().splitlines()[-1])})
        path.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and counts (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS / "speed.json")
    args = parser.parse_args()
    # Long enough that per-frame speed, not set-up, dominates (users' videos have thousands of frames).
    sizes = [(128, 1200), (256, 300)] if args.quick else [(128, 6000), (512, 1200), (704, 800)]
    repeats = 1 if args.quick else 3
    rows = []
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with tempfile.TemporaryDirectory() as tmp:
        for size, count in sizes:
            frames = make_frames(size, count)
            npy = Path(tmp) / f"f{size}.npy"
            np.save(npy, frames)
            mkv = Path(tmp) / f"f{size}.mkv"
            write_video(mkv, [frames], fps=2200, codec="ffv1")
            chunk = visualmic.engine.default_chunk_frames((size, size))
            options = dict(fps=2200, scales=1, orientations=2)
            scipy_floor_s = with_environment("VISUALMIC_FFT", "scipy",
                                             lambda: fastest_fft_floor(frames, chunk, repeats))
            def recover_npy_s() -> float:
                return best_of(lambda: visualmic.recover(npy, **options), repeats)

            # The goal's ratio: floor and recovery in turn (each the best of `repeats`), 3 pairs.
            floor_s, npy_s, npy_ratio = alternating(lambda: fastest_fft_floor(frames, chunk, repeats), recover_npy_s,
                                                    3)
            phases_s = with_environment("VISUALMIC_LINEAR", "0", recover_npy_s)
            scipy_fft_s = with_environment("VISUALMIC_LINEAR", "0",
                                           lambda: with_environment("VISUALMIC_FFT", "scipy", recover_npy_s))
            numpy_kernel_s = with_environment("VISUALMIC_LINEAR", "0",
                                              lambda: with_environment("VISUALMIC_NUMBA", "0", recover_npy_s))
            decode_s = best_of(lambda: decode_only(mkv), repeats)
            ffv1_s = best_of(lambda: visualmic.recover(mkv, **options), repeats)
            ffv1_phases_s = with_environment("VISUALMIC_LINEAR", "0",
                                             lambda: best_of(lambda: visualmic.recover(mkv, **options), repeats))
            cpu_bound = (cpu_seconds(lambda: decode_only(mkv)) + cpu_seconds(lambda: visualmic.recover(npy, **options))
                         ) / os.cpu_count() / decode_s
            ref_count = max(24, min(count, int(400 * (128 / size) ** 2)))
            ref_s = best_of(lambda: pyrtools_2014(frames[:ref_count]), 1) * count / ref_count
            many_s = best_of(lambda: visualmic.recover(npy, fps=2200, scales=3, orientations=4), repeats)
            single_s = best_of(lambda: visualmic.recover(npy, **options, threads=1), repeats)
            dask_s = best_of(lambda: visualmic.recover(npy, **options, scheduler=cluster.scheduler_address), repeats)
            line_delay = 0.8 / (size * 2200)  # readout: 80 % of the frame period
            rolling_s = best_of(lambda: visualmic.api.recover_rolling(npy, fps=2200, line_delay_s=line_delay), repeats)
            on_devices = {name: count / best_of(lambda: visualmic.recover(npy, **options, device=device), repeats)
                          for name, device in torch_devices().items()}
            row = {
                "size": size,
                "frames": count,
                "fps": {
                    "fft_floor": count / floor_s,
                    "fft_floor_scipy": count / scipy_floor_s,
                    "npy": count / npy_s,
                    "npy_phases": count / phases_s,
                    "npy_scipy_fft": count / scipy_fft_s,
                    "npy_numpy_kernel": count / numpy_kernel_s,
                    "decode": count / decode_s,
                    "ffv1": count / ffv1_s,
                    "ffv1_phases": count / ffv1_phases_s,
                    "pyrtools_2014": count / ref_s,
                    "npy_3x4": count / many_s,
                    "npy_1_thread": count / single_s,
                    "dask_2_workers": count / dask_s,
                    "rolling": count / rolling_s,
                    **on_devices,
                },
                "ratios": {
                    "npy_over_floor_time": npy_ratio,
                    "npy_phases_over_floor_time": phases_s / floor_s,
                    "first_order_speedup": phases_s / npy_s,
                    "npy_over_scipy_floor_time": npy_s / scipy_floor_s,
                    "npy_scipy_fft_over_scipy_floor_time": scipy_fft_s / scipy_floor_s,
                    "fft_library_speedup": scipy_fft_s / phases_s,
                    "ffv1_over_decode_time": ffv1_s / decode_s,
                    "ffv1_phases_over_decode_time": ffv1_phases_s / decode_s,
                    "ffv1_cpu_bound": cpu_bound,
                    "fused_kernel_speedup": numpy_kernel_s / phases_s,
                    "speedup_over_pyrtools_2014": ref_s / npy_s,
                    "all_cores_speedup": single_s / npy_s,
                },
            }
            if size == LONG_SIZE and not args.quick:  # the same on a 4x longer video: set-up costs amortised
                long_count = 4 * count
                np.save(npy, make_frames(size, long_count))
                long_frames = np.load(npy, mmap_mode="r")
                long_floor_s, long_npy_s, long_ratio = alternating(
                    lambda: fastest_fft_floor(long_frames, chunk, 1),
                    lambda: best_of(lambda: visualmic.recover(npy, **options), 1), 3)
                row["fps"].update(fft_floor_long=long_count / long_floor_s, npy_long=long_count / long_npy_s)
                row["ratios"]["npy_over_floor_time_long"] = long_ratio
                row["long_frames"] = long_count
            rows.append(row)
            f, r = row["fps"], row["ratios"]
            print(
                f"{size:4d}²  floor {f['fft_floor']:8.0f} (scipy {f['fft_floor_scipy']:7.0f})  npy {f['npy']:8.0f} "
                f"(phases {f['npy_phases']:7.0f}, scipy FFTs {f['npy_scipy_fft']:7.0f})  decode {f['decode']:8.0f}  "
                f"ffv1 {f['ffv1']:8.0f} (phases {f['ffv1_phases']:7.0f})  2014/pyrtools {f['pyrtools_2014']:7.1f}  "
                f"3x4 {f['npy_3x4']:7.0f}  "
                f"1 thread {f['npy_1_thread']:7.0f}  dask 2 {f['dask_2_workers']:7.0f}  rolling {f['rolling']:7.0f}  "
                f"phases' numpy kernel {f['npy_numpy_kernel']:7.0f}  "
                + "".join(f"{name} {f[name]:7.0f}  " for name in on_devices) + "fr/s | "
                f"npy/floor {r['npy_over_floor_time']:.2f}x"
                + (f" ({r['npy_over_floor_time_long']:.2f}x on {row['long_frames']} frames)"
                   if "long_frames" in row else "")
                + f"  ffv1/decode {r['ffv1_over_decode_time']:.2f}x "
                f"(estimated least {r['ffv1_cpu_bound']:.2f}x)  vs 2014 {r['speedup_over_pyrtools_2014']:.1f}x faster",
                flush=True,
            )
        memory_size, counts = (128, [500, 2000]) if args.quick else (256, [1000, 20000])
        memory = memory_by_length(Path(tmp), memory_size, counts, options=", scales=1, orientations=2")
        memory_defaults = memory_by_length(Path(tmp), memory_size, counts, options="")
    cluster.close()
    growths = []
    for runs in (memory, memory_defaults):
        for row in runs:
            print(f"peak memory, {row['size']}², {row['frames']:6d} frames, {row['options']}: "
                  f"{row['peak_rss_mb']:.0f} MB")
        growths.append(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1)
        print(f"peak memory grows {growths[-1]:+.1%} from {runs[0]['frames']} to {runs[-1]['frames']} frames")
    result = {
        "benchmark": "speed",
        "visualmic_version": visualmic.__version__,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "av": av.__version__,
            "numba": package_version("numba"),
            "torch": package_version("torch"),
            "fft": fftlib.fft_description(),
            "gpu": gpu_name(),
        },
        "config": "1 scale x 2 orientations (npy_3x4: 3 x 4), 8-bit frames, 2200 fps",
        "peak_rss_mb": peak_rss_mb(),
        "rows": rows,
        "memory_by_length": memory,
        "memory_growth": growths[0],
        "memory_by_length_defaults": memory_defaults,
        "memory_growth_defaults": growths[1],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
