"""The whole loop as one flow: ingest -> route -> sync -> dataset -> retrain (only with enough new labels; it gates
and promotes its candidate) -> drift, each step the flow it is alone (a Prefect subflow, with its own summary and
artifacts), each still runnable by itself.

A step that fails does not stop the steps that do not need it: with Label Studio down, route and sync fail, and
ingest and drift still run; the dataset, which needs sync, is skipped, and so is retrain. The loop then ends
failed, naming the steps. Every step is safe to rerun and to kill (see each flow), so the loop is too: a rerun
picks up where the data is.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field

from flows.common import FlowSummary, summary_markdown
from flows.dataset import DatasetParams, DatasetSummary, dataset
from flows.drift import DriftFlowSummary, DriftParams, drift
from flows.ingest import IngestParams, IngestSummary, ingest
from flows.retrain import RetrainParams, RetrainSummary, retrain
from flows.route import RouteParams, RouteSummary, route
from flows.sync import SyncParams, SyncSummary, sync
from inkloop.errors import InkloopError

# step -> the steps whose output it reads: it is skipped when one of them failed or was skipped.
NEEDS: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "route": ("ingest",),
    "sync": (),
    "dataset": ("sync",),
    "retrain": ("dataset",),
    "drift": ("ingest",),
}


class LoopParams(BaseModel):
    """Each step's parameters (as for the step alone; a JSON object on the command line: -p retrain='{...}')."""

    model_config = ConfigDict(extra="forbid")

    ingest: IngestParams = Field(default_factory=IngestParams)
    route: RouteParams = Field(default_factory=RouteParams)
    sync: SyncParams = Field(default_factory=SyncParams)
    dataset: DatasetParams = Field(default_factory=DatasetParams)
    retrain: RetrainParams = Field(default_factory=RetrainParams)
    drift: DriftParams = Field(default_factory=DriftParams)
    skip: list[str] = Field(default_factory=list, description='Steps not to run this time, e.g. ["drift"].')


class LoopResults(BaseModel):
    """Each step's own summary, as the step returned it (None: the step did not run, or failed)."""

    model_config = ConfigDict(extra="forbid")

    ingest: IngestSummary | None = None
    route: RouteSummary | None = None
    sync: SyncSummary | None = None
    dataset: DatasetSummary | None = None
    retrain: RetrainSummary | None = None
    drift: DriftFlowSummary | None = None


class LoopSummary(FlowSummary):
    """One line per step: what it did, or why it did not run; and each step's whole summary, typed, in `results`
    (--json prints it; the lines are for people)."""

    ingest: str = ""
    route: str = ""
    sync: str = ""
    dataset: str = ""
    retrain: str = ""
    drift: str = ""
    failed: list[str] = Field(default_factory=list)
    results: LoopResults = Field(default_factory=LoopResults)

    def rows(self) -> list[tuple[str, str]]:
        return [(label, value) for label, value in super().rows() if label != "results"]


# What each step's line shows, in this order, when it says something.
SHOWN: dict[str, tuple[str, ...]] = {
    "ingest": ("new_images", "valid", "quarantined", "reasons"),
    "route": ("created", "created_by_reason", "near_duplicates", "over_budget", "budget_left"),
    "sync": ("new_annotations", "new_revisions", "completed", "skipped", "needs_review", "nul_dropped"),
    "dataset": ("nothing_to_build", "version", "created", "members", "splits"),
    "retrain": (
        "nothing_to_do",
        "candidate",
        "steps",
        "stopped_early",
        "val_cer",
        "stitched",
        "gate_passed",
        "promoted",
        "gate_failures",
    ),
    "drift": ("verdict", "reason", "estimated_cer", "audited_cer", "cer_check", "report"),
}


def _line(name: str, summary: FlowSummary) -> str:
    """A step's summary in one line: the rows SHOWN for it that say something (no zeros, no "no")."""
    rows = dict(summary.rows())
    shown = [
        f"{label} {rows[label]}"
        for label in (field.replace("_", " ") for field in SHOWN[name])
        if label in rows and rows[label] not in ("0", "no")
    ]
    return "; ".join(shown) or "nothing new"


@flow(name="loop", log_prints=True)
def loop(params: LoopParams | None = None) -> LoopSummary:
    """Run every step of the loop once, in order; a failed step skips only the steps that need it."""
    params = params or LoopParams()
    unknown = set(params.skip) - set(NEEDS)
    if unknown:
        raise InkloopError(f"skip names no step {sorted(unknown)}; the steps are {', '.join(NEEDS)}")
    log = get_run_logger()
    started = time.perf_counter()
    summary = LoopSummary()
    steps: dict[str, tuple[Any, BaseModel]] = {
        "ingest": (ingest, params.ingest),
        "route": (route, params.route),
        "sync": (sync, params.sync),
        "dataset": (dataset, params.dataset),
        "retrain": (retrain, params.retrain),
        "drift": (drift, params.drift),
    }
    not_done: set[str] = set()
    for name, (step, step_params) in steps.items():
        missing = [need for need in NEEDS[name] if need in not_done]
        if name in params.skip or missing:
            not_done.add(name)
            setattr(summary, name, "skipped" if name in params.skip else f"skipped: {', '.join(missing)} did not run")
            continue
        state = step(step_params, return_state=True)
        if state.is_failed() or state.is_crashed() or state.is_cancelled():
            not_done.add(name)
            summary.failed.append(name)
            why = (state.message or state.name or "").removeprefix("Flow run encountered an exception: ")
            setattr(summary, name, f"failed: {why}")
            log.error("loop: %s failed: %s", name, state.message)
            continue
        result = state.result()
        setattr(summary.results, name, result)
        setattr(summary, name, _line(name, result))
    summary.seconds = round(time.perf_counter() - started, 2)
    log.info("loop %s", summary.model_dump_json())
    create_markdown_artifact(key="loop-summary", markdown=summary_markdown("Loop", summary), description="each step")
    if summary.failed:
        # A failed run that still carries what every step did: `inkloop flow run loop` prints it, then the error.
        failed = f"loop: {', '.join(summary.failed)} failed; the other steps ran (see each step's line)"
        return Failed(message=failed, data=summary)  # type: ignore[return-value]
    return summary
