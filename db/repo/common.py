"""What every query module shares: enum values checked with a clear error, and inserts that report a unique
violation as a ConflictError."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inkloop.errors import ConflictError, InkloopError

E = TypeVar("E", bound=enum.Enum)


def enum_value(enum_cls: type[E], value: Any, what: str) -> E:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InkloopError(f"invalid {what} {value!r}: expected one of {allowed}") from None


def add_unique(session: Session, row: Any, conflict: str) -> None:
    """Add and flush `row` in a savepoint, so a unique violation leaves the caller's transaction usable."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise ConflictError(conflict) from None
