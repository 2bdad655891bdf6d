"""The per-band motion measurement's noise model against Monte Carlo truth."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from visualmic.motion import (
    band_noise_covariance,
    merge_regions,
    phase_gradient_sums,
    prepare_references,
    reference_bands,
    region_labels,
    region_sums,
)
from visualmic.drift import ShiftEstimator, shift_spectrum
from visualmic.linear import LinearSums
from visualmic.pyramid import SteerablePyramid
from visualmic.synth import procedural_texture


@pytest.mark.parametrize("shape, grid, merge", [((32, 40), 2, False), ((32, 40), 2, True), ((33, 29), 1, False)])
def test_noise_covariance_matches_monte_carlo(shape, grid, merge):
    """White pixel noise through the real measurement: the estimates' covariance is the model's."""
    pyramid = SteerablePyramid(shape, scales=1, orientations=3)
    texture = procedural_texture(shape, seed=3).astype(np.float32)
    prepared = prepare_references(pyramid, reference_bands(pyramid.bands(texture[None])), grid=grid, border_px=2)
    direction = np.array([0.6, 0.8])
    sigma, trials = 0.3, 4000  # grey levels: small enough for the estimates to be linear in the noise
    noisy = texture[None] + np.random.default_rng(0).normal(0, sigma, (trials, *shape)).astype(np.float32)
    sums = phase_gradient_sums(pyramid.bands(noisy), prepared)
    fisher = np.concatenate([r.fisher for r in prepared])
    if merge:
        sums, fisher = merge_regions(sums, fisher, grid * grid)
    estimates = -(sums @ direction) / np.einsum("i,cij,j->c", direction, fisher, direction)
    measured = np.cov(estimates.T) / sigma**2
    model = band_noise_covariance(pyramid, prepared, direction, merge_regions=merge)
    # Sampling error of a variance from 4000 trials: 2.2 %; of a correlation: 0.016.
    np.testing.assert_allclose(np.diag(measured), np.diag(model), rtol=0.08)
    scale = np.sqrt(np.outer(np.diag(model), np.diag(model)))
    np.testing.assert_allclose(measured / scale, model / scale, atol=0.06)
    assert np.abs(model / scale - np.eye(len(model))).max() > 0.1  # the bands' noise is correlated, and it shows


def _jacobian_gram_and_model(pyramid: SteerablePyramid, grid: int, merge: bool, direction: np.ndarray, seed: int,
                             *, first_order: bool = False):
    """J J^T of the measurement's Jacobian J (pixels to estimates, central differences pixel by pixel) and
    the noise model, both scaled by the model's standard deviations.

    ``first_order``: the measurement to first order (:mod:`visualmic.linear`, whole kernels), linear in
    the pixels, so a difference over a whole grey level is exact to float32's rounding (1e-5 of the
    Gram). Else the phase path, whose angle is linear over small steps only, differenced over 0.05 grey
    levels of a texture less its mean (float32's rounding: up to 0.15 % of the Gram), which departs from
    the model by up to 1 % where a coefficient is near zero (the model regularises its power).
    """
    shape = pyramid.shape
    texture = procedural_texture(shape, seed=seed).astype(np.float64)
    texture -= texture.mean()  # the mean is in no band, but in every FFT's rounding
    prepared = prepare_references(pyramid, reference_bands(pyramid.bands(texture[None].astype(np.float32))),
                                  grid=grid, border_px=2)
    fisher = np.concatenate([r.fisher for r in prepared])
    first_order_sums = LinearSums(pyramid, prepared, texture, tail=0.0) if first_order else None

    def estimates(frames: np.ndarray) -> np.ndarray:
        frames = frames.astype(np.float32)
        sums = first_order_sums(frames) if first_order else phase_gradient_sums(pyramid.bands(frames), prepared)
        info = fisher
        if merge:
            sums, info = merge_regions(sums, fisher, grid * grid)
        return -(sums @ direction) / np.einsum("i,cij,j->c", direction, info, direction)

    step = 1.0 if first_order else 0.05
    impulses = np.eye(texture.size).reshape(-1, *shape) * step
    jacobian = (estimates(texture + impulses) - estimates(texture - impulses)).T / (2 * step)
    model = band_noise_covariance(pyramid, prepared, direction, merge_regions=merge)
    scale = np.sqrt(np.outer(np.diag(model), np.diag(model)))
    return jacobian @ jacobian.T / scale, model / scale


@pytest.mark.parametrize("shape, grid, merge", [((24, 20), 2, False), ((24, 20), 2, True), ((23, 26), 1, False)])
def test_noise_covariance_of_several_scales_is_the_measurements_jacobian_gram(shape, grid, merge):
    """With several scales, fine bands keep the whole half plane and coarse ones their bins: the
    model is still J J^T of the measurement's Jacobian J (pixels to estimates), computed pixel by pixel."""
    pyramid = SteerablePyramid(shape, scales=2, orientations=2)
    half_plane = shape[0] * (shape[1] // 2 + 1)
    sizes = [support.size for support in pyramid.half_plane_supports]
    assert min(sizes) < half_plane / 2 <= max(sizes)  # both representations are exercised
    measured, model = _jacobian_gram_and_model(pyramid, grid, merge, np.array([0.6, 0.8]), seed=5)
    np.testing.assert_allclose(measured, model, atol=1e-3)


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(8, 28), cols=st.integers(8, 28), orientations=st.integers(1, 4), grid=st.integers(1, 3),
       merge=st.booleans(), angle=st.floats(0, np.pi), seed=st.integers(0, 100), periodic=st.booleans())
@example(rows=24, cols=25, orientations=2, grid=3, merge=False, angle=1.0, seed=16, periodic=False)  # phases: 0.36 %
@example(rows=8, cols=25, orientations=4, grid=2, merge=False, angle=2.44, seed=59, periodic=False)  # phases: 0.7 %
@example(rows=16, cols=16, orientations=2, grid=1, merge=False, angle=0.93, seed=5, periodic=True)  # was 10 % off
def test_noise_covariance_is_the_jacobian_gram_for_any_frame_and_bands(rows, cols, orientations, grid, merge, angle,
                                                                       seed, periodic):
    """Odd and even sizes, 1 to 4 orientations, regions or not, any direction, the frames' periodic
    components or the frames: the model is J J^T of the first-order measurement, exactly (measured:
    within 3e-5 over 400 random cases; with periodic components it once left out what their adjoint
    adds on the frame's edges, up to 10 % of a band's variance on small frames). That measurement
    is the phase path's to first order (tests/test_linear.py: their sums agree to 0.1 % for small
    motion); the phase path's own Jacobian departs from the model by up to 1 % where a coefficient is
    near zero, and at 0.05 grey levels its differences carry up to 0.4 % of float32's rounding:
    compared with it, this test failed at random (the examples above)."""
    pyramid = SteerablePyramid((rows, cols), scales=1, orientations=orientations, periodic=periodic)
    direction = np.array([np.sin(angle), np.cos(angle)])
    measured, model = _jacobian_gram_and_model(pyramid, grid, merge, direction, seed=seed, first_order=True)
    np.testing.assert_allclose(measured, model, atol=5e-4)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(-0.12, 0.12), st.floats(-3, 3)), st.one_of(st.floats(-0.12, 0.12), st.floats(-3, 3)),
       st.floats(0, 20), st.integers(0, 2**31))
def test_drift_decided_from_the_coarse_block_as_from_the_whole(dy, dx, noise, seed):
    """The coarse step on its own smaller block gives the answer the whole block gives, None included:
    chunks that did not move, that moved a little and that moved pixels, with and without noise."""
    rng = np.random.default_rng(seed)
    texture = procedural_texture((64, 64), seed=int(seed % 7))
    reference = np.fft.rfft2(texture)
    frames = np.fft.irfft2(shift_spectrum(reference[None], np.array([-dy, -dx]), (64, 64)), s=(64, 64))
    spectrum = np.fft.rfft2(frames + noise * rng.standard_normal((3, 64, 64))).astype(np.complex64)
    estimate = ShiftEstimator(reference, (64, 64))
    fast, whole = estimate(spectrum), estimate.follow(estimate.mean_block(spectrum))
    assert (fast is None and whole is None) or np.array_equal(fast, whole)


@settings(max_examples=30, deadline=None)
@given(st.integers(24, 160), st.integers(24, 160), st.integers(0, 2**31))
def test_frames_of_pure_noise_are_never_moved(rows, cols, seed):
    """Noise has no shift to follow, at any frame size: no chunk of it is moved (a step fitting few
    bins would know its own error too poorly to trust a shift of many times that error)."""
    rng = np.random.default_rng(seed)
    frames = rng.random((28, rows, cols)) * 255
    estimate = ShiftEstimator(np.fft.rfft2(frames[:8].mean(axis=0)), (rows, cols))
    assert all(estimate(np.fft.rfft2(frames[k : k + 4])) is None for k in range(8, 28, 4))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shift", [(0.3, 2.2), (-1.0, 4.5), (3.0, -3.5), (5.0, 5.0), (0.0, 8.0)])
def test_a_view_moved_over_a_larger_scene_is_followed(shift, seed):
    """A 96² view of a larger surface moved by pixels: texture left the view and new texture came in.
    The window makes the edges weigh nothing, so the shift is found to within 5 % (measured: 4.2 % at
    worst over 12 surfaces; without the window, 21 %, and a fifth of these cases were left where they
    were), though its fit's error grows with the shift, past the MAX_ERROR_PX that alone once decided."""
    surface = procedural_texture((192, 192), seed=seed)
    moved = np.fft.irfft2(shift_spectrum(np.fft.rfft2(surface), -np.array(shift), (192, 192)), s=(192, 192))
    view = (slice(48, 144), slice(48, 144))
    noise = np.random.default_rng(seed).normal(0, 1.0, (4, 96, 96))
    estimate = ShiftEstimator(np.fft.rfft2(surface[view]), (96, 96))
    found = estimate(np.fft.rfft2(moved[view][None] + noise))
    assert found is not None and np.hypot(*(found - shift)) < 0.05 * np.hypot(*shift)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 12), st.floats(0.5, 4.0), st.floats(0.5, 4.0),
       st.integers(0, 2**31))
def test_region_sums_equal_a_scatter_over_the_labels(rows, cols, grid, spacing_y, spacing_x, seed):
    """Sums by slices of the rectangles equal bincount over the labels, with empty regions (more
    regions than samples along a side) left at zero."""
    frame = (max(1, round(rows * spacing_y)), max(1, round(cols * spacing_x)))
    labels = region_labels((rows, cols), (spacing_y, spacing_x), frame, grid)
    values = np.random.default_rng(seed).standard_normal((3, rows * cols))
    expected = np.stack([np.bincount(labels.reshape(-1), weights=v, minlength=grid * grid) for v in values])
    np.testing.assert_allclose(region_sums(values, labels, grid), expected, rtol=1e-12, atol=1e-12)
