"""Is the database ready for this code? `open_ready_engine` is how the CLI, the flows and serving get their engine:
one check that the database is reachable and at the schema this code needs, with one wording for each way it is
not (run `inkloop init`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.migrate import schema_revision
from db.session import open_engine, session_factory, session_scope
from inkloop.errors import SchemaNotReadyError
from inkloop.settings import Settings


def open_ready_engine(settings: Settings, *, wait_s: float = 0.0) -> Engine:
    """An engine on a database at the schema this code needs, or SchemaNotReadyError saying to run init."""
    engine = open_engine(settings, wait_s=wait_s)
    try:
        revision, head = schema_revision(engine, settings)
    except BaseException:
        engine.dispose()
        raise
    if revision != head:
        engine.dispose()
        if revision is None:
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} has no inkloop schema; run `inkloop init`"
            )
        raise SchemaNotReadyError(
            f"database {settings.masked_database_url()} is at schema {revision}, this inkloop needs {head}; "
            "run `inkloop init` to migrate"
        )
    return engine


@contextmanager
def ready_session(settings: Settings, *, write: bool = True) -> Iterator[Session]:
    """One transaction on the ready database, for a command or a script that needs only that: the engine is
    opened for it and disposed after (session_scope's commit and rollback rules)."""
    engine = open_ready_engine(settings)
    try:
        with session_scope(session_factory(engine), write=write) as session:
            yield session
    finally:
        engine.dispose()
