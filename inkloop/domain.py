"""The domain's vocabulary: the states and kinds every part of the loop talks about.

They are stored as strings in the database (db/models.py, with CHECK constraints), sent to Label Studio,
written into model cards and reports, and compared by the gates; they live in the kernel so that every layer
can name them without importing the database.
"""

from __future__ import annotations

import enum


class ImageSource(enum.StrEnum):
    production = "production"
    synthetic = "synthetic"
    imported = "imported"


class ImageStatus(enum.StrEnum):
    pending = "pending"  # stored, not yet validated by the ingest flow
    valid = "valid"
    quarantined = "quarantined"


class FeedbackFlag(enum.StrEnum):
    incorrect = "incorrect"
    offensive = "offensive"
    other = "other"


class TaskReason(enum.StrEnum):
    low_confidence = "low_confidence"
    audit = "audit"
    flagged = "flagged"
    review = "review"  # an imported page sent to be checked (`inkloop datasets review`)


class TaskState(enum.StrEnum):
    queued = "queued"  # recorded here, not yet confirmed in Label Studio
    open = "open"  # waiting for annotators in Label Studio
    completed = "completed"
    skipped = "skipped"
    needs_review = "needs_review"  # annotators disagree
    cancelled = "cancelled"


class Split(enum.StrEnum):
    train = "train"
    val = "val"
    test = "test"


class ModelStatus(enum.StrEnum):
    candidate = "candidate"
    champion = "champion"
    rejected = "rejected"
    retired = "retired"


class RunStatus(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class PromotionKind(enum.StrEnum):
    gate = "gate"  # every gate passed
    manual = "manual"  # promoted by hand, no failed gate in the way
    forced = "forced"  # promoted by hand over a failed gate: the actor and reason are recorded
    rollback = "rollback"


class DriftVerdict(enum.StrEnum):
    drifted = "drifted"  # enough columns moved: production no longer looks like the reference
    stable = "stable"
    not_enough_data = "not_enough_data"  # a window had too few rows to compare: no verdict, never a false alarm


class ReferenceKind(enum.StrEnum):
    """Where a drift report's reference window came from (flows/drift.py picks it in this order)."""

    given = "given"  # passed to this run
    pinned = "pinned"  # chosen by an ML engineer: `inkloop drift reference --from --to`
    promotion = "promotion"  # the days after the champion was promoted
    first_traffic = "first_traffic"  # the first days of production traffic
    none = "none"  # no traffic before the current window
