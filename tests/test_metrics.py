import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visualmic.metrics import align, evaluate, log_likelihood_ratio, segmental_snr_db, snr_db


@settings(max_examples=25, deadline=None)
@given(lag=st.integers(-40, 40), gain=st.floats(0.1, 10).flatmap(lambda g: st.sampled_from([g, -g])),
       snr=st.floats(-5, 40), seed=st.integers(0, 1000))
def test_snr_recovers_known_delay_gain_and_noise(lag, gain, snr, seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal(20000)
    noise = rng.standard_normal(20000) * abs(gain) * 10 ** (-snr / 20)
    est = gain * np.roll(ref, lag) + noise
    a = align(est, ref)
    measured = snr_db(est, ref, fps=2200, trim=50)
    # Sampling error of the measure from 20,000 samples: noise power 4.34 sqrt(2/N) = 0.04 dB, fitted
    # gain 4.34 sqrt(4/(N snr)) = 0.06 dB at 0 dB; 0.4 dB is over 5 standard deviations.
    if snr > 0:  # the true lag stands out: everything is exact
        assert a.lag == lag and np.sign(a.gain) == np.sign(gain)
        assert measured == pytest.approx(snr, abs=0.4)
    else:  # a best-lag search can only find a better-looking lag than the true one
        assert snr - 0.4 < measured < snr + 1.5


def test_band_limited_snr_ignores_out_of_band_noise():
    fps = 2200
    t = np.arange(4 * fps) / fps
    ref = np.sin(2 * np.pi * 300 * t)
    est = ref + 10 * np.sin(2 * np.pi * 30 * t)  # huge hum below the band
    assert snr_db(est, ref, fps=fps, band_hz=(80, 1000)) > 60


def test_segmental_snr_of_steady_noise_is_its_snr():
    rng = np.random.default_rng(2)
    clean = rng.standard_normal(40000)
    noisy = clean + 10 ** (-15 / 20) * rng.standard_normal(40000)
    assert segmental_snr_db(noisy, clean, rate_hz=16000) == pytest.approx(15, abs=0.3)
    # Frames are clipped to [-10, 35] dB.
    assert segmental_snr_db(clean, clean, rate_hz=16000) == pytest.approx(35)
    assert segmental_snr_db(100 * rng.standard_normal(40000), clean, rate_hz=16000) == pytest.approx(-10)


def test_llr_is_zero_for_identical_spectra_and_grows_with_distortion():
    rng = np.random.default_rng(3)
    x = np.convolve(rng.standard_normal(16000), [1, 0.9, 0.5, 0.2], mode="same")
    assert log_likelihood_ratio(x, x, rate_hz=8000) == pytest.approx(0, abs=1e-9)
    mild = log_likelihood_ratio(x + 0.1 * rng.standard_normal(x.size), x, rate_hz=8000)
    strong = log_likelihood_ratio(x + 1.0 * rng.standard_normal(x.size), x, rate_hz=8000)
    assert 0 < mild < strong


def test_evaluate_aligns_rates_lag_and_gain_and_matches_pystoi():
    pystoi = pytest.importorskip("pystoi")
    from visualmic.audio import resample

    rng = np.random.default_rng(4)
    ref = np.convolve(rng.standard_normal(2 * 8000), np.ones(4) / 4, mode="same")  # 8 kHz "speech"
    est = -3.0 * np.roll(ref, 80) + 0.1 * rng.standard_normal(ref.size)
    est_48k = resample(est, rate_in_hz=8000, rate_out_hz=48000)
    e = evaluate(est_48k, 48000, ref, 8000)
    assert e.rate_hz == 8000 and e.lag_s == pytest.approx(0.01, abs=1 / 8000)
    assert e.gain == pytest.approx(-3.0, rel=0.02)
    clean = -3.0 * np.roll(ref, 80)
    assert e.snr_db == pytest.approx(10 * np.log10(np.var(clean) / 0.01), abs=0.5)
    direct = pystoi.stoi(e.gain * np.roll(ref, 80)[80:], est[80:], 8000)
    assert e.stoi == pytest.approx(direct, abs=0.02)
