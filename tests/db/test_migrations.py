"""Migrations on SQLite and PostgreSQL: every step up and down works, and the ORM matches the migrated schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

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
    "promotions",
    "drift_references",
    "gt_pages",
    "gt_lines",
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


def _images(connection: Any, source: str) -> None:
    """Two valid image rows, keys 'a' * 64 and 'b' * 64, written as a migration's earlier schema holds them."""
    from sqlalchemy import text

    connection.execute(
        text(
            "INSERT INTO images (sha256, source, byte_size, status, created_at) "
            "VALUES (:sha, :source, 1, 'valid', CURRENT_TIMESTAMP)"
        ),
        [{"sha": c * 64, "source": source} for c in "ab"],
    )


def test_0004_rederives_stored_labels_from_the_answers_keeping_them_raw(database_url: str) -> None:
    # Stored before 0004: the paragraph box as the text even where the annotator had corrected a line in its box.
    from sqlalchemy import text

    upgrade(database_url, "0003")
    prediction = "dear Sam,\nsee yuo soon"
    boxes = [{"text": "dear Sam,", "box": [5, 10, 80, 12]}, {"text": "see you soon", "box": [5, 30, 70, 12]}]
    clash = [{"text": "dear Sam,", "box": [5, 10, 80, 12]}, {"text": "see you later", "box": [5, 30, 70, 12]}]
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            _images(connection, "production")
            for task_id, sha in ((1, "a" * 64), (2, "b" * 64)):
                connection.execute(
                    text(
                        "INSERT INTO annotation_tasks (id, uid, project, image_sha256, reason, priority, state, "
                        "prediction_text, created_at, updated_at) VALUES (:id, :uid, 'p', :sha, 'audit', 0, "
                        "'completed', :prediction, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": task_id, "uid": f"u{task_id}", "sha": sha, "prediction": prediction},
                )
            for task_id, paragraph, lines in ((1, prediction, boxes), (2, "dear Sam,\nsee you soon", clash)):
                connection.execute(
                    text(
                        "INSERT INTO annotations (task_id, ls_annotation_id, revision, annotator, text, lines, "
                        "unreadable, skipped, annotated_at, synced_at) VALUES (:task, :ls, 1, 'a', :text, :lines, "
                        "false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"task": task_id, "ls": task_id, "text": paragraph, "lines": json.dumps(lines)},
                )
        upgrade(database_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT text, label_source, raw FROM annotations ORDER BY task_id")).all()
            states = connection.execute(text("SELECT state FROM annotation_tasks ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    fixed, disputed = rows
    assert fixed.text == "dear Sam,\nsee you soon" and fixed.label_source == "lines"
    raw = fixed.raw if isinstance(fixed.raw, dict) else json.loads(fixed.raw)
    assert raw == {"paragraph": prediction, "lines": boxes}
    assert disputed.label_source == "conflict"
    assert states == ["completed", "needs_review"]


def test_0007_lets_a_task_and_a_member_be_a_review_keeping_every_row(database_url: str) -> None:
    # The CHECK constraints of the enum columns are not compared by test_models_match_migrations: written here. On
    # SQLite they are changed by rebuilding the tables, which must not take the annotations of a task with them.
    from sqlalchemy import text

    task = (
        "INSERT INTO annotation_tasks (id, uid, project, image_sha256, reason, priority, state, created_at, "
        "updated_at) VALUES (:id, :uid, 'p', :sha, :reason, 1, 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    answer = (
        "INSERT INTO annotations (task_id, ls_annotation_id, revision, annotator, text, unreadable, skipped, "
        "annotated_at, synced_at) VALUES (:task, :task, 1, 'a', 'a line', false, false, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)"
    )
    count = "SELECT count(*) FROM annotations"
    upgrade(database_url, "0006")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            _images(connection, "imported")
            connection.execute(text(task), {"id": 1, "uid": "u1", "sha": "a" * 64, "reason": "audit"})
            connection.execute(text(answer), {"task": 1})
        engine.dispose()
        upgrade(database_url)
        with engine.begin() as connection:
            assert connection.execute(text(count)).scalar_one() == 1
            connection.execute(text(task), {"id": 2, "uid": "u2", "sha": "b" * 64, "reason": "review"})
            connection.execute(text(answer), {"task": 2})
            connection.execute(
                text(
                    "INSERT INTO dataset_versions (id, version, content_hash, created_at) "
                    "VALUES (1, 'ds-0001', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": "c" * 64},
            )
            connection.execute(
                text(
                    "INSERT INTO dataset_members (dataset_version_id, image_sha256, split, text, reason) "
                    "VALUES (1, :sha, 'train', 'a line', 'review')"
                ),
                {"sha": "b" * 64},
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(task), {"id": 3, "uid": "u3", "sha": "a" * 64, "reason": "whim"})
        engine.dispose()
        # Before 0007 no reason meant review: the downgrade keeps such tasks and members, as audits.
        downgrade(database_url, "0006")
        with engine.connect() as connection:
            reasons = connection.execute(text("SELECT reason FROM annotation_tasks ORDER BY id")).scalars().all()
            member = connection.execute(text("SELECT reason FROM dataset_members")).scalar_one()
            assert connection.execute(text(count)).scalar_one() == 2
        assert (reasons, member) == (["audit", "audit"], "audit")
    finally:
        engine.dispose()
