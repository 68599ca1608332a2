"""What drift reports read and write: a window's requests with their features and audit labels, refused uploads, the
pinned reference window, the stored reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationTask, DriftReference, DriftReport, Image, Request, UploadRejection, utcnow
from inkloop.domain import DriftVerdict, ImageStatus, ReferenceKind, TaskReason, TaskState
from inkloop.errors import InkloopError


@dataclass(frozen=True)
class WindowRequest:
    """A logged request as the drift report sees it: when, what the model answered, and its image's features
    (None until the ingest flow has validated the image). `audit_label` is the annotators' text when the page was
    sent to annotation as part of the random audit and the answer is usable."""

    request_id: str
    created_at: datetime
    model_version: str
    text: str
    confidence: float
    image_status: ImageStatus | None
    features: dict[str, Any] | None
    audit_label: str | None = None


def window_requests(*, session: Session, start: datetime, end: datetime) -> list[WindowRequest]:
    """Every request logged in [start, end), oldest first, with its image's validation and the audit labels."""
    query = (
        select(
            Request.request_id,
            Request.created_at,
            Request.model_version,
            Request.text,
            Request.confidence,
            Image.status,
            Image.features,
        )
        .outerjoin(Image, Image.sha256 == Request.image_sha256)
        .where(Request.created_at >= start, Request.created_at < end)
        .order_by(Request.id)
    )
    rows = session.execute(query).all()
    labels = _audit_labels(session, start, end)
    return [
        WindowRequest(
            request_id=rid,
            created_at=at,
            model_version=model,
            text=text,
            confidence=confidence,
            image_status=status,
            features=features,
            audit_label=labels.get(rid),
        )
        for rid, at, model, text, confidence, status, features in rows
    ]


def _audit_labels(session: Session, start: datetime, end: datetime) -> dict[str, str]:
    """request id -> the label of its completed audit task (the earliest annotator's newest revision), for the
    requests of [start, end). Skipped, unreadable and disputed (needs_review) answers are no label."""
    newest = (
        select(Annotation.ls_annotation_id, func.max(Annotation.revision).label("revision"))
        .group_by(Annotation.ls_annotation_id)
        .subquery()
    )
    query = (
        select(AnnotationTask.request_id, Annotation.text)
        .join(Annotation, Annotation.task_id == AnnotationTask.id)
        .join(
            newest,
            (newest.c.ls_annotation_id == Annotation.ls_annotation_id) & (newest.c.revision == Annotation.revision),
        )
        .join(Request, Request.request_id == AnnotationTask.request_id)
        .where(
            AnnotationTask.reason == TaskReason.audit,
            AnnotationTask.state == TaskState.completed,
            Request.created_at >= start,
            Request.created_at < end,
            Annotation.text.is_not(None),
            Annotation.unreadable.is_(False),
            Annotation.skipped.is_(False),
        )
        .order_by(Annotation.annotated_at.desc(), Annotation.id.desc())
    )
    # Newest first, so the earliest answer of each task is the one left in the dict.
    return {request_id: text for request_id, text in session.execute(query) if request_id is not None}


def window_rejections(*, session: Session, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """(when, code) of every upload the endpoint refused in [start, end), oldest first."""
    query = (
        select(UploadRejection.created_at, UploadRejection.code)
        .where(UploadRejection.created_at >= start, UploadRejection.created_at < end)
        .order_by(UploadRejection.id)
    )
    return [(at, code) for at, code in session.execute(query)]


def first_request_at(*, session: Session) -> datetime | None:
    return session.scalar(select(func.min(Request.created_at)))


def pin_drift_reference(
    *, session: Session, start: datetime, end: datetime, actor: str, reason: str | None = None
) -> DriftReference:
    if end <= start:
        raise InkloopError(f"the reference window must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    row = DriftReference(start=start, end=end, actor=actor, reason=reason)
    session.add(row)
    session.flush()
    return row


def drift_reference(*, session: Session) -> DriftReference | None:
    """The pinned reference window drift reports use now: the newest one not cleared."""
    query = select(DriftReference).where(DriftReference.cleared_at.is_(None))
    return session.scalar(query.order_by(DriftReference.created_at.desc(), DriftReference.id.desc()).limit(1))


def clear_drift_reference(*, session: Session) -> int:
    """Unpin every pinned reference window; the number unpinned."""
    rows = list(session.scalars(select(DriftReference).where(DriftReference.cleared_at.is_(None))))
    for row in rows:
        row.cleared_at = utcnow()
    session.flush()
    return len(rows)


def save_drift_report(
    *,
    session: Session,
    window_key: str,
    reference_kind: ReferenceKind,
    reference_start: datetime | None,
    reference_end: datetime | None,
    current_start: datetime,
    current_end: datetime,
    reference_rows: int,
    current_rows: int,
    model_version: str | None,
    verdict: DriftVerdict,
    summary: dict[str, Any],
    html_path: str | None,
) -> DriftReport:
    """The report of these windows: created, or replaced when a run for the same windows wrote one before."""
    row = session.scalar(select(DriftReport).where(DriftReport.window_key == window_key))
    if row is None:
        row = DriftReport(window_key=window_key, current_start=current_start, current_end=current_end)
        session.add(row)
    row.reference_kind = reference_kind
    row.reference_start, row.reference_end = reference_start, reference_end
    row.current_start, row.current_end = current_start, current_end
    row.reference_rows, row.current_rows = reference_rows, current_rows
    row.model_version = model_version
    row.verdict = verdict
    row.drift_detected = verdict is DriftVerdict.drifted
    row.summary = summary
    row.html_path = html_path
    row.created_at = utcnow()
    session.flush()
    return row


def drift_reports(*, session: Session, limit: int | None = None) -> list[DriftReport]:
    """Drift reports, newest current window first."""
    query = select(DriftReport).order_by(DriftReport.current_end.desc(), DriftReport.id.desc())
    return list(session.scalars(query.limit(limit) if limit else query))
