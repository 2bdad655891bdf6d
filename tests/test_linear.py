"""The first-order path: kernel images that are the pyramid's adjoint, sums equal to the phase path's
while motion is small, a noise model that is exact for them, and the phase path wherever they would not be."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import visualmic
from visualmic.drift import shift_spectrum
from visualmic.linear import LinearSums, kept_blocks
from visualmic.metrics import snr_db
from visualmic.motion import band_noise_covariance, phase_gradient_sums, prepare_references, reference_bands
from visualmic.pyramid import SteerablePyramid
from visualmic.synth import Camera, make_scene, melody, procedural_texture


@settings(max_examples=30, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.booleans(), st.integers(0, 2**31))
def test_frame_kernels_are_the_adjoint_of_the_spectrum(rows, cols, periodic, seed):
    """sum h I = Re sum F conj(X) / N for any functional F on the half plane and any frame, odd and
    even sizes, with and without the periodic-plus-smooth decomposition (which adds to the edges)."""
    pyramid = SteerablePyramid((rows, cols), periodic=periodic)
    rng = np.random.default_rng(seed)
    half = (2, rows, cols // 2 + 1)
    spectra = (rng.standard_normal(half) + 1j * rng.standard_normal(half)).astype(np.complex64)
    frame = (rng.random((1, rows, cols)) * 255).astype(np.float32)
    direct = (spectra * np.conj(pyramid.spectrum(frame))).real.sum(axis=(1, 2)) / (rows * cols)
    through_kernels = (pyramid.frame_kernels(spectra) * frame).sum(axis=(1, 2))
    np.testing.assert_allclose(through_kernels, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.floats(0, 0.5), st.integers(0, 2**31))
def test_kept_blocks_leave_out_the_weakest_within_the_tail(kernels, blocks, tail, seed):
    """What is left out holds at most ``tail`` of each kernel's energy and is never stronger than what is
    kept; the strongest block is always kept."""
    energy = np.random.default_rng(seed).random((kernels, blocks)) ** 8
    keep = kept_blocks(energy, tail)
    assert np.all((energy * ~keep).sum(axis=1) <= tail * energy.sum(axis=1) + 1e-15)
    assert np.all(keep[np.arange(kernels), energy.argmax(axis=1)])
    for row, kept in zip(energy, keep):
        if (~kept).any():
            assert row[~kept].max() <= row[kept].min()


def _texture_and_references(shape, *, scales=1, orientations=2, grid=4, periodic=True):
    pyramid = SteerablePyramid(shape, scales=scales, orientations=orientations, periodic=periodic)
    texture = procedural_texture(shape, seed=3).astype(np.float32)
    references = prepare_references(pyramid, [band[0] for band in pyramid.bands(texture[None])], grid=grid,
                                    border_px=2)
    return pyramid, texture, references


def _moved(texture: np.ndarray, shifts_px) -> np.ndarray:
    spectrum = np.fft.rfft2(texture)[None]
    return np.stack([np.fft.irfft2(shift_spectrum(spectrum, np.asarray(s), texture.shape)[0], s=texture.shape)
                     for s in shifts_px]).astype(np.float32)


@pytest.mark.parametrize("shape, scales, orientations, grid, periodic", [
    ((64, 64), 1, 2, 2, False), ((96, 80), 1, 2, 4, True), ((75, 90), 2, 3, 3, True), ((128, 128), 1, 4, 1, True)])
def test_first_order_sums_are_the_phase_sums_of_small_motion(shape, scales, orientations, grid, periodic):
    """Without noise and for motion of thousandths of a pixel, the two paths agree channel by channel:
    to 0.1 % of the largest sums with whole kernels, to 1.5 % with their weakest tails left out."""
    pyramid, texture, references = _texture_and_references(shape, scales=scales, orientations=orientations,
                                                           grid=grid, periodic=periodic)
    frames = _moved(texture, [(0.002, 0.001), (-0.001, 0.003), (0.0, -0.002)])
    phases = phase_gradient_sums(pyramid.bands(frames), references)
    scale = np.abs(phases).max(axis=0)  # per channel and component
    for tail, tolerance in ((0.0, 1e-3), (1e-4, 1.5e-2)):
        first_order = LinearSums(pyramid, references, texture, tail=tail)(frames)
        assert np.abs(first_order - phases).max() < tolerance * scale.max()
        # Channels that carry motion are within the tolerance of their own size too.
        strong = scale > 0.1 * scale.max()
        assert np.all(np.abs(first_order - phases).max(axis=0)[strong] < 3 * tolerance * scale[strong])


def test_first_order_noise_is_the_noise_model_even_where_phases_are_not_linear():
    """At 8 grey levels of noise on a texture of 40, the phases' noise is 12 % off the linear model
    (measured 1.12x); the first-order sums are the model's linear function of the pixels: their
    estimates' variance is the model's within sampling error (1000 trials: 4.5 %)."""
    shape = (48, 56)
    pyramid, texture, references = _texture_and_references(shape, grid=2)
    first_order = LinearSums(pyramid, references, texture, tail=0.0)
    sigma, direction = 8.0, np.array([0.6, 0.8])
    noisy = texture[None] + np.random.default_rng(1).normal(0, sigma, (1000, *shape)).astype(np.float32)
    sums = np.concatenate([first_order(noisy[k : k + 100]) for k in range(0, 1000, 100)])
    fisher = np.concatenate([r.fisher for r in references])
    estimates = -(sums @ direction) / np.einsum("i,cij,j->c", direction, fisher, direction)
    model = np.diag(band_noise_covariance(pyramid, references, direction))
    np.testing.assert_allclose(np.var(estimates, axis=0) / sigma**2, model, rtol=0.15)
    assert abs(np.median(np.var(estimates, axis=0) / sigma**2 / model) - 1) < 0.05


def test_motion_beyond_first_order_and_extreme_light_go_to_the_phase_path():
    """A chunk whose rms change of log c passes LINEAR_BELOW_RAD (a pixel's shift here) is not measured to
    first order, nor one whose brightness changed by half; a flickering light changes nothing."""
    pyramid, texture, references = _texture_and_references((96, 96))
    first_order = LinearSums(pyramid, references, texture)
    small = _moved(texture, [(0.01, 0.02), (0.0, -0.01)])
    assert first_order(small) is not None
    assert first_order(_moved(texture, [(0.0, 0.02), (0.6, 0.8)])) is None
    assert first_order(small * 0.4) is None and first_order(small * 2.5) is None
    np.testing.assert_allclose(first_order(small * 1.3), first_order(small), rtol=1e-3,
                               atol=1e-3 * np.abs(first_order(small)).max())


@pytest.fixture(scope="module")
def loud_scene():
    """The melody at 0.6 px peak: its loud notes are beyond first order in the finest bands."""
    return make_scene(melody(1.5, rate_hz=2200.0, seed=5), fps=2200.0, size=(96, 96), amplitude_px=0.6,
                      camera=Camera(read_noise=2.0, bit_depth=8), seed=6)


def test_recovery_to_first_order_sounds_as_the_phase_path(melody_scene, melody_frames, monkeypatch):
    """The melody at 0.02 px: every chunk measured to first order (reported), the same sound as by the
    phases (correlation 0.9998, SNR within 0.2 dB)."""
    fast = visualmic.recover(melody_frames, fps=melody_scene.fps)
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    phases = visualmic.recover(melody_frames, fps=melody_scene.fps)
    assert fast.chunks_measured_by == {"first_order": -(-melody_frames.shape[0] // 32), "phases": 0}
    assert phases.chunks_measured_by == {} and fast.summary()["chunks_measured_by"]["first_order"] > 0
    assert np.corrcoef(fast.displacement_px, phases.displacement_px)[0, 1] > 0.9995
    truth = melody_scene.displacement_px
    a, b = (snr_db(r.displacement_px, truth, fps=melody_scene.fps, band_hz=(80, 1000), trim=100)
            for r in (fast, phases))
    assert abs(a - b) < 0.2


def test_loud_motion_is_measured_by_its_phases(loud_scene, monkeypatch):
    """At 0.6 px most chunks go to the phase path, and the sound, at 39.7 dB, is the phase path's within
    0.05 dB (measured: 0.03 dB; 0.5 dB were lost with LINEAR_BELOW_RAD at 0.3)."""
    frames = np.concatenate(list(loud_scene.frames()))
    fast = visualmic.recover(frames, fps=loud_scene.fps)
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    phases = visualmic.recover(frames, fps=loud_scene.fps)
    assert fast.chunks_measured_by["phases"] > 0.6 * sum(fast.chunks_measured_by.values())
    a, b = (snr_db(r.displacement_px, loud_scene.displacement_px, fps=loud_scene.fps, band_hz=(80, 1000), trim=100)
            for r in (fast, phases))
    assert b > 35 and abs(a - b) < 0.05


def test_every_frame_is_read_once(melody_scene, melody_frames):
    """Without a cache or a cluster, the reference's frames come from the one stream that reads the video
    (a video's first 32 frames were once decoded twice), which reads ahead while the kernels are built."""
    from visualmic.sources import ArraySource

    class CountingSource(ArraySource):
        read = 0

        def _chunks(self, *args):
            for first, frames in super()._chunks(*args):
                CountingSource.read += frames.shape[0]
                yield first, frames

    recovery = visualmic.recover(CountingSource(melody_frames), fps=melody_scene.fps)
    assert CountingSource.read == melody_frames.shape[0] == recovery.frames


def test_chunks_left_to_the_phase_path_are_measured_as_by_the_phase_path_alone(monkeypatch):
    """Motion of 2 px at audio rates: no chunk is measured to first order, and the first-order path's
    larger chunks are measured in the phase path's own pieces, so the sound is the phase path's exactly;
    a job of fewer than FIRST_ORDER_MIN_FRAMES does not build the kernels at all."""
    from visualmic.api import FIRST_ORDER_MIN_FRAMES

    scene = make_scene(melody(0.5, rate_hz=2200.0, seed=7), fps=2200.0, size=(64, 80), amplitude_px=2.0,
                       camera=Camera(read_noise=2.0, bit_depth=8), seed=8)
    frames = np.concatenate(list(scene.frames()))
    assert frames.shape[0] >= FIRST_ORDER_MIN_FRAMES
    tried = visualmic.recover(frames, fps=scene.fps)
    short = visualmic.recover(frames[: FIRST_ORDER_MIN_FRAMES - 1], fps=scene.fps)
    monkeypatch.setenv("VISUALMIC_LINEAR", "0")
    phases = visualmic.recover(frames, fps=scene.fps)
    assert tried.chunks_measured_by["first_order"] == 0 and tried.chunks_measured_by["phases"] > 0
    assert np.array_equal(tried.displacement_px, phases.displacement_px)
    assert short.chunks_measured_by == {}


def test_rows_without_texture_leave_blocks_without_kernel_values():
    """Where a block of rows holds none of a kernel's energy (a flat part of the frame: a saturated
    background), the block keeps no values; building the sums once failed on such a block."""
    rng = np.random.default_rng(0)
    base = np.full((128, 128), 100.0)
    base[:48] += 40 * rng.random((48, 128))  # rows 48-127 flat
    k = np.fft.fftfreq(128)
    frames = np.stack([np.fft.ifft2(np.fft.fft2(base) * np.exp(-2j * np.pi * k[None, :] * d)).real
                       for d in (0.0, 0.02, -0.03)]).astype(np.float32)
    pyramid = SteerablePyramid((128, 128), periodic=True)
    references = prepare_references(pyramid, reference_bands(pyramid.bands(frames[:1])))
    first_order = LinearSums(pyramid, references, frames[0])(frames)
    phases = phase_gradient_sums(pyramid.bands(frames), references)
    assert np.abs(first_order - phases).max() < 3e-3 * np.abs(phases).max()  # measured: 1.2e-3
