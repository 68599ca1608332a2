"""Annotation tasks (one per image and Label Studio project, with why it was routed) and annotation revisions (every
answer, as sync reads it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationTask, Feedback, Image, Request
from db.repo.common import add_unique, enum_value
from inkloop.domain import ImageStatus, TaskReason, TaskState
from inkloop.errors import NotFoundError
from inkloop.labels import LabelSource


def create_task(
    *,
    session: Session,
    uid: str,
    project: str,
    image_sha256: str,
    reason: str | TaskReason,
    priority: float,
    request_id: str | None = None,
    model_version: str | None = None,
    prediction_text: str | None = None,
) -> AnnotationTask:
    """Record a task before it is sent to Label Studio (state `queued`). An image goes to a project once."""
    reason = enum_value(TaskReason, reason, "task reason")
    row = AnnotationTask(
        uid=uid,
        project=project,
        image_sha256=image_sha256,
        request_id=request_id,
        reason=reason,
        priority=priority,
        model_version=model_version,
        prediction_text=prediction_text,
    )
    add_unique(
        session,
        row,
        f"image {image_sha256} already has a task in project {project!r} (or uid {uid} is taken)",
    )
    return row


def add_annotation_revision(
    *,
    session: Session,
    task_id: int,
    ls_annotation_id: int,
    annotator: str,
    annotated_at: datetime,
    text: str | None,
    lines: list[dict[str, Any]] | None = None,
    label_source: LabelSource | None = None,
    raw: dict[str, Any] | None = None,
    unreadable: bool = False,
    skipped: bool = False,
    lead_time_s: float | None = None,
) -> Annotation:
    """Store a Label Studio annotation as the next revision of that annotation (1 for a new one)."""
    if session.get(AnnotationTask, task_id) is None:
        raise NotFoundError(f"no annotation task {task_id}")
    last = session.scalar(select(func.max(Annotation.revision)).where(Annotation.ls_annotation_id == ls_annotation_id))
    row = Annotation(
        task_id=task_id,
        ls_annotation_id=ls_annotation_id,
        revision=(last or 0) + 1,
        annotator=annotator,
        text=text,
        lines=lines,
        label_source=label_source,
        raw=raw,
        unreadable=unreadable,
        skipped=skipped,
        lead_time_s=lead_time_s,
        annotated_at=annotated_at,
    )
    add_unique(session, row, f"annotation {ls_annotation_id} got a concurrent revision; rerun the sync")
    return row


def routing_candidates(*, session: Session, project: str) -> list[dict[str, Any]]:
    """Valid images with no task in `project`, each with the latest request that sent it and whether any request
    for it was flagged by a user. Images that reached us only by import have no request and are not candidates."""
    latest = (
        select(Request.image_sha256, func.max(Request.id).label("request_pk")).group_by(Request.image_sha256).subquery()
    )
    flagged = (
        select(Request.image_sha256)
        .join(Feedback, Feedback.request_id == Request.request_id)
        .where(Request.image_sha256 == Image.sha256)
        .exists()
    )
    tasked = (
        select(AnnotationTask.id)
        .where(AnnotationTask.image_sha256 == Image.sha256, AnnotationTask.project == project)
        .exists()
    )
    query = (
        select(Image.sha256, Image.phash, Request.request_id, Request.confidence, flagged.label("flagged"))
        .join(latest, latest.c.image_sha256 == Image.sha256)
        .join(Request, Request.id == latest.c.request_pk)
        .where(Image.status == ImageStatus.valid, ~tasked)
        .order_by(Image.id)
    )
    return [row._asdict() for row in session.execute(query)]


def tasked_phashes(*, session: Session, project: str) -> list[str]:
    """Perceptual hashes of the images that already have a task in `project` (near-duplicates are sent once)."""
    query = (
        select(Image.phash)
        .join(AnnotationTask, AnnotationTask.image_sha256 == Image.sha256)
        .where(AnnotationTask.project == project, Image.phash.is_not(None))
    )
    return list(session.scalars(query))


def count_tasks_since(*, session: Session, project: str, since: datetime) -> int:
    query = select(func.count()).where(AnnotationTask.project == project, AnnotationTask.created_at >= since)
    return session.scalar(query.select_from(AnnotationTask)) or 0


def tasks_in_state(*, session: Session, project: str, state: str | TaskState) -> list[AnnotationTask]:
    state = enum_value(TaskState, state, "task state")
    query = select(AnnotationTask).where(AnnotationTask.project == project, AnnotationTask.state == state)
    return list(session.scalars(query.order_by(AnnotationTask.priority.desc(), AnnotationTask.id)))


def mark_tasks_open(*, session: Session, ls_project_id: int, ls_task_ids: dict[str, int]) -> int:
    """Record the Label Studio ids of queued tasks (by uid): they are now waiting for annotators."""
    if not ls_task_ids:
        return 0
    rows = session.scalars(select(AnnotationTask).where(AnnotationTask.uid.in_(list(ls_task_ids)))).all()
    for row in rows:
        row.ls_project_id = ls_project_id
        row.ls_task_id = ls_task_ids[row.uid]
        if row.state is TaskState.queued:
            row.state = TaskState.open
    session.flush()
    return len(rows)


def tasks_by_ls_id(*, session: Session, ls_project_id: int, ls_task_ids: Sequence[int]) -> dict[int, AnnotationTask]:
    if not ls_task_ids:
        return {}
    query = select(AnnotationTask).where(
        AnnotationTask.ls_project_id == ls_project_id, AnnotationTask.ls_task_id.in_(list(ls_task_ids))
    )
    return {row.ls_task_id: row for row in session.scalars(query) if row.ls_task_id is not None}


def latest_revisions(*, session: Session, task_ids: Sequence[int]) -> dict[int, Annotation]:
    """The newest stored revision of every Label Studio annotation of these tasks, by Label Studio annotation id."""
    if not task_ids:
        return {}
    query = select(Annotation).where(Annotation.task_id.in_(list(task_ids))).order_by(Annotation.revision)
    return {row.ls_annotation_id: row for row in session.scalars(query)}
