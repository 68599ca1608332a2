"""The statistics and verdict rules of the gates (model/gates.py), on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from model.gates import (
    Check,
    GateConfig,
    PageRead,
    ScoredPage,
    Serving,
    calibration_check,
    gate_result,
    memorization_check,
    paired_bootstrap,
    parity_check,
    regression_check,
    slice_results,
    speed_check,
    worse_pages,
)
from model.memorize import Memorized
from model.runtimes import Runtime


def test_identical_models_give_an_interval_that_contains_zero() -> None:
    rng = np.random.default_rng(1)
    edits = rng.integers(0, 6, size=80)
    chars = rng.integers(40, 200, size=80)
    interval = paired_bootstrap(edits, edits, chars, replicates=2000, seed=3)
    assert interval.delta == 0.0
    assert interval.low <= 0.0 <= interval.high


def test_a_model_worse_on_every_page_has_both_bounds_above_zero() -> None:
    rng = np.random.default_rng(2)
    champion = rng.integers(0, 5, size=60)
    candidate = champion + rng.integers(1, 4, size=60)  # one to three more errors on every page
    chars = rng.integers(50, 150, size=60)
    interval = paired_bootstrap(champion, candidate, chars, replicates=2000, seed=0)
    assert 0.0 < interval.low <= interval.delta <= interval.high
    expected = (candidate.sum() - champion.sum()) / chars.sum()
    assert interval.delta == pytest.approx(expected)


def test_pairing_makes_a_consistent_small_gain_significant() -> None:
    """Pages vary a lot in difficulty, the candidate is better by one error on each: a paired interval excludes 0
    (an unpaired comparison of two such noisy means would not)."""
    rng = np.random.default_rng(5)
    champion = rng.integers(3, 40, size=100)
    candidate = champion - 1
    interval = paired_bootstrap(champion, candidate, np.full(100, 120), replicates=2000, seed=1)
    assert interval.high < 0


def test_the_bootstrap_is_seeded_and_refuses_unequal_pages() -> None:
    a, b, n = [1, 2, 3, 0], [2, 2, 1, 1], [50, 60, 70, 80]
    assert paired_bootstrap(a, b, n, seed=7) == paired_bootstrap(a, b, n, seed=7)
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1], [10, 10])


def _read(set_: str, truth: str, champion: str, candidate: str, *slices: str) -> PageRead:
    return PageRead(set_, f"{set_}-{truth}", truth, champion, candidate, (f"{set_}/all", *slices))


def _pages(count: int, *, worse: bool, set_: str = "test", extra: tuple[str, ...] = ()) -> list[PageRead]:
    truth = "the quick brown fox jumps over the lazy dog"
    wrong = "the quick brovn fox jumps ovr the lazy dog"
    return [
        _read(set_, f"{truth} {i}", f"{truth} {i}", f"{wrong} {i}" if worse else f"{truth} {i}", *extra)
        for i in range(count)
    ]


def test_a_decisive_slice_that_regresses_fails_and_a_small_one_is_only_reported() -> None:
    config = GateConfig(min_slice_pages=10, replicates=500, required=("test/all",))
    reads = _pages(12, worse=False) + _pages(12, worse=True, set_="golden") + _pages(3, worse=True, set_="heldout")
    slices = {s.name: s for s in slice_results(reads, config)}
    assert slices["golden/all"].decisive and not slices["golden/all"].passed
    assert slices["golden/all"].low is not None and slices["golden/all"].low > 0
    assert not slices["heldout/all"].decisive and slices["heldout/all"].passed
    assert "not decisive" in slices["heldout/all"].note
    check = regression_check(list(slices.values()), config)
    assert not check.passed and "golden/all" in check.summary
    assert check.details["failed_slices"] == ["golden/all"]


def test_a_configured_slice_with_no_pages_fails_the_gate() -> None:
    config = GateConfig(min_slice_pages=5, replicates=200, required=("test/all", "test/reason/flagged"))
    improved = [
        _read("test", "a line of text", "a lime of text", "a line of text", "test/reason/audit") for _ in range(6)
    ]
    slices = slice_results(improved, config)
    empty = next(s for s in slices if s.name == "test/reason/flagged")
    assert empty.pages == 0 and empty.required and not empty.passed
    check = regression_check(slices, config)
    assert not check.passed
    assert "test/reason/flagged: configured slice with no pages" in check.summary


def test_the_test_split_must_improve() -> None:
    config = GateConfig(min_slice_pages=50, replicates=200, required=("test/all",))
    same = _pages(8, worse=False)
    check = regression_check(slice_results(same, config), config)
    assert not check.passed and "did not improve" in check.summary

    better = [_read("test", "a line of text", "a lime of text", "a line of text") for _ in range(8)]
    check = regression_check(slice_results(better, config), config)
    assert check.passed, check.summary
    assert "0.0714 -> 0.0000" in check.summary


def test_worse_pages_come_largest_increase_first() -> None:
    reads = [
        _read("test", "abcdefghij", "abcdefghij", "abcdefghiX"),
        _read("test", "klmnopqrst", "klmnopqrst", "XXmnopqrst"),
        _read("test", "uvwxyzabcd", "uvwxyzabcX", "uvwxyzabcd"),  # better: not listed
    ]
    worse = worse_pages(reads, limit=5)
    assert [w.truth for w in worse] == ["klmnopqrst", "abcdefghij"]
    assert worse[0].candidate_cer == 0.2 and worse[0].champion_cer == 0.0


INT8 = Serving(Runtime.onnx_int8, "its int8 graph")
SAME = {"candidate": INT8, "champion": INT8}


def test_speed_passes_within_the_tolerance_and_fails_beyond_it() -> None:
    config = GateConfig(speed_tolerance=0.2, speed_rounds=3)
    fine = speed_check(
        {"champion": [1.0, 1.1, 0.9], "candidate": [1.1, 1.15, 1.2]}, config, 10, Runtime.onnx_int8, SAME
    )
    slow = speed_check(
        {"champion": [1.0, 1.0, 1.0], "candidate": [1.3, 1.25, 1.4]}, config, 10, Runtime.onnx_int8, SAME
    )
    assert fine.passed and not slow.passed
    assert "1.30x beyond" in slow.summary and "both in onnx-int8" in slow.summary


def test_speed_compares_rounds_pairwise_so_one_busy_moment_does_not_decide() -> None:
    """The machine slowed down during the last two rounds, for both models alike: each round's ratio is ~1."""
    config = GateConfig(speed_tolerance=0.2, speed_rounds=5)
    times = {"champion": [1.0, 1.0, 1.0, 2.0, 2.1], "candidate": [1.02, 0.99, 1.01, 2.05, 2.1]}
    check = speed_check(times, config, 10, Runtime.onnx_int8, SAME)
    assert check.passed and check.details["ratio"] == pytest.approx(1.01, abs=0.01)


def test_a_candidate_without_int8_is_timed_like_with_like_and_its_runtime_is_reported() -> None:
    """The candidate's int8 graph was left out, the champion's kept: both are timed in float ONNX (equal
    networks: 1.0x), and the report says what each serves with, why, and what that costs as served."""
    config = GateConfig(speed_tolerance=0.2, speed_rounds=3)
    serving = {
        "candidate": Serving(Runtime.onnx, "int8 left out, more than 0.002 worse than float: int8 CER 0.0226, ..."),
        "champion": INT8,
    }
    times = {"candidate": [1.5, 1.5, 1.5], "champion": [1.5, 1.52, 1.49], "champion as served": [1.0, 1.0, 1.0]}
    check = speed_check(times, config, 32, Runtime.onnx, serving)
    assert check.passed
    assert "both in onnx:" in check.summary
    assert "the candidate serves with onnx (int8 left out, more than 0.002 worse" in check.summary
    assert "the champion with onnx-int8: as served, 1.50x the champion's time (for information)" in check.summary
    assert check.details["serving"] == {
        "candidate": {"runtime": "onnx", "reason": serving["candidate"].reason},
        "champion": {"runtime": "onnx-int8", "reason": "its int8 graph"},
    }


def test_export_parity_tolerates_a_flipped_near_tie_and_fails_an_export_bug() -> None:
    config = GateConfig()
    keys = ["a", "b", "c"]
    pages = ["the quick brown fox jumps over the lazy dog " * 8] * 3  # 352 characters each
    same = parity_check(keys, {"torchscript": pages, "onnx": list(pages)}, list(pages), config, "golden")
    assert same.passed
    assert same.summary == (
        "torchscript reads all 3 golden pages as eager does; onnx reads all 3 golden pages as eager does"
    )

    flipped = [pages[0].replace("quick", "quiek", 1), *pages[1:]]  # one character of 1,056
    near = parity_check(keys, {"onnx": flipped}, pages, config, "golden")
    assert near.passed
    assert near.summary == (
        "onnx reads 1 of 3 golden pages differently from eager: CER between the readings 0.0009 "
        "(within the bound 0.002)"
    )
    onnx = near.details["onnx"]
    assert isinstance(onnx, dict)
    assert onnx["differ"] == [{"key": "a", "onnx": flipped[0], "eager": pages[0], "cer": 1 / 352}]

    # A wrong charset order in one runtime (every "o" read as another class) fails the gate, whatever the other.
    shifted = [p.replace("o", "0") for p in pages]
    bug = parity_check(keys, {"torchscript": pages, "onnx": shifted}, pages, config, "test")
    assert not bug.passed and "onnx reads 3 of 3 test pages differently" in bug.summary
    assert "over the bound 0.002" in bug.summary

    assert not parity_check([], {}, [], config, "test").passed


def test_export_parity_reports_int8_by_its_accuracy_without_failing_on_it() -> None:
    config = GateConfig()
    keys = ["a", "b", "c"]
    truth = ["the quick brown fox jumps over the lazy dog " * 8] * 3  # 1,056 characters in all
    eager = [truth[0].replace("lazy", "hazy", 1), *truth[1:]]  # 1 error
    # int8 reads one page differently, one error elsewhere: its CER equals eager's.
    int8 = [truth[0], truth[1].replace("dog", "dag", 1), truth[2]]
    kept = parity_check(keys, {"onnx-int8": int8, "onnx": list(eager)}, eager, config, "test", truths=truth)
    assert kept.passed
    assert "onnx-int8 reads the 3 test pages at CER 0.0009, eager at 0.0009 (within +0.002; for information)" in (
        kept.summary
    )
    # Three more errors (+0.0028) is over the bound, said so; the float runtimes decide the gate.
    worse = [p.replace("fox", "f0x", 1) for p in int8]
    reported = parity_check(keys, {"onnx-int8": worse, "onnx": list(eager)}, eager, config, "test", truths=truth)
    assert reported.passed and "(over +0.002; for information)" in reported.summary
    shifted = [p.replace("o", "0") for p in eager]
    assert not parity_check(keys, {"onnx-int8": int8, "onnx": shifted}, eager, config, "test", truths=truth).passed
    with pytest.raises(ValueError, match="give truths"):
        parity_check(keys, {"onnx-int8": int8}, eager, config, "test")


def _memorized(start: float, end: float) -> Memorized:
    return Memorized(start_loss=start, end_loss=end, losses=[start, end], lines=4, steps=40, seconds=1.0)


def test_memorization_passes_below_the_bound_and_half_its_start_and_fails_without_lines() -> None:
    config = GateConfig(memorization_loss=0.1)
    assert memorization_check(_memorized(0.6, 0.05), config).passed
    assert not memorization_check(_memorized(0.6, 0.2), config).passed  # above the bound
    assert not memorization_check(_memorized(0.08, 0.05), config).passed  # below it, but not half its start
    missing = memorization_check(None, config)
    assert not missing.passed and missing.summary == "no new training lines to memorize"


def test_calibration_uses_the_test_pages_and_the_held_out_ones_only_when_they_are_too_few() -> None:
    config = GateConfig(min_slice_pages=3, ece_max=0.05)
    honest = [ScoredPage("test", 0.9, 0.1)] * 3 + [ScoredPage("heldout", 0.2, 0.0)] * 5
    check = calibration_check(honest, config)
    assert check.passed and check.details["pages"] == 3 and "on 3 test pages" in check.summary
    few = calibration_check([ScoredPage("test", 0.9, 0.1), ScoredPage("heldout", 0.99, 0.5)], config)
    assert few.details["pages"] == 2 and "too few test pages" in few.summary and not few.passed
    none = calibration_check([ScoredPage("golden", 0.9, 0.1)], config)
    assert not none.passed and none.summary == "no pages to measure calibration on"


def test_a_candidate_passes_only_when_every_gate_ran_and_passed() -> None:
    def result(*passed: bool) -> bool:
        checks = [Check(name=f"g{i}", passed=p, summary="") for i, p in enumerate(passed)]
        made = gate_result(
            candidate="m-0002",
            champion="m-0001",
            dataset_version=None,
            checks=checks,
            slices=[],
            worse=[],
            config=GateConfig(),
            created_at="2026-12-07T00:00:00+00:00",
            seconds={},
        )
        return made.passed

    assert result(True, True) and not result(True, False) and not result()
