"""The request log: the image in the store and its row committed before the client hears 200.

One transaction per request: the row is inserted first (so a database that refuses rows fails the request before
anything is stored), then the image is put in the store, then the transaction commits. So a committed row always
has its image; a crash before the commit leaves at worst an image no row names, never a row without its image.
If the commit itself fails after the image was stored, an image this request added is removed again unless a row
names it (the store is content-addressed: the same bytes may belong to another request).

This table (`requests`) plus the store is the whole contract the ingest flow reads; see docs/serving.md, "The request
log" for writing the same rows from another serving stack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import repo
from db.session import session_scope
from inkloop.errors import InkloopError
from inkloop.store import ImageStore, sha256_hex

log = logging.getLogger(__name__)


class NotRecorded(InkloopError):
    """The image or its row could not be written: the client must not get a 200."""


class _StoreFailed(Exception):
    """The store refused the image; the transaction rolls back."""


@dataclass
class Entry:
    """One answered request; every field but `data` is a column of its `requests` row."""

    request_id: str
    data: bytes
    image_format: str
    image_width: int
    image_height: int
    model_version: str
    text: str
    confidence: float
    line_confidences: list[float]
    line_boxes: list[tuple[float, float, float, float]]
    latency_ms: float
    created_at: datetime
    document: str | None = None
    line_outlines: list[list[tuple[float, float]]] | None = None

    def row_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "data"}


class RequestLog:
    def __init__(self, sessions: sessionmaker[Session], store: ImageStore) -> None:
        self.sessions, self.store = sessions, store

    def record(self, entry: Entry) -> str:
        """Insert the row, store the image, commit; returns the image key. Raises NotRecorded, leaving nothing."""
        key = sha256_hex(entry.data)
        added_image = False
        try:
            with session_scope(self.sessions) as session:
                repo.log_request(session=session, image_sha256=key, image_bytes=len(entry.data), **entry.row_fields())
                try:
                    added_image = not self.store.exists(key)
                    self.store.put(entry.data)
                except Exception as exc:
                    raise _StoreFailed(exc) from exc
        except _StoreFailed as failed:
            cause = failed.__cause__
            raise NotRecorded(f"the image could not be stored ({type(cause).__name__}: {cause})") from cause
        except Exception as exc:
            if added_image:
                self._forget(key)
            raise NotRecorded(f"the request row could not be committed ({type(exc).__name__})") from exc
        return key

    def _forget(self, key: str) -> None:
        try:
            with self.sessions() as session:
                named = repo.image_is_logged(session=session, image_sha256=key)
            if not named:
                self.store.delete(key)
        except Exception:  # the database is down: leave the image; no row names it, so no flow ever reads it
            log.warning("could not remove image %s of an unrecorded request", key, exc_info=True)
