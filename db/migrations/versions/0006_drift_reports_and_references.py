"""Drift reports that can be found again by their windows, and reference windows pinned by an ML engineer.

A drift report gets the key of its two windows (a rerun for the same windows replaces its row instead of adding
one), where its reference came from, the row count of each window and its verdict (`drifted`, `stable`, or
`not_enough_data` when a window is too small to judge). `drift_references` records each reference window an ML
engineer pins with `inkloop drift reference --from --to`, and when it was cleared.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICTS = ("drifted", "stable", "not_enough_data")
REFERENCE_KINDS = ("given", "pinned", "promotion", "first_traffic", "none")


def upgrade() -> None:
    with op.batch_alter_table("drift_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reference_kind",
                sa.Enum(*REFERENCE_KINDS, name="reference_kind", native_enum=False, create_constraint=True),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("reference_rows", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("current_rows", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "verdict",
                sa.Enum(*VERDICTS, name="drift_verdict", native_enum=False, create_constraint=True),
                nullable=True,
            )
        )
        batch_op.create_unique_constraint(batch_op.f("uq_drift_reports_window_key"), ["window_key"])
        batch_op.create_index(batch_op.f("ix_drift_reports_current_end"), ["current_end"], unique=False)
    op.create_table(
        "drift_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_references")),
    )


def downgrade() -> None:
    op.drop_table("drift_references")
    with op.batch_alter_table("drift_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_reports_current_end"))
        batch_op.drop_constraint(batch_op.f("uq_drift_reports_window_key"), type_="unique")
        batch_op.drop_constraint(op.f("ck_drift_reports_drift_verdict"), type_="check")
        batch_op.drop_constraint(op.f("ck_drift_reports_reference_kind"), type_="check")
        for column in ("verdict", "current_rows", "reference_rows", "reference_kind", "window_key"):
            batch_op.drop_column(column)
