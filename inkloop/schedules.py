"""When the scheduled flows run: `every 5m` (an interval), a five-field cron expression in UTC (`0 2 * * *`: nightly
at 02:00), or `off` (deployed, run by hand only). INKLOOP_SCHEDULES overrides the defaults flow by flow, as
`name=spec` pairs separated by semicolons: `retrain=0 3 * * *; drift=off; ingest=every 1m`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"every\s+(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])", re.IGNORECASE)
_CRON_FIELD = re.compile(r"^[\d*/,\-]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Schedule:
    interval: timedelta | None = None
    cron: str | None = None

    @property
    def off(self) -> bool:
        return self.interval is None and self.cron is None

    def describe(self) -> str:
        if self.interval is not None:
            seconds = self.interval.total_seconds()
            for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
                if seconds % size == 0:
                    return f"every {seconds / size:g}{unit}"
        return f"cron {self.cron} (UTC)" if self.cron else "off"


def parse_schedule(text: str) -> Schedule:
    """One schedule; ValueError saying what is accepted."""
    spec = " ".join(text.split())
    if spec.lower() == "off":
        return Schedule()
    every = _EVERY.fullmatch(spec)
    if every:
        seconds = float(every["n"]) * _UNITS[every["unit"].lower()]
        if seconds <= 0:
            raise ValueError(f"schedule {text!r}: the interval must be positive")
        return Schedule(interval=timedelta(seconds=seconds))
    fields = spec.split(" ")
    if len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields):
        return Schedule(cron=spec)
    raise ValueError(
        f"schedule {text!r} is not 'every N' with a unit s, m, h or d (every 5m), a five-field cron expression "
        "(0 2 * * *), or off"
    )


def parse_schedules(text: str) -> dict[str, Schedule]:
    """`name=spec; name=spec` -> {name: Schedule}; ValueError naming the bad pair."""
    found: dict[str, Schedule] = {}
    for pair in text.split(";"):
        if not pair.strip():
            continue
        name, sep, spec = pair.partition("=")
        name = name.strip().lower()
        if not sep or not _NAME.match(name):
            raise ValueError(f"{pair.strip()!r} is not name=schedule (retrain=0 2 * * *; ingest=every 5m)")
        if name in found:
            raise ValueError(f"the flow {name!r} is scheduled twice")
        found[name] = parse_schedule(spec)
    return found
