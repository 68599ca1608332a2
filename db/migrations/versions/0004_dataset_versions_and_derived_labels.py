"""Dataset versions that carry their labels and slice facts; annotation labels that say what the annotator meant.

Annotations keep the answer as submitted (`raw`) beside the label derived from it (`text`, `lines`,
`label_source`, see inkloop.labels.derive_label). Existing annotations are re-derived here: their stored paragraph
and lines are the raw answer, their task's `prediction_text` what the screen was pre-filled with. A task whose
newest answer turns out to be a conflict (both fields edited, disagreeing) becomes `needs_review`.

Requests gain the client's `document` id (a writer, form or document: its pages are one split group). Dataset
members gain the line boxes, the annotation revision, the split group and the slice facts; versions a
`details` record; synthetic samples the version they were made for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inkloop.labels import LabelSource, derive_label

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LABEL_SOURCES = ("accepted", "lines", "paragraph", "both", "conflict")
REASONS = ("low_confidence", "audit", "flagged")
SOURCES = ("production", "synthetic", "imported")

answers = sa.table(
    "annotations",
    sa.column("id", sa.Integer),
    sa.column("task_id", sa.Integer),
    sa.column("ls_annotation_id", sa.Integer),
    sa.column("revision", sa.Integer),
    sa.column("text", sa.Text),
    sa.column("lines", sa.JSON),
    sa.column("skipped", sa.Boolean),
    sa.column("unreadable", sa.Boolean),
    sa.column("label_source", sa.String),
    sa.column("raw", sa.JSON),
)
tasks = sa.table(
    "annotation_tasks",
    sa.column("id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("prediction_text", sa.Text),
)


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document", sa.String(length=128), nullable=True))
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label_source", _enum(LABEL_SOURCES, "label_source"), nullable=True))
        batch_op.add_column(sa.Column("raw", sa.JSON(), nullable=True))
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lines", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("annotation_revision", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reason", _enum(REASONS, "member_reason"), nullable=True))
        batch_op.add_column(sa.Column("source", _enum(SOURCES, "member_source"), nullable=True))
        batch_op.add_column(sa.Column("polarity", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("line_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("served_model", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("served_confidence", sa.Float(), nullable=True))
    with op.batch_alter_table("synthetic_samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dataset_version_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_synthetic_samples_dataset_version_id"), ["dataset_version_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_synthetic_samples_dataset_version_id_dataset_versions"),
            "dataset_versions",
            ["dataset_version_id"],
            ["id"],
        )
    _rederive_labels()


def _rederive_labels() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            answers.c.id,
            answers.c.task_id,
            answers.c.ls_annotation_id,
            answers.c.revision,
            answers.c.text,
            answers.c.lines,
            answers.c.skipped,
            answers.c.unreadable,
            tasks.c.prediction_text,
        )
        .join(tasks, tasks.c.id == answers.c.task_id)
        .order_by(answers.c.id)
    ).all()
    newest: dict[int, tuple[int, int, bool]] = {}  # ls annotation id -> (revision, task id, conflict)
    for row in rows:
        lines = [dict(line) for line in row.lines or []]
        label = derive_label(paragraph=row.text or "", lines=lines, prediction=row.prediction_text)
        bind.execute(
            answers.update()
            .where(answers.c.id == row.id)
            .values(
                raw={"paragraph": row.text or "", "lines": lines},
                text=label.text,
                lines=label.lines,
                label_source=label.source.value,
            )
        )
        conflict = label.source is LabelSource.conflict and not (row.skipped or row.unreadable)
        if row.ls_annotation_id not in newest or newest[row.ls_annotation_id][0] < row.revision:
            newest[row.ls_annotation_id] = (row.revision, row.task_id, conflict)
    conflicted = sorted({task_id for _, task_id, conflict in newest.values() if conflict})
    if conflicted:
        bind.execute(
            tasks.update().where(tasks.c.id.in_(conflicted), tasks.c.state == "completed").values(state="needs_review")
        )


def downgrade() -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(answers.c.id, answers.c.raw).where(answers.c.raw.is_not(None))):
        raw = row.raw or {}
        lines = raw.get("lines") or []
        text = raw.get("paragraph") or "\n".join(line.get("text", "") for line in lines if line.get("text"))
        bind.execute(answers.update().where(answers.c.id == row.id).values(text=text, lines=lines))
    with op.batch_alter_table("synthetic_samples", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_synthetic_samples_dataset_version_id_dataset_versions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_synthetic_samples_dataset_version_id"))
        batch_op.drop_column("dataset_version_id")
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        # The CHECK constraints of the enum columns go first: SQLite's rebuilt table would still name the columns.
        batch_op.drop_constraint(op.f("ck_dataset_members_member_source"), type_="check")
        batch_op.drop_constraint(op.f("ck_dataset_members_member_reason"), type_="check")
        for column in (
            "served_confidence",
            "served_model",
            "request_id",
            "line_count",
            "polarity",
            "source",
            "reason",
            "group_key",
            "annotation_revision",
            "lines",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_column("details")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("document")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_annotations_label_source"), type_="check")
        batch_op.drop_column("raw")
        batch_op.drop_column("label_source")
