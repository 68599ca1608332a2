"""Images (one row per stored image: its validation status, features and perceptual hash) and the flows' watermarks
(how far each flow has read the request log)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import FlowWatermark, Image, utcnow
from db.repo.common import add_unique, enum_value
from inkloop.domain import ImageSource, ImageStatus
from inkloop.errors import ConflictError, InkloopError, NotFoundError


def upsert_image(
    *,
    session: Session,
    sha256: str,
    source: str | ImageSource,
    byte_size: int,
    format: str | None = None,
    width: int | None = None,
    height: int | None = None,
) -> Image:
    """The image row for `sha256`, created if missing. The same bytes logged twice are one image."""
    source = enum_value(ImageSource, source, "image source")
    existing = session.scalar(select(Image).where(Image.sha256 == sha256))
    if existing is not None:
        return existing
    row = Image(sha256=sha256, source=source, byte_size=byte_size, format=format, width=width, height=height)
    try:
        add_unique(session, row, f"image {sha256} already exists")
    except ConflictError:
        # Another writer inserted it between our select and insert: theirs is as good as ours.
        return session.scalars(select(Image).where(Image.sha256 == sha256)).one()
    return row


def validated_images(*, session: Session, sha256s: Iterable[str]) -> set[str]:
    """Those of these images that ingest has already validated (valid or quarantined)."""
    wanted = list(dict.fromkeys(sha256s))
    if not wanted:
        return set()
    query = select(Image.sha256).where(Image.sha256.in_(wanted), Image.status != ImageStatus.pending)
    return set(session.scalars(query))


def set_image_validation(
    *,
    session: Session,
    sha256: str,
    status: str | ImageStatus,
    reasons: Sequence[str] = (),
    features: dict[str, Any] | None = None,
    phash: str | None = None,
) -> Image:
    status = enum_value(ImageStatus, status, "image status")
    image = session.scalar(select(Image).where(Image.sha256 == sha256))
    if image is None:
        raise NotFoundError(f"no image {sha256}")
    if status is ImageStatus.quarantined and not reasons:
        raise InkloopError(f"quarantining image {sha256} needs at least one reason")
    image.status = status
    image.quarantine_reasons = list(reasons) if status is ImageStatus.quarantined else None
    if features is not None:
        image.features = features
    if phash is not None:
        image.phash = phash
    image.validated_at = utcnow()
    session.flush()
    return image


def get_watermark(*, session: Session, name: str) -> int:
    row = session.get(FlowWatermark, name)
    return 0 if row is None else row.position


def set_watermark(
    *, session: Session, name: str, position: int, details: dict[str, Any] | None = None, rewind: bool = False
) -> FlowWatermark:
    """Move a flow's watermark. Moving it backwards (re-reading the log) must be asked for with `rewind=True`."""
    row = session.get(FlowWatermark, name, with_for_update=True)
    if row is None:
        row = FlowWatermark(name=name, position=position, details=details)
        add_unique(session, row, f"watermark {name} was created concurrently; rerun")
        return row
    if position < row.position and not rewind:
        raise ConflictError(f"watermark {name} is at {row.position}; refusing to move it back to {position}")
    row.position = position
    row.details = details
    row.updated_at = utcnow()
    session.flush()
    return row


def images_by_sha(*, session: Session, sha256s: Iterable[str]) -> dict[str, Image]:
    """The image rows of these keys (missing ones are not in the result)."""
    wanted = list(dict.fromkeys(sha256s))
    found: dict[str, Image] = {}
    for start in range(0, len(wanted), 5000):
        query = select(Image).where(Image.sha256.in_(wanted[start : start + 5000]))
        found.update({row.sha256: row for row in session.scalars(query)})
    return found
