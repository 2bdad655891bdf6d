"""What every frame source provides: its metadata and chunks of grey frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Meta", "FrameSource", "Roi", "grey_from_channels", "stored_grey", "stored_type", "parse_roi"]

Roi = tuple[int, int, int, int]
"""A region of interest ``(x, y, width, height)`` in pixels, x along columns."""


@dataclass
class Meta:
    """What is known about a frame source before its frames are read.

    Attributes
    ----------
    path : str
        The file or folder, or ``"<array>"`` for an in-memory array.
    format : str
        Short name of the container or file format (``"npy"``, ``"matroska"``...).
    codec : str or None
        Video codec, where there is one.
    lossy : bool or None
        Whether the frames went through a lossy codec (None: unknown).
    width, height : int
        Frame size in pixels.
    bit_depth : int
        Bits per grey sample as stored (8, 12, 16; 32 for float arrays).
    effective_bit_depth : int or None
        Bits the sensor filled, when the file says and it differs from ``bit_depth``
        (a Photron 16-bit file of a 12-bit sensor).
    frame_count : int or None
        Number of frames; see ``frame_count_exact``.
    frame_count_exact : bool
        True when ``frame_count`` is certain (arrays, image folders); False when
        it is a header's claim. The frames that decode are what counts.
    fps : float or None
        Frame rate stored in the file, None when the format has none.
    fps_origin : str
        Where ``fps`` came from (``"container"``, ``"header"``, ``"none"``).
    warnings : list of str
        What about the file may spoil a recovery (a lossy codec...).
    rate_warnings : list of str
        Doubts about ``fps`` (a playback rate, a container that cannot store the
        rate); they matter only when the user does not give the rate.
    duration_s : float or None
        Duration the container claims, at its own rate (to detect truncated files).
    frame_times_s : ndarray or None
        Capture time of every frame relative to the first, where the file records
        them (Phantom ``.cine``).
    exposure_s : float or None
        Exposure time of a frame, where the file records it.
    """

    path: str
    format: str
    width: int
    height: int
    bit_depth: int
    frame_count: int | None
    frame_count_exact: bool
    fps: float | None = None
    fps_origin: str = "none"
    codec: str | None = None
    lossy: bool | None = None
    warnings: list[str] = field(default_factory=list)
    rate_warnings: list[str] = field(default_factory=list)
    duration_s: float | None = None
    effective_bit_depth: int | None = None
    frame_times_s: np.ndarray | None = None
    exposure_s: float | None = None


def grey_from_channels(frames: np.ndarray, channel_axis: bool) -> np.ndarray:
    """Grey frames: the mean of the colour channels (alpha ignored) as float32, or
    without channels the frames in their stored type (see :func:`stored_grey`).

    Parameters
    ----------
    frames : ndarray
        ``(..., rows, cols)`` or, with ``channel_axis``, ``(..., rows, cols, channels)``.
    channel_axis : bool
        Whether the last axis holds colour channels.

    Examples
    --------
    >>> rgb = np.zeros((1, 2, 2, 3), np.uint8); rgb[..., 0] = 30
    >>> float(grey_from_channels(rgb, channel_axis=True)[0, 0, 0])
    10.0
    """
    if not channel_axis:
        return stored_grey(frames)
    channels = frames.shape[-1]
    if channels in (2, 4):  # grey + alpha, RGB + alpha
        frames = frames[..., : channels - 1]
    return frames.mean(axis=-1, dtype=np.float32)


def stored_grey(frames: np.ndarray) -> np.ndarray:
    """Grey frames in the type sources keep them in: unsigned integers of up to 16 bits as stored,
    copied (in the machine's byte order: a source may release the pages they came from), anything
    else as float32 (converted, or as it is where it already is).

    Examples
    --------
    >>> stored_grey(np.array([1, 2], ">u2")).dtype.str, stored_grey(np.array([True])).dtype.name
    ('<u2', 'float32')
    """
    dtype = stored_type(frames.dtype)
    return np.array(frames, dtype=dtype) if dtype.kind == "u" else np.asarray(frames, dtype=dtype)


def stored_type(dtype: np.dtype) -> np.dtype:
    """The type :func:`stored_grey` keeps grey values of ``dtype`` in.

    Examples
    --------
    >>> stored_type(np.dtype(">u2")).str, stored_type(np.dtype(np.float64)).name
    ('<u2', 'float32')
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and dtype.itemsize <= 2:
        return dtype.newbyteorder("=")
    return np.dtype(np.float32)


def parse_roi(text: str) -> Roi:
    """Parse ``"X,Y,W,H"`` into a region of interest.

    Examples
    --------
    >>> parse_roi("10, 20, 64, 32")
    (10, 20, 64, 32)
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"region of interest {text!r} must be four integers X,Y,W,H")
    x, y, w, h = values
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise InputError(f"region of interest {text!r}: X and Y must be >= 0, W and H > 0")
    return values  # type: ignore[return-value]


class FrameSource(ABC):
    """A sequence of grey frames read in chunks, never all at once.

    Subclasses fill :attr:`meta` on opening (cheaply: no full decode) and
    implement :meth:`_chunks`. Frames come out as float32 grey levels in the
    file's own scale (0-255 for 8-bit, 0-65535 for 16-bit), or with
    ``stored=True`` in the type the source keeps them in (:func:`stored_grey`).
    """

    meta: Meta
    #: Whether reading decodes on threads of its own (FFmpeg's, for videos): a recovery then leaves
    #: them a core (see :func:`visualmic.engine.measuring_threads`).
    decodes_on_threads: bool = False

    def chunks(
        self, *, chunk_frames: int = 64, start: int = 0, stop: int | None = None, roi: Roi | None = None,
        stored: bool = False,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index_of_first_frame, frames)`` with frames of shape ``(n, rows, cols)``.

        Parameters
        ----------
        chunk_frames : int
            Frames per chunk (the last one may be shorter).
        start, stop : int
            Range of frame indices to read (``stop=None``: to the end).
        roi : tuple of int, optional
            ``(x, y, width, height)`` to crop, already checked against the frame size.
        stored : bool
            Leave 8- and 16-bit frames in their stored unsigned type instead of float32:
            for a consumer that converts them itself, next to its use (a quarter or half
            of the memory traffic between threads).
        """
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be at least 1")
        rows = slice(None) if roi is None else slice(roi[1], roi[1] + roi[3])
        cols = slice(None) if roi is None else slice(roi[0], roi[0] + roi[2])
        for first, frames in self._chunks(chunk_frames, start, stop, rows, cols):
            yield first, frames if stored else frames.astype(np.float32, copy=False)

    @abstractmethod
    def _chunks(
        self, chunk_frames: int, start: int, stop: int | None, rows: slice, cols: slice
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield chunks of cropped grey frames, typed as :func:`stored_grey` types them."""

    def bipredicted_frames(self, count: int) -> np.ndarray | None:
        """Which of the first ``count`` frames a codec coded as bi-predicted (B-frames: from frames
        before and after them), as decoding them has shown; None where the source does not know
        (not a video, or those frames not decoded yet)."""
        return None

    def close(self) -> None:
        """Release the file (sources that hold one override this)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
