"""Pages written into a database the way the loop writes them, for tests and benchmarks that need rows without
driving the endpoint and Label Studio: `labelled` records a page as a request the model read with a mistake,
routed and answered (an annotation revision with the label derived from the answer, as sync stores it); `record`
writes observed traffic as logged, validated and, every few pages, audited."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from db import repo
from db.models import AnnotationTask
from devtools.pages import Observed, Page, shipped_version
from inkloop.domain import TaskReason, TaskState
from inkloop.labels import derive_label
from inkloop.store import ImageStore
from monitoring.features import compute_features


def labelled(
    session: Session,
    store: ImageStore,
    page: Page,
    *,
    project: str,
    answer: str | None = None,
    reason: TaskReason = TaskReason.low_confidence,
    state: TaskState = TaskState.completed,
    unreadable: bool = False,
    skipped: bool = False,
    ls_annotation_id: int | None = None,
    data: bytes | None = None,
    document: str | None = None,
    outlines: Sequence[Sequence[tuple[float, float]]] | None = None,
) -> str:
    """Record `page` as logged, validated, routed and answered: the annotator fixed the lines in their boxes (or,
    where the page has no boxes, the paragraph) to `answer` (default: the page's text). With `outlines` (percent,
    one per box) the lines were logged, pre-filled and answered as those polygons. Returns the image key."""
    data = data or page.data
    key = store.put(data)
    features = compute_features(data)
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    repo.log_request(
        session=session,
        request_id=request_id,
        image_sha256=key,
        image_bytes=len(data),
        model_version=shipped_version(),
        text=page.reading,
        confidence=0.4,
        line_boxes=page.boxes,
        line_outlines=[list(outline) for outline in outlines] if outlines is not None else None,
        latency_ms=1.0,
        document=document,
        created_at=now,
    )
    repo.upsert_image(session=session, sha256=key, source="production", byte_size=len(data))
    repo.set_image_validation(
        session=session, sha256=key, status="valid", features=features.as_dict(), phash=features.phash
    )
    task = _answered_task(
        session,
        project=project,
        image_sha256=key,
        request_id=request_id,
        reason=reason,
        state=state,
        reading=page.reading,
        at=now,
    )
    text = answer if answer is not None else page.text
    if page.boxes is not None:
        paragraph, lines = page.reading, page.lines(text.split("\n"))
        if outlines is not None:
            lines = [
                {**line, "polygon": [list(p) for p in outline]} for line, outline in zip(lines, outlines, strict=True)
            ]
    else:
        paragraph, lines = text, []
    label = derive_label(paragraph=paragraph, lines=lines, prediction=page.reading)
    repo.add_annotation_revision(
        session=session,
        task_id=task.id,
        ls_annotation_id=ls_annotation_id or task.id + 100_000,
        annotator="annotator@example.com",
        annotated_at=now,
        text=label.text,
        lines=label.lines,
        label_source=label.source,
        raw={"paragraph": paragraph, "lines": lines},
        unreadable=unreadable,
        skipped=skipped,
    )
    return key


def record(
    session: Session,
    observed: Sequence[Observed],
    *,
    start: datetime,
    spacing: timedelta,
    audit_every: int = 3,
    project: str = "inkloop",
    store: ImageStore | None = None,
    confidence: Callable[[float], float] = lambda c: c,
) -> None:
    """Write the pages as logged from `start`, one every `spacing`, validated; every `audit_every`-th (0: none)
    routed as `audit` and answered with its true text. `confidence` rewrites the logged confidence (a
    miscalibrated model)."""
    for i, o in enumerate(observed):
        key = store.put(o.data) if store is not None else f"{uuid.uuid4().hex}{uuid.uuid4().hex}"
        at = start + i * spacing
        request_id = str(uuid.uuid4())
        repo.log_request(
            session=session,
            request_id=request_id,
            image_sha256=key,
            image_bytes=len(o.data),
            model_version=shipped_version(),
            text=o.reading,
            confidence=confidence(o.confidence),
            latency_ms=1.0,
            created_at=at,
        )
        repo.upsert_image(session=session, sha256=key, source="production", byte_size=len(o.data))
        repo.set_image_validation(
            session=session, sha256=key, status="valid", features=o.features, phash=o.features.get("phash")
        )
        if audit_every and i % audit_every == 0:
            task = _answered_task(
                session,
                project=project,
                image_sha256=key,
                request_id=request_id,
                reason=TaskReason.audit,
                state=TaskState.completed,
                reading=o.reading,
                at=at,
            )
            repo.add_annotation_revision(
                session=session,
                task_id=task.id,
                ls_annotation_id=task.id + 500_000,
                annotator="auditor@example.com",
                annotated_at=at,
                text=o.text,
                raw={"paragraph": o.text, "lines": []},
            )


def _answered_task(
    session: Session,
    *,
    project: str,
    image_sha256: str,
    request_id: str,
    reason: TaskReason,
    state: TaskState,
    reading: str,
    at: datetime,
) -> AnnotationTask:
    """A task routed with the shipped model's reading and already in `state` (completed, say) at `at`."""
    task = repo.create_task(
        session=session,
        uid=str(uuid.uuid4()),
        project=project,
        image_sha256=image_sha256,
        request_id=request_id,
        reason=reason,
        priority=0.0,
        model_version=shipped_version(),
        prediction_text=reading,
    )
    task.state, task.completed_at = state, at
    session.flush()
    return task
