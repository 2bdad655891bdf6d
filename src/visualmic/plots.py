"""Figures a person reads without explanation: axes with units, fitting colour maps, titles naming the input.

Every function returns a matplotlib Figure (drawn off-screen, Agg); writing it
is :func:`visualmic.outputs.write_figure`'s job, or :func:`figure_png` for
embedding in a report.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

__all__ = [
    "figure_png",
    "vibration_map_figure",
    "motion_spectrum_figure",
    "texture_figure",
    "waveform_figure",
    "spectrogram_figure",
    "region_weights_figure",
]


def _name(path: str) -> str:
    return Path(path).name or path


def figure_png(figure: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (and the figure closed).

    Examples
    --------
    >>> figure_png(waveform_figure(np.zeros(100), rate_hz=100, title="x"))[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _extent(shape: tuple[int, int], scale: float) -> tuple[float, float, float, float]:
    """imshow extent of an array whose elements cover ``scale`` x ``scale`` frame pixels from the first pixel's edge."""
    return (-0.5, shape[1] * scale - 0.5, shape[0] * scale - 0.5, -0.5)


def vibration_map_figure(vmap) -> Figure:
    """Amplitude and phase of every cell, overlaid on the frame, one row per frequency.

    Parameters
    ----------
    vmap : visualmic.api.VibrationMap
        The map.
    """
    count = vmap.frequencies_hz.size
    aspect = max(0.45, vmap.frame.shape[0] / vmap.frame.shape[1])
    figure, axes = plt.subplots(count, 2, figsize=(11, 3.6 * count * aspect + 0.8), squeeze=False, layout="constrained")
    frame_extent = _extent(vmap.frame.shape, 1.0)
    amplitude, phase = vmap.amplitude_px, vmap.phase_rad
    for row in range(count):
        strength = np.nan_to_num(amplitude[row] / max(np.nanmax(amplitude[row]), 1e-30))
        for col, (values, cmap, label, limits) in enumerate([
            (amplitude[row], "inferno", "amplitude (px, peak)", (0, np.nanmax(amplitude[row]))),
            (phase[row], "twilight", "phase (rad, strongest cell = 0)", (-np.pi, np.pi)),
        ]):
            ax = axes[row, col]
            ax.imshow(vmap.frame, cmap="gray", extent=frame_extent)
            # Cells cover the processed frame; the last row/column of cells may overhang it.
            cells_extent = _extent(values.shape, vmap.cell_px)
            alpha = 0.75 if col == 0 else 0.25 + 0.65 * strength
            image = ax.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1], alpha=alpha,
                              extent=cells_extent, interpolation="nearest")
            ax.set_xlim(frame_extent[0], frame_extent[1])
            ax.set_ylim(frame_extent[2], frame_extent[3])
            ax.set_xlabel("x (px)")
            ax.set_ylabel("y (px)")
            ax.set_title(f"{vmap.frequencies_hz[row]:.1f} Hz: {'amplitude' if col == 0 else 'phase'} "
                         f"(motion along {int(round(vmap.direction_deg[row]))}°)", fontsize=10)
            figure.colorbar(image, ax=ax, label=label, shrink=0.9)
    figure.suptitle(f"Vibration map of {_name(vmap.meta.path)} ({vmap.cell_px}-px cells, {vmap.frames} frames "
                    f"at {vmap.fps:g} fps)")
    return figure


def motion_spectrum_figure(displacement: np.ndarray, *, fps: float, labels: list[str], unit: str,
                           title: str) -> Figure:
    """Amplitude spectral density of displacement series (Welch), log scale.

    Parameters
    ----------
    displacement : ndarray
        ``(frames, series)``.
    fps : float
        Sampling rate.
    labels : list of str
        One per series.
    unit : str
        Unit of the displacement ("px", "mm"...).
    title : str
        What was measured.
    """
    figure, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    segment = int(min(displacement.shape[0], 4096))
    for series, label in zip(displacement.T, labels):
        freqs, power = scipy.signal.welch(series - series.mean(), fs=fps, nperseg=segment)
        ax.semilogy(freqs[1:], np.sqrt(power[1:]), label=label, linewidth=0.9)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"amplitude spectral density ({unit}/√Hz)")
    ax.set_xlim(0, fps / 2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return figure


def texture_figure(frame: np.ndarray, energy: np.ndarray, *, roi: tuple[int, int, int, int] | None,
                   title: str) -> Figure:
    """A frame beside its texture-energy map, with a suggested region of interest drawn on both.

    Parameters
    ----------
    frame : ndarray
        Grey frame.
    energy : ndarray
        Texture energy per pixel (same shape).
    roi : tuple of int or None
        ``(x, y, width, height)`` to outline.
    title : str
        Figure title.
    """
    aspect = frame.shape[0] / frame.shape[1]
    figure, axes = plt.subplots(1, 2, figsize=(11, 2 + 4.5 * max(aspect, 0.15)), layout="constrained")
    axes[0].imshow(frame, cmap="gray")
    axes[0].set_title("first frame")
    image = axes[1].imshow(10 * np.log10(energy + 1e-12 * max(float(energy.max()), 1e-30)), cmap="viridis")
    axes[1].set_title("texture energy (where motion can be measured)")
    figure.colorbar(image, ax=axes[1], label="gradient energy (dB)", shrink=0.9)
    for ax in axes:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
        if roi is not None:
            ax.add_patch(Rectangle((roi[0] - 0.5, roi[1] - 0.5), roi[2], roi[3], fill=False, edgecolor="tab:red",
                                   linewidth=1.5, label="suggested --roi"))
    if roi is not None:
        axes[0].legend(loc="upper right", fontsize=8)
    figure.suptitle(title)
    return figure


def waveform_figure(audio: np.ndarray, *, rate_hz: float, title: str, reference: np.ndarray | None = None) -> Figure:
    """The waveform against time, with the reference (aligned) when given."""
    figure, ax = plt.subplots(figsize=(10, 2.8), layout="constrained")
    t = np.arange(audio.size) / rate_hz
    if reference is not None:
        ax.plot(np.arange(reference.size) / rate_hz, reference, color="tab:gray", linewidth=0.6, label="reference")
    ax.plot(t, audio, color="tab:blue", linewidth=0.6, label="recovered")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude (peak-normalised)")
    ax.set_xlim(0, max(t[-1] if t.size else 0, 1e-9))
    if reference is not None:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title)
    return figure


def spectrogram_figure(audio: np.ndarray, *, rate_hz: float, title: str, max_hz: float | None = None) -> Figure:
    """Spectrogram in dB (magma), frequency in Hz against time in s, up to ``max_hz`` (default: Nyquist)."""
    figure, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
    segment = int(min(max(64, 2 ** int(np.log2(max(rate_hz * 0.03, 64)))), max(audio.size, 8)))
    freqs, times, power = scipy.signal.spectrogram(audio, fs=rate_hz, nperseg=segment, noverlap=segment * 3 // 4)
    db = 10 * np.log10(power + 1e-20)
    top = float(np.max(db)) if db.size else 0.0
    image = ax.pcolormesh(times, freqs, db, shading="auto", cmap="magma", vmin=top - 80, vmax=top)
    figure.colorbar(image, ax=ax, label="power (dB)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_ylim(0, min(max_hz or rate_hz / 2, rate_hz / 2))
    ax.set_title(title)
    return figure


def region_weights_figure(frame: np.ndarray, weights: np.ndarray, *, title: str) -> Figure:
    """Each region's share of the recovered sound, over the frame."""
    figure, ax = plt.subplots(figsize=(5.5, 2 + 4 * frame.shape[0] / frame.shape[1]), layout="constrained")
    extent = _extent(frame.shape, 1.0)
    ax.imshow(frame, cmap="gray", extent=extent)
    image = ax.imshow(weights, cmap="viridis", alpha=0.6, extent=extent, interpolation="nearest", vmin=0)
    figure.colorbar(image, ax=ax, label="share of the sound")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title)
    return figure
