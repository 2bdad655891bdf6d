"""Per-chunk results kept on disk, so that an interrupted run of a long video continues where it stopped.

A run's chunks are measured in a fixed order with fixed boundaries; each
chunk's measurement (a small array: a few numbers per frame) is written to
the cache folder as soon as it is known, atomically. A later run with the same
input file (path, size, modification time) and the same measuring options
finds them under the same key, reuses the unbroken run of chunks from the
start, and measures only the rest. Results are saved exactly (``.npy``), so
the final output is identical to an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from .errors import InputError
from .outputs import write_npy

__all__ = ["ChunkCache", "cache_key"]

_NAME = re.compile(r"^chunk-(\d{12})\.npy$")


def cache_key(**identity: object) -> str:
    """A short hash of what identifies a run's measurements (input file, options, version).

    Examples
    --------
    >>> cache_key(path="a.mkv", size=10) == cache_key(size=10, path="a.mkv")
    True
    >>> len(cache_key(path="a.mkv"))
    20
    """
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class ChunkCache:
    """Chunks of per-frame measurements of one run, stored as ``FOLDER/KEY/chunk-FIRST.npy``.

    Parameters
    ----------
    folder : str or Path
        The cache folder (created if missing; its parent must exist).
    key : str
        What identifies the run (see :func:`cache_key`).

    Examples
    --------
    >>> import tempfile
    >>> cache = ChunkCache(tempfile.mkdtemp(), "k")
    >>> cache.save(0, np.zeros((4, 2))); cache.save(4, np.ones((3, 2))); cache.save(10, np.ones((2, 2)))
    >>> [(first, block.shape[0]) for first, block in cache.resume()]  # 7-9 missing: the run stops at 7
    [(0, 4), (4, 3)]
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        root = Path(folder)
        if not root.is_dir():
            if not root.absolute().parent.is_dir():
                raise InputError(f"{root}: the cache folder's parent {root.absolute().parent} does not exist")
            root.mkdir(exist_ok=True)
        self.folder = root / key
        self.folder.mkdir(exist_ok=True)

    def save(self, first: int, measured: np.ndarray) -> None:
        """Keep the measurement of the chunk starting at frame ``first`` (atomically)."""
        write_npy(self.folder / f"chunk-{first:012d}.npy", np.asarray(measured))

    def resume(self) -> list[tuple[int, np.ndarray]]:
        """The stored chunks that follow each other from frame 0 without a gap, in order."""
        stored = {}
        for path in self.folder.iterdir():
            match = _NAME.match(path.name)
            if match:
                stored[int(match.group(1))] = path
        out, position = [], 0
        while position in stored:
            try:
                block = np.load(stored[position], allow_pickle=False)
            except (ValueError, OSError, EOFError):
                break  # damaged: measure again from here
            if block.shape[0] == 0:
                break
            out.append((position, block))
            position += block.shape[0]
        return out
