"""The drift report on real pages read by the shipped model (tests/support/drift.py): it catches a shift and names
the columns that moved, raises no false alarm on windows drawn like the reference, refuses to judge windows that
are too small, and checks the label-free CER estimate against the audited pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.repo import WindowRequest
from devtools.pages import Observed, as_requests, blurred, observe
from inkloop.domain import DriftVerdict, ImageStatus, ReferenceKind
from inkloop.text import cer
from model.confidence import Calibration
from model.recognizer import SHIPPED_MODEL, Recognizer
from monitoring.drift import (
    COLUMNS,
    DriftConfig,
    DriftResult,
    Window,
    compare,
    methods,
    rare_characters,
    read_snapshot,
)
from monitoring.drift_html import summary_section
from tests.support.drift import Traffic

pytestmark = pytest.mark.slow

DAY = Window(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
BEFORE = Window(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 10, 8, tzinfo=UTC))
CONFIG = DriftConfig()


def report(
    reference: list[WindowRequest],
    current: list[WindowRequest],
    refusals: list[tuple[datetime, str]] | None = None,
    config: DriftConfig = CONFIG,
) -> DriftResult:
    return compare(
        reference,
        [],
        current,
        refusals or [],
        reference=BEFORE,
        current=DAY,
        reference_kind=ReferenceKind.pinned,
        config=config,
    )


def true_cer(observed: list[Observed]) -> float:
    return sum(min(cer(o.reading, o.text), 1.0) for o in observed) / len(observed)


@pytest.fixture(scope="module")
def reference(drift_traffic: Traffic) -> list[WindowRequest]:
    return as_requests(drift_traffic.reference, at=BEFORE.start)


def test_light_on_dark_pages_drift_naming_the_columns_that_moved(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    result = report(reference, as_requests(drift_traffic.dark[:50], at=DAY.start))
    summary = result.summary
    assert summary.verdict is DriftVerdict.drifted, summary.reason
    assert {"polarity", "mean_brightness"} <= set(summary.drifted_columns)
    # What did not move is not named: the text is the same kind of text.
    assert not {"line_count", "text_length", "outcome"} & set(summary.drifted_columns)
    polarity = next(c for c in summary.columns if c.name == "polarity")
    assert (polarity.reference, polarity.current) == ("dark_on_light 100%", "light_on_dark 100%")
    assert summary.share_drifted == pytest.approx(len(summary.drifted_columns) / len(COLUMNS))
    assert result.snapshot is not None


def test_blurred_pages_drift_in_focus_and_confidence(drift_traffic: Traffic, reference: list[WindowRequest]) -> None:
    summary = report(reference, as_requests(drift_traffic.blurred[:50], at=DAY.start)).summary
    assert summary.verdict is DriftVerdict.drifted, summary.reason
    assert {"blur_log10", "confidence"} <= set(summary.drifted_columns)
    assert "polarity" not in summary.drifted_columns


def test_windows_drawn_like_the_reference_raise_no_false_alarm(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    """20 independent current windows of 50 pages (a small deployment's day), drawn exactly as the reference was."""
    verdicts = []
    for k in range(20):
        window = drift_traffic.same[k * 50 : (k + 1) * 50]
        verdicts.append(report(reference, as_requests(window, at=DAY.start)).summary.verdict)
    assert set(verdicts) <= {DriftVerdict.stable, DriftVerdict.drifted}
    assert verdicts.count(DriftVerdict.drifted) <= 1, verdicts


def test_a_rise_in_refused_uploads_moves_the_outcome_column_only(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    refusals = [(DAY.start, "not_an_image")] * 15 + [(DAY.start, "too_large")] * 5
    summary = report(reference, as_requests(drift_traffic.same[:50], at=DAY.start), refusals).summary
    assert summary.drifted_columns == ["outcome"]
    assert summary.verdict is DriftVerdict.stable  # one column of thirteen: listed, not a drifted window
    assert summary.current.refused == {"not_an_image": 15, "too_large": 5}
    assert summary.current.refusal_rate == pytest.approx(20 / 70)
    assert summary.current.rows == 50


def test_the_estimated_cer_tracks_the_audited_cer_where_the_model_reads_well_and_badly(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    good = report(reference, as_requests(drift_traffic.same[:150], at=DAY.start)).summary.cer
    bad = report(reference, as_requests(drift_traffic.blurred, at=DAY.start)).summary.cer
    assert good.audited_pages == bad.audited_pages == 50
    assert good.audited is not None and bad.audited is not None
    # The blurred window really is read badly: on all its pages, not only the audited ones.
    assert true_cer(drift_traffic.blurred) > 3 * true_cer(drift_traffic.same[:150])
    for check in (good, bad):
        assert check.low is not None and check.high is not None
        assert check.estimated is not None and check.audited is not None
        assert check.low <= check.audited <= check.high
        assert check.agrees is (check.low <= check.estimated <= check.high), check
    # Where it reads well, the estimate agrees with the audit.
    assert good.agrees is True
    # Where it reads badly, the estimate follows without a label, within a third of the true CER of all the pages.
    # (base-3 is a little pessimistic out of focus: 0.228 against a true 0.195 on these 150 pages, and the 50
    # audited ones happen to read at 0.150, so the check may say disagree there; base-2 agreed.)
    assert good.estimated is not None and bad.estimated is not None
    assert bad.estimated > 3 * good.estimated
    assert abs(bad.estimated - true_cer(drift_traffic.blurred)) < true_cer(drift_traffic.blurred) / 3


def test_a_miscalibrated_model_is_flagged_as_disagreeing(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    """The same network, its confidence map replaced by one that claims near-perfect reading on every page."""
    overconfident = Recognizer.load(SHIPPED_MODEL)
    overconfident.calibration = Calibration((0.0, 1.0), (0.995, 0.999))
    readings = observe(drift_traffic.blurred_pages, recognizer=overconfident, transform=blurred)
    check = report(reference, as_requests(readings, at=DAY.start)).summary.cer
    assert check.estimated is not None and check.estimated < 0.01
    assert check.agrees is False
    assert check.low is not None and check.estimated < check.low
    assert "calibration has drifted" in check.note


def test_windows_too_small_to_judge_give_no_verdict_and_no_crash(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    tiny = report(reference, as_requests(drift_traffic.dark[:12], at=DAY.start))
    assert tiny.summary.verdict is DriftVerdict.not_enough_data
    assert tiny.summary.reason == "not enough data (n < 30): the current window has 12 valid images"
    assert tiny.snapshot is None and tiny.summary.columns == []

    empty = report(reference, [])
    assert empty.summary.verdict is DriftVerdict.not_enough_data
    assert "the current window has 0 valid images" in empty.summary.reason
    assert empty.summary.cer.estimated is None and empty.summary.cer.note == "no answered pages"

    pending = [
        WindowRequest(r.request_id, r.created_at, r.model_version, r.text, r.confidence, None, None)
        for r in as_requests(drift_traffic.same[:40], at=DAY.start)
    ]
    waiting = report(reference, pending).summary
    assert waiting.reason.endswith("has 0 valid images; 40 more await validation (run ingest)")

    small_reference = report(reference[:20], as_requests(drift_traffic.same[:50], at=DAY.start)).summary
    assert small_reference.reason == "not enough data (n < 30): the reference window has 20 valid images"

    missing = compare(
        [],
        [],
        as_requests(drift_traffic.same[:50], at=DAY.start),
        [],
        reference=None,
        current=DAY,
        reference_kind=ReferenceKind.none,
        config=CONFIG,
    ).summary
    assert missing.verdict is DriftVerdict.not_enough_data
    assert missing.reason.startswith("not enough data: no reference window")
    assert missing.cer.estimated is not None  # the estimate needs no reference


def test_too_few_audited_pages_give_the_estimate_without_a_check(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    check = report(reference, as_requests(drift_traffic.same[:50], at=DAY.start, audit_every=10)).summary.cer
    assert check.audited_pages == 5
    assert check.agrees is None and check.low is None
    assert check.note == "too few audited pages to check the estimate (n < 10)"
    # The page shows it as a sentence after the figures, not "... 5 audited pages. too few ...".
    summary = report(reference, as_requests(drift_traffic.same[:50], at=DAY.start, audit_every=10)).summary
    page = summary_section(summary)
    assert "audited pages. Too few audited pages to check the estimate (n &lt; 10).</div>" in page


def test_quarantined_images_count_as_an_outcome_without_features(
    drift_traffic: Traffic, reference: list[WindowRequest]
) -> None:
    rows = as_requests(drift_traffic.same[:50], at=DAY.start)
    junk = [WindowRequest(f"q{i}", DAY.start, "base-2", "", 0.0, ImageStatus.quarantined, None) for i in range(3)]
    summary = report(reference, rows + junk).summary
    assert summary.current.rows == 50 and summary.current.quarantined == 3


def test_methods_follow_the_window_sizes() -> None:
    small = methods(200, 50, CONFIG)
    large = methods(10_000, 10_000, CONFIG)
    for column in COLUMNS:
        if column.kind == "categorical":
            assert small[column.name] == large[column.name] == ("jensenshannon", 0.1)
        else:
            assert small[column.name] == ("ks", 0.01)
            assert large[column.name] == ("wasserstein", 0.1)
    assert methods(999, 5000, CONFIG)["confidence"][0] == "ks"


def test_rare_characters_are_those_the_reference_rarely_has() -> None:
    texts = ["a" * 990 + "b" * 9 + "c"]
    assert rare_characters(texts, 0.01) == frozenset("bc")
    assert rare_characters([], 0.01) == frozenset()


def test_a_changed_evidently_result_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="has its format changed"):
        read_snapshot({"metrics": [], "tests": []})


def test_windows_are_labelled_in_utc() -> None:
    window = Window(start=DAY.start, end=DAY.start + timedelta(hours=6))
    assert window.label() == "2026-11-01 00:00 .. 2026-11-01 06:00 UTC"
