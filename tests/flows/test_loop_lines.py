"""What the loop prints for a step (flows/loop.py): the rows a person needs, a cap that stopped training and why
no stitched pages were made among them."""

from __future__ import annotations

from flows.loop import _line
from flows.retrain import RetrainSummary
from flows.sync import SyncSummary


def test_a_retrain_stopped_by_its_cap_and_without_stitched_pages_says_both() -> None:
    summary = RetrainSummary(
        candidate="m-0002",
        steps=92,
        stopped_early="at step 92 of 120: the 8-minute time cap",
        val_cer=0.0211,
        stitched="0: no annotated lines (paragraph answers only) in the 9 train pages of ds-0001",
        gate_passed=True,
        promoted=True,
    )
    assert _line("retrain", summary) == (
        "candidate m-0002; steps 92; stopped early at step 92 of 120: the 8-minute time cap; val cer 0.0211; "
        "stitched 0: no annotated lines (paragraph answers only) in the 9 train pages of ds-0001; gate passed yes; "
        "promoted yes"
    )
    assert "stopped early" not in _line("retrain", RetrainSummary(candidate="m-0003", steps=120, promoted=True))


def test_sync_counts_answers_that_held_unstorable_characters() -> None:
    assert _line("sync", SyncSummary(new_annotations=3, completed=3, nul_dropped=1)) == (
        "new annotations 3; completed 3; nul dropped 1"
    )
