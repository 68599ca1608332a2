"""Export a dataset version to the model's folder format: PNG pages and a labels.jsonl that `inkloop train` reads.

Each record carries the page's annotated lines ("lines": boxes, and polygons in the page's pixels for lines drawn as
outlines), so training crops the lines the annotator drew instead of re-segmenting the page, and the slice facts
(split, reason, polarity, ...), so `inkloop evaluate` reports CER per slice. The folder is written beside its
destination and renamed into place at the end: an export that fails leaves nothing, and an existing non-empty folder
is never touched.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy.orm import Session

from db import repo
from db.models import DatasetMember, SyntheticSample
from inkloop.domain import Split
from inkloop.errors import DatasetError
from inkloop.files import new_folder_problem, staged_folder
from inkloop.labels import DATASET_MANIFEST, LABELS, outline_pixels
from inkloop.store import ImageStore

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MANIFEST = DATASET_MANIFEST


@dataclass(frozen=True)
class Exported:
    version: str
    folder: Path
    pages: int
    synthetic: int


def as_png(data: bytes, *, upright: bool = True) -> bytes:
    """The page as PNG: stored PNGs as they are, anything else decoded and, with `upright`, turned by its EXIF
    orientation, as Label Studio's browser showed it to the annotator who drew the boxes. An imported page is not
    turned: its XML's coordinates are the stored pixels'."""
    if data.startswith(_PNG_MAGIC):
        return data
    with Image.open(io.BytesIO(data)) as image:
        page = (ImageOps.exif_transpose(image) or image) if upright else image
        out = io.BytesIO()
        page.save(out, "PNG")
    return out.getvalue()


def _lines(member: DatasetMember, size: tuple[int, int]) -> list[dict[str, Any]]:
    """The member's lines, a line an annotator left as an outline (percent of the image) with its "polygon" in the
    exported page's pixels, as an imported line has it: training cuts both along their polygons."""
    lines = []
    for line in member.lines or []:
        if line.get("outline") and not line.get("polygon"):
            line = {**line, "polygon": outline_pixels(line["outline"], *size)}
        lines.append(line)
    return lines


def _record(member: DatasetMember, file: str, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "file": file,
        "text": member.text,
        "lines": _lines(member, size),
        "split": Split(member.split).value,
        "image_sha256": member.image_sha256,
        "group": member.group_key,
        "reason": member.reason.value if member.reason is not None else None,
        "source": member.source.value if member.source is not None else None,
        "polarity": member.polarity,
        "line_count": member.line_count,
        "request_id": member.request_id,
        "served_model": member.served_model,
        "served_confidence": member.served_confidence,
        "annotation_id": member.annotation_id,
        "annotation_revision": member.annotation_revision,
    }


def _licences(session: Session, members: list[DatasetMember]) -> tuple[dict[str, int], dict[str, str]]:
    """The exported pages by licence, and each imported collection's attribution."""
    pages = repo.gt_pages_by_id(session=session, ids=[m.gt_page_id for m in members if m.gt_page_id is not None])
    licences: dict[str, int] = {}
    attributions: dict[str, str] = {}
    for member in members:
        page = pages.get(member.gt_page_id) if member.gt_page_id is not None else None
        name = (page.licence or "unknown") if page is not None else "inkloop annotations"
        licences[name] = licences.get(name, 0) + 1
        if page is not None and page.attribution:
            attributions.setdefault(page.collection, page.attribution)
    return dict(sorted(licences.items())), dict(sorted(attributions.items()))


def _check_out(out: Path) -> None:
    problem = new_folder_problem(out)
    if problem:
        raise DatasetError(problem)


def export_version(
    session: Session,
    store: ImageStore,
    *,
    version: str,
    out: Path,
    split: Split | None = None,
    synthetic: bool = False,
    workers: int = 8,
) -> Exported:
    """Write `version` (or one split of it) to `out`; `synthetic` adds the synthetic pages made for its train split
    (only with the train split or all splits: synthetic pages only ever train)."""
    out = Path(out)
    _check_out(out)
    row = repo.get_dataset(session=session, version=version)
    members = repo.dataset_members(session=session, version_id=row.id, split=split)
    samples: list[SyntheticSample] = []
    if synthetic and split in (None, Split.train):
        samples = repo.synthetic_samples(session=session, version_id=row.id)
    if not members and not samples:
        raise DatasetError(f"dataset version {version} has no {split.value if split else ''} pages to export".strip())
    with staged_folder(out, error=DatasetError) as staging:
        files = [f"{m.image_sha256[:20]}.png" for m in members]
        synthetic_files = [f"synthetic-{s.image_sha256[:20]}.png" for s in samples]

        imported = {m.image_sha256 for m in members if m.gt_page_id is not None}

        def write(job: tuple[str, str]) -> tuple[int, int]:
            key, file = job
            png = as_png(store.get(key), upright=key not in imported)
            (staging / file).write_bytes(png)
            with Image.open(io.BytesIO(png)) as page:  # the header only
                return page.size

        jobs = [(m.image_sha256, f) for m, f in zip(members, files, strict=True)]
        jobs += [(s.image_sha256, f) for s, f in zip(samples, synthetic_files, strict=True)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            sizes = list(pool.map(write, jobs))
        with open(staging / LABELS, "w", encoding="utf-8") as labels:
            for member, file, size in zip(members, files, sizes[: len(members)], strict=True):
                labels.write(json.dumps(_record(member, file, size), ensure_ascii=False) + "\n")
            for sample, file in zip(samples, synthetic_files, strict=True):
                record = {"file": file, "text": sample.text, "split": "train", "generator": sample.generator}
                record["lines"] = (sample.params or {}).get("lines", [])
                labels.write(json.dumps(record, ensure_ascii=False) + "\n")
        licences, attributions = _licences(session, members)
        manifest = {
            "version": row.version,
            "content_hash": row.content_hash,
            "split": split.value if split else "all",
            "pages": len(members),
            "synthetic": len(samples),
            "counts": row.counts,
            "licences": licences,  # pages by licence: imported pages by theirs, the loop's own annotations apart
            "attributions": attributions,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Exported(version=row.version, folder=out, pages=len(members), synthetic=len(samples))
