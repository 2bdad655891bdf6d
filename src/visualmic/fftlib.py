"""The pyramid's FFTs: Intel MKL through torch where it is installed, else scipy's pocketfft.

Fourier transforms are most of a recovery's work: one ``rfft2`` per frame and
one inverse FFT per band (``fft_floor`` in ``benchmarks/speed.py``). On x86
processors MKL, which every x86 build of torch carries, computes them 1.4 to
1.7 times faster than scipy's pocketfft (float32, 128² to 704² frames, two
cores, measured side by side: ``fft_floor`` and ``fft_floor_scipy`` in
``benchmarks/results/speed.json``). So where torch is installed with MKL
(``pip install 'visualmic[gpu]'``, or a CPU build of torch), the CPU path uses
it for these transforms; the arrays stay numpy arrays (torch views them
without a copy), and the rest of the work is unchanged.

``VISUALMIC_FFT=scipy`` (or ``torch``) forces the choice; ``auto`` (the default)
takes torch only when it has MKL (ARM builds of torch use pocketfft, no faster
than scipy's) and is importable. Importing torch takes about a second, once per
process: a recovery too small to win that back (:data:`SMALL_JOB_PIXEL_FRAMES`),
or measured to first order (:mod:`visualmic.linear`: no frame is transformed),
keeps scipy's FFTs unless torch is already imported. With torch, the number of FFT threads is torch's own
(``torch.set_num_threads``, ``OMP_NUM_THREADS``), limited during a recovery by
its ``threads`` option (:func:`limited_fft_threads`); ``workers`` applies to scipy.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Iterator

import numpy as np
import scipy.fft

from .errors import InputError

__all__ = ["fft_library", "fft_description", "planned_work", "rfft2", "fft2", "ifft2", "limited_fft_threads"]

LIBRARIES = ("auto", "scipy", "torch")


SMALL_JOB_PIXEL_FRAMES = 6e8
"""Below this many pixels times frames, a recovery keeps scipy's FFTs unless torch is already
imported: importing torch takes about a second, and MKL's faster FFTs save less than that on a
job this small (measured, two cores: 0.49 ms per 512² frame, so about 2,200 such frames to break
even, and about 600 million pixel-frames from 128² to 704²; from the command line, 1,200 frames of
512² took 3.8 s with torch's FFTs and 2.8 s with scipy's)."""

_planned_pixel_frames: float | None = None


@contextlib.contextmanager
def planned_work(pixel_frames: float | None) -> Iterator[None]:
    """Within the block, :func:`fft_library` knows the job's size (pixels times frames; None: unknown).

    Examples
    --------
    >>> with planned_work(1e6):  # a small job: scipy's FFTs unless torch is already imported
    ...     fft_library() in ("scipy", "torch")
    True
    """
    global _planned_pixel_frames
    before, _planned_pixel_frames = _planned_pixel_frames, pixel_frames
    try:
        yield
    finally:
        _planned_pixel_frames = before


@functools.cache
def _torch_has_mkl() -> bool | None:
    """Whether torch computes its FFTs with MKL (None: torch is not installed). Imports torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return bool(torch.backends.mkl.is_available())


def fft_library() -> str:
    """``"torch"`` or ``"scipy"``: the library that computes the pyramid's FFTs now.

    ``VISUALMIC_FFT`` decides if set; ``auto`` takes torch where it has MKL, except
    for a job planned smaller than :data:`SMALL_JOB_PIXEL_FRAMES` (see
    :func:`planned_work`) while torch is not imported yet.

    Raises
    ------
    InputError
        ``VISUALMIC_FFT`` names an unknown library, or ``torch`` where it is not installed.

    Examples
    --------
    >>> fft_library() in ("torch", "scipy")
    True
    """
    wanted = os.environ.get("VISUALMIC_FFT", "auto").strip().lower() or "auto"
    if wanted not in LIBRARIES:
        raise InputError(f"VISUALMIC_FFT={wanted!r}: choose one of {', '.join(LIBRARIES)}")
    if wanted == "scipy":
        return "scipy"
    small = _planned_pixel_frames is not None and _planned_pixel_frames < SMALL_JOB_PIXEL_FRAMES
    if wanted == "auto" and small and "torch" not in sys.modules:
        return "scipy"
    mkl = _torch_has_mkl()
    if mkl is None:
        if wanted == "torch":
            raise InputError("VISUALMIC_FFT=torch, but torch is not installed")
        return "scipy"
    return "torch" if wanted == "torch" or mkl else "scipy"


def fft_description() -> str:
    """A few words naming the FFT library, for reports.

    Examples
    --------
    >>> fft_description().startswith(("torch", "scipy"))
    True
    """
    if fft_library() == "torch":
        import torch

        return f"torch {torch.__version__} (MKL)" if torch.backends.mkl.is_available() else f"torch {torch.__version__}"
    return f"scipy {scipy.__version__} (pocketfft)"


def rfft2(frames: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """2-D real FFT over the last two axes of float32 ``frames``: complex64, ``(..., rows, cols // 2 + 1)``.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((2, 8, 8), dtype=np.float32)
    >>> np.allclose(rfft2(x), np.fft.rfft2(x), atol=1e-4)
    True
    """
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if fft_library() == "torch":
        import torch

        return torch.fft.rfft2(torch.from_numpy(frames)).numpy()
    return scipy.fft.rfft2(frames, workers=workers)


def fft2(values: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """2-D FFT over the last two axes of complex64 ``values`` (may overwrite them); ``workers=None``: all cores.

    Examples
    --------
    >>> x = np.eye(4, dtype=np.complex64)
    >>> np.allclose(fft2(x.copy()), np.fft.fft2(x), atol=1e-6)
    True
    """
    values = np.ascontiguousarray(values, dtype=np.complex64)
    if fft_library() == "torch":
        import torch

        return torch.fft.fft2(torch.from_numpy(values)).numpy()
    return scipy.fft.fft2(values, workers=workers or os.cpu_count(), overwrite_x=True)


def ifft2(spectra: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """2-D inverse FFT over the last two axes of complex64 ``spectra`` (may overwrite them).

    Examples
    --------
    >>> s = np.fft.fft2(np.eye(4)).astype(np.complex64)
    >>> np.allclose(ifft2(s.copy()), np.eye(4), atol=1e-6)
    True
    """
    spectra = np.ascontiguousarray(spectra, dtype=np.complex64)
    if fft_library() == "torch":
        import torch

        return torch.fft.ifft2(torch.from_numpy(spectra)).numpy()
    return scipy.fft.ifft2(spectra, workers=workers, overwrite_x=True)


@contextlib.contextmanager
def limited_fft_threads(count: int | None) -> Iterator[None]:
    """Within the block, torch's FFTs use at most ``count`` threads (restored after); scipy's take ``workers``.

    ``None`` sets no limit. :func:`visualmic.recover` measures inside it with its ``threads`` option.

    Examples
    --------
    >>> with limited_fft_threads(1):
    ...     spectrum = rfft2(np.ones((1, 8, 8), np.float32))
    """
    if count is None or fft_library() != "torch":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(int(count), before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
