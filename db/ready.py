"""Is the database ready for this code? `open_ready_engine` is how the CLI, the flows and serving get their engine:
one check that the database is reachable and at the schema this code needs, with one wording for each way it is
not (run `inkloop init`)."""

from __future__ import annotations

from sqlalchemy import Engine

from db.migrate import schema_revision
from db.session import open_engine
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
