"""Stream chunks of prepared frames: reading overlapped with computing, with progress.

Reading and decoding run in a background thread that stays a bounded number
of chunks ahead, so decoding (PyAV releases the GIL) overlaps the FFTs, and
memory is set by the chunk size, never by the video's length.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from .frames import block_mean
from .sources.base import FrameSource, Roi

__all__ = ["stream_frames", "default_chunk_frames", "map_ordered", "stack_chunks", "peak_memory_mb"]

_DONE = object()
MAX_EXPECTED_ROWS = 1 << 22  # stack_chunks trusts a claimed length up to this many rows
T = TypeVar("T")
R = TypeVar("R")


def default_chunk_frames(shape: tuple[int, int], *, target_bytes: float = 4e6, most: int = 32) -> int:
    """Frames per chunk so that a chunk of float32 frames is about ``target_bytes`` (4 to ``most``).

    About 4 MB balances the fixed cost of a chunk (Python, threads: many small
    chunks) against the processor's cache (a thread's frames, spectra and bands:
    large chunks); measured fastest on 256² to 704² frames, and 1.3x faster than
    1 MB at 128² (``benchmarks/speed.py``). At most 32 frames: a chunk is also
    the unit that follows slow drift (:mod:`visualmic.drift`), and longer ones
    would move within themselves.

    Examples
    --------
    >>> default_chunk_frames((128, 128)), default_chunk_frames((512, 512))
    (32, 4)
    """
    return int(np.clip(target_bytes // (4 * shape[0] * shape[1]), 4, most))


def stream_frames(
    source: FrameSource,
    *,
    chunk_frames: int,
    roi: Roi,
    downsample: int = 1,
    start: int = 0,
    stop: int | None = None,
    prefetch: int = 2,
    progress: bool = False,
    description: str = "frames",
    stored: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_index, frames)`` chunks, cropped and block-averaged, read ahead in a thread.

    Parameters
    ----------
    source : FrameSource
        Where frames come from.
    chunk_frames : int
        Frames per chunk.
    roi : tuple of int
        Region ``(x, y, width, height)``, already validated.
    downsample : int
        Block-average factor.
    start, stop : int
        Frame range.
    prefetch : int
        Chunks read ahead (memory: ``prefetch + 1`` chunks).
    progress : bool
        Show a progress bar on stderr (only when stderr is a terminal).
    description : str
        Label of the progress bar.
    stored : bool
        Leave 8- and 16-bit frames in their stored type (see :meth:`FrameSource.chunks`;
        block averages are float32 either way).

    Examples
    --------
    >>> from visualmic.sources import ArraySource
    >>> src = ArraySource(np.ones((10, 8, 8), np.uint8))
    >>> [(i, f.shape) for i, f in stream_frames(src, chunk_frames=6, roi=(0, 0, 8, 8), downsample=2)]
    [(0, (6, 4, 4)), (6, (4, 4, 4))]
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop_reading = threading.Event()

    def reader() -> None:
        try:
            for first, frames in source.chunks(chunk_frames=chunk_frames, start=start, stop=stop, roi=roi,
                                               stored=stored):
                item = (first, block_mean(frames, downsample))
                while not stop_reading.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop_reading.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put(exc)

    total = source.meta.frame_count
    if total is not None and stop is not None:
        total = min(total, stop)
    total = None if total is None else max(total - start, 0)
    bar = tqdm(
        total=total,
        unit="frame",
        desc=description,
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
        leave=False,
    )
    thread = threading.Thread(target=reader, name="visualmic-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            bar.update(item[1].shape[0])
            yield item
    finally:
        stop_reading.set()
        bar.close()
        thread.join(timeout=5)


def measuring_threads(source: FrameSource, requested: int | None = None) -> int:
    """Threads that measure chunks of ``source`` in parallel: ``requested``, or every core, less one
    where the source decodes on threads of its own (a video: FFmpeg's decoder then keeps a core).

    Decoding a lossless video costs more CPU than measuring its frames (FFV1, 512²: 3.6 ms against
    1.4 ms a frame), so on few cores more measuring threads only contend with the decoder's. On
    2 cores, recovering FFV1 videos with one measuring thread against two (time over PyAV's
    decoding alone): 512² 1.30x against 1.33-1.36x, 704² 1.46x against 1.63x; 128², where measuring
    is cheap, 1.44x against 1.39x (both faster than real time at 2200 fps).

    Examples
    --------
    >>> from visualmic.sources import ArraySource
    >>> measuring_threads(ArraySource(np.zeros((2, 8, 8))), 3)
    3
    """
    if requested:
        return int(requested)
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if source.decodes_on_threads else cores


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, threads: int) -> Iterator[R]:
    """``map(fn, items)`` on a pool of threads, in order, with at most ``threads + 1`` items in flight.

    numpy and scipy release the GIL in their heavy loops, so chunks of frames
    processed in threads use every core; the bound keeps memory flat.

    Examples
    --------
    >>> list(map_ordered(lambda x: x * x, range(5), threads=2))
    [0, 1, 4, 9, 16]
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="visualmic") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def stack_chunks(chunks: Iterable[np.ndarray], *, expected_rows: int | None = None,
                 dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Concatenate chunks along the first axis into one array, without holding them twice.

    ``np.concatenate(list(chunks))`` keeps every chunk and the result in memory at
    once; here each chunk is copied into a buffer (sized ``expected_rows`` when
    known, grown by half when short) as it arrives and then dropped. The buffer's
    pages cost memory only once written, so a header's claim can size it; a claim
    beyond ``MAX_EXPECTED_ROWS`` (a corrupt header) is not trusted.

    Examples
    --------
    >>> stack_chunks((np.full((2, 3), i) for i in range(3)), expected_rows=4).shape
    (6, 3)
    """
    buffer: np.ndarray | None = None
    rows = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if buffer is None:
            capacity = max(min(expected_rows or 0, MAX_EXPECTED_ROWS), chunk.shape[0], 1)
            buffer = np.empty((capacity, *chunk.shape[1:]), dtype=dtype)
        if rows + chunk.shape[0] > buffer.shape[0]:
            grown = np.empty((max(rows + chunk.shape[0], buffer.shape[0] * 3 // 2), *buffer.shape[1:]), dtype=dtype)
            grown[:rows] = buffer[:rows]
            buffer = grown
        buffer[rows : rows + chunk.shape[0]] = chunk
        rows += chunk.shape[0]
    if buffer is None:
        raise ValueError("no chunk to stack")
    return buffer[:rows] if rows == buffer.shape[0] else buffer[:rows].copy()


def peak_memory_mb() -> float | None:
    """This process's peak resident memory in MiB, or None where it cannot be read.

    Linux: ``VmHWM`` from ``/proc/self/status`` (``ru_maxrss`` would include the
    parent's peak, carried across ``exec``); elsewhere ``ru_maxrss``.

    Examples
    --------
    >>> peak_memory_mb() > 0
    True
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere
