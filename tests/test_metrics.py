import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visualmic.metrics import align, snr_db


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
    if snr > 0:  # the true lag stands out: everything is exact
        assert a.lag == lag and np.sign(a.gain) == np.sign(gain)
        assert measured == pytest.approx(snr, abs=0.3)
    else:  # a best-lag search can only find a better-looking lag than the true one
        assert snr - 0.3 < measured < snr + 1.5


def test_band_limited_snr_ignores_out_of_band_noise():
    fps = 2200
    t = np.arange(4 * fps) / fps
    ref = np.sin(2 * np.pi * 300 * t)
    est = ref + 10 * np.sin(2 * np.pi * 30 * t)  # huge hum below the band
    assert snr_db(est, ref, fps=fps, band_hz=(80, 1000)) > 60
