"""Engines and sessions. SQLite gets the pragmas a multi-process service needs; PostgreSQL gets pre-ping.

The CLI, the flows and serving get their engine from db/ready.py (`open_ready_engine`), which checks the schema
too; this module knows nothing of migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db import guard
from inkloop.errors import DatabaseError, SchemaNotReadyError, first_line
from inkloop.settings import Settings
from inkloop.wait import WaitTimeoutError, wait_until


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. For SQLite the parent folder must exist (`inkloop init` creates it). Every statement's
    parameters pass db/guard.py, so both databases refuse a text neither can store the same way."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    event.listen(engine, "before_cursor_execute", guard.check_statement)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the server write while flows read; foreign keys are off in SQLite unless asked for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Python's sqlite3 starts transactions itself, only before DML, so a SAVEPOINT issued first opens the
    # transaction and its RELEASE commits it: a row meant to commit with the image it names would be durable
    # before the image is. Take transaction control away from the driver; SQLAlchemy emits BEGIN (below).
    dbapi_connection.isolation_level = None


# A transaction that reads and then writes must take SQLite's write lock when it begins: under WAL, a deferred
# transaction whose snapshot another process has since written past fails its first write at once with "database
# is locked" (SQLITE_BUSY_SNAPSHOT), without waiting out busy_timeout. Writers ask for BEGIN IMMEDIATE with this
# execution option (session_scope does); readers stay deferred so they never wait for a writer.
SQLITE_BEGIN = "sqlite_begin"


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "")
    connection.exec_driver_sql(f"BEGIN {mode}".rstrip())


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other backends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on `engine` whose writes pass db/guard.py, column by column, before they are flushed."""
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_flush", guard.check_flush)
    event.listen(factory, "do_orm_execute", guard.check_orm_statement)
    return factory


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool = True) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back (and nothing kept) when it raises. On SQLite a
    `write` transaction holds the write lock from its start (waiting up to busy_timeout for it); pass
    write=False for a read-only block so it never waits for a writer."""
    session = factory()
    try:
        if write:
            session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(engine: Engine) -> None:
    """One round trip to the database (a health check); raises when it does not answer."""
    with engine.connect() as connection:
        connection.execute(text("select 1"))


def open_engine(settings: Settings, *, create: bool = False, wait_s: float = 0.0) -> Engine:
    """An engine on INKLOOP_DATABASE_URL once a connection succeeds, retrying for up to `wait_s` seconds (a
    database container may still be starting). A SQLite file must exist unless `create` (then its folder is
    made). Raises SchemaNotReadyError or DatabaseError, with the password masked."""
    path = sqlite_path(settings.database_url)
    if path is not None:
        if not create and not path.exists():
            raise SchemaNotReadyError(f"no database at {path}; run `inkloop init` first")
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)

    def connects() -> bool:
        with engine.connect():
            return True

    try:
        wait_until(connects, timeout_s=wait_s, interval_s=1.0, what="a connection", retry_on=(OperationalError,))
    except WaitTimeoutError as exc:
        engine.dispose()
        detail = first_line(exc.last_error) if exc.last_error is not None else str(exc)
        raise DatabaseError(f"cannot reach database {settings.masked_database_url()}: {detail}") from None
    return engine
