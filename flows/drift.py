"""The drift flow: compare a current window of production traffic with a reference window (monitoring/drift.py),
keep the report (a `drift_reports` row, an HTML page, a point in the Evidently workspace's history) and say so
loudly when production drifted.

Windows:
- current: the `hours` (default 24) before `end`; `end` defaults to the flow run's scheduled start time, so a
  retried or restarted scheduled run covers the window it was scheduled for (an ad-hoc run: now);
- reference, the first that exists: the one passed to this run (`reference_from`/`reference_to`), the one an ML
  engineer pinned (`inkloop drift reference --from --to`), the `reference_days` after the champion's promotion,
  the first `reference_days` of traffic. It always ends where the current window starts at the latest.

Safe to rerun and to kill: everything a run writes is keyed by its two windows (the report page, the workspace
snapshot, the row) and written whole or replaced whole, and two drift runs never overlap (a lock). A drifted
verdict publishes a `drift-alert` artifact and ends the run in a Completed state named "Drifted".
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, State
from pydantic import ConfigDict, Field, model_validator

from db import repo
from db.locks import exclusive
from flows.common import IO_TASK, FlowContext, FlowSummary, flow_context, summary_markdown
from inkloop.domain import DriftVerdict, ReferenceKind
from inkloop.errors import InkloopError
from inkloop.files import write_bytes_atomic
from monitoring import drift_workspace
from monitoring.drift import DriftConfig, DriftResult, DriftSummary, Window, compare
from monitoring.drift_html import IndexRow, index_page, report_page

LOCK = "drift"


class DriftParams(DriftConfig):
    """Which windows to compare, and how strictly (DriftConfig)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    end: datetime | None = Field(None, description="End of the current window (default: the run's scheduled time).")
    hours: float = Field(24.0, gt=0, description="Length of the current window, in hours.")
    reference_from: datetime | None = Field(None, description="Start of a reference window for this run only.")
    reference_to: datetime | None = Field(None, description="End of a reference window for this run only.")
    reference_days: float = Field(
        7.0, gt=0, description="Length of the reference after a promotion or at the start of traffic, in days."
    )

    @model_validator(mode="after")
    def _reference_pair(self) -> DriftParams:
        if (self.reference_from is None) != (self.reference_to is None):
            raise ValueError("give both reference_from and reference_to, or neither")
        if self.reference_from and self.reference_to and _utc(self.reference_to) <= _utc(self.reference_from):
            raise ValueError("reference_to must come after reference_from")
        return self


class DriftFlowSummary(FlowSummary):
    verdict: DriftVerdict
    reason: str
    current_window: str
    reference_window: str | None = None
    reference: ReferenceKind
    current_rows: int
    reference_rows: int | None = None
    drifted_columns: list[str] = Field(default_factory=list)
    estimated_cer: float | None = None
    audited_cer: float | None = None
    audited_interval: str | None = None
    cer_check: str
    report: str
    index: str


def _utc(moment: datetime) -> datetime:
    """A plain aware datetime in UTC (naive means UTC; Prefect's pendulum times become plain datetimes)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return datetime.fromtimestamp(aware.timestamp(), tz=UTC)


def _scheduled_end() -> datetime:
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    now = datetime.now(UTC)
    # A run started by hand has no schedule in the past worth keeping: use now. A scheduled run keeps its slot.
    if isinstance(scheduled, datetime) and _utc(scheduled) <= now:
        return _utc(scheduled)
    return now


def window_key(reference: Window | None, current: Window) -> str:
    moments = [reference.start, reference.end] if reference else []
    parts = [m.isoformat() for m in [*moments, current.start, current.end]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@task(name="drift-windows", **IO_TASK)
def resolve_windows(params: DriftParams) -> tuple[Window, Window | None, ReferenceKind]:
    """(current, reference or None, where the reference came from)."""
    end = _utc(params.end) if params.end else _scheduled_end()
    current = Window(start=end - timedelta(hours=params.hours), end=end)
    if params.reference_from is not None and params.reference_to is not None:
        start, stop = _utc(params.reference_from), _utc(params.reference_to)
        if start >= current.start:
            raise InkloopError(
                f"the reference window must start before the current window ({current.label()}), "
                f"got {start:%Y-%m-%d %H:%M} UTC"
            )
        return current, Window(start=start, end=min(stop, current.start)), ReferenceKind.given
    span = timedelta(days=params.reference_days)
    with flow_context() as context, context.transaction(write=False) as session:
        pinned = repo.drift_reference(session=session)
        champion = repo.get_champion(session=session)
        first = repo.first_request_at(session=session)
    if pinned is not None and pinned.start < current.start:
        return current, Window(start=pinned.start, end=min(pinned.end, current.start)), ReferenceKind.pinned
    promoted = champion.promoted_at if champion is not None else None
    if promoted is not None and first is not None and promoted < current.start and first < current.start:
        start = max(promoted, first)
        return current, Window(start=start, end=min(start + span, current.start)), ReferenceKind.promotion
    if first is not None and first < current.start:
        return current, Window(start=first, end=min(first + span, current.start)), ReferenceKind.first_traffic
    return current, None, ReferenceKind.none


@task(name="drift-compare", **IO_TASK)
def measure(current: Window, reference: Window | None, kind: ReferenceKind, params: DriftParams) -> DriftResult:
    """Read both windows from the database and compare them (Evidently)."""
    started = time.perf_counter()
    with flow_context() as context, context.transaction(write=False) as session:
        now_requests = repo.window_requests(session=session, start=current.start, end=current.end)
        now_refusals = repo.window_rejections(session=session, start=current.start, end=current.end)
        if reference is not None:
            then_requests = repo.window_requests(session=session, start=reference.start, end=reference.end)
            then_refusals = repo.window_rejections(session=session, start=reference.start, end=reference.end)
        else:
            then_requests, then_refusals = [], []
    loaded = round(time.perf_counter() - started, 3)
    config = DriftConfig.model_validate(params.model_dump(include=set(DriftConfig.model_fields)))
    result = compare(
        then_requests,
        then_refusals,
        now_requests,
        now_refusals,
        reference=reference,
        current=current,
        reference_kind=kind,
        config=config,
        tags=["drift", kind.value],
    )
    result.summary.seconds = {"load": loaded, **result.summary.seconds}
    return result


def report_path(folder: Path, current: Window, key: str) -> Path:
    return folder / f"drift-{current.end:%Y%m%dT%H%M%SZ}-{key[:8]}.html"


@task(name="drift-save", **IO_TASK)
def save(result: DriftResult, current: Window, reference: Window | None, key: str) -> tuple[Path, Path]:
    """Page, workspace snapshot, row, index: each keyed by the windows, each replaced whole on a rerun."""
    summary = result.summary
    with flow_context() as context:
        if result.snapshot is not None:
            summary.snapshot_id = drift_workspace.save(
                context.settings.paths.evidently, result.snapshot, key, name=f"drift {current.end:%Y-%m-%d %H:%M} UTC"
            )
        page = report_path(context.settings.paths.drift_reports, current, key)
        evidently_html = result.snapshot.get_html_str(as_iframe=False) if result.snapshot is not None else None
        write_bytes_atomic(page, report_page(summary, evidently_html).encode())
        with context.transaction() as session:
            champion = repo.get_champion(session=session)
            repo.save_drift_report(
                session=session,
                window_key=key,
                reference_kind=summary.reference_kind,
                reference_start=reference.start if reference else None,
                reference_end=reference.end if reference else None,
                current_start=current.start,
                current_end=current.end,
                reference_rows=summary.reference.rows if summary.reference else 0,
                current_rows=summary.current.rows,
                model_version=champion.version if champion else next(iter(summary.current.models), None),
                verdict=summary.verdict,
                summary=summary.model_dump(mode="json"),
                html_path=str(page),
            )
        index = write_index(context)
    return page, index


def write_index(context: FlowContext) -> Path:
    """INKLOOP_HOME/reports/drift/index.html from every stored report."""
    folder = context.settings.paths.drift_reports
    with context.transaction(write=False) as session:
        reports = repo.drift_reports(session=session)
        rows = [
            IndexRow(
                current_end=r.current_end,
                verdict=r.verdict or (DriftVerdict.drifted if r.drift_detected else DriftVerdict.stable),
                summary=DriftSummary.model_validate(r.summary),
                href=Path(r.html_path).name if r.html_path and Path(r.html_path).parent == folder else r.html_path,
            )
            for r in reports
        ]
    path = folder / "index.html"
    write_bytes_atomic(path, index_page(rows).encode())
    return path


def _flow_summary(summary: DriftSummary, page: Path, index: Path, reference: Window | None) -> DriftFlowSummary:
    cer = summary.cer
    return DriftFlowSummary(
        verdict=summary.verdict,
        reason=summary.reason,
        current_window=Window(start=summary.current.start, end=summary.current.end).label(),
        reference_window=reference.label() if reference else None,
        reference=summary.reference_kind,
        current_rows=summary.current.rows,
        reference_rows=summary.reference.rows if summary.reference else None,
        drifted_columns=summary.drifted_columns,
        estimated_cer=None if cer.estimated is None else round(cer.estimated, 4),
        audited_cer=None if cer.audited is None else round(cer.audited, 4),
        audited_interval=f"[{cer.low:.4f}, {cer.high:.4f}] on {cer.audited_pages} pages"
        if cer.low is not None and cer.high is not None
        else None,
        cer_check={True: "agree", False: "disagree: calibration drifted", None: cer.note}[cer.agrees],
        report=str(page),
        index=str(index),
    )


@flow(name="drift", log_prints=True)
def drift(params: DriftParams | None = None) -> State:
    """Compare production traffic with its reference window; keep the report; alert when it drifted."""
    params = params or DriftParams()
    started = time.perf_counter()
    log = get_run_logger()
    with flow_context() as context, exclusive(context.engine, LOCK, wait=True):
        current, reference, kind = resolve_windows(params)
        key = window_key(reference, current)
        result = measure(current, reference, kind, params)
        page, index = save(result, current, reference, key)
    summary = _flow_summary(result.summary, page, index, reference)
    summary.seconds = round(time.perf_counter() - started, 2)
    log.info("drift %s", summary.model_dump_json())
    create_markdown_artifact(
        key="drift-summary", markdown=summary_markdown("Drift", summary), description="what this run did"
    )
    if result.summary.verdict is DriftVerdict.drifted:
        create_markdown_artifact(
            key="drift-alert",
            markdown=_alert(result.summary, page),
            description="production drifted from its reference window",
        )
        log.warning("production drifted: %s (report: %s)", result.summary.reason, page)
        return Completed(message=f"drifted: {', '.join(result.summary.drifted_columns)}", name="Drifted", data=summary)
    return Completed(message=result.summary.verdict.value.replace("_", " "), data=summary)


def _alert(summary: DriftSummary, page: Path) -> str:
    lines = [
        "# Production drifted",
        "",
        summary.reason,
        "",
        "| column | method | score | reference | current |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.method} | {c.score:.4g} | {c.reference} | {c.current} |"
        for c in summary.columns
        if c.drifted and c.score is not None
    ]
    cer = summary.cer
    if cer.estimated is not None:
        audited = f"{cer.audited:.4f}" if cer.audited is not None else "-"
        lines += ["", f"Estimated CER {cer.estimated:.4f}, audited {audited} ({cer.note})."]
    lines += [
        "",
        f"Report: `{page}`",
        "",
        "Next: look at the drifted columns and a sample of pages; raise INKLOOP_AUDIT_RATE; route more pages to "
        "annotators; retrain when the labels are in (`inkloop flow run retrain`).",
    ]
    return "\n".join(lines)
