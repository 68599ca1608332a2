"""Alembic, driven from code: the migration scripts live in db/migrations, the URL comes from settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from db.session import open_engine
from inkloop.errors import DatabaseError, SchemaNotReadyError, first_line
from inkloop.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation treats % specially; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads ({heads}); merge them")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database, or None when it has no inkloop schema."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_revision(engine: Engine, settings: Settings) -> tuple[str | None, str]:
    """(the revision stamped in the database or None, the head revision this code needs)."""
    try:
        return current_revision(engine), head_revision()
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach database {settings.masked_database_url()}: {first_line(exc)}") from None


def has_any_table(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@dataclass(frozen=True)
class Migrated:
    before: str | None  # the revision the database was at (None: empty)
    revision: str  # the revision it is at now: the head

    @property
    def changed(self) -> bool:
        return self.before != self.revision


def init_database(settings: Settings, *, wait_s: float = 0.0) -> Migrated:
    """Create (SQLite) or reach (waiting up to `wait_s` s) the database and migrate it to head. Refuses a
    database that has tables but no inkloop revision: inkloop did not create it."""
    engine = open_engine(settings, create=True, wait_s=wait_s)
    try:
        before, head = schema_revision(engine, settings)
        if before is None and has_any_table(engine):
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} has tables but no inkloop schema revision; "
                "refusing to migrate a database inkloop did not create"
            )
        if before != head:
            try:
                upgrade(settings.database_url)
            except SQLAlchemyError as exc:
                raise DatabaseError(f"migrating {settings.masked_database_url()} failed: {first_line(exc)}") from None
        revision, _ = schema_revision(engine, settings)
    finally:
        engine.dispose()
    return Migrated(before=before, revision=revision or head)
