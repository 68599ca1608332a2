"""Engines and sessions. SQLite gets the pragmas a multi-process service needs; PostgreSQL gets pre-ping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. For SQLite the parent folder must exist (`inkloop init` creates it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
    return sessionmaker(engine, expire_on_commit=False)


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
