"""Dask: a separately started scheduler with two worker processes gives the single-process sound."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import visualmic
from visualmic.cli import main
from visualmic.synth import creep, make_scene, melody

distributed = pytest.importorskip("distributed", reason="Dask is not installed (pip install 'visualmic[cluster]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler():
    """A real scheduler and two worker processes, started as a user would, stopped afterwards."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", port, "--no-dashboard"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
    processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                                       "2", "--nthreads", "1", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with distributed.Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=30)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_cluster_run_gives_the_single_process_sound(scheduler, tmp_path, melody_frames):
    path = tmp_path / "clip.npy"
    np.save(path, melody_frames[:1100])
    alone = visualmic.recover(path, fps=2200)
    spread = visualmic.recover(path, fps=2200, scheduler=scheduler)
    assert np.corrcoef(alone.audio, spread.audio)[0, 1] >= 0.999
    assert np.allclose(alone.displacement_px, spread.displacement_px, atol=1e-9)


def test_cluster_follows_drift_as_one_process_does(scheduler, tmp_path):
    """Workers measure each chunk relative to where it drifted, as the single process does."""
    fps = 2200.0
    sound = melody(0.5, rate_hz=fps, seed=6)
    audio = 0.05 * sound / np.abs(sound).max() + creep(sound.size, 2.0)  # px: drifts 2 px and back
    scene = make_scene(audio, fps=fps, size=(64, 64), amplitude_px=float(np.abs(audio).max()), seed=9)
    path = tmp_path / "drift.npy"
    np.save(path, np.concatenate(list(scene.frames())))
    alone = visualmic.recover(path, fps=fps)
    spread = visualmic.recover(path, fps=fps, scheduler=scheduler)
    # 1e-7 px apart in a fresh process (the single process takes the chunks that did not drift to first
    # order, the workers every chunk by its phases; by phases alone still 1e-8 apart), a chunk not followed
    # would be off by hundredths of a pixel. Equality to 1e-9 held only after test_backends had run.
    np.testing.assert_allclose(spread.displacement_px, alone.displacement_px,
                               atol=1e-5 * np.abs(alone.displacement_px).max())


def test_cluster_from_the_command_line(scheduler, tmp_path, melody_frames):
    np.save(tmp_path / "clip.npy", melody_frames[:400])
    result = CliRunner().invoke(main, ["recover", str(tmp_path / "clip.npy"), "--fps", "2200", "-o",
                                       str(tmp_path / "o.wav"), "--scheduler", scheduler, "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o.wav").exists()


def test_unreachable_scheduler_is_one_line(tmp_path, melody_frames):
    np.save(tmp_path / "clip.npy", melody_frames[:100])
    result = CliRunner().invoke(main, ["recover", str(tmp_path / "clip.npy"), "--fps", "2200", "-o",
                                       str(tmp_path / "o.wav"), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output


def test_arrays_cannot_go_to_a_cluster(scheduler, melody_frames):
    with pytest.raises(visualmic.errors.InputError, match="give a file path"):
        visualmic.recover(melody_frames[:100], fps=2200, scheduler=scheduler)
