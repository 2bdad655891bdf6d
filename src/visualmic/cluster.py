"""Measure a long video on a Dask cluster: each worker reads its own range of frames from the file.

The client computes the reference and the pyramid once (the first frames), then
sends each worker a task "measure frames a to b of this file" with them. A
worker opens the file itself (it must see the same path: a shared or copied
file system), streams its range chunk by chunk and returns the per-frame
measurements: a few numbers per frame, so the reduction at the end is small.
Frames are independent once the reference is fixed, so the result is the
single-process one (to floating-point rounding).

Dask is optional: ``pip install 'visualmic[cluster]'``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .engine import stream_frames
from .errors import InputError
from .sources import open_source
from .sources.base import Roi

__all__ = ["dask_client", "measure_range", "frame_ranges"]


def frame_ranges(start: int, total: int, span: int) -> list[tuple[int, int | None]]:
    """Split frames ``start`` to ``total`` into tasks of ``span`` frames; the last reads to the end.

    The last range is open (None) because a video's frame count is the
    container's claim; what decodes is what counts.

    Examples
    --------
    >>> frame_ranges(32, 100, 30)
    [(32, 62), (62, 92), (92, None)]
    """
    edges = list(range(start, max(total, start + 1), span))
    return [(a, b) for a, b in zip(edges, edges[1:])] + [(edges[-1], None)]


def measure_range(path: str, *, roi: Roi, downsample: int, chunk_frames: int, start: int, stop: int | None,
                  measure_frames: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Measure frames ``start`` to ``stop`` of a file (runs on a worker), each chunk by ``measure_frames``.

    Returns
    -------
    ndarray
        The measurements of every frame in the range, concatenated (empty if
        the file has fewer frames).
    """
    with open_source(path) as source:
        parts = [measure_frames(block) for _, block in stream_frames(
            source, chunk_frames=chunk_frames, roi=roi, downsample=downsample, start=start, stop=stop, stored=True)]
    return np.concatenate(parts) if parts else np.empty((0,))


@contextlib.contextmanager
def dask_client(*, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: connected to ``scheduler``, or to a local cluster of ``workers`` processes.

    Raises
    ------
    InputError
        Dask is not installed, the scheduler cannot be reached, or no worker is there.
    """
    try:
        import distributed
    except ImportError:
        raise InputError("running on a cluster needs Dask: pip install 'visualmic[cluster]'") from None
    if scheduler is not None and workers is not None:
        raise InputError("give --scheduler (an existing cluster) or --workers (a local one), not both")
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        else:
            if workers is None or workers < 1:
                raise InputError(f"--workers {workers}: at least 1")
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=max(1, (os.cpu_count() or 1)
                                               // workers), processes=True, dashboard_address=None)
            client = distributed.Client(cluster)
        try:
            client.wait_for_workers(1, timeout=30)
        except (TimeoutError, OSError):
            client.close()
            raise InputError(f"no Dask worker joined the scheduler {scheduler or ''} within 30 s") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
