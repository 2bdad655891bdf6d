"""The fused (numba) kernel and the torch backend compute what the numpy path computes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import scipy
from hypothesis import given, settings
from hypothesis import strategies as st

import visualmic
from visualmic import fftlib, kernels, motion
from visualmic.errors import InputError
from visualmic.gpu import device_description
from visualmic.metrics import snr_db
from visualmic.pyramid import SteerablePyramid, _uncovered_spans

numba_missing = pytest.mark.skipif(kernels.numba is None, reason="numba is not installed (pip install numba)")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


torch = _torch()
torch_missing = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install torch)")
no_cuda = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="no CUDA GPU with torch here")


def _scene(size, grid, scales, periodic, seed=0):
    rng = np.random.default_rng(seed)
    frames = (rng.random((12, *size)) * 200).astype(np.float32)
    pyramid = SteerablePyramid(size, scales=scales, orientations=2, workers=1, periodic=periodic)
    refs = motion.prepare_references(pyramid, motion.reference_bands(pyramid.bands(frames[:8])), grid=grid,
                                     border_px=3.0)
    return pyramid, refs, frames[8:]


CASES = [((96, 96), 1, 2, False), ((128, 128), 4, 3, True), ((80, 100), 2, 2, True)]


@numba_missing
@pytest.mark.parametrize("size, grid, scales, periodic", CASES)
def test_fused_sums_equal_numpy_sums(size, grid, scales, periodic):
    pyramid, refs, frames = _scene(size, grid, scales, periodic)
    bands = pyramid.bands(frames)
    for band, ref in zip(bands, refs):
        flat = band.reshape(band.shape[0], -1)
        expected = motion._band_sums_numpy(flat, ref)
        fused = motion._band_sums_fused(flat, ref)
        assert fused.shape == expected.shape == (frames.shape[0], grid * grid, 2)
        np.testing.assert_allclose(fused, expected, rtol=0, atol=2e-6 * np.abs(expected).max())


@numba_missing
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**31))
def test_fused_angle_is_accurate_everywhere(count, seed):
    """Every octant and both axes: the sums of the angle equal numpy's to float32 precision."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(count) + 1j * rng.standard_normal(count)
    values[: count // 4] = rng.choice([1, -1, 1j, -1j], size=count // 4)  # exactly on the axes
    band = (values * 10.0 ** rng.uniform(-3, 3, count)).astype(np.complex64)[None]
    ref = np.stack([np.ones(count), np.zeros(count)]).astype(np.float32)
    weights = np.ones((4, count), np.float32)
    # One region per coefficient: the sums are the angle and real part of each.
    out = kernels.fused_phase_sums(band, ref, weights, kernels.region_segments(np.arange(count)), count)
    np.testing.assert_allclose(out[0, :, 0], np.angle(band[0].astype(np.complex128)), rtol=0, atol=5e-7)
    np.testing.assert_allclose(out[0, :, 4], band[0].real, rtol=1e-6)


@numba_missing
@pytest.mark.parametrize("size, scales, orientations, highpass",
                         [((96, 96), 1, 2, "merge"), ((80, 101), 3, 4, "drop"), ((65, 64), 2, 1, "merge"),
                          ((128, 96), 2, 3, "drop")])
def test_fused_band_spectra_equal_numpy(monkeypatch, size, scales, orientations, highpass):
    """Every block (plain, mirrored, read right to left) and every zeroed span, bit for bit."""
    pyramid = SteerablePyramid(size, scales=scales, orientations=orientations, highpass=highpass, workers=1)
    rng = np.random.default_rng(1)
    spectrum = pyramid.spectrum(rng.random((3, *size), dtype=np.float32) * 255)
    fused = [pyramid.band_spectrum(spectrum, i) for i in range(len(pyramid.bands_info))]
    monkeypatch.setenv("VISUALMIC_NUMBA", "0")
    for i, band in enumerate(fused):
        expected = pyramid.band_spectrum(spectrum, i)
        assert band.shape == expected.shape and band.dtype == np.complex64
        np.testing.assert_allclose(band, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
        assert np.array_equal(band == 0, expected == 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=12))
def test_uncovered_spans_tile_the_uncovered_entries(rows):
    covered = np.array(rows)
    count = np.zeros(covered.shape, int)
    for r, c in _uncovered_spans(covered):
        count[r, c] += 1
    np.testing.assert_array_equal(count, ~covered)  # every uncovered entry once, nothing else


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=300), st.integers(1, 50))
def test_region_segments_cover_every_coefficient_once(labels, longest):
    labels = np.array(labels)
    segments = kernels.region_segments(labels, longest=longest)
    covered = np.concatenate([np.arange(a, b) for a, b, _ in segments])
    np.testing.assert_array_equal(covered, np.arange(labels.size))
    assert np.all(segments[:, 1] - segments[:, 0] <= longest)
    for a, b, region in segments:
        assert np.all(labels[a:b] == region)


@torch_missing
@pytest.mark.parametrize("size, grid, scales, periodic", CASES)
def test_torch_backend_on_cpu_tensors_equals_numpy(size, grid, scales, periodic):
    from visualmic.gpu import TorchPhaseSums

    pyramid, refs, frames = _scene(size, grid, scales, periodic)
    expected = motion.phase_gradient_sums(pyramid.bands(frames), refs)
    on_torch = TorchPhaseSums(pyramid, refs, "cpu")(frames)
    np.testing.assert_allclose(on_torch, expected, rtol=0, atol=2e-6 * np.abs(expected).max())


def _recover_both(frames, fps, device, **options):
    numpy_path = visualmic.recover(frames, fps=fps, device="cpu", **options)
    other = visualmic.recover(frames, fps=fps, device=device, **options)
    return numpy_path, other


@torch_missing
def test_recover_with_torch_cpu_gives_the_same_audio(melody_scene, melody_frames, monkeypatch):
    """The torch backend measures phases: compared with the numpy phase path (not the first-order one,
    whose sound differs by its own noise, see tests/test_linear.py)."""
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    numpy_path, on_torch = _recover_both(melody_frames, melody_scene.fps, "torch:cpu")
    assert on_torch.device.startswith("cpu (torch")
    assert np.corrcoef(numpy_path.displacement_px, on_torch.displacement_px)[0, 1] > 0.99999
    truth = melody_scene.displacement_px
    a = snr_db(numpy_path.displacement_px, truth, fps=melody_scene.fps, band_hz=(80, 1000), trim=100)
    b = snr_db(on_torch.displacement_px, truth, fps=melody_scene.fps, band_hz=(80, 1000), trim=100)
    assert abs(a - b) < 0.01


@pytest.mark.gpu
@no_cuda
def test_recover_on_cuda_equals_cpu(melody_scene, melody_frames, monkeypatch):
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    numpy_path, on_gpu = _recover_both(melody_frames, melody_scene.fps, "cuda", regions=2)
    assert on_gpu.device.startswith("cuda")
    assert np.corrcoef(numpy_path.displacement_px, on_gpu.displacement_px)[0, 1] > 0.99999


@pytest.fixture
def fft_library(monkeypatch):
    """Choose the FFT library for one test (``VISUALMIC_FFT``), restoring the process's choice after."""

    def choose(name: str) -> str:
        monkeypatch.setenv("VISUALMIC_FFT", name)
        return fftlib.fft_library()

    yield choose
    monkeypatch.undo()


@torch_missing
@pytest.mark.parametrize("size, scales, periodic", [((96, 96), 2, False), ((37, 50), 1, True), ((80, 100), 3, True)])
def test_pyramid_bands_are_the_same_with_either_fft_library(fft_library, size, scales, periodic):
    frames = (np.random.default_rng(1).random((5, *size)) * 200).astype(np.float32)
    pyramid = SteerablePyramid(size, scales=scales, orientations=3, workers=1, periodic=periodic)
    assert fft_library("scipy") == "scipy"
    by_scipy = pyramid.bands(frames)
    assert fft_library("torch") == "torch"
    by_torch = pyramid.bands(frames)
    for a, b in zip(by_scipy, by_torch):
        assert a.dtype == b.dtype == np.complex64
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-6 * np.abs(a).max())


@torch_missing
def test_recover_with_either_fft_library_gives_the_same_audio(fft_library, melody_frames):
    fft_library("scipy")
    by_scipy = visualmic.recover(melody_frames[:600], fps=2200)
    assert by_scipy.device == f"cpu (numpy; FFTs: scipy {scipy.__version__} (pocketfft))"
    fft_library("torch")
    by_torch = visualmic.recover(melody_frames[:600], fps=2200)
    assert by_torch.device.startswith("cpu (numpy; FFTs: torch ")
    assert np.corrcoef(by_scipy.displacement_px, by_torch.displacement_px)[0, 1] > 0.99999


@torch_missing
def test_threads_option_limits_torchs_fft_threads_during_the_measurement(fft_library, melody_frames, monkeypatch):
    fft_library("torch")
    before = torch.get_num_threads()
    seen = []
    transform = fftlib.rfft2
    monkeypatch.setattr("visualmic.pyramid.rfft2", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                    transform(*a, **k))[1])
    visualmic.recover(melody_frames[:300], fps=2200, threads=1)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


@torch_missing
def test_a_small_recovery_keeps_scipys_ffts_and_does_not_import_torch():
    """Importing torch takes about a second, more than MKL's FFTs save on a small job: a fresh process
    recovering 400 frames of 48² neither imports torch nor says it used it, while a job planned beyond
    SMALL_JOB_PIXEL_FRAMES takes torch's FFTs."""
    code = ("import sys, numpy as np, visualmic\n"
            "from visualmic import fftlib\n"
            "frames = (np.random.default_rng(0).random((400, 48, 48)) * 255).astype(np.uint8)\n"
            "rec = visualmic.recover(frames, fps=2200)\n"
            "print('torch' in sys.modules, rec.device)\n"
            "with fftlib.planned_work(2 * fftlib.SMALL_JOB_PIXEL_FRAMES):\n"
            "    print(fftlib.fft_library())\n")
    env = {k: v for k, v in os.environ.items() if k != "VISUALMIC_FFT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    small, big = out.stdout.splitlines()
    assert small == f"False cpu (numpy; FFTs: scipy {scipy.__version__} (pocketfft))"
    assert big == ("torch" if torch.backends.mkl.is_available() else "scipy")


def test_a_first_order_recovery_plans_no_frame_transform(monkeypatch):
    """The first-order path transforms no frame: however long the video, torch is not imported for its
    FFTs (a long job's peak memory would otherwise exceed a short one's by torch's 190 MB); the phase
    path plans every frame's transform."""
    from visualmic.api import _fft_pixel_frames
    from visualmic.config import RecoverOptions
    from visualmic.sources import ArraySource

    meta = ArraySource(np.zeros((20, 8, 8), np.uint8)).meta
    long_job = replace(meta, frame_count=10**6)
    assert _fft_pixel_frames(long_job, (512, 512), RecoverOptions()) == 0.0
    assert _fft_pixel_frames(long_job, (512, 512), RecoverOptions(device="cuda")) == 512 * 512 * 1e6
    assert _fft_pixel_frames(long_job, (512, 512), RecoverOptions(method="davis2014")) == 512 * 512 * 1e6
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    assert _fft_pixel_frames(long_job, (512, 512), RecoverOptions()) == 512 * 512 * 1e6


def test_unknown_fft_library_is_a_one_line_error(fft_library):
    with pytest.raises(InputError, match="VISUALMIC_FFT='fftw': choose one of auto, scipy, torch"):
        fft_library("fftw")


def test_unknown_or_missing_devices_are_one_line_errors(melody_frames):
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        visualmic.recover(melody_frames, fps=2200, device="tpu")
    if torch is None or not torch.cuda.is_available():
        with pytest.raises(InputError, match="cuda"):
            visualmic.recover(melody_frames, fps=2200, device="cuda")


def test_auto_device_falls_back_to_the_cpu_without_a_gpu(melody_frames):
    rec = visualmic.recover(melody_frames[:400], fps=2200)
    if torch is None or not torch.cuda.is_available():
        assert rec.device == device_description(None) == f"cpu (numpy; FFTs: {fftlib.fft_description()})"
        assert rec.summary()["device"] == rec.device


@torch_missing
def test_torch_backend_follows_drift_like_the_cpu_path():
    """A chunk that drifted 2.5 px is moved back by the same estimated shift on both paths (read from
    the frames' own spectrum, the bands measured on their periodic components)."""
    from visualmic.drift import ShiftEstimator
    from visualmic.gpu import TorchPhaseSums
    from visualmic.synth import procedural_texture

    texture = procedural_texture((64, 64), seed=3).astype(np.float32)
    rng = np.random.default_rng(1)
    frames = np.stack([texture + rng.standard_normal(texture.shape) for _ in range(12)]).astype(np.float32)
    pyramid = SteerablePyramid((64, 64), scales=2, orientations=2, workers=1, periodic=True)
    refs = motion.prepare_references(pyramid, motion.reference_bands(pyramid.bands(frames[:8])), grid=2)
    estimate = ShiftEstimator(pyramid.frame_spectrum(frames[:8]).mean(axis=0), (64, 64))
    drifted = np.roll(frames[8:], (1, -2), axis=(1, 2))  # 1 row down, 2 columns left
    expected = visualmic.api._drift_following(pyramid, refs, estimate)(drifted)
    on_torch = TorchPhaseSums(pyramid, refs, "cpu", estimate)(drifted)
    np.testing.assert_allclose(on_torch, expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    fisher = np.concatenate([r.fisher for r in refs])
    shift = -np.linalg.solve(fisher.sum(0), expected.sum(1).T).T  # joint displacement (y, x) per frame
    np.testing.assert_allclose(shift, np.broadcast_to([1.0, -2.0], shift.shape), atol=0.05)


@numba_missing
@settings(max_examples=25, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.integers(1, 4), st.sampled_from(["merge", "drop"]),
       st.integers(0, 2**31))
def test_fused_band_spectrum_adjoint_is_the_adjoint(rows, cols, orientations, highpass, seed):
    """<B x, y> = <x, B* y> (real parts) for every band's crop-and-mask B, odd and even sizes, mirrored
    blocks and blocks read right to left; and the noise model's kernels equal those of the numpy adjoint."""
    scales = max(1, int(np.floor(np.log2(min(rows, cols)))) - 2)
    pyramid = SteerablePyramid((rows, cols), scales=scales, orientations=orientations, highpass=highpass, workers=1)
    rng = np.random.default_rng(seed)

    def noise(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    x = noise(2, rows, cols // 2 + 1)
    half_plane_bins = np.arange(x[0].size)
    for info, support in zip(pyramid.bands_info, pyramid.half_plane_supports):
        y = noise(2, *info.shape)
        plan, masks = info.assembly_plan[:2]
        forward = kernels.fused_band_spectrum(x, *info.assembly_plan, shape=info.shape)
        adjoint = np.zeros((2, x[0].size), np.complex64)
        kernels.fused_band_spectrum_adjoint(y, adjoint, plan, masks, plan[:, 1] * x.shape[2] + plan[:, 3], scale=1.0)
        lhs = np.vdot(forward.astype(np.complex128), y).real
        rhs = np.vdot(x.reshape(2, -1).astype(np.complex128), adjoint).real
        assert abs(lhs - rhs) <= 1e-5 * np.linalg.norm(forward) * np.linalg.norm(y)
        assert not adjoint[:, np.setdiff1d(half_plane_bins, support)].any()  # nothing off the band's support
        fused, expected = np.zeros((2, 2, support.size), np.complex64)
        motion.kernel_spectra([y.reshape(2, -1)], info, support, pyramid.shape, out=fused)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VISUALMIC_NUMBA", "0")
            motion.kernel_spectra([y.reshape(2, -1)], info, support, pyramid.shape, out=expected)
        np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_frames_kept_in_their_stored_type_give_the_same_recovery(melody_scene, melody_frames):
    """8-bit frames travel between threads as uint8 and are converted by the pyramid: the same sound
    as from the same frames given as float32."""
    assert melody_frames.dtype == np.uint8
    as_stored = visualmic.recover(melody_frames, fps=melody_scene.fps, scales=1)
    as_float = visualmic.recover(melody_frames.astype(np.float32), fps=melody_scene.fps, scales=1)
    np.testing.assert_allclose(as_stored.displacement_px, as_float.displacement_px, rtol=0,
                               atol=1e-6 * np.abs(as_float.displacement_px).max())


@numba_missing
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="vector widths checked on x86 only")
def test_wider_vectors_are_set_for_one_compilation_only():
    """The phase loop's 16 lanes, one vector per step (LLVM's options are process-wide), are undone
    after its compilation: a function compiled afterwards gets the code it got before."""
    import numba

    def scaled_sum(x, y):
        for i in range(x.size):
            y[i] += 2.0 * x[i]

    def registers(fn):
        arrays = (np.ones(64, np.float32), np.ones(64, np.float32))
        compiled = numba.njit(fastmath=True)(fn)
        compiled(*arrays)
        asm = compiled.inspect_asm(compiled.signatures[0])
        return [asm.count(name) for name in ("xmm", "ymm", "zmm")]

    before = registers(scaled_sum)
    with kernels._vector_lanes(16):
        inside = registers(scaled_sum)
    assert registers(scaled_sum) == before != inside
