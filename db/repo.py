"""Keyword-only query functions: the only place the rest of inkloop writes SQL through the ORM.

Each function works inside the caller's session and never commits; the caller's transaction decides what is kept
(`db.session.session_scope`). Violated invariants raise the project's errors, not driver exceptions.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from db.models import (
    Annotation,
    AnnotationTask,
    DatasetMember,
    DatasetVersion,
    DriftReference,
    DriftReport,
    Feedback,
    FlowWatermark,
    GateReport,
    Image,
    ModelVersion,
    Promotion,
    Request,
    TrainingRun,
    UploadRejection,
    utcnow,
)
from inkloop.domain import (
    DriftVerdict,
    FeedbackFlag,
    ImageSource,
    ImageStatus,
    ModelStatus,
    PromotionKind,
    ReferenceKind,
    RunStatus,
    Split,
    TaskReason,
    TaskState,
)
from inkloop.errors import ConflictError, InkloopError, NotFoundError
from inkloop.labels import LabelSource

E = TypeVar("E", bound=enum.Enum)


def _enum_value(enum_cls: type[E], value: Any, what: str) -> E:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InkloopError(f"invalid {what} {value!r}: expected one of {allowed}") from None


def _insert(session: Session, row: Any, conflict: str) -> None:
    """Add and flush `row` in a savepoint, so a unique violation leaves the caller's transaction usable."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise ConflictError(conflict) from None


# --- request log ------------------------------------------------------------------------------------------------


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
        latency_ms=latency_ms,
        source=source,
        document=document,
        created_at=created_at or utcnow(),
    )
    _insert(session, row, f"request id {request_id} is already logged")
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
    flag = _enum_value(FeedbackFlag, flag, "feedback flag")
    get_request(session=session, request_id=request_id)  # a clear NotFoundError instead of a foreign-key error
    row = Feedback(request_id=request_id, flag=flag, correction=correction)
    _insert(session, row, f"feedback for request {request_id} could not be stored")
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


# --- images -----------------------------------------------------------------------------------------------------


def upsert_image(
    *,
    session: Session,
    sha256: str,
    source: str | ImageSource,
    byte_size: int,
    format: str | None = None,
    width: int | None = None,
    height: int | None = None,
) -> Image:
    """The image row for `sha256`, created if missing. The same bytes logged twice are one image."""
    source = _enum_value(ImageSource, source, "image source")
    existing = session.scalar(select(Image).where(Image.sha256 == sha256))
    if existing is not None:
        return existing
    row = Image(sha256=sha256, source=source, byte_size=byte_size, format=format, width=width, height=height)
    try:
        _insert(session, row, f"image {sha256} already exists")
    except ConflictError:
        # Another writer inserted it between our select and insert: theirs is as good as ours.
        return session.scalars(select(Image).where(Image.sha256 == sha256)).one()
    return row


def validated_images(*, session: Session, sha256s: Iterable[str]) -> set[str]:
    """Those of these images that ingest has already validated (valid or quarantined)."""
    wanted = list(dict.fromkeys(sha256s))
    if not wanted:
        return set()
    query = select(Image.sha256).where(Image.sha256.in_(wanted), Image.status != ImageStatus.pending)
    return set(session.scalars(query))


def set_image_validation(
    *,
    session: Session,
    sha256: str,
    status: str | ImageStatus,
    reasons: Sequence[str] = (),
    features: dict[str, Any] | None = None,
    phash: str | None = None,
) -> Image:
    status = _enum_value(ImageStatus, status, "image status")
    image = session.scalar(select(Image).where(Image.sha256 == sha256))
    if image is None:
        raise NotFoundError(f"no image {sha256}")
    if status is ImageStatus.quarantined and not reasons:
        raise InkloopError(f"quarantining image {sha256} needs at least one reason")
    image.status = status
    image.quarantine_reasons = list(reasons) if status is ImageStatus.quarantined else None
    if features is not None:
        image.features = features
    if phash is not None:
        image.phash = phash
    image.validated_at = utcnow()
    session.flush()
    return image


# --- flow watermarks --------------------------------------------------------------------------------------------


def get_watermark(*, session: Session, name: str) -> int:
    row = session.get(FlowWatermark, name)
    return 0 if row is None else row.position


def set_watermark(
    *, session: Session, name: str, position: int, details: dict[str, Any] | None = None, rewind: bool = False
) -> FlowWatermark:
    """Move a flow's watermark. Moving it backwards (re-reading the log) must be asked for with `rewind=True`."""
    row = session.get(FlowWatermark, name, with_for_update=True)
    if row is None:
        row = FlowWatermark(name=name, position=position, details=details)
        _insert(session, row, f"watermark {name} was created concurrently; rerun")
        return row
    if position < row.position and not rewind:
        raise ConflictError(f"watermark {name} is at {row.position}; refusing to move it back to {position}")
    row.position = position
    row.details = details
    row.updated_at = utcnow()
    session.flush()
    return row


# --- annotation tasks and annotations ---------------------------------------------------------------------------


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
    reason = _enum_value(TaskReason, reason, "task reason")
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
    _insert(
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
    _insert(session, row, f"annotation {ls_annotation_id} got a concurrent revision; rerun the sync")
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
    state = _enum_value(TaskState, state, "task state")
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


# --- dataset versions -------------------------------------------------------------------------------------------


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
    _insert(session, row, f"dataset version {version!r} already exists with other content (a concurrent build?)")
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


# --- model registry ---------------------------------------------------------------------------------------------


def register_model(
    *,
    session: Session,
    version: str,
    artifact_key: str,
    card: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    parent_version: str | None = None,
    dataset_version_id: int | None = None,
) -> ModelVersion:
    parent_id = get_model(session=session, version=parent_version).id if parent_version else None
    row = ModelVersion(
        version=version,
        artifact_key=artifact_key,
        card=card,
        metrics=metrics,
        parent_id=parent_id,
        dataset_version_id=dataset_version_id,
        status=ModelStatus.candidate,
    )
    _insert(session, row, f"model version {version!r} is already registered")
    return row


def get_model(*, session: Session, version: str) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"no model version {version!r}")
    return row


def get_champion(*, session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == ModelStatus.champion))


def previous_champion(*, session: Session) -> ModelVersion | None:
    """The most recently retired champion: where a rollback goes."""
    query = select(ModelVersion).where(ModelVersion.status == ModelStatus.retired)
    return session.scalar(query.order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc()).limit(1))


def list_models(*, session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id)))


def promote_model(
    *,
    session: Session,
    version: str,
    allow_rejected: bool = False,
    actor: str = "inkloop",
    reason: str | None = None,
    gate_report_id: int | None = None,
    kind: PromotionKind | None = None,
) -> ModelVersion:
    """Make `version` the champion; the previous champion becomes retired. Promoting a retired model is a rollback.
    Every change of champion is recorded in `promotions` with who did it and why (a model its gate rejected is
    promoted only with `allow_rejected`, recorded as forced)."""
    model = get_model(session=session, version=version)
    if model.status is ModelStatus.champion:
        return model
    if model.status is ModelStatus.rejected and not allow_rejected:
        raise ConflictError(f"model version {version!r} was rejected by its gate; promote it explicitly to override")
    if kind is None:
        kind = {
            ModelStatus.rejected: PromotionKind.forced,
            ModelStatus.retired: PromotionKind.rollback,
        }.get(model.status, PromotionKind.manual)
    current = session.scalar(select(ModelVersion).where(ModelVersion.status == ModelStatus.champion).with_for_update())
    try:
        with session.begin_nested():
            if current is not None:
                current.status = ModelStatus.retired
                session.flush()  # demote first: the partial unique index allows one champion at a time
            model.status = ModelStatus.champion
            model.promoted_at = utcnow()
            session.add(
                Promotion(
                    model_id=model.id,
                    previous_id=current.id if current is not None else None,
                    gate_report_id=gate_report_id,
                    kind=kind,
                    actor=actor,
                    reason=reason,
                )
            )
    except IntegrityError:
        raise ConflictError(f"another promotion ran at the same time as {version!r}; rerun") from None
    return model


def reject_model(*, session: Session, version: str) -> ModelVersion:
    """Mark a candidate rejected (its gate report says why). A champion or retired model is left as it is."""
    model = get_model(session=session, version=version)
    if model.status is ModelStatus.candidate:
        model.status = ModelStatus.rejected
        session.flush()
    return model


def promotions(*, session: Session, model_id: int | None = None) -> list[Promotion]:
    """Changes of champion, oldest first (of one model, when given)."""
    query = select(Promotion).order_by(Promotion.created_at, Promotion.id)
    if model_id is not None:
        query = query.where(Promotion.model_id == model_id)
    return list(session.scalars(query))


# --- training runs and gate reports -----------------------------------------------------------------------------


def training_run_by_key(*, session: Session, run_key: str) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.run_key == run_key))


def start_training_run(
    *,
    session: Session,
    run_key: str,
    dataset_version_id: int | None,
    parent_model_id: int | None,
    config: dict[str, Any],
    device: str,
    run_dir: str,
    tracker: str | None,
) -> TrainingRun:
    """A `running` row for a new training run, named after its id (`m-0007`: the candidate's version)."""
    row = TrainingRun(
        run_key=run_key,
        dataset_version_id=dataset_version_id,
        parent_model_id=parent_model_id,
        config=config,
        device=device,
        run_dir=run_dir,
        tracker=tracker,
        status=RunStatus.running,
    )
    _insert(session, row, f"a training run with key {run_key[:12]} already exists")
    row.name = f"m-{row.id:04d}"
    session.flush()
    return row


def finish_training_run(
    *,
    session: Session,
    run: TrainingRun,
    status: RunStatus,
    result_model_id: int | None = None,
    steps: int | None = None,
    wall_s: float | None = None,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> TrainingRun:
    run.status = status
    run.result_model_id = result_model_id
    run.steps, run.wall_s, run.metrics, run.error = steps, wall_s, metrics, error
    run.finished_at = utcnow()
    session.flush()
    return run


def training_runs(*, session: Session, status: RunStatus | None = None) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(TrainingRun.id)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    return list(session.scalars(query))


def training_run_of(*, session: Session, model_id: int) -> TrainingRun | None:
    """The run that produced a model (None for a model registered by hand)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.result_model_id == model_id))


def add_gate_report(
    *,
    session: Session,
    candidate_id: int,
    champion_id: int | None,
    dataset_version_id: int | None,
    passed: bool,
    checks: dict[str, Any],
    report_path: str | None,
) -> GateReport:
    row = GateReport(
        candidate_id=candidate_id,
        champion_id=champion_id,
        dataset_version_id=dataset_version_id,
        passed=passed,
        checks=checks,
        report_path=report_path,
    )
    session.add(row)
    session.flush()
    return row


def gate_reports(*, session: Session, model_id: int) -> list[GateReport]:
    """A model's gate reports, newest first."""
    query = select(GateReport).where(GateReport.candidate_id == model_id)
    return list(session.scalars(query.order_by(GateReport.created_at.desc(), GateReport.id.desc())))


def newest_candidate(*, session: Session) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.status == ModelStatus.candidate)
    return session.scalar(query.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))


def models_by_id(*, session: Session, ids: Iterable[int | None]) -> dict[int, ModelVersion]:
    wanted = [i for i in set(ids) if i is not None]
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(wanted)))}


# --- lineage ----------------------------------------------------------------------------------------------------


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


# --- status -----------------------------------------------------------------------------------------------------


# --- drift ------------------------------------------------------------------------------------------------------


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
