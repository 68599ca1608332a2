"""Imported ground truth: pages brought in from PAGE XML or ALTO, with their line polygons, baselines and texts.

`gt_pages` holds one row per imported file (its collection and name are its identity; the XML's sha256 makes a
second import of the same file a no-op), the page image's store key, the licence and attribution the lines carry,
and the document its split follows. `gt_lines` holds each line: reading-order position, the source's ids, its
line type (SegmOnto or PAGE structure type), polygon and baseline in the image's pixels, and its text. A dataset
member made from an imported page names it (`dataset_members.gt_page_id`), so a version knows its licences.

Imported pages can be sent to Label Studio to be checked: a task's (and a dataset member's) reason may be `review`,
and a page whose lines an annotator corrected records who did (`gt_pages.corrected_by`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS = ("low_confidence", "audit", "flagged")
REVIEW = "review"
# The enum columns whose CHECK constraint gains `review`: (table, constraint name as the models give it).
REASON_CHECKS = (("annotation_tasks", "task_reason"), ("dataset_members", "member_reason"))


def _reasons_check(table: str, name: str, reasons: Sequence[str]) -> None:
    """Replace the CHECK constraint of an enum column (`reason`) by one allowing `reasons`. In batch mode, so that
    SQLite, which cannot alter a constraint, rebuilds the table with the new one."""
    allowed = ", ".join(f"'{reason}'" for reason in reasons)
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), sa.text(f"reason IN ({allowed})"))


def upgrade() -> None:
    op.create_table(
        "gt_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_name", sa.String(length=255), nullable=False),
        sa.Column("xml_sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("schema", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("licence", sa.String(length=64), nullable=True),
        sa.Column("attribution", sa.Text(), nullable=True),
        sa.Column("document", sa.String(length=128), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("line_types", sa.JSON(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("corrected_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["image_sha256"], ["images.sha256"], name=op.f("fk_gt_pages_image_sha256_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gt_pages")),
        sa.UniqueConstraint("collection", "name", name=op.f("uq_gt_pages_collection_name")),
    )
    with op.batch_alter_table("gt_pages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gt_pages_image_sha256"), ["image_sha256"], unique=False)
    op.create_table(
        "gt_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(length=128), nullable=True),
        sa.Column("region_id", sa.String(length=128), nullable=True),
        sa.Column("line_type", sa.String(length=64), nullable=True),
        sa.Column("polygon", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"], ["gt_pages.id"], name=op.f("fk_gt_lines_page_id_gt_pages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gt_lines")),
        sa.UniqueConstraint("page_id", "position", name=op.f("uq_gt_lines_page_id_position")),
    )
    with op.batch_alter_table("gt_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gt_lines_line_type"), ["line_type"], unique=False)
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gt_page_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_dataset_members_gt_page_id_gt_pages"), "gt_pages", ["gt_page_id"], ["id"]
        )
    for table, name in REASON_CHECKS:
        _reasons_check(table, name, (*REASONS, REVIEW))


def downgrade() -> None:
    # Before 0007 no reason meant "an imported page sent to be checked": such tasks and members become audits (a
    # person checking a page that was not routed for doubt), so their annotations and versions are kept.
    for table, name in REASON_CHECKS:
        op.execute(sa.text(f"UPDATE {table} SET reason = 'audit' WHERE reason = '{REVIEW}'"))
        _reasons_check(table, name, REASONS)
    with op.batch_alter_table("dataset_members", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_dataset_members_gt_page_id_gt_pages"), type_="foreignkey")
        batch_op.drop_column("gt_page_id")
    op.drop_table("gt_lines")
    op.drop_table("gt_pages")
