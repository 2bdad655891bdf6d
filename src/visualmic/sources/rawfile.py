"""Frames stored uncompressed at known places of one file (camera raw formats)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .arrays import release_pages
from .base import FrameSource, Meta, stored_grey

__all__ = ["RawFrameFile"]

Decoder = Callable[[np.ndarray], np.ndarray]
"""Turns raw bytes ``(frames, frame_bytes)`` uint8 into pixels ``(frames, rows, cols)``."""


class RawFrameFile(FrameSource):
    """Frames at given byte offsets of a file, memory-mapped and decoded chunk by chunk.

    Only the chunk being decoded is touched; its pages are released after
    reading, so memory stays flat however long the recording.

    Parameters
    ----------
    path : Path
        The data file.
    meta : Meta
        What the header said (filled by the format's reader).
    frame_offsets : array of int
        Byte offset of every frame's pixel data.
    frame_bytes : int
        Bytes of pixel data per frame.
    decode : callable
        ``(frames, frame_bytes)`` uint8 -> ``(frames, rows, cols)`` pixels.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = Path(d) / "raw"
    ...     np.arange(2 * 6, dtype=np.uint8).tofile(path)
    ...     meta = Meta(path=str(path), format="raw", width=3, height=2, bit_depth=8,
    ...                 frame_count=2, frame_count_exact=True)
    ...     src = RawFrameFile(path, meta, frame_offsets=[0, 6], frame_bytes=6,
    ...                        decode=lambda raw: raw.reshape(-1, 2, 3))
    ...     [block[:, 1].tolist() for _, block in src.chunks(chunk_frames=1)]
    [[[3.0, 4.0, 5.0]], [[9.0, 10.0, 11.0]]]
    """

    def __init__(
        self, path: Path, meta: Meta, *, frame_offsets: np.ndarray | list[int], frame_bytes: int, decode: Decoder
    ) -> None:
        self.meta = meta
        self._offsets = np.asarray(frame_offsets, dtype=np.int64)
        self._frame_bytes = int(frame_bytes)
        self._decode = decode
        self._map: np.memmap | None = np.memmap(path, dtype=np.uint8, mode="r")

    def _raw(self, first: int, last: int) -> np.ndarray:
        """The bytes of frames ``first`` to ``last - 1`` as ``(frames, frame_bytes)``, without copying."""
        assert self._map is not None
        offsets = self._offsets[first:last]
        spacing = np.diff(offsets)
        if offsets.size == 1 or np.all(spacing == spacing[0]):
            step = int(spacing[0]) if spacing.size else self._frame_bytes
            return np.lib.stride_tricks.as_strided(
                self._map[offsets[0] :], shape=(offsets.size, self._frame_bytes), strides=(step, 1), writeable=False
            )
        return np.stack([self._map[o : o + self._frame_bytes] for o in offsets])

    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        if self._map is None:
            raise ValueError("the file is closed")
        total = self._offsets.size
        stop = total if stop is None else min(stop, total)
        for first in range(max(start, 0), stop, chunk_frames):
            last = min(first + chunk_frames, stop)
            pixels = self._decode(self._raw(first, last))
            yield first, stored_grey(pixels[:, rows, cols])
            release_pages(self._map, int(self._offsets[first]), int(self._offsets[last - 1]) + self._frame_bytes)

    def close(self) -> None:
        self._map = None  # the mapping closes when the last view of it is gone
