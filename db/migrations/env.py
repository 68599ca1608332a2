"""Alembic environment: target metadata from db.models, database URL from inkloop settings.

`db.migrate` passes the URL explicitly; the `alembic` command line (alembic.ini at the repository root) leaves it
unset, and then INKLOOP_DATABASE_URL (or its embedded default) is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypedDict

from alembic import context
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import make_url

from db.models import Base, UTCDateTime
from db.session import make_engine
from inkloop.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


def _render_item(type_: str, obj: object, autogen_context: object) -> str | Literal[False]:
    # Migrations must not import db.models (it changes later); write inkloop's column types as plain SQLAlchemy.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


class _Options(TypedDict):
    """The `context.configure` options that offline and online runs share."""

    target_metadata: MetaData
    render_as_batch: bool
    compare_type: bool
    render_item: Callable[[str, object, object], str | Literal[False]]


def _options(url: str) -> _Options:
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": make_url(url).get_backend_name() == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


def run_offline() -> None:
    url = _url()
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options(url))
    with context.begin_transaction():
        context.run_migrations()


# Any fixed number: the PostgreSQL advisory lock that serializes concurrent `inkloop init`s (several API replicas
# or workers starting together). Alembic reads the current revision after the lock is taken, so the second one
# to get it finds the schema at head and does nothing.
_MIGRATION_LOCK_ID = 0x1A4B_100F


def run_online() -> None:
    url = _url()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table (copy, drop, rename); with foreign keys enforced, dropping the old
                # table would delete the rows that reference it ON DELETE CASCADE (0007's rebuild of
                # annotation_tasks took every annotation with it). SQLite ignores this PRAGMA inside a
                # transaction, so it goes to the driver before one begins; the check below stands in for it.
                _driver_pragma(connection, "foreign_keys=OFF")
            context.configure(connection=connection, **_options(url))
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                context.run_migrations()
                if sqlite:
                    broken = connection.execute(text("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"the migration left {len(broken)} rows naming a missing row: {broken[:3]}")
            if sqlite:
                _driver_pragma(connection, "foreign_keys=ON")
    finally:
        engine.dispose()


def _driver_pragma(connection: Connection, pragma: str) -> None:
    """A PRAGMA on the SQLite driver's connection itself: outside any transaction SQLAlchemy would begin."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA {pragma}")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
