"""What every flow shares: its handles on the database and the store, and the rule for what gets retried.

Flows are thin: each Prefect task calls a plain function of the package. Only I/O is retried (a database that
drops a connection, a store or Label Studio that times out); a bug or bad data fails at once, because retrying it
would only fail again, later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import current_revision, head_revision
from db.session import make_engine, session_factory, session_scope, sqlite_path
from inkloop.errors import DatabaseError, SchemaNotReadyError, TransientError
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
        path = sqlite_path(settings.database_url)
        if path is not None and not path.exists():
            raise SchemaNotReadyError(f"no database at {path}; run `inkloop init` first")
        engine = make_engine(settings.database_url)
        try:
            revision = current_revision(engine)
        except OperationalError as exc:
            engine.dispose()
            raise DatabaseError(f"cannot reach database {settings.masked_database_url()}: {_first_line(exc)}") from exc
        if revision != head_revision():
            engine.dispose()
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} is at schema {revision or 'none'}; run `inkloop init`"
            )
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


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


def is_transient(exc: BaseException | None) -> bool:
    """Whether a failure is worth another try: lost connections and timeouts, not bugs or bad data."""
    if exc is None:
        return False
    if isinstance(exc, TransientError | OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry a task only when it failed on I/O."""
    exc = getattr(state, "data", None)
    return is_transient(exc if isinstance(exc, BaseException) else None)


# The options of every task that does I/O: `@task(name=..., **IO_TASK)`. Flow-run state lives in the database,
# not in Prefect's result cache, so tasks are never cached.
IO_TASK: dict[str, Any] = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_on_io,
    "cache_policy": NO_CACHE,
}
