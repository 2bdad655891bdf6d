"""The per-band motion measurement's noise model against Monte Carlo truth."""

import numpy as np
import pytest

from visualmic.motion import (
    band_noise_covariance,
    merge_regions,
    phase_gradient_sums,
    prepare_references,
    reference_bands,
)
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
