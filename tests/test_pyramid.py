import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

from visualmic.pyramid import SteerablePyramid

pyrtools = pytest.importorskip("pyrtools", reason="pyrtools is the test oracle (pip install pyrtools)")


def _embed(band_coeffs, info, frame_shape, level_shape):
    """Full-resolution band at pyrtools' level size, from a cropped band (exact up to sampling)."""
    spec = scipy.fft.fft2(band_coeffs) * (frame_shape[0] * frame_shape[1]) / band_coeffs.size
    full = np.zeros(level_shape, complex)
    ky = np.round(info.freq_y[:, 0] * frame_shape[0]).astype(int) % level_shape[0]
    kx = np.round(info.freq_x[0] * frame_shape[1]).astype(int) % level_shape[1]
    full[np.ix_(ky, kx)] += spec
    return np.fft.ifft2(full)


@pytest.mark.parametrize(
    "shape,scales,orientations",
    [((64, 64), 2, 2), ((64, 96), 3, 4), ((128, 64), 2, 3), ((48, 80), 1, 2), ((64, 64), 2, 6)],
)
def test_bands_match_pyrtools(shape, scales, orientations):
    img = np.random.default_rng(1).standard_normal(shape)
    oracle = pyrtools.pyramids.SteerablePyramidFreq(img, height=scales, order=orientations - 1, is_complex=True)
    pyr = SteerablePyramid(shape, scales=scales, orientations=orientations, highpass="drop")
    bands = pyr.bands(img[None])
    for info, band in zip(pyr.bands_info, bands):
        expected = oracle.pyr_coeffs[(info.level, info.orientation)]
        mine = _embed(band[0], info, shape, expected.shape)
        err = np.abs(mine - expected).max() / np.abs(expected).max()
        assert err < 1e-4, (info.level, info.orientation, err)


def test_bands_are_cropped_below_frame_size():
    pyr = SteerablePyramid((256, 256), scales=3, orientations=2)
    sizes = [b.shape[0] * b.shape[1] for b in pyr.bands_info]
    # A complex band covers a half plane: at most half the frame at level 0, then a quarter per level.
    assert sizes[0] <= 256 * 129 and sizes[2] <= 128 * 65 and sizes[4] <= 64 * 33


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(16, 70), cols=st.integers(16, 70), orientations=st.integers(1, 5), seed=st.integers(0, 99))
def test_merged_pyramid_keeps_energy_of_oriented_content(rows, cols, orientations, seed):
    """With the high-pass merged, the bands' squared masks tile everything above the low-pass:
    a pure high-frequency image's energy is fully carried by the bands (tight frame)."""
    pyr = SteerablePyramid((rows, cols), scales=1, orientations=orientations)
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((rows, cols))
    spec = np.fft.fft2(img)
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.fftfreq(cols)[None, :]
    spec[np.hypot(fy, fx) < 0.26] = 0  # keep only what level 0 covers fully
    # The Nyquist row and column of an even size are their own mirror on the FFT grid and
    # cannot be split between two half planes; no analytic band represents them exactly.
    spec[np.isclose(np.abs(fy), 0.5)[:, 0], :] = 0
    spec[:, np.isclose(np.abs(fx), 0.5)[0]] = 0
    img = np.real(np.fft.ifft2(spec))
    bands = pyr.bands(img[None].astype(np.float32))
    energy = sum(np.sum(np.abs(b) ** 2) * info.area_px for b, info in zip(bands, pyr.bands_info))
    # Complex (analytic) bands carry twice the energy of the real image's oriented part, halved by
    # the one-sided masks' normalisation: the sum over bands equals 2x the image energy.
    assert energy == pytest.approx(2 * np.sum(img**2), rel=2e-3)


def test_band_gradient_is_that_of_the_full_band():
    """Sum of conj(c) grad(c) over the cropped band equals that of the full-size band (Parseval),
    so the crop's demodulation and sampling do not change the motion weights."""
    shape = (64, 48)
    img = np.random.default_rng(0).standard_normal(shape)
    pyr = SteerablePyramid(shape, scales=2, orientations=3)
    bands = pyr.bands(img[None].astype(np.float32))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    for index, info in enumerate(pyr.bands_info):
        band = bands[index][0]
        cropped = np.sum(np.conj(band)[None] * pyr.band_gradient(band, index), axis=(1, 2)) * info.area_px
        full = _embed(band, info, shape, shape)
        spec = np.fft.fft2(full)
        grads = [np.fft.ifft2(spec * 2j * np.pi * f) for f in (fy, fx)]
        expected = np.array([np.sum(np.conj(full) * g) for g in grads])
        assert np.allclose(cropped, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="scales"):
        SteerablePyramid((32, 32), scales=5)
    with pytest.raises(ValueError, match="too small"):
        SteerablePyramid((4, 32))
    with pytest.raises(ValueError, match="highpass"):
        SteerablePyramid((32, 32), highpass="keep")


def test_periodic_component_matches_moisans_construction():
    """The smooth part, built in the Fourier domain from the edges alone, equals the solution
    of Moisan's Poisson equation written out in the image domain."""
    rows, cols = 48, 64
    frame = np.random.default_rng(0).random((rows, cols)) * 100
    smooth = SteerablePyramid((rows, cols), periodic=True)._smooth_component_spectrum(frame[None].astype(np.float32))[0]
    jumps = np.zeros((rows, cols))
    jumps[0] += frame[-1] - frame[0]
    jumps[-1] -= frame[-1] - frame[0]
    jumps[:, 0] += frame[:, -1] - frame[:, 0]
    jumps[:, -1] -= frame[:, -1] - frame[:, 0]
    q, r = np.arange(rows)[:, None], np.arange(cols)[None, :]
    laplacian = 2 * np.cos(2 * np.pi * q / rows) + 2 * np.cos(2 * np.pi * r / cols) - 4
    laplacian[0, 0] = 1
    expected = np.fft.fft2(jumps) / laplacian
    expected[0, 0] = 0
    assert np.allclose(smooth, expected[:, : cols // 2 + 1], atol=1e-5 * np.abs(expected).max())
    periodic = frame - np.real(np.fft.ifft2(expected))
    assert np.mean((periodic[-1] - periodic[0]) ** 2) < 0.5 * np.mean((frame[-1] - frame[0]) ** 2)
