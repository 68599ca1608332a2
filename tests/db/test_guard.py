"""db/guard.py on SQLite and PostgreSQL: a text no database stores the same way (a NUL, a lone surrogate, more
characters than its column) fails with InvalidTextError on both, whatever path wrote it, and nothing is kept;
before the guard PostgreSQL raised a driver DataError and SQLite kept the text."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from db import repo
from db.models import Feedback, Request
from inkloop.errors import InvalidTextError

SHA = "a" * 64


def _request(session: Session, **overrides: object) -> Request:
    fields: dict[str, object] = {
        "request_id": str(uuid.uuid4()),
        "image_sha256": SHA,
        "image_bytes": 10,
        "model_version": "base-1",
        "text": "hello",
        "confidence": 0.5,
        "latency_ms": 1.0,
    }
    fields.update(overrides)
    return repo.log_request(session=session, **fields)  # type: ignore[arg-type]


def _change_text(session: Session, request_id: str, text: str) -> None:
    repo.get_request(session=session, request_id=request_id).text = text
    session.flush()


def _rows(session: Session) -> tuple[int, int]:
    return (
        int(session.scalar(select(func.count()).select_from(Request)) or 0),
        int(session.scalar(select(func.count()).select_from(Feedback)) or 0),
    )


WRITES: dict[str, tuple[Callable[[Session, str], object], str]] = {
    "feedback correction": (
        lambda s, rid: repo.add_feedback(session=s, request_id=rid, flag="other", correction="a\x00b"),
        r"^refused to store feedback\.correction: it contains a NUL character \(U\+0000\) at character 2$",
    ),
    "request text": (
        lambda s, rid: _request(s, text="line\x00"),
        r"^refused to store requests\.text: it contains a NUL character",
    ),
    "a lone surrogate": (
        lambda s, rid: _request(s, document="form \udcff"),
        r"^refused to store requests\.document: it is not valid Unicode: a lone surrogate \(U\+DCFF\)",
    ),
    "a JSON key": (
        lambda s, rid: _request(s, line_confidences=[{"bad\x00key": 1}]),
        r"^refused to store requests\.line_confidences\[0\] key 'bad\\x00key': it contains a NUL",
    ),
    "a JSON value": (
        lambda s, rid: _request(s, line_boxes=[[1, 2], ["x", "nested \x00"]]),
        r"^refused to store requests\.line_boxes\[1\]\[1\]: it contains a NUL",
    ),
    "a text longer than its column": (
        lambda s, rid: _request(s, model_version="m" * 65),
        r"^refused to store requests\.model_version: 65 characters where the column holds 64$",
    ),
    "a changed row": (
        lambda s, rid: _change_text(s, rid, "x\x00"),
        r"^refused to store requests\.text: it contains a NUL",
    ),
    "an ORM bulk insert": (
        lambda s, rid: s.execute(
            insert(Request),
            [{**_bulk_row(), "line_boxes": [["ok"]]}, {**_bulk_row(), "line_boxes": [["\x00"]]}],
        ),
        r"^refused to store requests\.line_boxes\[0\]\[0\]: it contains a NUL",
    ),
    "a query's parameter": (
        lambda s, rid: repo.get_request(session=s, request_id="a\x00b"),
        r"^refused to send parameter 'request_id_1' to the database: it contains a NUL character .*SELECT",
    ),
}


def _bulk_row() -> dict[str, object]:
    return {
        "request_id": str(uuid.uuid4()),
        "image_sha256": SHA,
        "image_bytes": 10,
        "model_version": "base-1",
        "text": "bulk",
        "confidence": 0.5,
        "latency_ms": 1.0,
    }


@pytest.mark.parametrize("name", list(WRITES))
def test_what_no_database_stores_fails_the_same_clear_way_and_keeps_nothing(session: Session, name: str) -> None:
    request_id = _request(session).request_id
    session.commit()
    before = _rows(session)
    write, message = WRITES[name]
    with pytest.raises(InvalidTextError, match=message):
        write(session, request_id)
    session.rollback()
    assert _rows(session) == before
    # The session is usable again: the refusal happened before anything reached the database.
    repo.add_feedback(session=session, request_id=request_id, flag="other", correction="fine")
    session.commit()
    assert _rows(session) == (before[0], before[1] + 1)


def test_a_refusal_in_a_savepoint_leaves_the_transaction_usable(session: Session) -> None:
    request_id = _request(session).request_id
    with pytest.raises(InvalidTextError):
        repo.add_feedback(session=session, request_id=request_id, flag="other", correction="\x00")
    repo.add_feedback(session=session, request_id=request_id, flag="incorrect", correction="after")
    session.commit()
    stored = session.scalars(select(Feedback.correction).where(Feedback.request_id == request_id)).all()
    assert stored == ["after"]


def test_what_both_databases_store_alike_passes(session: Session) -> None:
    # The guard is the databases' rule, not the entry points' stricter one: a control character an entry point
    # would refuse is stored and read back the same on both (a failed run's log may hold an ANSI colour).
    text = "escape \x1b[31m, bell \x07, tab\t, lines\r\n, emoji \U0001f600, NEL \x85"
    row = _request(session, text=text, line_boxes=[[text]], model_version="m" * 64)
    session.commit()
    session.expire_all()
    again = repo.get_request(session=session, request_id=row.request_id)
    assert (again.text, again.line_boxes) == (text, [[text]])
