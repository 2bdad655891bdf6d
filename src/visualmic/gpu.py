"""GPU backend (torch): the pyramid and the phase-gradient sums of whole chunks on the device.

The numpy path (:meth:`visualmic.pyramid.SteerablePyramid.bands` then
:func:`visualmic.motion.phase_gradient_sums`) and this one compute the same
thing; here a chunk of frames goes to the device once, its spectrum, band
masks, bands and sums stay there, and only ``(frames, channels, 2)`` numbers
come back. Masks, references and weights are uploaded once, when the backend is
built. The reference itself is still computed by the numpy path (it is a few
dozen frames), so both paths measure against the same reference.

``torch`` is optional (``pip install 'visualmic[gpu]'``); without it, or without
a CUDA device, ``device="auto"`` is the CPU path. ``device="torch:cpu"`` runs
this module on the CPU: that is how its equality with the numpy path is tested
on machines without a GPU.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .config import check_device
from .drift import ShiftEstimator
from .errors import InputError
from .fftlib import fft_description
from .motion import BandReference
from .pyramid import SteerablePyramid

__all__ = ["resolve_device", "device_description", "TorchPhaseSums"]


def _may_have_cuda() -> bool:
    """False where no NVIDIA driver is loaded (Linux) or none can exist (macOS): ``auto`` then
    does not import torch at all (it takes seconds and hundreds of MB)."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")
    return True


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def resolve_device(name: str) -> str | None:
    """The torch device to measure on, or None for the CPU (numpy) path.

    Parameters
    ----------
    name : str
        One of the names in :data:`visualmic.config.DEVICES_HELP`.

    Raises
    ------
    InputError
        An unknown name, or a CUDA device asked for where torch or the device is missing.

    Examples
    --------
    >>> resolve_device("cpu") is None
    True
    """
    check_device(name)
    if name == "cpu":
        return None
    if name == "auto":
        return "cuda" if _may_have_cuda() and (torch := _torch()) is not None and torch.cuda.is_available() else None
    torch = _torch()
    if name == "torch:cpu":
        if torch is None:
            raise InputError("device torch:cpu needs torch: pip install 'visualmic[gpu]'")
        return "cpu"
    if torch is None:
        raise InputError(f"device {name} needs torch with CUDA: pip install 'visualmic[gpu]'")
    if not torch.cuda.is_available():
        raise InputError(f"device {name}: torch sees no CUDA GPU here (use --device cpu)")
    index = int(name[5:]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise InputError(f"device {name}: there are {torch.cuda.device_count()} CUDA devices")
    return name


def device_description(device: str | None) -> str:
    """A few words naming where the frames were measured.

    Examples
    --------
    >>> device_description(None).startswith("cpu (numpy; FFTs: ")
    True
    """
    if device is None:
        return f"cpu (numpy; FFTs: {fft_description()})"
    torch = _torch()
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__})"
    return f"{device} (torch {torch.__version__})"


class TorchPhaseSums:
    """Measure chunks of frames on a torch device: frames in, normal-equation sums out.

    Parameters
    ----------
    pyramid : SteerablePyramid
        Its band layout (blocks and masks) and periodic decomposition are reproduced.
    references : list of BandReference
        From :func:`visualmic.motion.prepare_references`.
    device : str
        A torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``).
    estimate_shift : ShiftEstimator, optional
        Follow slow drift as the CPU path does (see :mod:`visualmic.drift`): the
        chunk's low-frequency block comes back, the shift is estimated here and
        applied on the device as a phase ramp.

    Examples
    --------
    >>> from visualmic.motion import prepare_references, reference_bands, phase_gradient_sums
    >>> pyr = SteerablePyramid((32, 32))
    >>> frames = np.random.default_rng(0).random((4, 32, 32), dtype=np.float32)
    >>> refs = prepare_references(pyr, reference_bands(pyr.bands(frames)))
    >>> on_torch = TorchPhaseSums(pyr, refs, "cpu")(frames)  # doctest: +SKIP
    >>> np.allclose(on_torch, phase_gradient_sums(pyr.bands(frames), refs), rtol=1e-4)  # doctest: +SKIP
    True
    """

    def __init__(self, pyramid: SteerablePyramid, references: list[BandReference], device: str,
                 estimate_shift: ShiftEstimator | None = None) -> None:
        torch = _torch()
        if torch is None:
            raise InputError("the GPU backend needs torch: pip install 'visualmic[gpu]'")
        self._torch = torch
        self.device = torch.device(device)
        self.shape = pyramid.shape
        put = self._put
        self.periodic = pyramid.periodic
        if self.periodic:
            row_factor, col_factor = pyramid._smooth_factors
            self.smooth_factors = (put(row_factor, torch.complex64), put(col_factor, torch.complex64))
        self.bands = []
        for info in pyramid.bands_info:
            blocks = [(block.rows, block.cols, self._index(block.src_rows, pyramid.shape[0]),
                       self._index(block.src_cols, pyramid.shape[1] // 2 + 1), block.mirror,
                       put(block.mask, torch.complex64)) for block in info.blocks]
            self.bands.append((info.shape, blocks))
        self.estimate_shift = estimate_shift
        if estimate_shift is not None:
            fy, fx = np.fft.fftfreq(self.shape[0]), np.fft.rfftfreq(self.shape[1])
            self.frequencies = (put(fy[:, None], torch.float64), put(fx[None, :], torch.float64))
            self.shift_rows = put(estimate_shift.rows, torch.int64)
            self.fisher = np.concatenate([ref.fisher for ref in references])
        self.references = [
            (put(ref.conj_ref, torch.complex64), put(ref.region_weights[0].T, torch.float32),
             put(ref.region_weights[1].T, torch.float32), put(ref.offset.reshape(-1), torch.float32),
             ref._inverse_power, ref.regions)
            for ref in references
        ]

    def _put(self, array: np.ndarray, dtype) -> object:
        return self._torch.as_tensor(np.ascontiguousarray(array), device=self.device).to(dtype)

    def _index(self, index: slice, size: int) -> slice | object:
        """A forward slice as it is, a backward one (torch lacks them) as an index tensor."""
        if (index.step or 1) > 0:
            return index
        return self._put(np.arange(size)[index], self._torch.int64)

    def periodic_spectrum(self, spectrum: object, frames: object) -> object:
        """From the rfft2 of a ``(n, rows, cols)`` float32 tensor of frames, that of their periodic
        components when the pyramid asks (as :meth:`SteerablePyramid.periodic_spectrum`)."""
        torch = self._torch
        if self.periodic:
            a = torch.fft.rfft(frames[:, -1, :] - frames[:, 0, :], dim=-1)
            b = torch.fft.fft(frames[:, :, -1] - frames[:, :, 0], dim=-1)
            row_factor, col_factor = self.smooth_factors
            smooth = a[:, None, :] * row_factor + b[:, :, None] * col_factor
            smooth[:, 0, 0] = 0
            spectrum = spectrum - smooth
        return spectrum

    def band_spectrum(self, spectrum: object, index: int) -> object:
        """Cropped, masked spectrum of band ``index`` (as :meth:`SteerablePyramid.band_spectrum`)."""
        shape, blocks = self.bands[index]
        out = self._torch.zeros((spectrum.shape[0], *shape), dtype=self._torch.complex64, device=self.device)
        for rows, cols, src_rows, src_cols, mirror, mask in blocks:
            if isinstance(src_rows, slice) or isinstance(src_cols, slice):  # one advanced index at most
                source = spectrum[:, src_rows, src_cols]
            else:
                source = spectrum[:, src_rows[:, None], src_cols[None, :]]
            block = source * mask
            out[:, rows, cols] = block.conj() if mirror else block
        return out

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(n, channels, 2)`` sums of a chunk of frames, as :func:`visualmic.motion.phase_gradient_sums`."""
        torch = self._torch
        # 8-bit frames cross to the device as they are, a quarter of float32's bytes.
        frames = np.ascontiguousarray(frames if frames.dtype == np.uint8 else frames.astype(np.float32, copy=False))
        x = torch.as_tensor(frames).to(self.device, non_blocking=True).to(torch.float32)
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"frames are {tuple(x.shape[-2:])}, the pyramid was built for {self.shape}")
        n = x.shape[0]
        shift = None
        with torch.no_grad():
            spectrum = torch.fft.rfft2(x)
            if self.estimate_shift is not None:  # from the frames' own spectrum, as the CPU path
                read = spectrum[:, self.shift_rows, self.estimate_shift.cols].mean(dim=0).cpu().numpy()
                shift = self.estimate_shift.follow(self.estimate_shift.window_block(read))
            spectrum = self.periodic_spectrum(spectrum, x)
            if shift is not None:
                fy, fx = self.frequencies
                spectrum = spectrum * torch.exp(2j * np.pi * (fy * shift[0] + fx * shift[1])).to(spectrum.dtype)
            per_band = []
            for index, (conj_ref, phase_w, amp_w, offset, inverse_power, regions) in enumerate(self.references):
                band = torch.fft.ifft2(self.band_spectrum(spectrum, index)).reshape(n, -1)
                q = band * conj_ref
                real = q.real
                gain = real.sum(dim=1, keepdim=True) * inverse_power  # the frame's brightness (see motion.py)
                sums = torch.angle(q) @ phase_w + real @ amp_w - gain * offset
                per_band.append(sums.reshape(n, regions, 2))
            result = torch.cat(per_band, dim=1)
        sums = result.cpu().numpy().astype(np.float64)
        return sums if shift is None else sums - self.fisher @ shift
