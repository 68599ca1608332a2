"""The loop flow (flows/loop.py) on SQLite and PostgreSQL with the session's Label Studio: a first run ingests and
routes the new traffic (nothing is annotated yet, so the later steps say so and do nothing); the annotator answers
in Label Studio; a second run syncs, freezes a dataset version, retrains (short config), gates and promotes, and
reports drift. With Label Studio unreachable, the steps that need it fail, the rest run, and the loop fails naming
them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from devtools.pages import Page, shifted_pages
from flows.loop import LoopParams, LoopSummary, loop
from flows.runner import FlowFailed, parse_params, run
from inkloop.domain import DriftVerdict
from inkloop.errors import InkloopError
from tests.support.loop import Loop, answer_all, loop_params
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def test_two_loop_runs_take_new_traffic_to_a_gated_candidate(
    loop: Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INKLOOP_MIN_NEW_LABELS", "5")
    pages: dict[str, Page] = {}
    for page in shifted_pages(24, seed=77):
        loop.log(page.data, confidence=0.4, text=page.reading, line_boxes=page.boxes)
        pages[hashlib.sha256(page.data).hexdigest()] = page

    first = loop_flow_run(loop_params(tmp_path))
    assert first.failed == []
    assert first.ingest == "new images 24; valid 24"
    assert first.route.startswith("created ") and "created by reason audit" in first.route
    assert first.sync == "nothing new"
    assert first.dataset.startswith("nothing to build")
    assert first.retrain.startswith("nothing to do")
    assert first.drift.startswith("verdict not_enough_data; reason not enough data: no reference window")

    routed = len(loop.tasks())
    assert routed >= 20
    assert answer_all(loop, pages) == routed

    second = loop_flow_run(loop_params(tmp_path))
    assert second.failed == []
    assert second.sync == f"new annotations {routed}; completed {routed}"
    assert second.dataset.startswith(f"version ds-0001; created yes; members {routed}; splits train ")
    # Promoted, or rejected with the failing gate named: both are the loop working; this traffic gets promoted.
    assert second.retrain.startswith("candidate m-0001; steps 40; val cer ")
    assert second.retrain.endswith("gate passed yes; promoted yes"), second.retrain
    assert second.ingest == "nothing new"  # nothing was logged between the runs
    assert second.drift.startswith("verdict not_enough_data")  # all the traffic is in the current window
    # The same, typed, as each step returned it.
    results = second.results
    assert results.retrain is not None and results.retrain.candidate == "m-0001" and results.retrain.promoted
    assert results.dataset is not None and results.dataset.version == "ds-0001"
    assert results.drift is not None and results.drift.verdict is DriftVerdict.not_enough_data


def loop_flow_run(params: LoopParams) -> LoopSummary:
    summary = loop(params)
    assert isinstance(summary, LoopSummary)
    return summary


def test_without_label_studio_the_steps_that_need_it_fail_and_the_rest_run(
    sqlite_url: str, inkloop_home: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from db.migrate import upgrade

    upgrade(sqlite_url)
    monkeypatch.setenv("INKLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(FlowFailed) as failed:
        run("loop", LoopParams(skip=["retrain"]))
    assert str(failed.value) == "loop: route, sync failed; the other steps ran (see each step's line)"
    summary = failed.value.summary
    assert isinstance(summary, LoopSummary)
    assert summary.failed == ["route", "sync"]
    assert summary.ingest == "nothing new" and summary.drift.startswith("verdict not_enough_data")
    assert summary.route.startswith("failed: ") and "Label Studio" in summary.route
    assert summary.dataset == "skipped: sync did not run"
    assert summary.retrain == "skipped"
    assert summary.results.route is None and summary.results.retrain is None  # failed, skipped: no summary
    assert summary.results.drift is not None and summary.results.drift.verdict is DriftVerdict.not_enough_data


def test_loop_parameters_come_from_the_command_line_as_json() -> None:
    params = parse_params("loop", ['route={"budget": 7}', 'skip=["drift"]'])
    assert isinstance(params, LoopParams)
    assert params.route.budget == 7 and params.skip == ["drift"]
    with pytest.raises(InkloopError, match="parameter route: '\\{budget' is not valid JSON"):
        parse_params("loop", ["route={budget"])
    with pytest.raises(InkloopError, match="skip names no step \\['nightly'\\]"):
        loop.fn(LoopParams(skip=["nightly"]))
