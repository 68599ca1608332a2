"""The drift flow on SQLite and PostgreSQL under Prefect's test harness: production traffic written as the endpoint,
ingest and sync write it (tests/support/drift.record), compared with the reference window the flow picks, kept as a
row, an HTML page, an index and a point in the Evidently workspace, once per window however often it runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import repo
from db.models import DriftReport
from devtools.records import record
from flows.drift import DriftFlowSummary, DriftParams, drift, resolve_windows
from inkloop.domain import DriftVerdict, PromotionKind, ReferenceKind
from monitoring import drift_workspace
from tests.support.databases import BACKENDS, session_on
from tests.support.drift import Traffic

pytestmark = pytest.mark.slow

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REFERENCE_START = END - timedelta(days=10)
TEN_MINUTES = timedelta(minutes=10)


@dataclass
class Installation:
    url: str
    home: Path

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_on(self.url) as session:
            yield session

    def reports(self) -> list[DriftReport]:
        with self.session() as session:
            rows = repo.drift_reports(session=session)
            session.expunge_all()
            return rows


@pytest.fixture(params=BACKENDS)
def installation(
    request: pytest.FixtureRequest, inkloop_home: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> Installation:
    url = str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))
    from db.migrate import upgrade

    upgrade(url)
    monkeypatch.setenv("INKLOOP_DATABASE_URL", url)
    return Installation(url=url, home=inkloop_home)


def _artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts() if a.key}


def test_dark_traffic_drifts_against_the_first_days_and_a_rerun_keeps_one_report(
    installation: Installation, drift_traffic: Traffic
) -> None:
    with installation.session() as session:
        record(session, drift_traffic.reference[:80], start=REFERENCE_START, spacing=TEN_MINUTES)
        record(session, drift_traffic.dark[:50], start=END - timedelta(hours=20), spacing=TEN_MINUTES)
        repo.log_rejection(session=session, code="not_an_image", byte_size=12)  # now: outside both windows

    state = drift(DriftParams(end=END), return_state=True)
    assert state.name == "Drifted" and state.is_completed()
    summary = state.result()
    assert isinstance(summary, DriftFlowSummary)
    assert summary.verdict == "drifted"
    assert summary.reference == "first_traffic"
    assert (summary.current_rows, summary.reference_rows) == (50, 80)
    assert {"polarity", "mean_brightness"} <= set(summary.drifted_columns)
    assert summary.current_window == "2026-11-19 12:00 .. 2026-11-20 12:00 UTC"
    assert summary.reference_window == "2026-11-10 12:00 .. 2026-11-17 12:00 UTC"
    assert summary.audited_interval is not None and summary.audited_interval.endswith("on 17 pages")
    assert {"drift-summary", "drift-alert"} <= _artifact_keys()

    (row,) = installation.reports()
    assert row.verdict is DriftVerdict.drifted and row.drift_detected
    assert row.reference_kind is ReferenceKind.first_traffic
    assert (row.current_rows, row.reference_rows) == (50, 80)
    assert row.summary["current"]["refused"] == {}
    page = Path(row.html_path or "")
    assert page.parent == installation.home / "reports" / "drift"
    html = page.read_text()
    assert "Drift report" in html and "polarity" in html and "What to do next" in html
    assert "Evidently's report" in html and "root_metric_" in html  # Evidently's report follows the summary
    index = (installation.home / "reports" / "drift" / "index.html").read_text()
    assert page.name in index and "drifted" in index
    assert drift_workspace.snapshot_ids(installation.home / "evidently") == [row.summary["snapshot_id"]]

    again = drift(DriftParams(end=END))
    assert isinstance(again, DriftFlowSummary)
    assert again.verdict == "drifted" and again.report == str(page)
    (same,) = installation.reports()
    assert same.id == row.id
    assert len(drift_workspace.snapshot_ids(installation.home / "evidently")) == 1


def test_an_empty_installation_reports_not_enough_data(installation: Installation) -> None:
    summary = drift(DriftParams(end=END))
    assert isinstance(summary, DriftFlowSummary)
    assert summary.verdict == "not_enough_data"
    assert summary.reference == "none"
    assert summary.reason == "not enough data: no reference window (no traffic before the current window)"
    assert summary.current_rows == 0
    (row,) = installation.reports()
    assert row.verdict is DriftVerdict.not_enough_data and not row.drift_detected
    assert "not enough data" in Path(row.html_path or "").read_text()
    assert drift_workspace.snapshot_ids(installation.home / "evidently") == []  # nothing compared: no history point


def test_a_tiny_current_window_is_not_enough_data_not_an_alarm(
    installation: Installation, drift_traffic: Traffic
) -> None:
    with installation.session() as session:
        record(session, drift_traffic.reference[:40], start=REFERENCE_START, spacing=TEN_MINUTES)
        record(session, drift_traffic.dark[:5], start=END - timedelta(hours=2), spacing=TEN_MINUTES)
    state = drift(DriftParams(end=END), return_state=True)
    assert state.name == "Completed"
    summary = state.result()
    assert isinstance(summary, DriftFlowSummary)
    assert summary.verdict == "not_enough_data"
    assert summary.reason == "not enough data (n < 30): the current window has 5 valid images"


def test_the_reference_window_is_given_then_pinned_then_after_the_promotion_then_the_first_days(
    installation: Installation, drift_traffic: Traffic
) -> None:
    with installation.session() as session:
        record(session, drift_traffic.reference[:3], start=REFERENCE_START, spacing=TEN_MINUTES, audit_every=0)

    def windows(params: DriftParams) -> tuple[tuple[datetime, datetime] | None, ReferenceKind]:
        _, reference, kind = resolve_windows.fn(params)
        return ((reference.start, reference.end) if reference else None), kind

    assert windows(DriftParams(end=END)) == ((REFERENCE_START, REFERENCE_START + timedelta(days=7)), "first_traffic")
    assert windows(DriftParams(end=END, reference_days=30)) == (
        (REFERENCE_START, END - timedelta(days=1)),
        "first_traffic",
    )

    promoted = END - timedelta(days=5)
    with installation.session() as session:
        model = repo.register_model(session=session, version="m-0001", artifact_key="k", card={})
        repo.promote_model(session=session, version=model.version, actor="test", kind=PromotionKind.manual)
        model.promoted_at = promoted
    assert windows(DriftParams(end=END)) == ((promoted, END - timedelta(days=1)), "promotion")

    pinned = (END - timedelta(days=9), END - timedelta(days=8))
    with installation.session() as session:
        repo.pin_drift_reference(session=session, start=pinned[0], end=pinned[1], actor="ml-engineer")
    assert windows(DriftParams(end=END)) == (pinned, "pinned")

    given = (END - timedelta(days=3), END - timedelta(days=2))
    assert windows(DriftParams(end=END, reference_from=given[0], reference_to=given[1])) == (given, "given")

    with installation.session() as session:
        assert repo.clear_drift_reference(session=session) == 1
    assert windows(DriftParams(end=END))[1] == "promotion"


def test_bad_windows_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="give both reference_from and reference_to"):
        DriftParams(reference_from=END)
    with pytest.raises(ValueError, match="reference_to must come after reference_from"):
        DriftParams(reference_from=END, reference_to=END - timedelta(days=1))


def test_the_flow_runs_by_name_as_inkloop_flow_run_runs_it(installation: Installation) -> None:
    from flows.runner import parse_params, run

    params = parse_params("drift", [f"end={END.isoformat()}", "hours=6", "min_rows=5"])
    summary = run("drift", params)
    assert isinstance(summary, DriftFlowSummary)
    assert summary.current_window == "2026-11-20 06:00 .. 2026-11-20 12:00 UTC"
    assert json.loads(summary.model_dump_json())["verdict"] == "not_enough_data"
    with installation.session() as session:
        assert session.scalar(select(func.count()).select_from(DriftReport)) == 1
