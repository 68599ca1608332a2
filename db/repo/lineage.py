"""Lineage: from one request to its image, tasks, annotation revisions, the dataset versions it entered, the models
trained on them and the model that served it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationTask, DatasetMember, DatasetVersion, Image, ModelVersion, Request
from db.repo.requests import get_request
from inkloop.domain import Split


@dataclass(frozen=True)
class Membership:
    """An image in one dataset version: the split it had and the annotation revision its label came from."""

    version: DatasetVersion
    split: Split
    text: str
    annotation_id: int | None
    annotation_revision: int | None


@dataclass(frozen=True)
class Lineage:
    """Where one request's page went: every arrow is a row."""

    request: Request
    image: Image | None
    tasks: list[AnnotationTask]
    annotations: list[Annotation]  # every revision, oldest first
    memberships: list[Membership]  # oldest version first
    trained: list[tuple[ModelVersion, DatasetVersion, Split]]  # models built on a version holding the page
    served_by: ModelVersion | None  # None: the model that answered is not in the registry (the shipped one)


def lineage(*, session: Session, request_id: str) -> Lineage:
    request = get_request(session=session, request_id=request_id)
    sha = request.image_sha256
    image = session.scalar(select(Image).where(Image.sha256 == sha))
    tasks = list(
        session.scalars(select(AnnotationTask).where(AnnotationTask.image_sha256 == sha).order_by(AnnotationTask.id))
    )
    annotations = (
        list(
            session.scalars(
                select(Annotation)
                .where(Annotation.task_id.in_([t.id for t in tasks]))
                .order_by(Annotation.annotated_at, Annotation.id)
            )
        )
        if tasks
        else []
    )
    rows = session.execute(
        select(DatasetMember, DatasetVersion)
        .join(DatasetVersion, DatasetVersion.id == DatasetMember.dataset_version_id)
        .where(DatasetMember.image_sha256 == sha)
        .order_by(DatasetVersion.id)
    ).all()
    memberships = [
        Membership(version, Split(member.split), member.text, member.annotation_id, member.annotation_revision)
        for member, version in rows
    ]
    by_version = {m.version.id: m for m in memberships}
    trained: list[tuple[ModelVersion, DatasetVersion, Split]] = []
    if by_version:
        query = select(ModelVersion).where(ModelVersion.dataset_version_id.in_(list(by_version)))
        for model in session.scalars(query.order_by(ModelVersion.id)):
            membership = by_version[model.dataset_version_id or 0]
            trained.append((model, membership.version, membership.split))
    served = session.scalar(select(ModelVersion).where(ModelVersion.version == request.model_version))
    return Lineage(request, image, tasks, annotations, memberships, trained, served)
