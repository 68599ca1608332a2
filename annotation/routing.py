"""Which images annotators see: a pure policy, so it can be tested and reasoned about without any service.

Three arms share one daily budget:

* **audit**: a fixed share of all valid traffic, drawn from the image's hash, so it is independent of confidence
  (an unbiased sample for the production CER, and the control arm that measures what routing by confidence buys).
  The draw is deterministic: a rerun, or the same image arriving again, draws the same way.
* **flagged**: requests a user reported as wrong.
* **low_confidence**: below the threshold, least confident first.

Audit comes first so the budget can never starve it (starving it would bias the sample toward quiet days), then
flags, then low confidence. An image within `near_duplicate_distance` bits (perceptual hash) of one already
tasked, or of one chosen earlier in this run, is sent once: annotators never label the same page twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inkloop.domain import TaskReason
from inkloop.phash import NEAR_DUPLICATE_DISTANCE, hash_array, popcount

REASON_ORDER = (TaskReason.audit, TaskReason.flagged, TaskReason.low_confidence)


@dataclass(frozen=True)
class Candidate:
    """A valid image without a task, with the latest request that sent it."""

    image_sha256: str
    request_id: str
    confidence: float
    flagged: bool
    phash: str | None


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    reason: TaskReason

    @property
    def priority(self) -> float:
        """Higher first: the less confident, the sooner an annotator sees it."""
        return round(1.0 - self.candidate.confidence, 6)


@dataclass
class Plan:
    chosen: list[Decision] = field(default_factory=list)
    near_duplicates: int = 0
    over_budget: Counter[str] = field(default_factory=Counter)  # wanted an annotator, left for a later day
    not_needed: int = 0  # confident, not flagged, not drawn for audit

    @property
    def candidates(self) -> int:
        return len(self.chosen) + self.near_duplicates + sum(self.over_budget.values()) + self.not_needed


def audit_draw(image_sha256: str, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by the image: the same image always draws the same."""
    digest = hashlib.sha256(f"{salt}{image_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def reason_for(candidate: Candidate, *, threshold: float, audit_rate: float, salt: str = "") -> TaskReason | None:
    if audit_draw(candidate.image_sha256, salt) < audit_rate:
        return TaskReason.audit
    if candidate.flagged:
        return TaskReason.flagged
    if candidate.confidence < threshold:
        return TaskReason.low_confidence
    return None


class _HashIndex:
    """Perceptual hashes seen so far, with a vectorised nearest-distance query."""

    def __init__(self, phashes: Iterable[str]) -> None:
        self._values = hash_array(list(phashes))
        self._added: list[int] = []

    def near(self, phash: str, distance: int) -> bool:
        value = np.uint64(int(phash, 16))
        if self._added:
            self._values = np.concatenate([self._values, np.array(self._added, dtype=np.uint64)])
            self._added = []
        if self._values.size == 0:
            return False
        return bool((popcount(self._values ^ value) <= distance).any())

    def add(self, phash: str) -> None:
        self._added.append(int(phash, 16))


def plan(
    candidates: Sequence[Candidate],
    *,
    budget: int,
    threshold: float,
    audit_rate: float,
    tasked_phashes: Iterable[str] = (),
    near_duplicate_distance: int = NEAR_DUPLICATE_DISTANCE,
    salt: str = "",
) -> Plan:
    """Choose at most `budget` candidates: audit, then flagged, then least confident; near-duplicates once."""
    result = Plan()
    wanted: dict[TaskReason, list[Candidate]] = {reason: [] for reason in REASON_ORDER}
    for candidate in candidates:
        reason = reason_for(candidate, threshold=threshold, audit_rate=audit_rate, salt=salt)
        if reason is None:
            result.not_needed += 1
        else:
            wanted[reason].append(candidate)
    seen = _HashIndex(tasked_phashes)
    for reason in REASON_ORDER:
        # Least confident first within each arm; the sha breaks ties so the order never depends on the query.
        for candidate in sorted(wanted[reason], key=lambda c: (c.confidence, c.image_sha256)):
            if candidate.phash is not None and seen.near(candidate.phash, near_duplicate_distance):
                result.near_duplicates += 1
                continue
            if len(result.chosen) >= budget:
                result.over_budget[reason.value] += 1
                continue
            result.chosen.append(Decision(candidate, reason))
            if candidate.phash is not None:
                seen.add(candidate.phash)
    return result
