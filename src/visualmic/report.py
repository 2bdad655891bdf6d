"""One self-contained HTML file a person can read and listen to: the recovery and how it was made.

Images (PNG) and sounds (16-bit WAV) are embedded as data URIs, so the file
can be mailed or archived alone. A small script marks each audio element
``data-state="loaded"`` or ``"error"`` once the browser has decoded it, so a
headless browser can check the page.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import soundfile

from . import __version__
from .audio import normalize_peak, resample
from .plots import figure_png, region_weights_figure, spectrogram_figure, texture_figure, waveform_figure
from .texture import texture_energy

__all__ = ["render_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 2px 10px; text-align: left; }
tr:nth-child(even) { background: #f5f5f5; } img { max-width: 100%; }
.warning { color: #a40; } .note { color: #555; } code { background: #f3f3f3; padding: 0 3px; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
"""

_SCRIPT = """
// Marks for automatic checks: every audio and image gets data-state (loaded / error); with #selftest in
// the address, the players also start, and data-played says whether they did.
window.addEventListener('error', (e) => {
  document.body.dataset.errors = (Number(document.body.dataset.errors || 0) + 1).toString();
});
for (const img of document.querySelectorAll('img')) {
  img.dataset.state = img.complete && img.naturalWidth > 0 ? 'loaded' : 'pending';
  img.addEventListener('load', () => { img.dataset.state = 'loaded'; });
  img.addEventListener('error', () => { img.dataset.state = 'error'; });
}
for (const audio of document.querySelectorAll('audio')) {
  audio.addEventListener('loadedmetadata', () => { audio.dataset.state = 'loaded'; });
  audio.addEventListener('error', () => { audio.dataset.state = 'error'; });
  audio.addEventListener('playing', () => { audio.dataset.played = 'yes'; audio.pause(); });
  if (location.hash === '#selftest') { audio.muted = true; audio.play().catch(() => {}); }
  audio.load();
  if (location.hash === '#selftest') { audio.play().catch(() => { audio.dataset.played = 'refused'; }); }
}
"""


def _wav_uri(audio: np.ndarray, rate_hz: int) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), int(rate_hz), subtype="PCM_16",
                    format="WAV")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(figure) -> str:
    return "data:image/png;base64," + base64.b64encode(figure_png(figure)).decode("ascii")


def _table(rows: list[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _figure(uri: str, alt: str, caption: str, element_id: str) -> str:
    return (f'<figure><img id="{element_id}" src="{uri}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _band_rows(recovery) -> str:
    header = "<tr><th>level</th><th>orientation</th><th>region</th><th>weight</th><th>lag (frames)</th>" \
             "<th>noise (px)</th></tr>"
    rows = []
    for band, weight, lag, noise in zip(recovery.bands, recovery.band_weights, recovery.band_lags,
                                        recovery.band_noise_px):
        region = band.get("region", "all")
        noise_text = "n/a" if not np.isfinite(noise) else f"{noise:.3g}"
        rows.append(f"<tr><td>{band['level']}</td><td>{band['orientation']}</td><td>{html.escape(str(region))}</td>"
                    f"<td>{weight:+.4g}</td><td>{int(lag)}</td><td>{noise_text}</td></tr>")
    return f"<table>{header}{''.join(rows)}</table>"


def render_report(recovery, *, frame: np.ndarray, reference: tuple[np.ndarray, int] | None = None,
                  evaluation: dict | None = None) -> str:
    """The HTML report of a recovery.

    Parameters
    ----------
    recovery : visualmic.api.Recovery
        What :func:`visualmic.api.recover` returned.
    frame : ndarray
        A processed frame (region of interest, downsampled) for the maps.
    reference : (ndarray, int), optional
        A reference sound and its rate, to play beside the recovery.
    evaluation : dict, optional
        :meth:`visualmic.metrics.Evaluation.to_dict` against the reference.

    Returns
    -------
    str
        A complete HTML document.
    """
    name = recovery.meta.path.rsplit("/", 1)[-1]
    audio, rate = recovery.audio, recovery.rate_hz
    snr = recovery.estimated_snr_db
    facts = [
        ("input", recovery.meta.path),
        ("format / codec", f"{recovery.meta.format} / {recovery.meta.codec or 'n/a'}"
                           + (" (lossy)" if recovery.meta.lossy else "")),
        ("frames", f"{recovery.frames} of {recovery.frame_shape[1]}x{recovery.frame_shape[0]} px processed"),
        ("capture rate", f"{recovery.fps:g} fps ({recovery.fps_origin})"),
        ("duration", f"{recovery.duration_s:.3f} s"),
        ("estimated SNR (no truth used)", "n/a" if not np.isfinite(snr) else f"{snr:.1f} dB"),
        ("noise floor", "n/a" if not np.isfinite(recovery.noise_floor_px)
         else f"{recovery.noise_floor_px:.3g} px per frame"),
        ("direction of motion", "n/a" if recovery.direction_deg is None else f"{recovery.direction_deg:.1f}°"),
        ("high-pass", f"{recovery.highpass_hz:g} Hz"),
        ("output", f"{rate} Hz"),
        ("processing", f"{recovery.wall_s:.2f} s ({recovery.frames / max(recovery.wall_s, 1e-9):.0f} frames/s)"),
        *([("chunks measured", f"{recovery.chunks_measured_by['first_order']} to first order, "
                               f"{recovery.chunks_measured_by['phases']} by their phases")]
          if recovery.chunks_measured_by else []),
        ("measured on", recovery.device),
        ("visualmic", __version__),
    ]
    if evaluation:
        shown = {"snr_db": ("SNR", "{:.1f} dB"), "segmental_snr_db": ("segmental SNR", "{:.1f} dB"),
                 "stoi": ("STOI", "{:.3f}"), "llr": ("LLR", "{:.3f}"), "lag_s": ("lag", "{:+.4f} s")}
        facts += [(f"against the reference: {label}", "n/a" if evaluation.get(key) is None
                   else form.format(evaluation[key])) for key, (label, form) in shown.items()]
    players = [f'<p>Recovered sound<br><audio id="recovered" controls preload="auto" '
               f'src="{_wav_uri(audio, rate)}"></audio></p>']
    ref_audio = None
    if reference is not None:
        # At the recovery's rate: browsers do not all play unusual rates (Chromium refuses 2200 Hz).
        ref_audio = normalize_peak(resample(np.asarray(reference[0], dtype=np.float64), rate_in_hz=reference[1],
                                            rate_out_hz=rate))
        players.append(f'<p>Reference<br><audio id="reference" controls preload="auto" '
                       f'src="{_wav_uri(ref_audio, rate)}"></audio></p>')
    figures = [
        _figure(_png_uri(waveform_figure(audio, rate_hz=rate, title=f"Recovered sound from {name}")),
                "waveform", "Waveform of the recovered sound (peak-normalised).", "waveform"),
        _figure(_png_uri(spectrogram_figure(audio, rate_hz=rate, max_hz=recovery.fps / 2,
                                       title=f"Spectrogram of the sound from {name}")),
                "spectrogram", "Spectrogram of the recovered sound.", "spectrogram"),
    ]
    if ref_audio is not None:
        figures.append(_figure(
            _png_uri(spectrogram_figure(ref_audio, rate_hz=rate, max_hz=recovery.fps / 2,
                                        title="Spectrogram of the reference")),
            "reference spectrogram", "Spectrogram of the reference sound.", "reference-spectrogram"))
    if recovery.region_grid > 1:
        weight_map = _png_uri(region_weights_figure(frame, recovery.region_weights,
                                                    title=f"Where the sound came from ({name})"))
        caption = "Each region's share of the recovered sound (its channels' weights times their noise)."
    else:
        weight_map = _png_uri(texture_figure(frame, texture_energy(frame), roi=None,
                                             title=f"Where the sound came from ({name})"))
        caption = ("The whole region was measured as one surface: each pixel's weight in the estimate is its "
                   "local texture energy (right). Use --regions N for a map of separately moving parts.")
    figures.append(_figure(weight_map, "region map", caption, "map"))
    messages = "".join(f'<li class="warning">warning: {html.escape(w)}</li>' for w in recovery.warnings)
    messages += "".join(f'<li class="note">note: {html.escape(n)}</li>' for n in recovery.notes)
    parameters = html.escape(json.dumps(recovery.options.to_dict(), indent=2))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>visualmic report: {html.escape(name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Sound recovered from <code>{html.escape(name)}</code></h1>
{''.join(players)}
{_table(facts)}
<ul>{messages}</ul>
<h2>Sound</h2>
{''.join(figures[:-1])}
<h2>Where it came from</h2>
{figures[-1]}
<h2>Bands</h2>
<p>How the pyramid's bands were combined: weight (sign included), lag and measured noise of each.</p>
{_band_rows(recovery)}
<h2>Parameters</h2>
<pre>{parameters}</pre>
<script>{_SCRIPT}</script>
</body></html>
"""
