"""The drift pages a person reads, under INKLOOP_HOME/reports/drift/:

- one page per report: inkloop's summary on top (verdict, windows, the label-free CER estimate against the audited
  CER, every column with its method, score and a one-glance value per window, what to do next) and Evidently's own
  report below it (distributions per column), in one self-contained file;
- `index.html`: every report, newest first, with its verdict and a link, under charts of the share of drifted
  columns and of the estimated against the audited CER over time.

Invariants: every text that comes from data passes through html.escape; a report with no Evidently part (not
enough data) still gets a page saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from inkloop.domain import DriftVerdict
from monitoring.drift import DriftSummary, WindowFacts

CSS = """
.ink{font:14px/1.45 system-ui,sans-serif;color:#1f2328;max-width:1100px;margin:20px auto;padding:0 16px}
.ink h1{font-size:22px;margin:0 0 6px} .ink h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de}
.ink .meta{color:#57606a} .ink table{border-collapse:collapse;width:100%;margin:6px 0}
.ink th,.ink td{padding:4px 8px;border-bottom:1px solid #d8dee4;text-align:left}
.ink td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ink tr.moved td{background:#fff1e5} .ink .badge{color:#fff;border-radius:10px;padding:1px 9px;font-size:12px;
font-weight:700;white-space:nowrap} .ink .drifted{background:#cf222e} .ink .stable{background:#1a7f37}
.ink .not_enough_data{background:#6e7781} .ink .box{border:1px solid #d0d7de;padding:8px 14px;margin:10px 0}
.ink .warn{background:#ffebe9;border-color:#ff8182} .ink svg{max-width:100%;height:auto;font:12px system-ui}
.ink a{color:#0969da}
"""
VERDICT_TEXT = {
    DriftVerdict.drifted: "drifted",
    DriftVerdict.stable: "stable",
    DriftVerdict.not_enough_data: "not enough data",
}
NEXT_STEPS = """<div class="box warn"><b>What to do next.</b> Look at the drifted columns' distributions below
and at a sample of the current window's pages (<code>inkloop lineage REQUEST_ID</code>). If the estimated and
audited CER disagree, trust the audited one. While the shift lasts, raise the audit rate
(<code>INKLOOP_AUDIT_RATE</code>) so the audited CER gets tighter, route more pages to annotators (raise
<code>INKLOOP_DAILY_LABEL_BUDGET</code> or <code>INKLOOP_CONFIDENCE_THRESHOLD</code>), and retrain once the new
labels are in (<code>inkloop flow run dataset &amp;&amp; inkloop flow run retrain</code>). If the shift is the new
normal, pin a new reference: <code>inkloop drift reference --from ... --to ...</code>.</div>"""


def _sentence(phrase: str) -> str:
    """A note the CLI prints in a line ("too few audited pages ...") as the sentence a page shows."""
    return phrase[:1].upper() + phrase[1:]


def _badge(verdict: DriftVerdict) -> str:
    return f'<span class="badge {verdict.value}">{VERDICT_TEXT[verdict]}</span>'


def _cer(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _window(name: str, window: WindowFacts | None, extra: str = "") -> str:
    if window is None:
        return f"<tr><th>{name}</th><td colspan=2>none{extra}</td></tr>"
    refused = ", ".join(f"{escape(code)} {n}" for code, n in window.refused.items()) or "none"
    models = ", ".join(f"{escape(m)} {n}" for m, n in window.models.items()) or "-"
    return (
        f"<tr><th>{name}</th><td>{window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M} UTC{extra}</td>"
        f"<td>{window.rows} valid images, {window.quarantined} quarantined, {window.pending} not validated yet; "
        f"refused: {refused} ({window.refusal_rate:.1%}); served by {models}</td></tr>"
    )


def summary_section(summary: DriftSummary, index_href: str | None = "index.html") -> str:
    cer = summary.cer
    interval = f" [{cer.low:.4f}, {cer.high:.4f}]" if cer.low is not None and cer.high is not None else ""
    cer_class = "box warn" if cer.agrees is False else "box"
    rows = "".join(
        f'<tr class="{"moved" if c.drifted else ""}"><td>{escape(c.name)}</td><td>{c.group}</td><td>{c.method}</td>'
        f'<td class="n">{c.threshold:g}</td><td class="n">{"-" if c.score is None else f"{c.score:.4g}"}</td>'
        f"<td>{'drifted' if c.drifted else ''}</td><td>{escape(c.reference)}</td><td>{escape(c.current)}</td></tr>"
        for c in summary.columns
    )
    columns = (
        "<h2>Columns</h2><p class=meta>ks: Kolmogorov-Smirnov p-value, drifted below the threshold; "
        "wasserstein (normed) and jensenshannon: distances, drifted above it. Values: the median, or the most "
        "common category and its share.</p><table><tr><th>column</th><th>group</th><th>method</th>"
        "<th>threshold</th><th>score</th><th></th><th>reference</th><th>current</th></tr>" + rows + "</table>"
        if summary.columns
        else ""
    )
    back = f'<p><a href="{index_href}">All drift reports</a></p>' if index_href else ""
    return (
        f'<div class="ink"><style>{CSS}</style>{back}<h1>Drift report {_badge(summary.verdict)}</h1>'
        f"<p>{escape(summary.reason)}</p>"
        f"<table>{_window('current', summary.current)}"
        f"{_window('reference', summary.reference, f' ({summary.reference_kind.value})')}</table>"
        f'<div class="{cer_class}"><b>Production CER without labels:</b> estimated {_cer(cer.estimated)} on '
        f"{cer.pages} pages (mean of 1 - confidence); audited {_cer(cer.audited)}{interval} on "
        f"{cer.audited_pages} audited pages. {escape(_sentence(cer.note))}.</div>"
        + (NEXT_STEPS if summary.verdict is DriftVerdict.drifted else "")
        + columns
        + "</div>"
    )


EVIDENTLY_HEADING = "<div class=\"ink\"><h2>Evidently's report: every column's distribution in both windows</h2></div>"


def report_page(summary: DriftSummary, evidently_html: str | None) -> str:
    """The report's page: inkloop's summary, then Evidently's report when there is one."""
    section = summary_section(summary)
    if evidently_html is None:
        head = "<!doctype html><html><head><meta charset=utf-8><title>Drift report</title></head>"
        return f"{head}<body>{section}</body></html>"
    marker = "<body>"
    at = evidently_html.find(marker)
    if at < 0:
        return f"<!doctype html><html><head><meta charset=utf-8></head><body>{section}{evidently_html}</body></html>"
    at += len(marker)
    return evidently_html[:at] + section + EVIDENTLY_HEADING + evidently_html[at:]


@dataclass(frozen=True)
class IndexRow:
    current_end: datetime
    verdict: DriftVerdict
    summary: DriftSummary
    href: str | None


def _chart(rows: Sequence[IndexRow]) -> str:
    """Two small charts over time (oldest left): the share of drifted columns, and estimated vs audited CER."""
    points = [r for r in reversed(rows) if r.summary.share_drifted is not None or r.summary.cer.estimated is not None]
    if len(points) < 2:
        return ""
    width, height, left, pad = 520, 160, 44, 18
    step = (width - left - pad) / (len(points) - 1)

    def x(i: int) -> float:
        return left + i * step

    def panel(
        title: str,
        series: list[tuple[str, str, list[float | None]]],
        top: float,
        fmt: str,
        bars: list[tuple[float | None, float | None]] | None = None,
    ) -> str:
        top = top or 1.0

        def y(v: float) -> float:
            return height - pad - (height - 2 * pad) * min(v, top) / top

        body = [
            f'<text x="{left}" y="12" font-weight="700">{escape(title)}</text>',
            f'<line x1="{left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#8c959f"/>',
            f'<text x="{left - 4}" y="{pad + 4}" text-anchor="end">{format(top, fmt)}</text>',
            f'<text x="{left - 4}" y="{height - pad + 4}" text-anchor="end">0</text>',
        ]
        for i, (low, high) in enumerate(bars or []):  # the audited CER's interval, behind its points
            if low is not None and high is not None:
                body.append(
                    f'<line x1="{x(i):.1f}" y1="{y(low):.1f}" x2="{x(i):.1f}" y2="{y(high):.1f}" '
                    'stroke="#bf8700" stroke-opacity=".45" stroke-width="6"/>'
                )
        for n, (name, colour, values) in enumerate(series):
            coords = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
            if len(coords) > 1:
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
            body += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in coords]
            body.append(f'<text x="{width - pad}" y="{14 + 14 * n}" text-anchor="end" fill="{colour}">{name}</text>')
        first, last = points[0].current_end, points[-1].current_end
        body.append(f'<text x="{left}" y="{height - 2}">{first:%Y-%m-%d}</text>')
        body.append(f'<text x="{width - pad}" y="{height - 2}" text-anchor="end">{last:%Y-%m-%d}</text>')
        return f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(body)}</svg>'

    share = [r.summary.share_drifted for r in points]
    estimated = [r.summary.cer.estimated for r in points]
    audited = [r.summary.cer.audited for r in points]
    highs = [r.summary.cer.high for r in points]
    top_cer = max([v for v in estimated + audited + highs if v is not None] or [0.1]) * 1.15
    return (
        panel("share of drifted columns", [("share", "#cf222e", share)], 1.0, ".0%")
        + " "
        + panel(
            "CER: estimated vs audited",
            [("estimated", "#0969da", estimated), ("audited (95% interval)", "#bf8700", audited)],
            top_cer,
            ".3f",
            bars=[(r.summary.cer.low, r.summary.cer.high) for r in points],
        )
    )


def index_page(rows: Sequence[IndexRow]) -> str:
    """Every report, newest first."""
    body = []
    for row in rows:
        s = row.summary
        link = f'<a href="{escape(row.href)}">report</a>' if row.href else ""
        interval = f" [{s.cer.low:.4f}, {s.cer.high:.4f}]" if s.cer.low is not None and s.cer.high is not None else ""
        check = {True: "agree", False: "<b>disagree</b>", None: ""}[s.cer.agrees]
        moved = ", ".join(escape(c) for c in s.drifted_columns) or ("-" if s.columns else escape(s.reason))
        reference = s.reference.rows if s.reference else 0
        body.append(
            f"<tr><td>{row.current_end:%Y-%m-%d %H:%M}</td><td>{_badge(row.verdict)}</td>"
            f'<td class="n">{s.current.rows}</td><td class="n">{reference}</td><td>{s.reference_kind.value}</td>'
            f"<td>{moved}</td><td class=n>{_cer(s.cer.estimated)}</td><td class=n>{_cer(s.cer.audited)}{interval}</td>"
            f"<td>{check}</td><td>{link}</td></tr>"
        )
    table = (
        "<table><tr><th>current window ends</th><th>verdict</th><th>rows</th><th>reference rows</th>"
        "<th>reference</th><th>drifted columns</th><th>estimated CER</th><th>audited CER</th><th></th><th></th></tr>"
        + "".join(body)
        + "</table>"
        if body
        else "<p>No drift reports yet: <code>inkloop flow run drift</code>.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>inkloop drift reports</title></head><body>"
        f'<div class="ink"><style>{CSS}</style><h1>Drift reports</h1><p class=meta>Production traffic against its '
        "reference window, newest first. History and dashboards: <code>inkloop drift ui</code>.</p>"
        f"{_chart(rows)}{table}</div></body></html>"
    )
