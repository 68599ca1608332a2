"""The routing policy: audit independent of confidence, flags, least confident first, budget, near-duplicates."""

from __future__ import annotations

import hashlib

import pytest

from annotation.routing import Candidate, audit_draw, plan, reason_for
from inkloop.domain import TaskReason


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _candidate(i: int, confidence: float, *, flagged: bool = False, phash: str | None = None) -> Candidate:
    return Candidate(_sha(i), f"req-{i}", confidence, flagged, phash if phash is not None else _sha(-i)[:16])


def test_audit_draw_is_uniform_deterministic_and_ignores_confidence() -> None:
    draws = [audit_draw(_sha(i)) for i in range(20_000)]
    assert draws == [audit_draw(_sha(i)) for i in range(20_000)]
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.1 for d in draws) / len(draws)
    assert 0.09 < share < 0.11
    # The same image is audited or not whatever the model thought of it.
    for i in range(200):
        low = reason_for(_candidate(i, 0.01), threshold=0.8, audit_rate=0.1) is TaskReason.audit
        high = reason_for(_candidate(i, 0.99), threshold=0.8, audit_rate=0.1) is TaskReason.audit
        assert low == high


def test_reasons() -> None:
    assert reason_for(_candidate(1, 0.5), threshold=0.8, audit_rate=0.0) is TaskReason.low_confidence
    assert reason_for(_candidate(1, 0.9), threshold=0.8, audit_rate=0.0) is None
    assert reason_for(_candidate(1, 0.9, flagged=True), threshold=0.8, audit_rate=0.0) is TaskReason.flagged
    assert reason_for(_candidate(1, 0.9), threshold=0.8, audit_rate=1.0) is TaskReason.audit


def test_least_confident_first_within_the_budget() -> None:
    candidates = [_candidate(i, c) for i, c in enumerate([0.7, 0.2, 0.95, 0.5, 0.1, 0.6])]
    result = plan(candidates, budget=3, threshold=0.8, audit_rate=0.0)
    assert [d.candidate.confidence for d in result.chosen] == [0.1, 0.2, 0.5]
    assert [d.priority for d in result.chosen] == [0.9, 0.8, 0.5]
    assert result.over_budget == {"low_confidence": 2}
    assert result.not_needed == 1
    assert result.candidates == 6


def test_audit_then_flags_then_low_confidence_share_the_budget() -> None:
    audited = next(i for i in range(1000) if audit_draw(_sha(i)) < 0.05)
    candidates = [
        _candidate(audited, 0.99),
        _candidate(2000, 0.97, flagged=True),
        _candidate(2001, 0.05),
        _candidate(2002, 0.06),
    ]
    candidates = [c for c in candidates if c.image_sha256 == _sha(audited) or audit_draw(c.image_sha256) >= 0.05]
    result = plan(candidates, budget=2, threshold=0.8, audit_rate=0.05)
    assert [d.reason for d in result.chosen] == [TaskReason.audit, TaskReason.flagged]
    assert sum(result.over_budget.values()) == len(candidates) - 2


def test_near_duplicates_are_sent_once() -> None:
    base = 0x0F0F_3C3C_AAAA_5555
    close = f"{base ^ 0b101:016x}"  # 2 bits away
    far = f"{base ^ 0xFFFF_0000_0000_0000:016x}"  # 16 bits away
    candidates = [
        _candidate(1, 0.1, phash=f"{base:016x}"),
        _candidate(2, 0.2, phash=close),
        _candidate(3, 0.3, phash=far),
    ]
    result = plan(candidates, budget=10, threshold=0.8, audit_rate=0.0, near_duplicate_distance=6)
    assert [d.candidate.request_id for d in result.chosen] == ["req-1", "req-3"]
    assert result.near_duplicates == 1
    # Against images tasked by an earlier run, too.
    again = plan(candidates[2:], budget=10, threshold=0.8, audit_rate=0.0, tasked_phashes=[f"{base ^ 1 << 63:016x}"])
    assert len(again.chosen) == 1
    again = plan(candidates[2:], budget=10, threshold=0.8, audit_rate=0.0, tasked_phashes=[far])
    assert again.chosen == [] and again.near_duplicates == 1


@pytest.mark.parametrize("budget", [0, 1, 5])
def test_budget_is_never_exceeded(budget: int) -> None:
    candidates = [_candidate(i, (i % 10) / 20) for i in range(50)]
    result = plan(candidates, budget=budget, threshold=0.8, audit_rate=0.1)
    assert len(result.chosen) == budget
    assert len({d.candidate.image_sha256 for d in result.chosen}) == budget
