"""Named locks across processes and machines, held by the database the processes share: two retrains never run
at once, whichever scheduler or terminal started them.

PostgreSQL: a session advisory lock on a connection held for the duration. SQLite (one machine by nature): an
exclusive `flock` on a file beside the database. Both are released by the operating system or the server when the
holder dies, so a retrain killed with SIGKILL never leaves a lock behind for someone to clear by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, func, select

from inkloop.errors import BusyError


def _key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(f"inkloop:{name}".encode()).digest()[:8], "big", signed=True)


def _lock_file(engine: Engine, name: str) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BusyError("an in-memory SQLite database cannot hold a lock between processes")
    return Path(f"{database}.{name}.lock")


@contextmanager
def exclusive(engine: Engine, name: str, *, wait: bool) -> Iterator[None]:
    """Hold the lock `name` for the block. Without `wait`, BusyError at once when another process holds it."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            if wait:
                connection.execute(select(func.pg_advisory_lock(_key(name))))
            elif not connection.scalar(select(func.pg_try_advisory_lock(_key(name)))):
                raise BusyError(f"another process holds the {name} lock")
            connection.commit()  # the lock belongs to the session, not to a transaction
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(_key(name))))
                connection.commit()
        return
    path = _lock_file(engine, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise BusyError(f"another process holds the {name} lock ({path})") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
