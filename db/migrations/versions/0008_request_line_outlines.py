"""Request line outlines: each line's polygon (the region it was read from, in percent of the page), logged by
the endpoint beside its box, so that routing pre-fills a page's lines in Label Studio as polygons, as imported
pages are, instead of upright rectangles that on a slanted or crowded page overlap the lines above and below.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_outlines", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("line_outlines")
