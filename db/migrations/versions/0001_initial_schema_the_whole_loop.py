"""Initial schema: the whole loop.

Request log, images, feedback, annotation tasks and revisions, synthetic samples, dataset versions and their
members, model versions (one champion at most), training runs, gate and drift reports, flow watermarks.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_versions_parent_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_dataset_versions_content_hash")),
        sa.UniqueConstraint("version", name=op.f("uq_dataset_versions_version")),
    )
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reference_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("drift_detected", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("html_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_reports")),
    )
    with op.batch_alter_table("drift_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drift_reports_created_at"), ["created_at"], unique=False)

    op.create_table(
        "flow_watermarks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_flow_watermarks")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "production",
                "synthetic",
                "imported",
                name="image_source",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("phash", sa.String(length=16), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "valid",
                "quarantined",
                name="image_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("quarantine_reasons", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_phash"), ["phash"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_status_created_at"), ["status", "created_at"], unique=False)

    op.create_table(
        "requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_bytes", sa.BigInteger(), nullable=False),
        sa.Column("image_format", sa.String(length=16), nullable=True),
        sa.Column("image_width", sa.Integer(), nullable=True),
        sa.Column("image_height", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("line_confidences", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_requests_request_id")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_requests_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_requests_image_sha256"), ["image_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_requests_model_version"), ["model_version"], unique=False)

    op.create_table(
        "annotation_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("ls_task_id", sa.Integer(), nullable=True),
        sa.Column(
            "reason",
            sa.Enum(
                "low_confidence",
                "audit",
                "flagged",
                name="task_reason",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "open",
                "completed",
                "skipped",
                "needs_review",
                "cancelled",
                name="task_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("prediction_text", sa.Text(), nullable=True),
        sa.Column("agreement_cer", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_sha256"], ["images.sha256"], name=op.f("fk_annotation_tasks_image_sha256_images")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.request_id"], name=op.f("fk_annotation_tasks_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_tasks")),
        sa.UniqueConstraint("ls_project_id", "ls_task_id", name=op.f("uq_annotation_tasks_ls_project_id_ls_task_id")),
        sa.UniqueConstraint("project", "image_sha256", name=op.f("uq_annotation_tasks_project_image_sha256")),
        sa.UniqueConstraint("uid", name=op.f("uq_annotation_tasks_uid")),
    )
    with op.batch_alter_table("annotation_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotation_tasks_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_annotation_tasks_image_sha256"), ["image_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_annotation_tasks_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_annotation_tasks_state_priority"), ["state", "priority"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column(
            "flag",
            sa.Enum(
                "incorrect",
                "offensive",
                "other",
                name="feedback_flag",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.request_id"],
            name=op.f("fk_feedback_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_request_id"), ["request_id"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "candidate",
                "champion",
                "rejected",
                "retired",
                name="model_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("artifact_key", sa.String(length=512), nullable=False),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_model_versions_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["model_versions.id"], name=op.f("fk_model_versions_parent_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_model_versions_version")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_model_versions_one_champion",
            ["status"],
            unique=True,
            sqlite_where=sa.text("status = 'champion'"),
            postgresql_where=sa.text("status = 'champion'"),
        )

    op.create_table(
        "synthetic_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("generator", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_sha256"], ["images.sha256"], name=op.f("fk_synthetic_samples_image_sha256_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synthetic_samples")),
        sa.UniqueConstraint("image_sha256", name=op.f("uq_synthetic_samples_image_sha256")),
    )
    with op.batch_alter_table("synthetic_samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_synthetic_samples_batch"), ["batch"], unique=False)

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=True),
        sa.Column("unreadable", sa.Boolean(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("lead_time_s", sa.Float(), nullable=True),
        sa.Column("annotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["annotation_tasks.id"],
            name=op.f("fk_annotations_task_id_annotation_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("ls_annotation_id", "revision", name=op.f("uq_annotations_ls_annotation_id_revision")),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotations_synced_at"), ["synced_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_annotations_task_id"), ["task_id"], unique=False)

    op.create_table(
        "gate_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("champion_id", sa.Integer(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["model_versions.id"], name=op.f("fk_gate_reports_candidate_id_model_versions")
        ),
        sa.ForeignKeyConstraint(
            ["champion_id"], ["model_versions.id"], name=op.f("fk_gate_reports_champion_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_reports")),
    )
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_reports_candidate_id"), ["candidate_id"], unique=False)

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("parent_model_id", sa.Integer(), nullable=True),
        sa.Column("result_model_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("running", "succeeded", "failed", name="run_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_training_runs_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_model_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_parent_model_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["result_model_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_result_model_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_runs_dataset_version_id"), ["dataset_version_id"], unique=False)

    op.create_table(
        "dataset_members",
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "split",
            sa.Enum("train", "val", "test", name="split", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("synthetic_sample_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"], ["annotations.id"], name=op.f("fk_dataset_members_annotation_id_annotations")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_members_dataset_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_sha256"], ["images.sha256"], name=op.f("fk_dataset_members_image_sha256_images")
        ),
        sa.ForeignKeyConstraint(
            ["synthetic_sample_id"],
            ["synthetic_samples.id"],
            name=op.f("fk_dataset_members_synthetic_sample_id_synthetic_samples"),
        ),
        sa.PrimaryKeyConstraint("dataset_version_id", "image_sha256", name=op.f("pk_dataset_members")),
    )
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_members_dataset_version_id_split"),
            ["dataset_version_id", "split"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_dataset_members_image_sha256"), ["image_sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_members_image_sha256"))
        batch_op.drop_index(batch_op.f("ix_dataset_members_dataset_version_id_split"))

    op.drop_table("dataset_members")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_runs_dataset_version_id"))

    op.drop_table("training_runs")
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_reports_candidate_id"))

    op.drop_table("gate_reports")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_task_id"))
        batch_op.drop_index(batch_op.f("ix_annotations_synced_at"))

    op.drop_table("annotations")
    with op.batch_alter_table("synthetic_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_synthetic_samples_batch"))

    op.drop_table("synthetic_samples")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_model_versions_one_champion",
            sqlite_where=sa.text("status = 'champion'"),
            postgresql_where=sa.text("status = 'champion'"),
        )

    op.drop_table("model_versions")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_request_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_created_at"))

    op.drop_table("feedback")
    with op.batch_alter_table("annotation_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_state_priority"))
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_request_id"))
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_image_sha256"))
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_created_at"))

    op.drop_table("annotation_tasks")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_model_version"))
        batch_op.drop_index(batch_op.f("ix_requests_image_sha256"))
        batch_op.drop_index(batch_op.f("ix_requests_created_at"))

    op.drop_table("requests")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_images_phash"))

    op.drop_table("images")
    op.drop_table("flow_watermarks")
    with op.batch_alter_table("drift_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_reports_created_at"))

    op.drop_table("drift_reports")
    op.drop_table("dataset_versions")
