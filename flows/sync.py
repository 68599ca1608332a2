"""Sync: bring finished annotations back from Label Studio into the database.

Polling is the source of truth (Label Studio's webhooks are best effort: one try, one second), and it is
idempotent: an annotation is stored as a new revision only when its content differs from the newest revision we
hold, so a rerun, or two overlapping polls, store nothing twice. The poll asks for tasks updated since the last
sync minus a margin, and a full pass (`full=True`) re-reads everything.

Each revision stores the answer as submitted (`raw`) and the label it gives: the field the annotator edited,
found by comparing both pre-filled copies with the model's reading (inkloop.labels.derive_label). When two
annotators did the same task, their agreement (CER between their labels) is stored on the task, and a
disagreement above the threshold, or one answer whose lines and paragraph were both edited differently, marks the
task `needs_review` instead of `completed`.

A completed task whose image is an imported page (one sent for review by `inkloop datasets review`, or any
page both imported and routed) corrects that page: the newest answer's lines become the page's lines (their texts,
and their outlines back in the page's pixels; lines the annotator added or deleted change the set), with who
corrected it, in the same transaction as the answer (annotation/review.py says which line is which). An answer
that gives the page no line-by-line reading (a paragraph typed over deleted lines) leaves the page as it is and is
counted; an answer that changes nothing writes nothing.

An answer holding NUL characters is stored without them, the same on SQLite and PostgreSQL (which refuses NUL in
text), and so are lone surrogates: annotation.labeling.parse_annotation drops them (why dropping is right for an
annotator's answer: see its UNSTORABLE), the summary's `nul dropped` counts the answers that had any, and no
answer ever reaches db/guard.py's refusal, which would stop every later sync at its page.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field, computed_field
from sqlalchemy.orm import Session

from annotation.client import LabelStudioClient
from annotation.labeling import ParsedAnnotation, parse_annotation
from annotation.review import answer_lines, corrected_lines
from db import repo
from db.models import Annotation, AnnotationTask, GroundTruthPage
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from flows.route import label_studio
from inkloop.domain import TaskState
from inkloop.labels import LabelSource
from inkloop.text import cer

log = logging.getLogger(__name__)

WATERMARK = "sync"
# Label Studio's clock and ours, and a task updated while we read the previous page: re-read a margin back.
POLL_OVERLAP = timedelta(minutes=5)


class SyncParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disagreement_cer: float = Field(
        0.1, ge=0, le=1, description="Two annotators further apart than this CER: the task needs review."
    )
    full: bool = Field(False, description="Re-read every annotated task, not only those updated since the last sync.")
    page_size: int = Field(100, ge=1, le=1000, description="Tasks committed together.")


class SyncSummary(FlowSummary):
    """What a sync run did."""

    tasks_seen: int = 0
    unknown_tasks: int = 0  # made in Label Studio by hand, not by the route flow
    new_annotations: int = 0
    new_revisions: int = 0  # edits of annotations we already held
    unchanged: int = 0
    completed: int = 0
    skipped: int = 0
    needs_review: int = 0
    # Answers (new annotations or revisions) stored without the NUL characters (or lone surrogates) they held.
    nul_dropped: int = 0
    pages_corrected: int = 0  # imported pages whose lines an answer changed
    pages_not_corrected: int = 0  # imported pages whose newest answer gives no line-by-line reading

    @computed_field  # type: ignore[prop-decorator]
    @property
    def annotations_per_s(self) -> float | None:
        stored = self.new_annotations + self.new_revisions
        return round(stored / self.seconds, 1) if self.seconds and stored else None


# --- plain functions --------------------------------------------------------------------------------------------


def _same(stored: Annotation, parsed: ParsedAnnotation) -> bool:
    return stored.raw == parsed.raw() and stored.unreadable == parsed.unreadable and stored.skipped == parsed.skipped


def agreement(texts: Sequence[str]) -> float | None:
    """The largest CER between any two annotators' texts (None with fewer than two)."""
    if len(texts) < 2:
        return None
    return max(max(cer(a, b), cer(b, a)) for a, b in itertools.combinations(texts, 2))


def task_state(latest: Iterable[Annotation], *, disagreement_cer: float) -> tuple[TaskState, float | None]:
    """A task's state from the newest revision of each of its annotations."""
    latest = list(latest)
    answered = [a for a in latest if not a.skipped]
    if not answered:
        return TaskState.skipped, None
    by_annotator = {a.annotator: a.text or "" for a in sorted(answered, key=lambda a: a.annotated_at)}
    score = agreement(list(by_annotator.values()))
    if score is not None and score > disagreement_cer:
        return TaskState.needs_review, score
    if any(a.label_source is LabelSource.conflict and not a.unreadable for a in answered):
        # One annotator edited both the lines and the paragraph, and they disagree: a person must decide.
        return TaskState.needs_review, score
    return TaskState.completed, score


def store_page(
    session: Session, ls_project_id: int, ls_tasks: Sequence[dict[str, Any]], summary: SyncSummary, params: SyncParams
) -> None:
    """Store the new revisions of one page of Label Studio tasks and update those tasks' states."""
    ours = repo.tasks_by_ls_id(session=session, ls_project_id=ls_project_id, ls_task_ids=[t["id"] for t in ls_tasks])
    latest = repo.latest_revisions(session=session, task_ids=[t.id for t in ours.values()])
    imported = repo.gt_pages_by_image(session=session, image_sha256s=[t.image_sha256 for t in ours.values()])
    for ls_task in ls_tasks:
        summary.tasks_seen += 1
        task_row = ours.get(ls_task["id"])
        if task_row is None:
            summary.unknown_tasks += 1
            continue
        changed = False
        for annotation in ls_task.get("annotations") or []:
            parsed = parse_annotation(annotation, ls_task)
            stored = latest.get(parsed.ls_annotation_id)
            if stored is not None and _same(stored, parsed):
                summary.unchanged += 1
                continue
            changed = True
            if parsed.nul_characters:
                summary.nul_dropped += 1
                log.warning(
                    "Label Studio task %d, annotation %d: %d NUL characters (or lone surrogates) dropped from the "
                    "answer: no database stores them alike, and they show nothing",
                    parsed.ls_task_id,
                    parsed.ls_annotation_id,
                    parsed.nul_characters,
                )
            label = parsed.label(task_row.prediction_text)
            row = repo.add_annotation_revision(
                session=session,
                task_id=task_row.id,
                ls_annotation_id=parsed.ls_annotation_id,
                annotator=parsed.annotator,
                annotated_at=parsed.updated_at,
                text=label.text,
                lines=label.lines,
                label_source=label.source,
                raw=parsed.raw(),
                unreadable=parsed.unreadable,
                skipped=parsed.skipped,
                lead_time_s=parsed.lead_time_s,
            )
            latest[parsed.ls_annotation_id] = row
            if stored is None:
                summary.new_annotations += 1
            else:
                summary.new_revisions += 1
        answers = [a for a in latest.values() if a.task_id == task_row.id]
        _update_state(task_row, answers, params, summary)
        pages = imported.get(task_row.image_sha256, [])
        if changed and pages and task_row.state is TaskState.completed:
            # The task's data names the page it was sent for; a routed image that is also imported names none.
            collection = (ls_task.get("data") or {}).get("collection")
            named = [p for p in pages if p.collection == collection] or pages
            _correct_pages(session, named, answers, summary)
    session.flush()


def _correct_pages(
    session: Session, pages: Sequence[GroundTruthPage], answers: list[Annotation], summary: SyncSummary
) -> None:
    """Give imported pages the lines of their task's newest answer (the task is completed: its answers agree)."""
    newest = max((a for a in answers if not a.skipped), key=lambda a: (a.annotated_at, a.id), default=None)
    if newest is None or newest.unreadable:
        return
    lines = answer_lines(raw=newest.raw, lines=newest.lines, text=newest.text or "")
    for page in pages:
        if lines is None:
            summary.pages_not_corrected += 1
            log.warning(
                "imported page %s/%s: its newest answer (annotation %d) has no text per line, so the page keeps its "
                "lines",
                page.collection,
                page.name,
                newest.ls_annotation_id,
            )
        elif repo.correct_gt_page(
            session=session, page=page, lines=corrected_lines(page, lines), annotator=newest.annotator
        ):
            summary.pages_corrected += 1


def _update_state(task_row: AnnotationTask, latest: list[Annotation], params: SyncParams, summary: SyncSummary) -> None:
    if not latest:
        return
    state, score = task_state(latest, disagreement_cer=params.disagreement_cer)
    task_row.state = state
    task_row.agreement_cer = score
    task_row.completed_at = max(a.annotated_at for a in latest)
    if state is TaskState.completed:
        summary.completed += 1
    elif state is TaskState.skipped:
        summary.skipped += 1
    else:
        summary.needs_review += 1


def poll_since(context: FlowContext, *, full: bool) -> datetime | None:
    if full:
        return None
    with context.transaction(write=False) as session:
        position = repo.get_watermark(session=session, name=WATERMARK)
    if position == 0:
        return None
    return datetime.fromtimestamp(position, UTC) - POLL_OVERLAP


def sync_project(
    context: FlowContext, client: LabelStudioClient, *, ls_project_id: int, params: SyncParams
) -> SyncSummary:
    """Poll Label Studio and store what changed, a page per transaction; then move the poll watermark."""
    summary = SyncSummary()
    started = client.server_time()  # Label Studio's clock: the one its updated_at stamps come from
    since = poll_since(context, full=params.full)
    page: list[dict[str, Any]] = []
    for ls_task in client.annotated_tasks(ls_project_id, updated_after=since):
        page.append(ls_task)
        if len(page) >= params.page_size:
            with context.transaction() as session:
                store_page(session, ls_project_id, page, summary, params)
            page = []
    with context.transaction() as session:
        if page:
            store_page(session, ls_project_id, page, summary, params)
        # The next poll starts from when this one began (minus the overlap): nothing updated meanwhile is missed.
        repo.set_watermark(
            session=session, name=WATERMARK, position=int(started.timestamp()), details=summary.model_dump(mode="json")
        )
    return summary


# --- Prefect ----------------------------------------------------------------------------------------------------


@task(
    name="sync-project",
    **IO_TASK,
)
def _sync(context: FlowContext, client: LabelStudioClient, ls_project_id: int, params: SyncParams) -> SyncSummary:
    return sync_project(context, client, ls_project_id=ls_project_id, params=params)


@task(
    name="label-studio-project",
    **IO_TASK,
)
def _find_project(client: LabelStudioClient, title: str) -> int | None:
    return client.find_project(title)


@flow(name="sync", validate_parameters=True)
def sync(params: SyncParams | None = None) -> SyncSummary:
    """Store finished and edited annotations from Label Studio as revisions; mark disagreements for review."""
    params = params or SyncParams()
    logger = get_run_logger()
    started = time.perf_counter()
    with flow_context() as context, label_studio(context.settings) as client:
        ls_project_id = _find_project(client, context.settings.label_studio_project)
        if ls_project_id is None:
            logger.info("no Label Studio project %r yet: nothing to sync", context.settings.label_studio_project)
            summary = SyncSummary()
        else:
            summary = _sync(context, client, ls_project_id, params)
    return finish(summary, started=started, name="sync", title="Sync")
