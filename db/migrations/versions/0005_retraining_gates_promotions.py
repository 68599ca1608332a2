"""Retraining runs that can be resumed and found again, and a record of every promotion.

A training run gets its identity (`run_key`: a hash of the dataset version, the parent model and the resolved
training config, so one version and config never give two candidates), the candidate's name, the folder of its
checkpoints, its steps and wall time, and where its curves are in the experiment tracker. A gate report names the
dataset version it read. `promotions` records each change of champion: by the gate, by hand (forced over a failed
gate, with who and why), or a rollback.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROMOTION_KINDS = ("gate", "manual", "forced", "rollback")


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("run_dir", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("tracker", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("steps", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("wall_s", sa.Float(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_training_runs_run_key"), ["run_key"])
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dataset_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_gate_reports_dataset_version_id_dataset_versions"),
            "dataset_versions",
            ["dataset_version_id"],
            ["id"],
        )
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("gate_report_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(*PROMOTION_KINDS, name="promotion_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model_versions.id"], name=op.f("fk_promotions_model_id_model_versions")
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["model_versions.id"], name=op.f("fk_promotions_previous_id_model_versions")
        ),
        sa.ForeignKeyConstraint(
            ["gate_report_id"], ["gate_reports.id"], name=op.f("fk_promotions_gate_report_id_gate_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
    )
    op.create_index(op.f("ix_promotions_model_id"), "promotions", ["model_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_promotions_model_id"), table_name="promotions")
    op.drop_table("promotions")
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_gate_reports_dataset_version_id_dataset_versions"), type_="foreignkey")
        batch_op.drop_column("dataset_version_id")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_training_runs_run_key"), type_="unique")
        for column in ("wall_s", "steps", "tracker", "run_dir", "name", "run_key"):
            batch_op.drop_column(column)
