"""SQLAlchemy 2 typed ORM for the whole loop.

Every arrow in the data flow is a row here: from a request id one can follow the image to its annotation task,
its annotation revisions, the dataset versions it entered, the models trained on them and the model that served
it. The schema is changed only through Alembic migrations (db/migrations); a test checks the two agree.

Enums are stored as strings with CHECK constraints (not native PostgreSQL enums) so SQLite and PostgreSQL share
one migration and adding a value is a plain constraint change.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
from inkloop.labels import LabelSource

# Deterministic constraint names, identical on SQLite and PostgreSQL, so migrations can drop what they create.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256_LEN = 64
VERSION_LEN = 64  # the name of a model or dataset version ("m-0001", "ds-0001", a name given at registration)
# A BIGINT primary key on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone, so it is stored as naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: inkloop stores timezone-aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in cls),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Image(Base):
    """One stored image, keyed by the sha256 that is also its image-store key."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    source: Mapped[ImageSource] = mapped_column(_enum(ImageSource, "image_source"))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None]
    height: Mapped[int | None]
    features: Mapped[dict[str, Any] | None]
    phash: Mapped[str | None] = mapped_column(String(16), index=True)  # perceptual hash, for near-duplicates
    status: Mapped[ImageStatus] = mapped_column(_enum(ImageStatus, "image_status"), default=ImageStatus.pending)
    quarantine_reasons: Mapped[list[Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    validated_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "status", "created_at"),)


class Request(Base):
    """The request log: one row per answered prediction. The ingest flow reads only this table.

    `id` is the log's sequence (ingest keeps a watermark on it); `image_sha256` is the image-store key. It is not a
    foreign key on purpose: the serving side writes the log without knowing about validation, and the ingest flow
    creates the `images` row.
    """

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    image_sha256: Mapped[str] = mapped_column(String(SHA256_LEN), index=True)
    image_bytes: Mapped[int] = mapped_column(BigInteger)
    image_format: Mapped[str | None] = mapped_column(String(16))
    image_width: Mapped[int | None]
    image_height: Mapped[int | None]
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    line_confidences: Mapped[list[Any] | None]
    # One [x, y, width, height] per line of `text`, in percent of the page (model.segment.Line.percent_box).
    line_boxes: Mapped[list[Any] | None]
    # One polygon per line of `text`, [[x, y], ...] in percent of the page (model.segment.Line.percent_region):
    # routing pre-fills them as polygons. Null for requests logged before migration 0008 and for imports.
    line_outlines: Mapped[list[Any] | None]
    latency_ms: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32), default="api")  # api | import (folder + JSON lines)
    # The client's id of the writer, form or document the page belongs to, when it has one: pages sharing it are
    # one group for dataset splits, never on both sides of one.
    document: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    feedback: Mapped[list[Feedback]] = relationship(back_populates="request", order_by="Feedback.id")


class UploadRejection(Base):
    """An upload the endpoint refused (4xx) before storing anything: counted by code for monitoring."""

    __tablename__ = "upload_rejections"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Feedback(Base):
    """A user's flag on a prediction. A correction is a user-supplied label: routed for review, never ground truth."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.request_id", ondelete="CASCADE"), index=True)
    flag: Mapped[FeedbackFlag] = mapped_column(_enum(FeedbackFlag, "feedback_flag"))
    correction: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    request: Mapped[Request] = relationship(back_populates="feedback")


class AnnotationTask(Base):
    """An image sent to Label Studio. `uid` is written into the Label Studio task so a rerun can find a task that
    was created there but not yet recorded here (the flow died between the two)."""

    __tablename__ = "annotation_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    project: Mapped[str] = mapped_column(String(128))
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.request_id"), index=True)
    ls_project_id: Mapped[int | None]
    ls_task_id: Mapped[int | None]
    reason: Mapped[TaskReason] = mapped_column(_enum(TaskReason, "task_reason"))
    priority: Mapped[float] = mapped_column(Float, default=0.0)  # higher first: 1 - confidence
    state: Mapped[TaskState] = mapped_column(_enum(TaskState, "task_state"), default=TaskState.queued)
    model_version: Mapped[str | None] = mapped_column(String(64))  # of the pre-annotation
    prediction_text: Mapped[str | None] = mapped_column(Text)
    agreement_cer: Mapped[float | None] = mapped_column(Float)  # CER between two annotators, when there are two
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]

    annotations: Mapped[list[Annotation]] = relationship(back_populates="task", order_by="Annotation.id")

    __table_args__ = (
        UniqueConstraint("project", "image_sha256"),
        UniqueConstraint("ls_project_id", "ls_task_id"),
        Index(None, "state", "priority"),
    )


class Annotation(Base):
    """One revision of one annotator's answer; an edit in Label Studio becomes a new revision."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("annotation_tasks.id", ondelete="CASCADE"), index=True)
    ls_annotation_id: Mapped[int]
    revision: Mapped[int] = mapped_column(default=1)
    annotator: Mapped[str] = mapped_column(String(255))
    # The label: what the annotator meant (inkloop.labels.derive_label, from the answer and the pre-filled reading).
    text: Mapped[str | None] = mapped_column(Text)  # paragraph text, lines joined by "\n"
    lines: Mapped[list[Any] | None]  # [{"text": ..., "box": [x, y, w, h]}, ...] top to bottom
    label_source: Mapped[LabelSource | None] = mapped_column(_enum(LabelSource, "label_source"))
    raw: Mapped[dict[str, Any] | None]  # the answer as submitted: {"paragraph": str, "lines": [...]}
    unreadable: Mapped[bool] = mapped_column(Boolean, default=False)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    lead_time_s: Mapped[float | None] = mapped_column(Float)
    annotated_at: Mapped[datetime]  # Label Studio's time of this revision
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    task: Mapped[AnnotationTask] = relationship(back_populates="annotations")

    __table_args__ = (UniqueConstraint("ls_annotation_id", "revision"),)


class GroundTruthPage(Base):
    """A page imported with its line-level ground truth (PAGE XML or ALTO, flows/groundtruth.py): its image, the
    file it came from, and the licence and attribution its lines carry into dataset versions and model cards.

    A page is named by its collection and its file's name there: importing the same file again changes nothing
    (`xml_sha256`), an edited file replaces the page's lines. Sent for review (flows/review.py), the page takes the
    lines an annotator corrected (flows/sync.py). The lines are `GroundTruthLine`s."""

    __tablename__ = "gt_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))  # the XML file's name, e.g. "JDH_2_16_144_001.xml"
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    image_name: Mapped[str] = mapped_column(String(255))  # the image file's name, as exported again
    xml_sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    format: Mapped[str] = mapped_column(String(8))  # page | alto
    schema: Mapped[str] = mapped_column(String(32))  # "PAGE 2013-07-15", "ALTO v4"
    width: Mapped[int]
    height: Mapped[int]
    licence: Mapped[str | None] = mapped_column(String(64))  # an SPDX id: "CC-BY-4.0"
    attribution: Mapped[str | None] = mapped_column(Text)
    # The group its dataset split follows (a letter, a writer): its pages are never on two sides of a split.
    document: Mapped[str | None] = mapped_column(String(128))
    line_count: Mapped[int]
    line_types: Mapped[list[Any] | None]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]  # its lines last replaced: by a new import of its file, or a correction
    # Who last corrected its lines in Label Studio (the annotator's email); None while they are as imported.
    corrected_by: Mapped[str | None] = mapped_column(String(255))

    lines: Mapped[list[GroundTruthLine]] = relationship(
        back_populates="page", order_by="GroundTruthLine.position", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("collection", "name"),)


class GroundTruthLine(Base):
    """One transcribed line of an imported page: its outline and baseline in the page's pixels, its type and text."""

    __tablename__ = "gt_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("gt_pages.id", ondelete="CASCADE"))
    position: Mapped[int]  # reading order, from 0
    line_id: Mapped[str | None] = mapped_column(String(128))  # the id in the source file
    region_id: Mapped[str | None] = mapped_column(String(128))
    line_type: Mapped[str | None] = mapped_column(String(64), index=True)  # "DefaultLine:Handwritten"
    polygon: Mapped[list[Any]]  # [[x, y], ...]; empty when the file gave only a baseline
    baseline: Mapped[list[Any]]  # [[x, y], ...]; empty when the file gave none
    text: Mapped[str] = mapped_column(Text)  # "" for a line drawn but not transcribed

    page: Mapped[GroundTruthPage] = relationship(back_populates="lines")

    __table_args__ = (UniqueConstraint("page_id", "position"),)


class SyntheticSample(Base):
    """A generated paragraph image and its text, with what made it (font rendering or stitched real lines).

    `dataset_version_id` is the version whose train split the sample was made for (stitched samples use only its
    train lines, listed in `params["source_lines"]`): synthetic pages only ever train.
    """

    __tablename__ = "synthetic_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    generator: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None]
    seed: Mapped[int | None] = mapped_column(BigInteger)
    batch: Mapped[str] = mapped_column(String(64), index=True)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(Base):
    """A frozen set of labelled images with their splits. `content_hash` identifies identical memberships.

    Written once, in one transaction with its members, and never changed. `details` records how it was built:
    what changed from the parent, what was left out and why, the guards it passed, the split rule.
    """

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(VERSION_LEN), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    content_hash: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any] | None]
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[DatasetMember]] = relationship(back_populates="dataset_version")


class DatasetMember(Base):
    """An image in a dataset version, its split, and the label it had when the version was frozen."""

    __tablename__ = "dataset_members"

    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), primary_key=True, index=True)
    split: Mapped[Split] = mapped_column(_enum(Split, "split"))
    text: Mapped[str] = mapped_column(Text)
    lines: Mapped[list[Any] | None]  # [{"text", "box"}] as annotated; a line's text "" where unknown
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"))
    annotation_revision: Mapped[int | None]
    synthetic_sample_id: Mapped[int | None] = mapped_column(ForeignKey("synthetic_samples.id"))
    gt_page_id: Mapped[int | None] = mapped_column(ForeignKey("gt_pages.id"))  # an imported page: its file, licence
    # The split's unit: near-duplicates (and pages of one writer or document, where known) share a group.
    group_key: Mapped[str | None] = mapped_column(String(SHA256_LEN))
    # Slice facts the gates compare on, frozen with the label.
    reason: Mapped[TaskReason | None] = mapped_column(_enum(TaskReason, "member_reason"))
    source: Mapped[ImageSource | None] = mapped_column(_enum(ImageSource, "member_source"))
    polarity: Mapped[str | None] = mapped_column(String(16))
    line_count: Mapped[int | None]
    request_id: Mapped[str | None] = mapped_column(String(36))
    served_model: Mapped[str | None] = mapped_column(String(64))
    served_confidence: Mapped[float | None] = mapped_column(Float)

    dataset_version: Mapped[DatasetVersion] = relationship(back_populates="members")

    __table_args__ = (Index(None, "dataset_version_id", "split"),)


class ModelVersion(Base):
    """A registered model artifact. At most one row is the champion (a partial unique index guarantees it)."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(VERSION_LEN), unique=True)
    status: Mapped[ModelStatus] = mapped_column(_enum(ModelStatus, "model_status"), default=ModelStatus.candidate)
    artifact_key: Mapped[str] = mapped_column(String(512))
    card: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])

    __table_args__ = (
        Index(
            "uq_model_versions_one_champion",
            "status",
            unique=True,
            sqlite_where=(status == ModelStatus.champion.value),
            postgresql_where=(status == ModelStatus.champion.value),
        ),
    )


class TrainingRun(Base):
    """One training job: its dataset version, the model it started from and the candidate it produced.

    `run_key` is its identity (dataset version, parent model, resolved config): one version and config never give
    two candidates, and a run that died is resumed from `run_dir`'s last checkpoint under the same row."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_key: Mapped[str | None] = mapped_column(String(SHA256_LEN), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))  # the candidate's version
    run_dir: Mapped[str | None] = mapped_column(String(1024))  # checkpoints, logs, the exported artifact
    tracker: Mapped[str | None] = mapped_column(String(1024))  # where its curves are (TensorBoard run folder)
    steps: Mapped[int | None]
    wall_s: Mapped[float | None] = mapped_column(Float)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    parent_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    result_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.running)
    config: Mapped[dict[str, Any] | None]
    device: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class GateReport(Base):
    """The memorization and regression checks that accepted or rejected a candidate."""

    __tablename__ = "gate_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    champion_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    checks: Mapped[dict[str, Any]]
    report_path: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Promotion(Base):
    """A change of champion: by the gate, by hand, forced over a failed gate (who and why), or a rollback."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    gate_report_id: Mapped[int | None] = mapped_column(ForeignKey("gate_reports.id"))
    kind: Mapped[PromotionKind] = mapped_column(_enum(PromotionKind, "promotion_kind"))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftReport(Base):
    """An Evidently comparison of a reference window with a current window of production traffic.

    `window_key` names the two windows; a rerun for the same windows replaces its row (monitoring/drift.py).
    `summary` is inkloop's own record of the result (monitoring.drift.DriftSummary), not Evidently's snapshot,
    whose format changes between versions."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    window_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    reference_kind: Mapped[ReferenceKind | None] = mapped_column(_enum(ReferenceKind, "reference_kind"))
    reference_start: Mapped[datetime | None]
    reference_end: Mapped[datetime | None]
    current_start: Mapped[datetime]
    current_end: Mapped[datetime] = mapped_column(index=True)
    reference_rows: Mapped[int | None]
    current_rows: Mapped[int | None]
    model_version: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[DriftVerdict | None] = mapped_column(_enum(DriftVerdict, "drift_verdict"))
    drift_detected: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[dict[str, Any]]
    html_path: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DriftReference(Base):
    """A reference window pinned by an ML engineer (`inkloop drift reference`). The newest row not cleared is the
    one drift reports compare with; older rows are the history of choices."""

    __tablename__ = "drift_references"

    id: Mapped[int] = mapped_column(primary_key=True)
    start: Mapped[datetime]
    end: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]


class FlowWatermark(Base):
    """How far a flow has read an append-only table (for ingest: the last `requests.id` it committed)."""

    __tablename__ = "flow_watermarks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
