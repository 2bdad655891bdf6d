import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from visualmic.seams import WRAPPING_SEAM_GAIN, seam_gain

FRAMES = 600


def _texture(rng: np.random.Generator, size: int, smooth_px: float) -> np.ndarray:
    """Smoothed noise whose opposite edges differ, 20-230 grey levels."""
    t = gaussian_filter(rng.standard_normal((size, size)), smooth_px)
    return 20 + 210 * (t - t.min()) / np.ptp(t)


def _motion(rng: np.random.Generator, amplitude_px: float) -> np.ndarray:
    t = np.arange(FRAMES) / 2200
    return amplitude_px * np.sin(2 * np.pi * rng.uniform(200, 800) * t + rng.uniform(0, 2 * np.pi))


def _fourier_shifted(texture: np.ndarray, d: np.ndarray, direction_deg: float) -> np.ndarray:
    a = np.deg2rad(direction_deg)
    ky, kx = np.fft.fftfreq(texture.shape[0])[:, None], np.fft.fftfreq(texture.shape[1])[None, :]
    phase = np.exp(-2j * np.pi * (np.cos(a) * kx - np.sin(a) * ky)[None] * d[:, None, None])  # rows grow downwards
    return np.fft.ifft2(np.fft.fft2(texture)[None] * phase).real


SCENES = dict(seed=st.integers(0, 2**31), smooth_px=st.floats(1.0, 6.0), direction_deg=st.floats(-180, 180),
              amplitude_px=st.floats(0.02, 0.3), noise=st.floats(0.5, 4.0))


def _scene(seed: int, smooth_px: float, direction_deg: float, amplitude_px: float, noise: float, *,
           view: bool) -> tuple[np.ndarray, np.ndarray]:
    """48² frames of a texture shifted periodically, or (``view``) of the middle of a twice larger one."""
    rng = np.random.default_rng(seed)
    d = _motion(rng, amplitude_px)
    frames = _fourier_shifted(_texture(rng, 96 if view else 48, smooth_px), d, direction_deg)
    if view:
        frames = frames[:, 24:72, 24:72]  # the larger texture's own seam is cropped away
    return np.round(frames + noise * rng.standard_normal(frames.shape)), d


@settings(max_examples=20, deadline=None)
@given(**SCENES)
def test_the_seam_of_a_periodically_shifted_scene_moves_with_it(seed, smooth_px, direction_deg, amplitude_px, noise):
    frames, d = _scene(seed, smooth_px, direction_deg, amplitude_px, noise, view=False)
    assert seam_gain(frames, d, direction_deg=direction_deg) > 0.8


@settings(max_examples=20, deadline=None)
@given(**SCENES)
def test_the_seam_of_a_view_of_a_larger_scene_stays_put(seed, smooth_px, direction_deg, amplitude_px, noise):
    frames, d = _scene(seed, smooth_px, direction_deg, amplitude_px, noise, view=True)
    assert abs(seam_gain(frames, d, direction_deg=direction_deg)) < WRAPPING_SEAM_GAIN
