"""The request log: every answered request, the users' feedback on it, and the uploads refused before a model read
them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Feedback, Request, UploadRejection, utcnow
from db.repo.common import add_unique, enum_value
from inkloop.domain import FeedbackFlag
from inkloop.errors import InkloopError, NotFoundError


def log_request(
    *,
    session: Session,
    request_id: str,
    image_sha256: str,
    image_bytes: int,
    model_version: str,
    text: str,
    confidence: float,
    latency_ms: float,
    image_format: str | None = None,
    image_width: int | None = None,
    image_height: int | None = None,
    line_confidences: list[float] | None = None,
    line_boxes: list[tuple[float, float, float, float]] | None = None,
    line_outlines: Sequence[Sequence[Sequence[float]]] | None = None,
    source: str = "api",
    document: str | None = None,
    created_at: datetime | None = None,
) -> Request:
    row = Request(
        request_id=request_id,
        image_sha256=image_sha256,
        image_bytes=image_bytes,
        image_format=image_format,
        image_width=image_width,
        image_height=image_height,
        model_version=model_version,
        text=text,
        confidence=confidence,
        line_confidences=line_confidences,
        line_boxes=[list(box) for box in line_boxes] if line_boxes is not None else None,
        line_outlines=[[list(p) for p in outline] for outline in line_outlines] if line_outlines is not None else None,
        latency_ms=latency_ms,
        source=source,
        document=document,
        created_at=created_at or utcnow(),
    )
    add_unique(session, row, f"request id {request_id} is already logged")
    return row


def get_request(*, session: Session, request_id: str) -> Request:
    row = session.scalar(select(Request).where(Request.request_id == request_id))
    if row is None:
        raise NotFoundError(f"no logged request with id {request_id!r}")
    return row


def requests_by_id(*, session: Session, request_ids: Iterable[str]) -> dict[str, Request]:
    """The logged requests with these ids, by id, in one query (ids not logged are absent)."""
    wanted = list(dict.fromkeys(request_ids))
    if not wanted:
        return {}
    return {r.request_id: r for r in session.scalars(select(Request).where(Request.request_id.in_(wanted)))}


def image_is_logged(*, session: Session, image_sha256: str) -> bool:
    """Whether any request-log row names this image (the store is content-addressed: requests share images)."""
    return session.scalar(select(Request.id).where(Request.image_sha256 == image_sha256).limit(1)) is not None


def requests_after(*, session: Session, after_id: int, limit: int) -> list[Request]:
    """Request-log rows with `id > after_id`, oldest first: how the ingest flow pages through the log."""
    if limit <= 0:
        raise InkloopError(f"limit must be positive, got {limit}")
    return list(session.scalars(select(Request).where(Request.id > after_id).order_by(Request.id).limit(limit)))


def add_feedback(
    *, session: Session, request_id: str, flag: str | FeedbackFlag, correction: str | None = None
) -> Feedback:
    flag = enum_value(FeedbackFlag, flag, "feedback flag")
    get_request(session=session, request_id=request_id)  # a clear NotFoundError instead of a foreign-key error
    row = Feedback(request_id=request_id, flag=flag, correction=correction)
    add_unique(session, row, f"feedback for request {request_id} could not be stored")
    return row


def log_rejection(*, session: Session, code: str, byte_size: int | None) -> UploadRejection:
    row = UploadRejection(code=code, byte_size=byte_size)
    session.add(row)
    session.flush()
    return row


def rejection_counts(*, session: Session, since: datetime | None = None) -> dict[str, int]:
    query = select(UploadRejection.code, func.count()).group_by(UploadRejection.code)
    if since is not None:
        query = query.where(UploadRejection.created_at >= since)
    return {code: n for code, n in session.execute(query)}
