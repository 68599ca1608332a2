"""The gate report a person reads: one self-contained HTML page (inline CSS and SVG, page images as data URIs, no
script), from which an ML engineer decides whether the candidate may replace the champion.

Invariants: every text that comes from the result (names, summaries, transcriptions) passes through html.escape
before it reaches the page; a slice without pages has a row in the table but no bars in the chart (nothing was
measured on it); CERs and their differences are shown to 4 decimals everywhere.
"""

from __future__ import annotations

import base64
import difflib
import math
from collections.abc import Callable
from html import escape
from typing import NamedTuple

from model.gates import GateResult, SliceResult, WorsePage

ROW = 30  # chart pixels per slice: two 11 px bars and the space between slices
LABEL_CHAR = 7.2  # chart pixels per character of a 12 px slice label (sized for the longest name)
Scale = Callable[[float], float]  # a value to its chart x
CER_W, GAP, DELTA_W = 360, 80, 300  # chart panel widths; the gap holds the value printed after a full-width bar

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1f2328}
h1{font-size:22px;margin:0 0 6px} h1 code{font-size:inherit} code{font-size:13px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a} .verdict{font-size:40px;font-weight:800;letter-spacing:.04em;margin:4px 0}
.pass{color:#1a7f37} .fail{color:#cf222e} .failures{background:#ffebe9;border:1px solid #ff8182;padding:8px 14px}
table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #d8dee4;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap} tr.set th{background:#f6f8fa}
tr.failed td{background:#ffebe9} .tag{font-size:11px;color:#8250df;margin-left:4px}
.badge{color:#fff;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:700}
.badge.pass{background:#1a7f37} .badge.fail{background:#cf222e} .badge.info{background:#8c959f}
svg{max-width:100%;height:auto;font:12px system-ui,sans-serif}
.page{border:1px solid #d0d7de;padding:10px;margin:12px 0} .page th{width:130px;vertical-align:top}
.page img{display:block;margin:6px 0;max-width:min(480px,100%);height:auto;border:1px solid #d8dee4}
.text{white-space:pre-wrap;font-family:ui-monospace,monospace} mark{background:#ffcecb}
del{color:#cf222e;background:#ffebe9} .missing{color:#57606a;font-style:italic}
"""


def render(result: GateResult, images: dict[str, bytes]) -> str:
    """The whole page; `images` maps "set/key" of each worse page to its PNG bytes (a missing one is said so)."""
    title = f"Gate: {result.candidate} vs {result.champion}"
    sections = [_header(result), _checks(result), _slices(result), _chart(result), _worse(result.worse, images)]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _cer(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _badge(passed: bool) -> str:
    return '<span class="badge pass">pass</span>' if passed else '<span class="badge fail">fail</span>'


def _slice_badge(s: SliceResult) -> str:
    """A slice too small to decide shows grey "info": a green "pass" would claim a verdict it cannot give."""
    return _badge(s.passed) if s.decisive or not s.passed else '<span class="badge info">info</span>'


def _header(result: GateResult) -> str:
    verdict = '<p class="verdict pass">PASSED</p>' if result.passed else '<p class="verdict fail">REJECTED</p>'
    timing = " · ".join(f"{escape(name)} {s:.1f} s" for name, s in result.seconds.items())
    failed = "".join(f"<li><b>{escape(c.name)}</b>: {escape(c.summary)}</li>" for c in result.checks if not c.passed)
    return (
        f"<header><h1>Candidate <code>{escape(result.candidate)}</code> vs champion "
        f"<code>{escape(result.champion)}</code></h1>{verdict}"
        f'<p class="meta">dataset version {escape(result.dataset_version or "none")} · created '
        f"{escape(result.created_at)}{' · ' + timing if timing else ''}</p>"
        + (f'<div class="failures"><b>Failed checks</b><ul>{failed}</ul></div>' if failed else "")
        + "</header>"
    )


def _checks(result: GateResult) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{_badge(c.passed)}</td><td>{escape(c.summary)}</td></tr>"
        for c in result.checks
    )
    return f"<h2>Checks</h2><table><tr><th>Check</th><th></th><th>Summary</th></tr>{rows}</table>"


def _by_set(slices: list[SliceResult]) -> dict[str, list[SliceResult]]:
    """Slices grouped by the set their name starts with ("test/all" -> "test"), in the order they come."""
    groups: dict[str, list[SliceResult]] = {}
    for s in slices:
        groups.setdefault(s.name.split("/")[0], []).append(s)
    return groups


def _slices(result: GateResult) -> str:
    config = result.config
    head = "".join(f"<th>{h}</th>" for h in ("Slice", "Pages", "Champion CER", "Candidate CER"))
    head += f"<th>ΔCER [{config.level:.0%} interval]</th><th>Decisive</th><th></th><th>Note</th>"
    body = []
    for set_name, slices in _by_set(result.slices).items():
        body.append(f'<tr class="set"><th colspan="8">{escape(set_name)}</th></tr>')
        for s in slices:
            delta = "–" if s.delta is None else f"{s.delta:+.4f} [{s.low:+.4f}, {s.high:+.4f}]"
            tag = '<span class="tag">required</span>' if s.required else ""
            row = "<tr>" if s.passed else '<tr class="failed">'
            body.append(
                f"{row}<td>{escape(s.name)}{tag}</td>"
                f'<td class="n">{s.pages}</td><td class="n">{_cer(s.champion_cer)}</td>'
                f'<td class="n">{_cer(s.candidate_cer)}</td><td class="n">{delta}</td>'
                f"<td>{'decisive' if s.decisive else 'reported, not decisive'}</td><td>{_slice_badge(s)}</td>"
                f"<td>{escape(s.note)}</td></tr>"
            )
    rule = (
        f"A slice of at least {config.min_slice_pages} pages is decisive: it fails when the upper bound of the "
        f"interval of ΔCER (candidate − champion) is above the margin {config.margin:.4f}. A required slice with "
        f"no pages fails."
    )
    return f"<h2>Slices</h2><p>{rule}</p><table><tr>{head}</tr>{''.join(body)}</table>"


class _Bar(NamedTuple):
    """One charted slice: a slice with pages, so every figure is there."""

    slice: SliceResult
    champion: float
    candidate: float
    delta: float
    low: float
    high: float


def _bars(slices: list[SliceResult]) -> list[_Bar]:
    bars = []
    for s in slices:
        # Spelled out, not all(...), so that mypy knows each figure is a float below.
        if (
            s.pages
            and s.champion_cer is not None
            and s.candidate_cer is not None
            and s.delta is not None
            and s.low is not None
            and s.high is not None
        ):
            bars.append(_Bar(s, s.champion_cer, s.candidate_cer, s.delta, s.low, s.high))
    return bars


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about `count` steps of 1, 2, 2.5 or 5 times a power of ten."""
    rough = max(high - low, 1e-6) / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough * (1 - 1e-9))
    start, stop = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(start, max(stop, start + 1) + 1)]


def _chart(result: GateResult) -> str:
    bars = _bars(result.slices)
    if not bars:
        return "<h2>CER by slice</h2><p>No slice has pages: nothing to chart.</p>"
    margin = result.config.margin
    label_w = 16 + LABEL_CHAR * max(len(b.slice.name) for b in bars)
    cer_x0, delta_x0 = label_w, label_w + CER_W + GAP
    cer_ticks = _ticks(0.0, max(max(b.champion, b.candidate) for b in bars) or 0.01)
    delta_ticks = _ticks(min([0.0, -margin] + [b.low for b in bars]), max([margin] + [b.high for b in bars]))

    def x_cer(v: float) -> float:
        return cer_x0 + v / cer_ticks[-1] * CER_W

    def x_delta(v: float) -> float:
        return delta_x0 + (v - delta_ticks[0]) / (delta_ticks[-1] - delta_ticks[0]) * DELTA_W

    parts: list[str] = []
    y = top = 36.0  # the panel titles and the margin's label sit above the first row
    for i, bar in enumerate(bars):
        if i and bar.slice.name.split("/")[0] != bars[i - 1].slice.name.split("/")[0]:
            parts.append(f'<line x1="0" x2="{delta_x0 + DELTA_W}" y1="{y + 4}" y2="{y + 4}" stroke="#d0d7de"/>')
            y += 8  # a gap and a rule between sets
        parts.append(_chart_row(bar, y, x_cer, x_delta))
        y += ROW
    bottom = y + 4
    axes = []
    for ticks, x, fmt in ((cer_ticks, x_cer, "{:g}"), (delta_ticks, x_delta, "{:+g}")):
        for t in ticks:
            label = "0" if t == 0 else fmt.format(t)
            axes.append(
                f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" y2="{bottom}" stroke="#eaeef2"/>'
                f'<text x="{x(t):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#57606a">{label}</text>'
            )
    z, m = x_delta(0.0), x_delta(margin)
    axes.append(f'<line x1="{z:.1f}" x2="{z:.1f}" y1="{top - 4}" y2="{bottom}" stroke="#57606a"/>')
    axes.append(
        f'<line x1="{m:.1f}" x2="{m:.1f}" y1="{top - 4}" y2="{bottom}" stroke="#cf222e" stroke-dasharray="4 3"/>'
        f'<text x="{m + 3:.1f}" y="{top - 8}" fill="#cf222e" font-size="11">margin {margin:+.4f}</text>'
    )
    level = f"{result.config.level:.0%}"
    legend_y = bottom + 36
    legend = (
        f'<text x="{cer_x0}" y="14" font-weight="600">CER (lower is better)</text>'
        f'<text x="{delta_x0}" y="14" font-weight="600">ΔCER candidate − champion, {level} interval</text>'
        f'<rect x="{cer_x0}" y="{legend_y - 10}" width="12" height="11" fill="#8c959f"/>'
        f'<text x="{cer_x0 + 16}" y="{legend_y}">champion</text>'
        f'<rect x="{cer_x0 + 90}" y="{legend_y - 10}" width="12" height="11" fill="#0969da"/>'
        f'<text x="{cer_x0 + 106}" y="{legend_y}">candidate</text>'
        f'<text x="{delta_x0}" y="{legend_y}" fill="#57606a">red: failed slice · dashed: not decisive · '
        f"bold: required</text>"
    )
    width, height = delta_x0 + DELTA_W + 24, legend_y + 10
    empty = [s.name for s in result.slices if not s.pages]
    left_out = f'<p class="meta">Not charted (no pages): {escape(", ".join(empty))}.</p>' if empty else ""
    return (
        f'<h2>CER by slice</h2><svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">{"".join(axes)}{"".join(parts)}{legend}</svg>{left_out}'
    )


def _chart_row(bar: _Bar, y: float, x_cer: Scale, x_delta: Scale) -> str:
    """One slice at height y: its label, the champion and candidate bars, and the whisker of ΔCER."""
    s, mid = bar.slice, y + ROW / 2
    colour = "#cf222e" if not s.passed else "#1f2328" if s.decisive else "#57606a"
    label = "#1f2328" if s.passed else colour
    x0 = x_cer(0.0)
    weight = ' font-weight="700"' if s.required else ""
    dash = "" if s.decisive else ' stroke-dasharray="3 2"'
    lo, hi, d = x_delta(bar.low), x_delta(bar.high), x_delta(bar.delta)
    return (
        f'<g class="pair" data-slice="{escape(s.name)}">'
        f'<text x="{x0 - 8:.1f}" y="{mid + 4:.1f}" text-anchor="end" fill="{label}"'
        f"{weight}>{escape(s.name)}</text>"
        f'<rect class="champion" x="{x0:.1f}" y="{mid - 12:.1f}" width="{x_cer(bar.champion) - x0:.1f}" '
        f'height="11" fill="#8c959f"/><rect class="candidate" x="{x0:.1f}" y="{mid + 1:.1f}" '
        f'width="{x_cer(bar.candidate) - x0:.1f}" height="11" fill="#0969da"/>'
        f'<text x="{x_cer(bar.champion) + 4:.1f}" y="{mid - 3:.1f}" font-size="10" fill="#57606a">'
        f'{bar.champion:.4f}</text><text x="{x_cer(bar.candidate) + 4:.1f}" y="{mid + 10:.1f}" font-size="10" '
        f'fill="#0969da">{bar.candidate:.4f}</text>'
        f'<g stroke="{colour}" stroke-width="1.5"><line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid}" y2="{mid}"{dash}/>'
        f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{mid - 5}" y2="{mid + 5}"/>'
        f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{mid - 5}" y2="{mid + 5}"/></g>'
        f'<circle cx="{d:.1f}" cy="{mid}" r="3.5" fill="{colour}"><title>{bar.delta:+.4f} '
        f"[{bar.low:+.4f}, {bar.high:+.4f}]</title></circle></g>"
    )


def _diff(truth: str, reading: str) -> str:
    """The reading, escaped, with its wrong characters in <mark> and the truth's missed ones struck out in <del>."""
    # autojunk off: on texts over 200 characters it would treat frequent letters (spaces, "e") as junk.
    matcher = difflib.SequenceMatcher(None, truth, reading, autojunk=False)
    out = []
    for op, t0, t1, r0, r1 in matcher.get_opcodes():
        if op == "equal":
            out.append(escape(reading[r0:r1]))
        if op in ("replace", "insert"):
            out.append(f"<mark>{escape(reading[r0:r1])}</mark>")
        if op in ("replace", "delete"):
            out.append(f'<del title="missed">{escape(truth[t0:t1])}</del>')
    return "".join(out)


def _worse_page(page: WorsePage, png: bytes | None) -> str:
    name = f"{page.set}/{page.key}"
    image = (
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{escape(name)}">'
        if png is not None
        else '<p class="missing">image not available</p>'
    )
    return (
        f'<div class="page"><b>{escape(name)}</b>{image}<table>'
        f'<tr><th>truth</th><td class="text">{escape(page.truth)}</td></tr>'
        f"<tr><th>champion<br>CER {page.champion_cer:.4f}</th>"
        f'<td class="text">{_diff(page.truth, page.champion)}</td></tr>'
        f"<tr><th>candidate<br>CER {page.candidate_cer:.4f}</th>"
        f'<td class="text">{_diff(page.truth, page.candidate)}</td></tr></table></div>'
    )


def _worse(pages: list[WorsePage], images: dict[str, bytes]) -> str:
    if not pages:
        return "<h2>Pages that got worse</h2><p>No page got worse.</p>"
    intro = (
        "<p>Characters read wrong are <mark>marked</mark>; characters of the truth that were missed are "
        "<del>struck out</del>.</p>"
    )
    body = "".join(_worse_page(p, images.get(f"{p.set}/{p.key}")) for p in pages)
    return f"<h2>Pages that got worse</h2>{intro}{body}"
