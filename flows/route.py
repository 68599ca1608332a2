"""Route: choose what annotators see, within the daily label budget, and create those tasks in Label Studio with
the model's transcription already filled in.

Never the same task twice, even when the run dies between Label Studio's answer and our commit: every task is
first recorded here as `queued` with a fresh uid (committed), the uid travels inside the Label Studio task, and a
later run asks Label Studio which queued uids it already has before importing the rest. The database's unique
(project, image) pair stops a second run from choosing an image twice.
"""

from __future__ import annotations

import io
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from prefect import flow, get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field, computed_field

from annotation.client import LabelStudioClient
from annotation.labeling import image_url_for, local_files_root, task_payload
from annotation.routing import Candidate, Plan, plan
from db import repo
from db.models import AnnotationTask, Request
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import TaskReason, TaskState
from inkloop.errors import InkloopError
from inkloop.phash import NEAR_DUPLICATE_DISTANCE
from inkloop.settings import Settings
from model import preprocess


class RouteParams(BaseModel):
    """Parameters of the route flow; unset ones come from the INKLOOP_* settings."""

    model_config = ConfigDict(extra="forbid")

    budget: int | None = Field(None, ge=0, description="New tasks allowed today (default INKLOOP_DAILY_LABEL_BUDGET).")
    threshold: float | None = Field(None, ge=0, le=1, description="Route below this confidence.")
    audit_rate: float | None = Field(None, ge=0, le=1, description="Share of valid traffic audited.")
    near_duplicate_distance: int = Field(NEAR_DUPLICATE_DISTANCE, ge=0, le=64, description="phash bits.")
    chunk_size: int = Field(100, ge=1, le=1000, description="Tasks imported into Label Studio per request.")


class RouteSummary(FlowSummary):
    """What a route run did. `created_by_reason` counts new tasks by why they were routed."""

    project: str = ""
    ls_project_id: int | None = None
    candidates: int = 0
    created_by_reason: dict[str, int] = Field(default_factory=dict)
    recovered: int = 0  # queued by a run that died; found already in Label Studio
    resent: int = 0  # queued by a run that died before Label Studio had them
    near_duplicates: int = 0
    over_budget: dict[str, int] = Field(default_factory=dict)
    not_needed: int = 0
    budget_left: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def created(self) -> int:
        return sum(self.created_by_reason.values())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tasks_per_s(self) -> float | None:
        return round(self.created / self.seconds, 1) if self.seconds and self.created else None


# --- plain functions --------------------------------------------------------------------------------------------


def start_of_day(now: datetime | None = None) -> datetime:
    """The budget is per UTC day."""
    now = now or datetime.now(UTC)
    return datetime.combine(now.astimezone(UTC).date(), day_time(0), tzinfo=UTC)


def page_lines(data: bytes, text: str) -> list[dict[str, Any]]:
    """The model's text split into lines, each with its outline (and box) from the line segmenter, for a request
    whose lines were not logged (one logged before the endpoint recorded them, or an import).

    The recognizer reads exactly the segmenter's lines but drops the ones it reads as empty, so texts and outlines
    pair up only when their counts agree; otherwise the outlines come without texts and the paragraph text stays
    whole.
    """
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        found = preprocess.page_lines(image)
    texts = text.split("\n") if text else []
    return [
        {
            "text": texts[index] if len(texts) == len(found) else "",
            "box": line.percent_box(),
            "polygon": line.percent_region(),
        }
        for index, line in enumerate(found)
    ]


def logged_lines(
    text: str,
    boxes: Sequence[Sequence[float]] | None,
    outlines: Sequence[Sequence[Sequence[float]]] | None = None,
) -> list[dict[str, Any]] | None:
    """The lines the endpoint logged with the request (one box, and since migration 0008 one outline, per line of
    its text), or None without them. A line with an outline is pre-filled as that polygon, else as its box."""
    texts = text.split("\n") if text else []
    if boxes is None or len(boxes) != len(texts):
        return None
    shaped = outlines is not None and len(outlines) == len(texts)
    lines: list[dict[str, Any]] = []
    for index, (line, box) in enumerate(zip(texts, boxes, strict=True)):
        entry: dict[str, Any] = {"text": line, "box": tuple(box)}
        if shaped and outlines is not None and len(outlines[index]) >= 3:
            entry["polygon"] = [tuple(point) for point in outlines[index]]
        lines.append(entry)
    return lines


@dataclass(frozen=True)
class Chosen:
    uids: list[str]  # recorded as queued, in priority order
    plan: Plan
    budget_left: int


def choose(context: FlowContext, *, project: str, params: RouteParams, now: datetime | None = None) -> Chosen:
    """Plan today's new tasks and record them as `queued` (committed). Safe to rerun: an image with a
    task is no longer a candidate, and the budget counts the tasks already created today."""
    settings = context.settings
    budget = settings.daily_label_budget if params.budget is None else params.budget
    with context.transaction() as session:
        rows = repo.routing_candidates(session=session, project=project)
        used = repo.count_tasks_since(session=session, project=project, since=start_of_day(now))
        result = plan(
            [
                Candidate(r["sha256"], r["request_id"], float(r["confidence"]), bool(r["flagged"]), r["phash"])
                for r in rows
            ],
            budget=max(budget - used, 0),
            threshold=settings.confidence_threshold if params.threshold is None else params.threshold,
            audit_rate=settings.audit_rate if params.audit_rate is None else params.audit_rate,
            tasked_phashes=repo.tasked_phashes(session=session, project=project),
            near_duplicate_distance=params.near_duplicate_distance,
        )
        requests = repo.requests_by_id(session=session, request_ids=[d.candidate.request_id for d in result.chosen])
        uids = []
        for decision in result.chosen:
            request = requests[decision.candidate.request_id]
            row = repo.create_task(
                session=session,
                uid=str(uuid.uuid4()),
                project=project,
                image_sha256=decision.candidate.image_sha256,
                reason=decision.reason,
                priority=decision.priority,
                request_id=request.request_id,
                model_version=request.model_version,
                prediction_text=request.text,
            )
            uids.append(row.uid)
    return Chosen(uids=uids, plan=result, budget_left=max(budget - used, 0) - len(result.chosen))


def files_root(settings: Settings) -> Path:
    """Label Studio's local-files document root: where the task image URLs are relative to."""
    if not settings.store_is_local:
        raise InkloopError(
            "Label Studio tasks link images as local files, which needs a folder image store; "
            f"INKLOOP_STORE_URL is {settings.masked_store_url()}"
        )
    return settings.label_studio_files_root or Path(settings.store_url)


def lines_of(context: FlowContext, task: AnnotationTask, request: Request | None) -> list[dict[str, Any]]:
    logged = (
        logged_lines(task.prediction_text or "", request.line_boxes, request.line_outlines)
        if request is not None
        else None
    )
    if logged is not None:
        return logged
    return page_lines(context.store.get(task.image_sha256), task.prediction_text or "")


def payloads_for(context: FlowContext, tasks: Sequence[AnnotationTask]) -> list[dict[str, Any]]:
    """Label Studio task JSON for queued tasks: the image, and the model's text and line outlines as a prediction."""
    root = files_root(context.settings)
    with context.transaction(write=False) as session:
        requests = repo.requests_by_id(session=session, request_ids=[t.request_id for t in tasks if t.request_id])
    payloads = []
    for row in tasks:
        request = requests.get(row.request_id or "")
        text = row.prediction_text or ""
        payloads.append(
            task_payload(
                uid=row.uid,
                image_url=image_url_for(context.settings.store_url, row.image_sha256, document_root=root),
                text=text,
                lines=lines_of(context, row, request),
                score=float(request.confidence) if request is not None else 0.0,
                model_version=row.model_version or "unknown",
                priority=row.priority,
                reason=row.reason.value,
                meta={"request_id": row.request_id, "image_sha256": row.image_sha256},
            )
        )
    return payloads


def queued_tasks(context: FlowContext, *, project: str) -> list[AnnotationTask]:
    """Routed tasks recorded but not yet confirmed in Label Studio. Review tasks (imported pages, pre-filled with
    their own lines) are flows/review.py's to send."""
    with context.transaction(write=False) as session:
        queued = repo.tasks_in_state(session=session, project=project, state=TaskState.queued)
    return [task for task in queued if task.reason is not TaskReason.review]


def confirm(context: FlowContext, *, ls_project_id: int, ls_task_ids: dict[str, int]) -> int:
    with context.transaction() as session:
        return repo.mark_tasks_open(session=session, ls_project_id=ls_project_id, ls_task_ids=ls_task_ids)


def label_studio(settings: Settings) -> LabelStudioClient:
    return LabelStudioClient.from_settings(settings)


def send(
    context: FlowContext,
    client: LabelStudioClient,
    *,
    ls_project_id: int,
    tasks: Sequence[AnnotationTask],
    payloads: Callable[[FlowContext, Sequence[AnnotationTask]], list[dict[str, Any]]] = payloads_for,
) -> tuple[int, int]:
    """Import queued tasks that Label Studio does not have yet (their JSON from `payloads`: flows/review.py sends
    its own), then record the ids it gave them. Returns (imported now, found already there)."""
    uids = [t.uid for t in tasks]
    present = client.task_ids_by_uid(ls_project_id, uids)
    missing = [t for t in tasks if t.uid not in present]
    if missing:
        present.update(client.import_tasks(ls_project_id, payloads(context, missing)))
    absent = [uid for uid in uids if uid not in present]
    if absent:
        raise InkloopError(f"Label Studio accepted the import but lacks {len(absent)} tasks (uid {absent[0]})")
    confirm(context, ls_project_id=ls_project_id, ls_task_ids=present)
    return len(missing), len(tasks) - len(missing)


# --- Prefect ----------------------------------------------------------------------------------------------------


@task(name="label-studio-project", **IO_TASK)
def _project(client: LabelStudioClient, title: str, store: str) -> int:
    return client.ensure_project(title, model_version=None, image_root=local_files_root(store))


@task(name="choose", **IO_TASK)
def _choose(context: FlowContext, project: str, params: RouteParams) -> Chosen:
    return choose(context, project=project, params=params)


@task(name="queued", **IO_TASK)
def _queued(context: FlowContext, project: str) -> list[AnnotationTask]:
    return queued_tasks(context, project=project)


@task(name="send", **IO_TASK)
def _send(
    context: FlowContext, client: LabelStudioClient, ls_project_id: int, tasks: list[AnnotationTask]
) -> tuple[int, int]:
    return send(context, client, ls_project_id=ls_project_id, tasks=tasks)


@flow(name="route", validate_parameters=True)
def route(params: RouteParams | None = None) -> RouteSummary:
    """Send today's most useful images to annotators, each pre-filled with the model's transcription."""
    params = params or RouteParams()
    logger = get_run_logger()
    started = time.perf_counter()
    with flow_context() as context, label_studio(context.settings) as client:
        settings = context.settings
        project = settings.label_studio_project
        summary = RouteSummary(project=project)
        files_root(settings)  # a store Label Studio cannot serve fails here, before anything is recorded
        # Label Studio first: when it is down the run fails before choosing anything.
        summary.ls_project_id = ls_project_id = _project(client, project, settings.store_url)
        leftovers = {t.uid for t in _queued(context, project)}
        if leftovers:
            logger.info("%d tasks were queued by an earlier run that stopped; sending them first", len(leftovers))
        chosen = _choose(context, project, params)
        summary.created_by_reason = dict(Counter(d.reason.value for d in chosen.plan.chosen))
        summary.candidates = chosen.plan.candidates
        summary.near_duplicates = chosen.plan.near_duplicates
        summary.over_budget = dict(chosen.plan.over_budget)
        summary.not_needed = chosen.plan.not_needed
        summary.budget_left = chosen.budget_left
        tasks = _queued(context, project)
        for start in range(0, len(tasks), params.chunk_size):
            chunk = tasks[start : start + params.chunk_size]
            # Importing a chunk whose predictions share a model version makes it the project's, so annotators
            # see them (Label Studio shows only the project's version).
            imported, already = _send(context, client, ls_project_id, chunk)
            summary.recovered += already
            summary.resent += len([t for t in chunk if t.uid in leftovers]) - already
    return finish(summary, started=started, name="route", title=f"Route into Label Studio project {summary.project!r}")
