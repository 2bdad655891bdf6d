import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visualmic.audio import highpass, normalize_peak, resample, spectral_subtraction


def test_zero_phase_highpass_keeps_waveform_of_low_notes():
    fps = 2200
    t = np.arange(4 * fps) / fps
    x = np.sin(2 * np.pi * 110 * t)
    zero = highpass(x, fps=fps, cutoff_hz=55)
    causal = highpass(x, fps=fps, cutoff_hz=55, zero_phase=False)
    core = slice(fps, 3 * fps)
    err_zero = np.max(np.abs(zero[core] - x[core]))
    err_causal = np.max(np.abs(causal[core] - x[core]))
    assert err_zero < 0.05 < err_causal  # the causal filter shifts a 110 Hz note's phase


@pytest.mark.parametrize("rate_in", [2200.0, 2173.9, 1000.0, 20000.0])
def test_resample_keeps_pitch_and_duration(rate_in):
    f0 = 201.3
    x = np.sin(2 * np.pi * f0 * np.arange(int(3 * rate_in)) / rate_in)
    y = resample(x, rate_in_hz=rate_in, rate_out_hz=48000)
    assert y.size == round(x.size * 48000 / rate_in)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak = np.argmax(spec) * 48000 / y.size
    assert peak == pytest.approx(f0, abs=48000 / y.size)
    expected = np.sin(2 * np.pi * f0 * np.arange(y.size) / 48000)
    core = slice(y.size // 10, -y.size // 10)
    assert np.max(np.abs(y[core] - expected[core])) < 0.02


def test_spectral_subtraction_reduces_noise_and_keeps_tones():
    rng = np.random.default_rng(0)
    fps = 2200
    t = np.arange(6 * fps) / fps
    burst = np.sin(2 * np.pi * 300 * t) * ((t > 2) & (t < 3))  # speech-like: short
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)  # music-like: steady
    noise = 0.2 * rng.standard_normal(t.size)
    out, kept = spectral_subtraction(burst + tone + noise, fps=fps)
    assert any(abs(f - 440) < 3 for f in kept)
    quiet = (t > 4.5) & (t < 5.5)
    residual_noise = out[quiet] - tone[quiet]
    assert np.std(residual_noise) < 0.6 * np.std(noise[quiet])
    assert np.corrcoef(out[quiet], tone[quiet])[0, 1] > 0.8  # the tone survives
    plain, _ = spectral_subtraction(burst + tone + noise, fps=fps, keep_tones=False)
    assert np.std(plain[quiet]) < 0.5 * np.std(tone[quiet])  # without protection it is erased


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0.1, 1.0))
def test_normalize_peak_never_clips(values, peak):
    y = normalize_peak(np.array(values), peak=peak)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= peak * (1 + 1e-6)


def test_mmse_lsa_keeps_a_steady_tone_and_removes_white_noise():
    from visualmic.audio import mmse_lsa

    rng = np.random.default_rng(5)
    fps = 2200
    t = np.arange(5 * fps) / fps
    tone = 0.5 * np.sin(2 * np.pi * 330 * t)
    noise = 0.2 * rng.standard_normal(t.size)
    out = mmse_lsa(tone + noise, fps=fps, noise_variance=0.04)
    core = slice(fps // 2, -fps // 2)
    assert np.std(out[core] - tone[core]) < 0.35 * np.std(noise[core])
    assert np.dot(out[core], tone[core]) / np.dot(tone[core], tone[core]) > 0.95  # the tone is kept whole


def test_mmse_denoising_improves_recovered_speech():
    from visualmic.metrics import evaluate
    from visualmic.synth import Camera, make_scene, speech

    import visualmic

    fps = 2200.0
    scene = make_scene(speech(rate_hz=fps)[: int(2 * fps)], fps=fps, size=(64, 64), amplitude_px=0.03,
                       camera=Camera(read_noise=2.0), seed=5)
    frames = np.concatenate(list(scene.frames()))
    plain = visualmic.recover(frames, fps=fps)
    clean = visualmic.recover(frames, fps=fps, denoise="mmse")
    before = evaluate(plain.native_audio, fps, scene.displacement_px, fps, band_hz=(80, 1056))
    after = evaluate(clean.native_audio, fps, scene.displacement_px, fps, band_hz=(80, 1056))
    assert after.segmental_snr_db > before.segmental_snr_db + 1.5
    assert after.stoi >= before.stoi - 0.005
    with pytest.raises(visualmic.InputError, match="davis2014"):
        visualmic.recover(frames, fps=fps, denoise="mmse", method="davis2014")
