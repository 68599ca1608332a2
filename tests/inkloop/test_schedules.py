"""The schedule grammar of INKLOOP_SCHEDULES: intervals, UTC cron expressions, off; clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inkloop.schedules import Schedule, parse_schedule, parse_schedules


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("every 5m", Schedule(interval=timedelta(minutes=5)), "every 5m"),
        ("EVERY  90s", Schedule(interval=timedelta(seconds=90)), "every 90s"),
        ("every 1.5h", Schedule(interval=timedelta(minutes=90)), "every 90m"),
        ("every 1d", Schedule(interval=timedelta(days=1)), "every 1d"),
        ("0 2 * * *", Schedule(cron="0 2 * * *"), "cron 0 2 * * * (UTC)"),
        (" */10  1,13 * * 1-5 ", Schedule(cron="*/10 1,13 * * 1-5"), "cron */10 1,13 * * 1-5 (UTC)"),
        ("off", Schedule(), "off"),
    ],
)
def test_schedules_parse_and_read_back(text: str, expected: Schedule, shown: str) -> None:
    parsed = parse_schedule(text)
    assert parsed == expected
    assert parsed.describe() == shown
    assert parsed.off is (shown == "off")


@pytest.mark.parametrize("text", ["nightly", "every 5", "every -1m", "every 0m", "0 2 * *", "0 2 * * * *", "@daily"])
def test_a_bad_schedule_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not 'every N' with a unit s, m, h or d|must be positive"):
        parse_schedule(text)


def test_overrides_are_name_equals_schedule_pairs() -> None:
    assert parse_schedules("retrain=0 3 * * *; drift=off ;ingest = every 1m;") == {
        "retrain": Schedule(cron="0 3 * * *"),
        "drift": Schedule(),
        "ingest": Schedule(interval=timedelta(minutes=1)),
    }
    assert parse_schedules("") == {}
    with pytest.raises(ValueError, match="'retrain 0 3 \\* \\* \\*' is not name=schedule"):
        parse_schedules("retrain 0 3 * * *")
    with pytest.raises(ValueError, match="the flow 'drift' is scheduled twice"):
        parse_schedules("drift=off; drift=every 1h")
