"""Dataset versions: freezing the completed annotations into leakage-free splits, and reading them back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, defer

from db.models import Annotation, AnnotationTask, DatasetMember, DatasetVersion, Image, Request, SyntheticSample
from db.repo.common import add_unique
from inkloop.domain import ImageSource, Split, TaskReason, TaskState
from inkloop.errors import InkloopError, NotFoundError


@dataclass(frozen=True)
class LabelledPage:
    """A task's page with the newest revision of each of its annotations: what a dataset build chooses from."""

    task_id: int
    state: TaskState
    reason: TaskReason
    image_sha256: str
    phash: str | None
    source: ImageSource
    polarity: str | None
    request_id: str | None
    document: str | None  # the client's writer/document id: its pages are one split group
    served_model: str | None
    served_confidence: float | None
    answers: tuple[Annotation, ...]  # the newest revision of each annotation, oldest answer first


def labelled_pages(*, session: Session, project: str) -> list[LabelledPage]:
    """Every task of `project` that annotators have answered (completed, skipped or needing review)."""
    answered = (TaskState.completed, TaskState.skipped, TaskState.needs_review)
    query = (
        select(AnnotationTask, Image, Request.model_version, Request.confidence, Request.document)
        .join(Image, Image.sha256 == AnnotationTask.image_sha256)
        .outerjoin(Request, Request.request_id == AnnotationTask.request_id)
        .where(AnnotationTask.project == project, AnnotationTask.state.in_(answered))
        .order_by(AnnotationTask.id)
    )
    rows = session.execute(query).all()
    newest = (
        select(Annotation.ls_annotation_id, func.max(Annotation.revision).label("revision"))
        .join(AnnotationTask, AnnotationTask.id == Annotation.task_id)
        .where(AnnotationTask.project == project)
        .group_by(Annotation.ls_annotation_id)
        .subquery()
    )
    latest = select(Annotation).join(
        newest,
        (newest.c.ls_annotation_id == Annotation.ls_annotation_id) & (newest.c.revision == Annotation.revision),
    )
    by_task: dict[int, list[Annotation]] = {}
    for annotation in session.scalars(latest.order_by(Annotation.annotated_at, Annotation.id)):
        by_task.setdefault(annotation.task_id, []).append(annotation)
    return [
        LabelledPage(
            task_id=task.id,
            state=task.state,
            reason=task.reason,
            image_sha256=task.image_sha256,
            phash=image.phash,
            source=image.source,
            polarity=(image.features or {}).get("polarity"),
            request_id=task.request_id,
            document=document,
            served_model=model_version,
            served_confidence=confidence,
            answers=tuple(by_task.get(task.id, ())),
        )
        for task, image, model_version, confidence, document in rows
    ]


@dataclass(frozen=True)
class MemberSpec:
    """One member of a dataset version as it is frozen: the image, its split, its label and its slice facts."""

    image_sha256: str
    split: Split
    text: str
    lines: list[dict[str, Any]] | None = None
    annotation_id: int | None = None
    annotation_revision: int | None = None
    synthetic_sample_id: int | None = None
    gt_page_id: int | None = None
    group_key: str | None = None
    reason: TaskReason | None = None
    source: ImageSource | None = None
    polarity: str | None = None
    line_count: int | None = None
    request_id: str | None = None
    served_model: str | None = None
    served_confidence: float | None = None

    def label(self) -> tuple[str, list[Any] | None]:
        return self.text, self.lines


def membership_hash(members: Iterable[MemberSpec]) -> str:
    """A version's identity: its images, their splits and their labels (text and line boxes), in any order."""
    rows = sorted((m.image_sha256, Split(m.split).value, m.text, m.lines) for m in members)
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def dataset_by_hash(*, session: Session, content_hash: str) -> DatasetVersion | None:
    return session.scalar(select(DatasetVersion).where(DatasetVersion.content_hash == content_hash))


def create_dataset_version(
    *,
    session: Session,
    version: str,
    members: Iterable[MemberSpec],
    parent_version: str | None = None,
    description: str | None = None,
    details: dict[str, Any] | None = None,
) -> DatasetVersion:
    """Freeze a dataset version. The same membership (images, splits and labels) twice gives the existing version.
    The rows are written in the caller's transaction: a build that dies before it commits leaves nothing."""
    members = list(members)
    if not members:
        raise InkloopError(f"dataset version {version} would be empty")
    seen: set[str] = set()
    for member in members:
        if member.image_sha256 in seen:
            raise InkloopError(f"image {member.image_sha256} appears twice in dataset version {version}")
        seen.add(member.image_sha256)
    content_hash = membership_hash(members)
    existing = dataset_by_hash(session=session, content_hash=content_hash)
    if existing is not None:
        return existing
    parent_id = None
    if parent_version is not None:
        parent_id = get_dataset(session=session, version=parent_version).id
    counts: dict[str, int] = {s.value: 0 for s in Split}
    for member in members:
        counts[Split(member.split).value] += 1
    row = DatasetVersion(
        version=version,
        parent_id=parent_id,
        content_hash=content_hash,
        description=description,
        counts=counts,
        details=details,
    )
    add_unique(session, row, f"dataset version {version!r} already exists with other content (a concurrent build?)")
    session.execute(
        insert(DatasetMember),
        [
            {
                "dataset_version_id": row.id,
                "image_sha256": m.image_sha256,
                "split": Split(m.split),
                "text": m.text,
                "lines": m.lines,
                "annotation_id": m.annotation_id,
                "annotation_revision": m.annotation_revision,
                "synthetic_sample_id": m.synthetic_sample_id,
                "gt_page_id": m.gt_page_id,
                "group_key": m.group_key,
                "reason": m.reason,
                "source": m.source,
                "polarity": m.polarity,
                "line_count": m.line_count,
                "request_id": m.request_id,
                "served_model": m.served_model,
                "served_confidence": m.served_confidence,
            }
            for m in members
        ],
    )
    session.flush()
    return row


def get_dataset(*, session: Session, version: str) -> DatasetVersion:
    row = session.scalar(select(DatasetVersion).where(DatasetVersion.version == version))
    if row is None:
        known = ", ".join(v.version for v in list_datasets(session=session)[:5]) or "none yet"
        raise NotFoundError(f"no dataset version {version!r} (newest: {known})")
    return row


def dataset_by_id(*, session: Session, version_id: int | None) -> DatasetVersion | None:
    """The version with this id, or None (for None too: a model or report recorded without one)."""
    return session.get(DatasetVersion, version_id) if version_id is not None else None


def newest_dataset(*, session: Session) -> DatasetVersion | None:
    return session.scalar(select(DatasetVersion).order_by(DatasetVersion.id.desc()).limit(1))


def list_datasets(*, session: Session) -> list[DatasetVersion]:
    """Every dataset version, newest first (`details`, which lists every changed image, loads only when read)."""
    query = select(DatasetVersion).options(defer(DatasetVersion.details)).order_by(DatasetVersion.id.desc())
    return list(session.scalars(query))


def dataset_members(*, session: Session, version_id: int, split: Split | None = None) -> list[DatasetMember]:
    query = select(DatasetMember).where(DatasetMember.dataset_version_id == version_id)
    if split is not None:
        query = query.where(DatasetMember.split == split)
    return list(session.scalars(query.order_by(DatasetMember.image_sha256)))


def ancestors(*, session: Session, version: DatasetVersion) -> list[DatasetVersion]:
    """The version's parent, its parent's parent, ..., nearest first."""
    chain: list[DatasetVersion] = []
    parent_id = version.parent_id
    while parent_id is not None:
        parent = session.get(DatasetVersion, parent_id)
        if parent is None or parent in chain:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


def frozen_splits(*, session: Session) -> dict[str, Split]:
    """The split every image was given in any dataset version (an image keeps its split for ever)."""
    query = select(DatasetMember.image_sha256, DatasetMember.split).distinct()
    return {sha: Split(split) for sha, split in session.execute(query)}


def trained_images(*, session: Session, version_ids: Sequence[int]) -> set[str]:
    """Images in the train split of any of these versions."""
    if not version_ids:
        return set()
    query = select(DatasetMember.image_sha256).where(
        DatasetMember.dataset_version_id.in_(list(version_ids)), DatasetMember.split == Split.train
    )
    return set(session.scalars(query.distinct()))


def trained_labels(*, session: Session, version_id: int) -> set[tuple[str, str]]:
    """(image, text) of every train member of a version: the labels a model trained on it has seen."""
    query = select(DatasetMember.image_sha256, DatasetMember.text).where(
        DatasetMember.dataset_version_id == version_id, DatasetMember.split == Split.train
    )
    return {(sha, text) for sha, text in session.execute(query)}


def image_phashes(*, session: Session, sha256s: Iterable[str]) -> dict[str, str | None]:
    shas = list(sha256s)
    found: dict[str, str | None] = {}
    for start in range(0, len(shas), 5000):
        query = select(Image.sha256, Image.phash).where(Image.sha256.in_(shas[start : start + 5000]))
        found.update({sha: phash for sha, phash in session.execute(query)})
    return found


# Synthetic pages made for a version's train split (flows/synth.py): they only ever train.


def synthetic_sample_exists(*, session: Session, image_sha256: str) -> bool:
    return session.scalar(select(SyntheticSample.id).where(SyntheticSample.image_sha256 == image_sha256)) is not None


def add_synthetic_sample(
    *,
    session: Session,
    image_sha256: str,
    text: str,
    generator: str,
    params: dict[str, Any] | None,
    seed: int | None,
    batch: str,
    dataset_version_id: int,
) -> SyntheticSample:
    """Record a stored synthetic page; the same image twice is a ConflictError."""
    row = SyntheticSample(
        image_sha256=image_sha256,
        text=text,
        generator=generator,
        params=params,
        seed=seed,
        batch=batch,
        dataset_version_id=dataset_version_id,
    )
    add_unique(session, row, f"synthetic page {image_sha256} is already recorded")
    return row


def synthetic_samples(*, session: Session, version_id: int) -> list[SyntheticSample]:
    """The synthetic pages made for a version, in the order they were made."""
    query = select(SyntheticSample).where(SyntheticSample.dataset_version_id == version_id)
    return list(session.scalars(query.order_by(SyntheticSample.id)))


def count_synthetic_samples(*, session: Session, version_id: int) -> int:
    query = select(func.count()).select_from(SyntheticSample).where(SyntheticSample.dataset_version_id == version_id)
    return session.scalar(query) or 0
