"""What every flow shares: its handles on the database and the store, and the rule for what gets retried.

Flows are thin: each Prefect task calls a plain function of the package. Only I/O is retried (a database that
drops a connection, a store or Label Studio that times out); a bug or bad data fails at once, because retrying it
would only fail again, later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.ready import open_ready_engine
from db.session import session_factory, session_scope
from inkloop.errors import TransientError
from inkloop.settings import Settings, load_settings
from inkloop.store import ImageStore

# Seconds between the tries of an I/O task: the third try comes ~20 s after the first, long enough for a
# restarting database or Label Studio, short enough that a scheduled run fails while someone is still looking.
IO_RETRIES = 3
IO_RETRY_DELAYS = [2, 5, 15]


@dataclass
class FlowContext:
    """A flow run's settings and its connections; `close()` when done."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ImageStore

    @classmethod
    def open(cls, settings: Settings | None = None) -> FlowContext:
        settings = settings or load_settings()
        engine = open_ready_engine(settings)
        return cls(
            settings=settings, engine=engine, sessions=session_factory(engine), store=ImageStore(settings.store_url)
        )

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A transaction (see db.session.session_scope); write=False for one that only reads."""
        with session_scope(self.sessions, write=write) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def flow_context(settings: Settings | None = None) -> Iterator[FlowContext]:
    context = FlowContext.open(settings)
    try:
        yield context
    finally:
        context.close()


def is_transient(exc: BaseException | None) -> bool:
    """Whether a failure is worth another try: lost connections and timeouts, not bugs or bad data."""
    if exc is None:
        return False
    if isinstance(exc, TransientError | OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


# The errors of services that did not answer when this process's run began (flows/runner.check_services): while
# `not_retried` holds them, a task failing with one fails at once. A list, not a context variable: Prefect may run
# tasks in threads of its own, which would not see a context variable's value.
_NOT_RETRIED: list[type[BaseException]] = []


@contextmanager
def not_retried(*errors: type[BaseException]) -> Iterator[None]:
    """While inside, a task that fails with one of `errors` is not retried. For a service found down just before
    the run: retrying would only fail again, 22 s later per task (the loop's route and sync with Label Studio down
    waited 44 s for that). A service that was up when the run began is retried as before."""
    _NOT_RETRIED.extend(errors)
    try:
        yield
    finally:
        for error in errors:
            _NOT_RETRIED.remove(error)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry a task only when it failed on I/O, and not on a service that was
    already down when the run began (`not_retried`)."""
    exc = getattr(state, "data", None)
    if isinstance(exc, tuple(_NOT_RETRIED)):
        return False
    return is_transient(exc if isinstance(exc, BaseException) else None)


# The options of every task that does I/O: `@task(name=..., **IO_TASK)`. Flow-run state lives in the database,
# not in Prefect's result cache, so tasks are never cached.
IO_TASK: dict[str, Any] = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_on_io,
    "cache_policy": NO_CACHE,
}


class FlowSummary(BaseModel):
    """What a flow run did. The flow returns it; `publish` shows it in Prefect's UI and `inkloop flow run` prints
    the same rows (or `model_dump_json()` with --json)."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) for every field that says something, breakdowns as "audit 2, flagged 1"."""
        data = self.model_dump()
        data["seconds"] = data.pop("seconds")  # the counts first, how long it took last
        return [
            (name.replace("_", " "), _shown(value))
            for name, value in data.items()
            if value is not None and value != {} and value != []
        ]


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items())  # keys are codes: blank, low_confidence
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):  # a rate or error to 4 decimals (CER 0.0191), a count or duration to 2
        return f"{value:,.{4 if abs(value) < 1 else 2}f}".rstrip("0").rstrip(".")
    return str(value)


def summary_markdown(title: str, summary: FlowSummary) -> str:
    """The summary as a two-column Markdown table under a heading: the one format of every flow's artifact."""
    lines = [f"# {title}", "", "| | this run |", "|---|---|"]
    lines += [f"| {label} | {value.replace('|', '/')} |" for label, value in summary.rows()]
    return "\n".join(lines)


S = TypeVar("S", bound=FlowSummary)


def finish(summary: S, *, started: float, name: str, title: str) -> S:
    """End a flow run the way every flow does: the seconds since `started` (time.perf_counter) into the summary,
    the summary into the run's log, and into Prefect's UI as an artifact keyed `<name>-summary` (so runs of one
    flow can be compared). Returns the summary."""
    summary.seconds = round(time.perf_counter() - started, 2)
    get_run_logger().info("%s %s", name, summary.model_dump_json())
    create_markdown_artifact(
        key=f"{name}-summary", markdown=summary_markdown(title, summary), description="what this run did"
    )
    return summary
