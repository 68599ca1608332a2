"""Migrations on SQLite and PostgreSQL: every step up and down works, and the ORM matches the migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from db.migrate import alembic_config, current_revision, downgrade, head_revision, upgrade
from db.models import Base
from db.session import make_engine

EXPECTED_TABLES = {
    "requests",
    "images",
    "feedback",
    "annotation_tasks",
    "annotations",
    "synthetic_samples",
    "dataset_versions",
    "dataset_members",
    "model_versions",
    "training_runs",
    "gate_reports",
    "drift_reports",
    "flow_watermarks",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    upgrade(database_url)
    assert _revision(database_url) == head_revision()
    assert _tables(database_url) == EXPECTED_TABLES == set(Base.metadata.tables)

    downgrade(database_url, "base")
    assert _revision(database_url) is None
    assert _tables(database_url) == set()

    upgrade(database_url)
    assert _revision(database_url) == head_revision()
    assert _tables(database_url) == EXPECTED_TABLES


def test_each_revision_steps_up_and_down(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        upgrade(database_url, revision)
        assert _revision(database_url) == revision
    for expected_after in reversed([None, *revisions[:-1]]):
        downgrade(database_url, "-1")
        assert _revision(database_url) == expected_after


def test_models_match_migrations(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"db/models.py and db/migrations disagree; write a migration: {diff}"


def test_flow_queries_have_indexes(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = inspect(engine)
        indexed = {
            table: {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
            | {tuple(uq["column_names"]) for uq in inspector.get_unique_constraints(table)}
            for table in ("requests", "images", "annotation_tasks", "model_versions", "feedback")
        }
    finally:
        engine.dispose()
    assert ("request_id",) in indexed["requests"]
    assert ("created_at",) in indexed["requests"]
    assert ("status", "created_at") in indexed["images"]
    assert ("phash",) in indexed["images"]
    assert ("state", "priority") in indexed["annotation_tasks"]
    assert ("status",) in indexed["model_versions"]  # the one-champion partial unique index
    assert ("request_id",) in indexed["feedback"]
