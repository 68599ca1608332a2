"""Real databases: SQLite files, and a PostgreSQL server (every test that uses it gets a database of its own).

PostgreSQL comes from TEST_POSTGRES_URL (default: the server CI runs at 127.0.0.1:5432, database `test`). Every
test that uses it gets a database of its own, created for it and dropped afterwards, so runs never collide.
An unreachable server FAILS those tests. To run without one on purpose, set TEST_POSTGRES_URL=skip: the tests
then say they were skipped and why (CI never sets it). Tests that use PostgreSQL are marked `postgres`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Parameters of the fixtures that run a test on each database: the PostgreSQL one carries the marker, so
# `-m "not postgres"` deselects exactly the runs that need the server.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    if url == "skip":
        pytest.skip("TEST_POSTGRES_URL=skip: PostgreSQL tests deliberately not run")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required and unreachable at {make_url(url).render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0]} (set TEST_POSTGRES_URL, or TEST_POSTGRES_URL=skip)"
        )
    finally:
        engine.dispose()
    return url


def _on_server(server_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def create_postgres_database(server_url: str) -> str:
    """A new, empty database on the test server; its URL. Drop it with drop_postgres_database."""
    name = f"inkloop_test_{uuid.uuid4().hex[:12]}"
    _on_server(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, url: str) -> None:
    _on_server(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def database_for(kind: str, folder: Path, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(URL of an empty database of `kind`, the PostgreSQL server URL to drop it from, or None for SQLite)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'inkloop.db'}", None
    server = request.getfixturevalue("postgres_server_url")
    return create_postgres_database(server), server


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; dropped afterwards."""
    url = create_postgres_database(postgres_server_url)
    try:
        yield url
    finally:
        drop_postgres_database(postgres_server_url, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database: each test using this runs once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


@pytest.fixture
def migrated_url(database_url: str) -> str:
    from db.migrate import upgrade

    upgrade(database_url)
    return database_url


@pytest.fixture
def session(migrated_url: str) -> Iterator[Session]:
    from db.session import make_engine, session_factory

    engine = make_engine(migrated_url)
    db_session = session_factory(engine)()
    try:
        yield db_session
    finally:
        db_session.close()
        engine.dispose()


@contextmanager
def session_on(url: str) -> Iterator[Session]:
    """A committed transaction on the database at `url`, on an engine of its own (disposed afterwards)."""
    from db.session import make_engine, session_factory, session_scope

    engine = make_engine(url)
    try:
        with session_scope(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()
