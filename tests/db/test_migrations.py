"""Migrations on SQLite and PostgreSQL: every step up and down works, and the ORM matches the migrated schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from db.migrate import alembic_config, current_revision, downgrade, head_revision, upgrade
from db.models import Base
from db.session import make_engine

ROOT = Path(__file__).resolve().parents[2]
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
    "upload_rejections",
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


def test_concurrent_inits_on_postgresql_serialize(postgres_url: str, tmp_path: Path) -> None:
    # Several replicas running `inkloop init` at once (separate processes, as in production): all succeed and
    # the schema is migrated exactly once.
    inkloop = Path(sys.executable).with_name("inkloop")
    env = {**os.environ, "INKLOOP_DATABASE_URL": postgres_url, "INKLOOP_HOME": str(tmp_path / "home")}
    processes = [
        subprocess.Popen([str(inkloop), "init"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert sum("migrated from empty" in out for _, out, _ in outcomes) >= 1
    assert _revision(postgres_url) == head_revision()
    assert _tables(postgres_url) == EXPECTED_TABLES


def test_alembic_command_line_reads_the_url_from_settings(tmp_path: Path) -> None:
    # Developers run `alembic revision --autogenerate` / `alembic upgrade head`; env.py takes INKLOOP_DATABASE_URL.
    database = tmp_path / "from-settings.db"
    env = {**os.environ, "INKLOOP_DATABASE_URL": f"sqlite:///{database}"}
    alembic = Path(sys.executable).with_name("alembic")
    result = subprocess.run(
        [str(alembic), "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert _revision(f"sqlite:///{database}") == head_revision()
