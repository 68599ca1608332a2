"""Counts of everything, for `inkloop status`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationTask, DatasetVersion, Image, ModelVersion, Request
from db.repo.requests import rejection_counts
from inkloop.domain import ImageStatus, ModelStatus, TaskState


@dataclass
class StatusCounts:
    requests: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    annotation_tasks: dict[str, int] = field(default_factory=dict)
    annotations: int = 0
    dataset_versions: int = 0
    model_versions: dict[str, int] = field(default_factory=dict)


def _grouped(session: Session, column: Any, enum_cls: type) -> dict[str, int]:
    counts = {m.value: 0 for m in enum_cls}  # type: ignore[attr-defined]
    for value, n in session.execute(select(column, func.count()).group_by(column)):
        counts[enum_cls(value).value] = n
    return counts


def status_counts(*, session: Session) -> StatusCounts:
    return StatusCounts(
        requests=session.scalar(select(func.count()).select_from(Request)) or 0,
        rejections=rejection_counts(session=session),
        images=_grouped(session, Image.status, ImageStatus),
        annotation_tasks=_grouped(session, AnnotationTask.state, TaskState),
        annotations=session.scalar(select(func.count()).select_from(Annotation)) or 0,
        dataset_versions=session.scalar(select(func.count()).select_from(DatasetVersion)) or 0,
        model_versions=_grouped(session, ModelVersion.status, ModelStatus),
    )
