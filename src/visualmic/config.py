"""Every parameter of a recovery, once: the CLI, the API and the JSON summary read this."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import InputError
from .sources.base import Roi

__all__ = ["RecoverOptions", "check_fps", "check_device", "DEVICES_HELP", "METHODS", "DENOISERS", "DEQUANTIZERS",
           "EDGES", "STANDARD_RATE_HZ", "MIN_FRAMES", "AUTO_GRID", "AUTO_MARGIN_DB",
           "AUTO_FLOOR_DB", "SOFT_MARGIN_DB", "SOFT_FLOOR_DB", "AUTO_SOFT_MAX_PIXEL_FRAMES", "COPIES",
           "MIN_COPIED_SHARE"]

def check_fps(fps: object) -> None:
    """Raise InputError unless ``fps`` is None (unknown) or a positive, finite number.

    Examples
    --------
    >>> check_fps(2200.0)
    >>> check_fps(float("nan"))
    Traceback (most recent call last):
    ...
    visualmic.errors.InputError: frame rate must be a positive number of frames per second, got nan
    """
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InputError(f"frame rate must be a positive number of frames per second, got {fps!r}")


DEVICES_HELP = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N, or torch:cpu"


def check_device(name: object) -> None:
    """Raise InputError unless ``name`` names a device :mod:`visualmic.gpu` knows (present or not).

    Examples
    --------
    >>> check_device("cuda:1")
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    visualmic.errors.InputError: unknown device 'tpu': use auto (a CUDA GPU when torch sees one, else the CPU), \
cpu, cuda, cuda:N, or torch:cpu
    """
    if not (isinstance(name, str) and (name in ("auto", "cpu", "cuda", "torch:cpu")
                                       or (name.startswith("cuda:") and name[5:].isdigit()))):
        raise InputError(f"unknown device {name!r}: use {DEVICES_HELP}")


METHODS = ("phase", "davis2014")
DENOISERS = ("none", "spectral", "mmse")
DEQUANTIZERS = ("auto", "decoded", "soft")
EDGES = ("auto", "cut", "wrap")
COPIES = ("auto", "fill", "keep")
STANDARD_RATE_HZ = 48000
MIN_FRAMES = 16
AUTO_GRID = 4  # regions per side measured by regions="auto"
# How much better the regions' estimated SNR must be for "auto" to keep them: on rigid scenes below
# 0 dB the regions' estimate is up to 1.3 dB optimistic (benchmarks/quality.py, tests/test_recover.py).
AUTO_MARGIN_DB = 2.0
AUTO_FLOOR_DB = -4.0  # ... and the least it must be (below, estimates with many gains are optimistic)
# dequantize="auto" keeps soft values when their estimated SNR is at least the decoded frames' plus
# SOFT_MARGIN_DB: the decoded frames' estimate is the more optimistic (their quantisation error follows
# the motion and partly passes for signal). Over 17 MJPEG scenes (seeds, textures, 0.02-0.2 px, noise
# 1-4, scales 10/20/default), where soft's estimate was within 1 dB below the decoded one's, soft was
# better by 1.1-1.7 dB; it was worse only where its estimate was 1.8 dB lower or more (once by 1.8 dB;
# regions kept on opposed halves: by 2-24 dB).
SOFT_MARGIN_DB = -1.0
# ... and the least estimated SNR for soft values: on lossy input the estimates are upper bounds, loose
# at low SNR (a membrane on a still background through MJPEG: 2.4 dB estimated for -14.3 soft, 1.3 for
# -6.7 decoded).
SOFT_FLOOR_DB = 6.0
# The largest job (pixels x frames of the input) on which dequantize="auto" recovers both ways (4,400
# frames of 128²: 7.2e7, 10 s against 1.2 s decoded alone on 2 cores).
AUTO_SOFT_MAX_PIXEL_FRAMES = 5e8
# copies="auto" measures inter-coded video block by block (copied blocks as missing) where at least this
# share of the textured blocks' information was copied from an earlier frame (x264 at its default CRF 23,
# 8-pixel blocks: 100 % at 0.05 px, 86 % at 0.3 px, 52 % at 1 px; CRF 10 at 0.05 px: 47 %).
MIN_COPIED_SHARE = 0.02


@dataclass(frozen=True)
class RecoverOptions:
    """Options of :func:`visualmic.recover`, with their defaults.

    Attributes
    ----------
    fps : float or None
        Capture rate (Hz). None: take the container's rate, and say so.
    roi : tuple of int or None
        Region of interest ``(x, y, width, height)`` in pixels.
    downsample : int
        Average blocks of ``downsample x downsample`` pixels first (1: off).
    scales : int or None
        Pyramid scales; None picks the fewest (at most 5) that cover 98 % of
        the first frame's gradient energy, that is, of its motion information.
    orientations : int
        Pyramid orientations per scale.
    method : {"phase", "davis2014"}
        ``"phase"``: local phase and amplitude fit with noise-weighted,
        polarity-aware band combination and zero-phase filtering.
        ``"davis2014"``: the 2014 paper's recipe, for comparison.
    reference_frames : int
        Frames averaged into the reference (``"phase"`` only; the 2014 recipe uses frame 0).
    highpass_hz : float or None
        High-pass cut-off (Hz); None: 0.05 x Nyquist, at most 60 Hz (the 2014 recipe:
        uncapped, as in the paper); 0 disables it.
    denoise : {"none", "spectral", "mmse"}
        ``"mmse"``: MMSE log-spectral amplitude estimator driven by the noise floor
        the combination measured (white): keeps tones, for speech and music.
        ``"spectral"``: spectral subtraction with a median floor; it keeps steady
        tones only by detecting them (and reports them); for speech in steady noise.
    rate : int or "native"
        Output WAV rate: a standard rate (16-bit PCM), or the capture rate as 32-bit float.
    max_lag : int
        Largest lag (frames) between bands when combining them.
    regions : int or "auto"
        Measure every band in ``regions x regions`` parts of the frame, each with
        its own gain, sign, delay and noise (for objects whose parts vibrate
        differently, even in opposite directions); 1 treats the region of interest
        as one rigid surface. ``"auto"``: measure in regions, combine both ways,
        and keep the regions only when their estimated SNR is clearly higher
        (by ``AUTO_MARGIN_DB``, and above ``AUTO_FLOOR_DB``); a rigid surface keeps the whole-frame estimate,
        which is the better one there.
    border_px : float
        Width (pixels) over which the weights fade out at the frame's edges.
    chunk_frames : int or None
        Frames per chunk; None sizes chunks to about 4 MB of frames (see :func:`visualmic.engine.default_chunk_frames`).
    threads : int or None
        Threads that process chunks in parallel (None: all cores, one less for a video, whose
        decoder has threads of its own: :func:`visualmic.engine.measuring_threads`), each
        chunk's FFTs on one of them (scipy's or torch's, see :mod:`visualmic.fftlib`); with a
        ``device``, chunks go one at a time and torch's CPU threads are limited to this many.
    device : str
        Where frames are measured: ``"auto"`` (a CUDA GPU when torch sees one,
        else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"torch:cpu"``
        (the GPU code on the CPU, for testing). See :mod:`visualmic.gpu`.
    dequantize : {"auto", "decoded", "soft"}
        MJPEG only. ``"soft"``: every DCT coefficient at its mean given its quantisation
        level (:mod:`visualmic.dequantize`): +1.0 to +3 dB on a rigid surface moving well
        under the camera noise's reach (left as decoded where the motion is larger); the
        frame is then combined as a whole (the regions' noise model does not describe
        such frames yet). ``"decoded"``: the frames as the decoder gives them.
        ``"auto"``: where soft values apply, recover both ways and keep the soft one only
        when its estimated SNR is at least the decoded one's plus ``SOFT_MARGIN_DB`` (-1 dB)
        and at least ``SOFT_FLOOR_DB`` (a surface whose parts move differently keeps the decoded frames
        and their regions).
    edges : {"auto", "cut", "wrap"}
        What lies beyond the frame's edges (``"phase"`` only). ``"cut"``: unrelated content,
        as in any camera's view of a larger scene; each frame's periodic component is
        analysed (Moisan's decomposition), so the jumps where the FFT joins opposite edges
        neither move nor count. ``"wrap"``: the scene continues across them, as in a
        simulation that shifts a texture periodically (by FFT): the jumps move with the
        scene and carry its motion (up to 5 dB on textures whose opposite edges differ).
        ``"auto"``: ``"wrap"`` where the first frame wraps smoothly; else ``"cut"``, and again
        ``"wrap"`` if the seam moves with the recovered motion (:mod:`visualmic.seams`).
    copies : {"auto", "fill", "keep"}
        Video from a codec that predicts frames from others (H.264, HEVC...; ``"phase"``
        only). ``"fill"``: blocks the codec copied from an earlier frame are set aside as
        missing data, the others measured block by block, and frames without a fresh block
        filled with the recovery's local spectrum (:mod:`visualmic.intercoded`): +0.2 to
        +4.6 dB over 15 H.264 scenes (``benchmarks/copies.py``), in about twice the time.
        ``"keep"``: the frames as decoded. ``"auto"``:
        ``"fill"`` on such lossy video where at least ``MIN_COPIED_SHARE`` of the textured
        blocks were copied.
    """

    fps: float | None = None
    roi: Roi | None = None
    downsample: int = 1
    scales: int | None = None
    orientations: int = 2
    method: str = "phase"
    reference_frames: int = 32
    highpass_hz: float | None = None
    denoise: str = "none"
    rate: int | str = STANDARD_RATE_HZ
    max_lag: int = 2
    regions: int | str = "auto"
    border_px: float = 0.0
    chunk_frames: int | None = None
    threads: int | None = None
    device: str = "auto"
    dequantize: str = "auto"
    edges: str = "auto"
    copies: str = "auto"

    def __post_init__(self) -> None:
        check_fps(self.fps)
        check_device(self.device)
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.dequantize not in DEQUANTIZERS:
            raise InputError(f"unknown dequantisation {self.dequantize!r}: choose one of {', '.join(DEQUANTIZERS)}")
        if self.edges not in EDGES:
            raise InputError(f"unknown edges {self.edges!r}: choose one of {', '.join(EDGES)}")
        if self.copies not in COPIES:
            raise InputError(f"unknown copies {self.copies!r}: choose one of {', '.join(COPIES)}")
        if self.denoise not in DENOISERS:
            raise InputError(f"unknown denoiser {self.denoise!r}: choose one of {', '.join(DENOISERS)}")
        if self.denoise == "mmse" and self.method == "davis2014":
            raise InputError("--denoise mmse uses the noise floor the default method measures; "
                             "with --method davis2014 use --denoise spectral")
        if not (isinstance(self.downsample, int) and self.downsample >= 1):
            raise InputError(f"downsample factor must be an integer >= 1, got {self.downsample!r}")
        if self.scales is not None and self.scales < 1:
            raise InputError(f"scales must be at least 1, got {self.scales}")
        if not 1 <= self.orientations <= 16:
            raise InputError(f"orientations must be between 1 and 16, got {self.orientations}")
        if self.reference_frames < 1:
            raise InputError(f"reference_frames must be at least 1, got {self.reference_frames}")
        if self.highpass_hz is not None and not (math.isfinite(self.highpass_hz) and self.highpass_hz >= 0):
            raise InputError(f"high-pass cut-off must be >= 0 Hz, got {self.highpass_hz!r}")
        if self.rate != "native" and not (isinstance(self.rate, int) and 1000 <= self.rate <= 768000):
            raise InputError(f"output rate must be 'native' or an integer from 1000 to 768000 Hz, got {self.rate!r}")
        if self.regions != "auto" and not (isinstance(self.regions, int) and 1 <= self.regions <= 16):
            raise InputError(f"regions must be 'auto' or a whole number from 1 to 16, got {self.regions!r}")
        if self.max_lag < 0:
            raise InputError(f"max_lag must be >= 0, got {self.max_lag}")
        if self.border_px < 0:
            raise InputError(f"border_px must be >= 0, got {self.border_px}")
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise InputError(f"chunk_frames must be at least 1, got {self.chunk_frames}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1 (or left out: every core), got {self.threads}")

    def measurement_grid(self, shape: tuple[int, int]) -> int:
        """Regions per side to measure processed frames of ``shape`` in.

        ``regions="auto"`` measures in 4 x 4 regions (2 x 2 below 64 pixels, none
        below 32) and lets the recovery choose between them and the whole frame;
        the 2014 recipe treats the frame as a whole.

        Examples
        --------
        >>> RecoverOptions().measurement_grid((128, 128)), RecoverOptions().measurement_grid((40, 200))
        (4, 2)
        >>> RecoverOptions(regions=3).measurement_grid((128, 128))
        3
        >>> RecoverOptions(regions=4, method="davis2014").measurement_grid((128, 128))
        1
        """
        if self.method != "phase":
            return 1
        if self.regions == "auto":
            side = min(shape)
            return AUTO_GRID if side >= 64 else 2 if side >= 32 else 1
        return int(self.regions)

    def to_dict(self) -> dict[str, object]:
        """Plain dictionary, for JSON summaries and reports.

        Examples
        --------
        >>> RecoverOptions(fps=2200).to_dict()["fps"]
        2200
        """
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        """Names of all options."""
        return [f.name for f in fields(cls)]
