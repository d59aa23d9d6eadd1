"""The report's HTML page: a pure function of what was separated, no I/O.

Static and self-contained: inline CSS, no scripts, no external URLs; every picture and
sound is a relative link into the report folder, so the folder can be moved or zipped.
All user text (file names, queries) goes through `html.escape`, links through
`urllib.parse.quote` as well.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class Signal:
    """One picture and its sound. Paths are POSIX, relative to the report folder."""

    label: str  # "Mixture", "Prediction", "Noise head 1", ...
    image: str  # .png
    audio: str  # .wav


@dataclass(frozen=True)
class QueryResult:
    name: str  # the query as given
    signals: list[Signal]  # the prediction, then the noise heads
    energy_db: float  # output energy relative to the mixture's; NaN for a silent mixture
    sdr_db: float | None = None  # against the reference, when one is given (NaN: undefined)
    sdri_db: float | None = None
    presence: list[float] = field(default_factory=list)  # presence score per second (dsp.presence)
    presence_threshold: float = 0.0  # the score at and above which the sound counts as present


@dataclass(frozen=True)
class InputResult:
    name: str  # the input file as given
    duration_s: float
    signals: list[Signal]  # the mixture, then the ground truth and the interference when given
    queries: list[QueryResult]
    colour_range_db: tuple[float, float]  # (vmin, vmax) shared by this input's pictures
    reference_query: str | None = None  # the query the ground truth belongs to


@dataclass(frozen=True)
class ReportPage:
    model: str  # the separator, described in one line
    inputs: list[InputResult]
    notes: list[str] = field(default_factory=list)


CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.meta, .note { color: #555; font-size: 0.9em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }
figure { margin: 0; padding: 8px; background: #fff; border: 1px solid #ddd; border-radius: 6px; }
figure img { width: 100%; height: auto; display: block; }
figure audio { width: 100%; margin-top: 6px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.metric { font-variant-numeric: tabular-nums; }
.timeline { display: flex; gap: 1px; margin: 4px 0 8px; }
.timeline span { flex: 1; min-width: 6px; height: 18px; background: #ddd; }
.timeline span.present { background: #2a7d3f; }
"""


def render_page(page: ReportPage) -> str:
    """The whole index.html as text."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>clipsep-rt separation report</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<h1>clipsep-rt separation report</h1>",
        f'<p class="meta">Model: {_text(page.model)}</p>',
        *(f'<p class="note">{_text(note)}</p>' for note in page.notes),
    ]
    for item in page.inputs:
        parts += _input_section(item)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _input_section(item: InputResult) -> list[str]:
    vmin, vmax = item.colour_range_db
    parts = [
        "<section>",
        f"<h2>{_text(item.name)}</h2>",
        f'<p class="meta">{item.duration_s:.2f} s; colour scale {vmin:.0f} to {vmax:.0f} dB (shared by the pictures below)</p>',
    ]
    parts += _grid(item.signals)
    if item.reference_query is not None:
        parts.append(f'<p class="note">The ground truth is the sound of the query &ldquo;{_text(item.reference_query)}&rdquo;; '
                     "SDRi is the SDR improvement over the mixture (BSS Eval v4).</p>")
    for number, query in enumerate(item.queries, 1):
        parts.append(f"<h3>Query {number}: &ldquo;{_text(query.name)}&rdquo;</h3>")
        if query.sdri_db is not None:
            parts.append(f'<p class="metric">SDRi {_db(query.sdri_db)} (SDR {_db(query.sdr_db)}), '
                         f"output energy {_db(query.energy_db)} relative to the mixture</p>")
        parts += _timeline(query)
        parts += _grid(query.signals)
    if len(item.queries) >= 2:
        parts += _robustness_table(item)
    parts.append("</section>")
    return parts


def _grid(signals: list[Signal]) -> list[str]:
    parts = ['<div class="grid">']
    for signal in signals:
        label = _text(signal.label)
        parts += [
            "<figure>",
            f"<figcaption>{label}</figcaption>",
            f'<img src="{_link(signal.image)}" alt="log-frequency spectrogram: {label}">',
            f'<audio controls preload="none" src="{_link(signal.audio)}"></audio>',
            "</figure>",
        ]
    parts.append("</div>")
    return parts


def _timeline(query: QueryResult) -> list[str]:
    """The query's presence per second: one cell a second, dark where the score says present."""
    if not query.presence:
        return []
    cells = [f'<span class="{"present" if score >= query.presence_threshold else "absent"}" '
             f'title="{second}-{second + 1} s: presence {score:.2f}"></span>' for second, score in enumerate(query.presence)]
    present = sum(score >= query.presence_threshold for score in query.presence)
    return [f'<p class="note">Presence timeline: {present} of {len(query.presence)} s present (score, the fraction of the '
            f"mixture's energy the mask passes, at least {query.presence_threshold:.2f}; hover for each second)</p>",
            '<div class="timeline">', *cells, "</div>"]


def _robustness_table(item: InputResult) -> list[str]:
    with_sdri = any(query.sdri_db is not None for query in item.queries)
    header = "<tr><th>#</th><th>query</th><th>output energy vs mixture</th>" + ("<th>SDRi</th>" if with_sdri else "") + "</tr>"
    rows = [
        f'<tr><td class="num">{number}</td><td>{_text(query.name)}</td><td class="num">{_db(query.energy_db)}</td>'
        + (f'<td class="num">{_db(query.sdri_db)}</td>' if with_sdri else "") + "</tr>"
        for number, query in enumerate(item.queries, 1)
    ]
    return [
        "<h3>Robustness to queries</h3>",
        '<p class="note">The same input separated by each query: paraphrases of the sound should select about as much, '
        "an unrelated query little.</p>",
        '<table class="robustness">', header, *rows, "</table>",
    ]


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _link(path: str) -> str:
    return html.escape(quote(path, safe="/"), quote=True)


def _db(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.1f} dB"
