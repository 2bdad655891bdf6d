"""Property tests for what users type: regions, factors, bands, rates."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visualmic.cli import _parse_band, _parse_downsample, _parse_rate, _parse_size
from visualmic.errors import InputError
from visualmic.frames import check_roi
from visualmic.sources.base import parse_roi


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(1, 5000), st.integers(1, 5000))
def test_roi_round_trips(x, y, w, h):
    assert parse_roi(f"{x},{y},{w},{h}") == (x, y, w, h)
    assert parse_roi(f" {x} , {y} ,{w}, {h} ") == (x, y, w, h)


@given(st.text(max_size=30))
def test_roi_parser_never_crashes(text):
    try:
        x, y, w, h = parse_roi(text)
    except InputError:
        return
    assert x >= 0 and y >= 0 and w > 0 and h > 0


@given(st.integers(-50, 300), st.integers(-50, 300), st.integers(-5, 300), st.integers(-5, 300))
def test_roi_inside_the_frame_or_an_input_error(x, y, w, h):
    try:
        assert check_roi((x, y, w, h), width=200, height=100) == (x, y, w, h)
    except InputError:
        assert x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > 200 or y + h > 100


@given(st.integers(1, 64))
def test_downsample_factor_and_its_reciprocal_agree(factor):
    assert _parse_downsample(float(factor)) == factor
    assert _parse_downsample(1.0 / factor) == factor


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_downsample_rejects_what_is_not_a_whole_factor(value):
    try:
        factor = _parse_downsample(value)
    except InputError:
        return
    assert factor >= 1 and (math.isclose(value, factor) or math.isclose(1 / value, factor, rel_tol=1e-6))


@given(st.floats(0, 1e5), st.floats(0, 1e5))
def test_band_parser(lo, hi):
    try:
        band = _parse_band(f"{lo!r},{hi!r}")
    except InputError:
        assert not lo < hi
        return
    assert band == (lo, hi)


@pytest.mark.parametrize("text,expected", [("native", "native"), ("NATIVE", "native"), ("44100", 44100)])
def test_rate_parser(text, expected):
    assert _parse_rate(text) == expected


@given(st.text(max_size=12))
def test_rate_and_size_parsers_fail_cleanly(text):
    for parser in (_parse_rate, _parse_size):
        try:
            parser(text)
        except InputError:
            pass
