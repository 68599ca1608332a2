"""Imported ground truth: pages from PAGE XML or ALTO files and their lines (polygon, baseline, type, text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session, selectinload

from db.models import AnnotationTask, GroundTruthLine, GroundTruthPage, utcnow
from db.repo.common import add_unique
from inkloop.errors import ConflictError, NotFoundError


@dataclass(frozen=True)
class LineSpec:
    """One line as it is stored: coordinates in the page image's pixels."""

    text: str
    polygon: list[list[int]]
    baseline: list[list[int]]
    line_type: str | None = None
    line_id: str | None = None
    region_id: str | None = None


@dataclass(frozen=True)
class PageSpec:
    """An imported page as it is stored: its identity (collection, name), image, source and licence."""

    collection: str
    name: str
    image_sha256: str
    image_name: str
    xml_sha256: str
    format: str
    schema: str
    width: int
    height: int
    licence: str | None
    attribution: str | None
    document: str | None
    lines: Sequence[LineSpec]


def gt_page(*, session: Session, collection: str, name: str) -> GroundTruthPage | None:
    query = select(GroundTruthPage).where(GroundTruthPage.collection == collection, GroundTruthPage.name == name)
    return session.scalar(query)


def _line_rows(page_id: int, lines: Sequence[LineSpec]) -> list[GroundTruthLine]:
    return [
        GroundTruthLine(
            page_id=page_id,
            position=n,
            line_id=line.line_id,
            region_id=line.region_id,
            line_type=line.line_type,
            polygon=line.polygon,
            baseline=line.baseline,
            text=line.text,
        )
        for n, line in enumerate(lines)
    ]


def _types(lines: Sequence[LineSpec]) -> list[str]:
    return sorted({line.line_type for line in lines if line.line_type})


def save_gt_page(*, session: Session, spec: PageSpec) -> tuple[GroundTruthPage, str]:
    """Store an imported page and its lines: 'created'; the same file again: 'unchanged' (nothing written); an
    edited file (other XML or image bytes): 'updated', its lines replaced. In the caller's transaction."""
    existing = gt_page(session=session, collection=spec.collection, name=spec.name)
    if existing is not None:
        if existing.xml_sha256 == spec.xml_sha256 and existing.image_sha256 == spec.image_sha256:
            return existing, "unchanged"
        session.execute(delete(GroundTruthLine).where(GroundTruthLine.page_id == existing.id))
        session.expire(existing, ["lines"])
        for attribute in ("image_sha256", "image_name", "xml_sha256", "format", "schema", "width", "height"):
            setattr(existing, attribute, getattr(spec, attribute))
        existing.licence, existing.attribution, existing.document = spec.licence, spec.attribution, spec.document
        existing.line_count, existing.line_types = len(spec.lines), _types(spec.lines)
        existing.updated_at = utcnow()
        existing.corrected_by = None  # the lines are the new file's, no one's correction
        session.add_all(_line_rows(existing.id, spec.lines))
        session.flush()
        return existing, "updated"
    row = GroundTruthPage(
        collection=spec.collection,
        name=spec.name,
        image_sha256=spec.image_sha256,
        image_name=spec.image_name,
        xml_sha256=spec.xml_sha256,
        format=spec.format,
        schema=spec.schema,
        width=spec.width,
        height=spec.height,
        licence=spec.licence,
        attribution=spec.attribution,
        document=spec.document,
        line_count=len(spec.lines),
        line_types=_types(spec.lines),
    )
    try:
        add_unique(session, row, f"page {spec.name} of {spec.collection} was imported concurrently")
    except ConflictError:
        return gt_page(session=session, collection=spec.collection, name=spec.name), "unchanged"  # type: ignore[return-value]
    session.add_all(_line_rows(row.id, spec.lines))
    session.flush()
    return row, "created"


def gt_pages(*, session: Session, collections: Sequence[str] | None = None) -> list[GroundTruthPage]:
    """Imported pages with their lines loaded, by collection and name; `collections` None: all of them."""
    query = select(GroundTruthPage).options(selectinload(GroundTruthPage.lines))
    if collections is not None:
        query = query.where(GroundTruthPage.collection.in_(list(collections)))
    return list(session.scalars(query.order_by(GroundTruthPage.collection, GroundTruthPage.name)))


def gt_pages_by_image(*, session: Session, image_sha256s: Sequence[str]) -> dict[str, list[GroundTruthPage]]:
    """The imported pages of these images, with their lines loaded, by image (an image may be in two collections)."""
    if not image_sha256s:
        return {}
    query = (
        select(GroundTruthPage)
        .options(selectinload(GroundTruthPage.lines))
        .where(GroundTruthPage.image_sha256.in_(list(set(image_sha256s))))
        .order_by(GroundTruthPage.id)
    )
    found: dict[str, list[GroundTruthPage]] = {}
    for page in session.scalars(query):
        found.setdefault(page.image_sha256, []).append(page)
    return found


def pages_to_review(
    *, session: Session, collection: str, project: str, limit: int | None = None
) -> tuple[list[GroundTruthPage], int]:
    """Pages of `collection` whose image has no task in `project` yet, by name, at most `limit`, with their lines
    loaded; and how many of the collection's pages have one already."""
    tasked = (
        select(AnnotationTask.id)
        .where(AnnotationTask.image_sha256 == GroundTruthPage.image_sha256, AnnotationTask.project == project)
        .exists()
    )
    in_collection = GroundTruthPage.collection == collection
    query = (
        select(GroundTruthPage)
        .options(selectinload(GroundTruthPage.lines))
        .where(in_collection, ~tasked)
        .order_by(GroundTruthPage.name)
        .limit(limit)
    )
    sent = session.scalar(select(func.count()).select_from(GroundTruthPage).where(in_collection, tasked)) or 0
    return list(session.scalars(query)), int(sent)


def correct_gt_page(*, session: Session, page: GroundTruthPage, lines: Sequence[LineSpec], annotator: str) -> bool:
    """Give `page` the lines an annotator corrected (pixels, reading order), recording who and when; False (nothing
    written) when they are the lines it has. In the caller's transaction."""
    current = [
        LineSpec(line.text, line.polygon, line.baseline, line.line_type, line.line_id, line.region_id)
        for line in page.lines
    ]
    if current == list(lines):
        return False
    session.execute(delete(GroundTruthLine).where(GroundTruthLine.page_id == page.id))
    session.expire(page, ["lines"])
    page.line_count, page.line_types = len(lines), _types(lines)
    page.updated_at = utcnow()
    page.corrected_by = annotator
    session.add_all(_line_rows(page.id, lines))
    session.flush()
    return True


def gt_pages_by_id(*, session: Session, ids: Sequence[int]) -> dict[int, GroundTruthPage]:
    if not ids:
        return {}
    query = select(GroundTruthPage).where(GroundTruthPage.id.in_(list(set(ids))))
    return {row.id: row for row in session.scalars(query)}


@dataclass(frozen=True)
class Collection:
    name: str
    pages: int
    lines: int
    transcribed: int  # lines with text
    licences: list[str]
    line_types: dict[str, int]


def gt_collections(*, session: Session) -> list[Collection]:
    """Each collection of imported pages: page and line counts, its licences and its lines by type."""
    pages = select(
        GroundTruthPage.collection, func.count(GroundTruthPage.id), func.sum(GroundTruthPage.line_count)
    ).group_by(GroundTruthPage.collection)
    licences: dict[str, set[str]] = {}
    for collection, licence in session.execute(select(GroundTruthPage.collection, GroundTruthPage.licence).distinct()):
        licences.setdefault(collection, set()).add(licence or "unknown")
    types: dict[str, dict[str, int]] = {}
    transcribed: dict[str, int] = {}
    query = (
        select(
            GroundTruthPage.collection,
            GroundTruthLine.line_type,
            func.count(),
            func.sum(case((func.length(GroundTruthLine.text) > 0, 1), else_=0)),
        )
        .join(GroundTruthLine, GroundTruthLine.page_id == GroundTruthPage.id)
        .group_by(GroundTruthPage.collection, GroundTruthLine.line_type)
    )
    for collection, line_type, count, with_text in session.execute(query):
        types.setdefault(collection, {})[line_type or "untyped"] = int(count)
        transcribed[collection] = transcribed.get(collection, 0) + int(with_text or 0)
    return [
        Collection(
            name=collection,
            pages=int(n_pages),
            lines=int(n_lines or 0),
            transcribed=transcribed.get(collection, 0),
            licences=sorted(licences.get(collection, ())),
            line_types=dict(sorted(types.get(collection, {}).items())),
        )
        for collection, n_pages, n_lines in session.execute(pages.order_by(GroundTruthPage.collection))
    ]


def require_collection(*, session: Session, collection: str) -> None:
    if session.scalar(select(GroundTruthPage.id).where(GroundTruthPage.collection == collection).limit(1)) is None:
        known = ", ".join(c.name for c in gt_collections(session=session)) or "none yet"
        raise NotFoundError(f"no imported collection {collection!r} (imported: {known})")


def lines_as_json(page: GroundTruthPage) -> list[dict[str, Any]]:
    """A page's lines as a dataset member holds them: text, polygon, baseline, type, and the percent box training
    and Label Studio use (x, y, width, height of the outline's bounding box)."""
    out = []
    for line in page.lines:
        points = line.polygon or line.baseline
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        box = [
            round(100 * min(xs) / page.width, 3),
            round(100 * min(ys) / page.height, 3),
            round(100 * (max(xs) - min(xs)) / page.width, 3),
            round(100 * (max(ys) - min(ys)) / page.height, 3),
        ]
        out.append(
            {"text": line.text, "box": box, "polygon": line.polygon, "baseline": line.baseline, "type": line.line_type}
        )
    return out
