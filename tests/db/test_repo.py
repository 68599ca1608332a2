"""Repository functions against real SQLite and PostgreSQL databases migrated to head."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from db import repo
from db.models import ModelVersion, Request
from inkloop.domain import ImageStatus, ModelStatus, Split, TaskState
from inkloop.errors import ConflictError, InkloopError, NotFoundError

SHA_A = "a" * 64
SHA_B = "b" * 64


def _log(session: Session, request_id: str | None = None, sha: str = SHA_A, **overrides: object) -> Request:
    fields: dict[str, object] = {
        "request_id": request_id or str(uuid.uuid4()),
        "image_sha256": sha,
        "image_bytes": 1234,
        "image_format": "png",
        "model_version": "base-1",
        "text": "hello\nworld",
        "confidence": 0.42,
        "line_confidences": [0.5, 0.34],
        "latency_ms": 12.5,
    }
    fields.update(overrides)
    return repo.log_request(session=session, **fields)  # type: ignore[arg-type]


def test_request_log_round_trip(session: Session) -> None:
    logged = _log(session, "req-1")
    session.commit()
    found = repo.get_request(session=session, request_id="req-1")
    assert found.id == logged.id
    assert found.text == "hello\nworld"
    assert found.line_confidences == [0.5, 0.34]
    assert found.created_at.tzinfo is not None
    with pytest.raises(NotFoundError, match="no logged request with id 'nope'"):
        repo.get_request(session=session, request_id="nope")


def test_duplicate_request_id_is_a_conflict_and_keeps_the_transaction_usable(session: Session) -> None:
    _log(session, "dup")
    with pytest.raises(ConflictError, match="request id dup is already logged"):
        _log(session, "dup")
    _log(session, "after-the-conflict")
    session.commit()
    assert session.scalar(select(Request.request_id).where(Request.request_id == "after-the-conflict"))


def test_requests_after_pages_in_log_order(session: Session) -> None:
    ids = [_log(session, f"r{i}").id for i in range(5)]
    session.commit()
    assert [r.id for r in repo.requests_after(session=session, after_id=0, limit=2)] == ids[:2]
    assert [r.id for r in repo.requests_after(session=session, after_id=ids[1], limit=10)] == ids[2:]
    assert repo.requests_after(session=session, after_id=ids[-1], limit=10) == []
    with pytest.raises(InkloopError, match="limit must be positive"):
        repo.requests_after(session=session, after_id=0, limit=0)


def test_feedback(session: Session) -> None:
    _log(session, "req-f")
    row = repo.add_feedback(session=session, request_id="req-f", flag="incorrect", correction="hello\nword")
    session.commit()
    assert row.request.request_id == "req-f"
    assert [f.flag.value for f in repo.get_request(session=session, request_id="req-f").feedback] == ["incorrect"]
    with pytest.raises(NotFoundError, match="no logged request"):
        repo.add_feedback(session=session, request_id="unknown", flag="other")
    with pytest.raises(InkloopError, match="invalid feedback flag 'rude'"):
        repo.add_feedback(session=session, request_id="req-f", flag="rude")


def test_images_are_idempotent_and_validated(session: Session) -> None:
    first = repo.upsert_image(session=session, sha256=SHA_A, source="production", byte_size=10, format="png")
    again = repo.upsert_image(session=session, sha256=SHA_A, source="production", byte_size=10, format="png")
    assert first.id == again.id
    assert first.status is ImageStatus.pending
    with pytest.raises(InkloopError, match="needs at least one reason"):
        repo.set_image_validation(session=session, sha256=SHA_A, status="quarantined")
    image = repo.set_image_validation(
        session=session, sha256=SHA_A, status="quarantined", reasons=["blank image"], phash="00ff00ff00ff00ff"
    )
    assert image.quarantine_reasons == ["blank image"]
    image = repo.set_image_validation(session=session, sha256=SHA_A, status="valid", features={"width": 640})
    assert image.quarantine_reasons is None and image.features == {"width": 640}
    with pytest.raises(NotFoundError):
        repo.set_image_validation(session=session, sha256=SHA_B, status="valid")


def test_watermark_moves_forward_unless_rewound(session: Session) -> None:
    assert repo.get_watermark(session=session, name="ingest") == 0
    repo.set_watermark(session=session, name="ingest", position=10)
    repo.set_watermark(session=session, name="ingest", position=25, details={"batch": 2})
    session.commit()
    assert repo.get_watermark(session=session, name="ingest") == 25
    with pytest.raises(ConflictError, match="refusing to move it back"):
        repo.set_watermark(session=session, name="ingest", position=5)
    repo.set_watermark(session=session, name="ingest", position=5, rewind=True)
    assert repo.get_watermark(session=session, name="ingest") == 5


def test_tasks_and_annotation_revisions(session: Session) -> None:
    _log(session, "req-t")
    repo.upsert_image(session=session, sha256=SHA_A, source="production", byte_size=10)
    task = repo.create_task(
        session=session,
        uid=str(uuid.uuid4()),
        project="paragraphs",
        image_sha256=SHA_A,
        reason="low_confidence",
        priority=0.58,
        request_id="req-t",
        model_version="base-1",
        prediction_text="helo",
    )
    assert task.state is TaskState.queued
    with pytest.raises(ConflictError, match="already has a task"):
        repo.create_task(
            session=session,
            uid=str(uuid.uuid4()),
            project="paragraphs",
            image_sha256=SHA_A,
            reason="audit",
            priority=0.1,
        )
    when = datetime.now(UTC)
    first = repo.add_annotation_revision(
        session=session,
        task_id=task.id,
        ls_annotation_id=77,
        annotator="ann@x",
        annotated_at=when,
        text="hello",
    )
    second = repo.add_annotation_revision(
        session=session,
        task_id=task.id,
        ls_annotation_id=77,
        annotator="ann@x",
        annotated_at=when + timedelta(minutes=1),
        text="hello!",
        lines=[{"text": "hello!", "box": [0, 0, 10, 5]}],
    )
    session.commit()
    assert (first.revision, second.revision) == (1, 2)
    assert [a.text for a in task.annotations] == ["hello", "hello!"]
    with pytest.raises(NotFoundError):
        repo.add_annotation_revision(
            session=session, task_id=999_999, ls_annotation_id=1, annotator="x", annotated_at=when, text="x"
        )


def test_dataset_versions_are_frozen_by_content(session: Session) -> None:
    for sha in (SHA_A, SHA_B):
        repo.upsert_image(session=session, sha256=sha, source="synthetic", byte_size=10)
    members = [repo.MemberSpec(SHA_A, Split.train, "one"), repo.MemberSpec(SHA_B, Split.val, "two")]
    v1 = repo.create_dataset_version(session=session, version="ds-1", members=members)
    assert v1.counts == {"train": 1, "val": 1, "test": 0}
    assert repo.create_dataset_version(session=session, version="ds-1b", members=list(reversed(members))).id == v1.id
    relabelled = [repo.MemberSpec(SHA_A, Split.train, "one!"), members[1]]
    v2 = repo.create_dataset_version(session=session, version="ds-2", members=relabelled, parent_version="ds-1")
    assert v2.id != v1.id and v2.parent_id == v1.id
    with pytest.raises(ConflictError, match="already exists with other content"):
        repo.create_dataset_version(session=session, version="ds-2", members=[members[0]])
    with pytest.raises(InkloopError, match="appears twice"):
        repo.create_dataset_version(session=session, version="ds-3", members=[members[0], members[0]])
    with pytest.raises(InkloopError, match="would be empty"):
        repo.create_dataset_version(session=session, version="ds-4", members=[])
    session.commit()
    assert {m.text for m in v2.members} == {"one!", "two"}


def test_promotion_keeps_exactly_one_champion(session: Session) -> None:
    repo.register_model(session=session, version="m1", artifact_key="models/m1.pt", metrics={"cer": 0.1})
    repo.register_model(session=session, version="m2", artifact_key="models/m2.pt", parent_version="m1")
    with pytest.raises(ConflictError, match="already registered"):
        repo.register_model(session=session, version="m1", artifact_key="x")
    assert repo.get_champion(session=session) is None
    repo.promote_model(session=session, version="m1")
    repo.promote_model(session=session, version="m2")
    session.commit()
    statuses = {m.version: m.status for m in repo.list_models(session=session)}
    assert statuses == {"m1": ModelStatus.retired, "m2": ModelStatus.champion}
    assert repo.get_champion(session=session).version == "m2"  # type: ignore[union-attr]
    repo.promote_model(session=session, version="m1")  # a rollback
    assert repo.get_champion(session=session).version == "m1"  # type: ignore[union-attr]
    m2 = repo.get_model(session=session, version="m2")
    m2.status = ModelStatus.rejected
    with pytest.raises(ConflictError, match="rejected by its gate"):
        repo.promote_model(session=session, version="m2")
    repo.promote_model(session=session, version="m2", allow_rejected=True)
    with pytest.raises(NotFoundError, match="no model version 'm9'"):
        repo.promote_model(session=session, version="m9")


def test_database_itself_refuses_a_second_champion(session: Session) -> None:
    for version in ("c1", "c2"):
        repo.register_model(session=session, version=version, artifact_key=f"models/{version}.pt")
    session.commit()
    session.execute(text("UPDATE model_versions SET status = 'champion' WHERE version = 'c1'"))
    with pytest.raises(IntegrityError):
        session.execute(text("UPDATE model_versions SET status = 'champion' WHERE version = 'c2'"))
    session.rollback()


def test_foreign_keys_are_enforced(session: Session) -> None:
    with pytest.raises(IntegrityError):
        session.execute(
            text("INSERT INTO feedback (request_id, flag, created_at) VALUES ('ghost', 'other', :t)"),
            {"t": datetime.now(UTC)},
        )
    session.rollback()


def test_enum_columns_have_check_constraints(session: Session) -> None:
    repo.register_model(session=session, version="e1", artifact_key="x")
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(text("UPDATE model_versions SET status = 'bogus' WHERE version = 'e1'"))
    session.rollback()


def test_naive_datetimes_are_refused(session: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _log(session, "naive", created_at=datetime(2026, 1, 1))  # noqa: DTZ001
    session.rollback()


def test_status_counts(session: Session) -> None:
    _log(session, "s1")
    _log(session, "s2", sha=SHA_B)
    repo.upsert_image(session=session, sha256=SHA_A, source="production", byte_size=1)
    repo.upsert_image(session=session, sha256=SHA_B, source="production", byte_size=1)
    repo.set_image_validation(session=session, sha256=SHA_B, status="quarantined", reasons=["blank"])
    repo.register_model(session=session, version="m1", artifact_key="k")
    repo.promote_model(session=session, version="m1")
    session.commit()
    counts = repo.status_counts(session=session)
    assert counts.requests == 2
    assert counts.images == {"pending": 1, "valid": 0, "quarantined": 1}
    assert counts.model_versions == {"candidate": 0, "champion": 1, "rejected": 0, "retired": 0}
    assert sum(counts.annotation_tasks.values()) == 0 and counts.annotations == 0 and counts.dataset_versions == 0
    assert session.scalar(select(ModelVersion.status)) is ModelStatus.champion


def test_a_read_then_write_transaction_waits_for_a_concurrent_writer_instead_of_failing(migrated_url: str) -> None:
    """A write transaction that reads first, while another process commits a write, must wait for its turn: on
    SQLite a deferred BEGIN fails its first write at once ("database is locked") once its snapshot is stale."""
    import threading

    from db.models import UploadRejection
    from db.session import make_engine, session_factory, session_scope

    first, second = make_engine(migrated_url), make_engine(migrated_url)
    count = select(func.count()).select_from(UploadRejection)
    has_read, errors = threading.Event(), []

    def other_writer() -> None:
        has_read.wait(10)
        try:
            with session_scope(session_factory(second)) as session:
                repo.log_rejection(session=session, code="other", byte_size=1)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        with session_scope(session_factory(first)) as session:
            seen = session.scalar(count)
            has_read.set()
            time.sleep(0.5)  # the other writer commits now unless this transaction holds the write lock
            repo.log_rejection(session=session, code="mine", byte_size=seen)
        thread.join(30)
        assert not errors, errors
        with session_scope(session_factory(first), write=False) as session:
            assert session.scalar(count) == 2
    finally:
        has_read.set()
        thread.join(30)
        first.dispose()
        second.dispose()


def test_a_savepoint_insert_stays_invisible_until_its_transaction_commits(migrated_url: str) -> None:
    """The request log inserts the row (in a savepoint) before it stores the image and commits after: on SQLite the
    driver's own transaction handling would commit at the savepoint's release, before the image exists."""
    from db.session import make_engine, session_factory

    writer, reader = make_engine(migrated_url), make_engine(migrated_url)
    count = text("select count(*) from requests")
    try:
        with session_factory(writer)() as session, session.begin():
            repo.log_request(
                session=session,
                request_id="r-savepoint",
                image_sha256="a" * 64,
                image_bytes=1,
                model_version="m",
                text="t",
                confidence=0.5,
                latency_ms=1.0,
            )
            with reader.connect() as connection:
                assert connection.execute(count).scalar() == 0, "the row was committed before its transaction"
        with reader.connect() as connection:
            assert connection.execute(count).scalar() == 1
    finally:
        writer.dispose()
        reader.dispose()
