"""Upload rejections: uploads the endpoint refused before storing anything, counted by reason.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload_rejections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_rejections")),
    )
    with op.batch_alter_table("upload_rejections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_rejections_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_rejections_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload_rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_rejections_created_at"))
        batch_op.drop_index(batch_op.f("ix_upload_rejections_code"))
    op.drop_table("upload_rejections")
