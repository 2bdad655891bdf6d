"""Shared fixtures: small synthetic scenes with a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visualmic.synth import Camera, make_scene, melody

CAMERA_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cameras"


@pytest.fixture(scope="session")
def melody_scene():
    """A 2 s melody moving a 96x96 texture by 0.02 px peak, 8-bit, 2 grey levels of noise."""
    fps = 2200.0
    return make_scene(
        melody(2.0, rate_hz=fps, seed=2), fps=fps, size=(96, 96), amplitude_px=0.02,
        camera=Camera(read_noise=2.0, bit_depth=8), seed=4,
    )


@pytest.fixture(scope="session")
def melody_frames(melody_scene):
    return np.concatenate(list(melody_scene.frames()))
