"""Real pages in: ground truth imported from PAGE XML and ALTO files, and dataset versions exported back to them.

`import_pages` reads a file or a folder of files (inkloop/groundtruth.py parses them), finds each page's image
beside its XML, checks that the image is the size the XML says, puts it in the image store and records the page and
its lines (polygon, baseline, line type, text) with the collection's licence and attribution. Each file is one
transaction after its image is stored (a content-addressed put that a rerun repeats harmlessly), so an import
killed anywhere and run again ends as one that was never interrupted, and importing the same files twice creates
nothing. A bad file (malformed XML, an unknown schema, a missing or mismatched image, a line off the page) is one
error naming the file and the element; it leaves nothing behind, and the other files are still imported.

`export_version` writes a dataset version as page images with one PAGE XML or ALTO file each, which eScriptorium
and Transkribus import: imported pages with their own polygons and baselines, annotated pages with their line boxes
as rectangles. Importing an export gives the same lines (tests/flows/test_groundtruth.py).
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from prefect import flow, task
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from db import repo
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from flows.dataset_export import as_png
from inkloop.errors import DatasetError, InkloopError
from inkloop.files import new_folder_problem, staged_folder
from inkloop.groundtruth import Format, GroundTruthError, GtLine, GtPage, parse, write
from inkloop.labels import outline_pixels
from inkloop.store import ImageStore
from monitoring.features import compute_features

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
# PIL refuses images over its own limit as a possible decompression bomb; a 600 dpi A3 scan is about 70 megapixels.
MAX_PIXELS = 150_000_000


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="A PAGE XML or ALTO file, or a folder of them (searched recursively).")
    format: Literal["auto", "page", "alto"] = Field("auto", description="The files' format; auto tells them apart.")
    collection: str | None = Field(
        None, description="The collection the pages join (default: the folder's name, or its parent's for 'pages')."
    )
    licence: str | None = Field(
        None, description="SPDX id of the pages' licence, e.g. CC-BY-4.0 (default: a CITATION.cff beside them)."
    )
    attribution: str | None = Field(None, description="Who to credit (default: from a CITATION.cff beside them).")
    line_types: list[str] | None = Field(
        None,
        description="Import only lines whose type contains one of these (e.g. Handwritten); untyped lines too "
        "when 'untyped' is listed. Default: every line.",
    )
    document_pattern: str | None = Field(
        None,
        description="A regular expression on the file name whose first group names the page's document (a letter, "
        "a writer): pages of one document stay in one split. Default: each page is its own.",
    )
    skip_bad_lines: bool = Field(False, description="Leave out lines that cannot be read instead of the whole file.")


class ImportSummary(FlowSummary):
    """What an import did."""

    collection: str = ""
    files: int = 0
    created: int = 0
    unchanged: int = 0
    updated: int = 0
    failed: int = 0
    lines: int = 0  # in the pages created or updated
    lines_left_out: dict[str, int] = {}  # by reason: "type DefaultLine:Print", "unreadable"
    clamped_lines: int = 0
    licence: str | None = None
    errors: list[str] = []


@dataclass(frozen=True)
class Source:
    licence: str | None
    attribution: str | None


def citation(folder: Path) -> Source:
    """The licence and an attribution from a CITATION.cff in `folder` or its parent, when there is one."""
    for candidate in (folder / "CITATION.cff", folder.parent / "CITATION.cff"):
        if candidate.is_file():
            import yaml

            try:
                data = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise InkloopError(f"{candidate}: not valid YAML ({str(exc).splitlines()[0]})") from None
            authors = ", ".join(
                " ".join(p for p in (a.get("given-names"), a.get("family-names")) if p) or a.get("name", "")
                for a in data.get("authors") or []
                if isinstance(a, dict)
            )
            doi = next(
                (
                    i.get("value")
                    for i in data.get("identifiers") or []
                    if isinstance(i, dict) and i.get("type") == "doi"
                ),
                data.get("doi"),
            )
            year = str(data.get("date-released") or "")[:4]
            parts = [authors, f"*{data['title']}*" if data.get("title") else "", f"({year})" if year else ""]
            text = " ".join(p for p in parts if p) + (f", doi:{doi}" if doi else "")
            return Source(licence=data.get("license"), attribution=text or None)
    return Source(None, None)


def default_collection(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    folder = folder.resolve()
    return folder.parent.name if folder.name == "pages" else folder.name


def xml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InkloopError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*.xml") if p.is_file())
    if not files:
        raise InkloopError(f"{path}: no .xml files in it")
    return files


def find_image(xml: Path, page: GtPage) -> Path:
    """The page's image: the file the XML names, beside it; else an image with the XML's own stem."""
    named = Path(page.image_name).name
    candidates = [xml.parent / named] if named else []
    candidates += [xml.with_suffix(suffix) for suffix in IMAGE_SUFFIXES]
    candidates += [xml.with_suffix(suffix.upper()) for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shown = named or "(none named)"
    raise GroundTruthError(xml.name, f"its image {shown} is not beside it (nor {xml.stem}.jpg/.png/.tif)", "Page")


def _wanted(line: GtLine, line_types: Sequence[str] | None) -> bool:
    if not line_types:
        return True
    if line.line_type is None:
        return any(t.lower() == "untyped" for t in line_types)
    return any(t.lower() in line.line_type.lower() for t in line_types)


@dataclass
class Prepared:
    """A file read and checked, ready to be stored."""

    spec: repo.PageSpec
    image: bytes
    image_format: str | None
    left_out: Counter[str] = field(default_factory=Counter)
    clamped: int = 0


def prepare(xml: Path, params: ImportParams, collection: str, source: Source) -> Prepared:
    """Read one file and its image and check them; GroundTruthError names what is wrong. Nothing is written."""
    data = xml.read_bytes()
    fmt = None if params.format == "auto" else Format(params.format)
    page = parse(data, file=xml.name, format=fmt, skip_bad_lines=params.skip_bad_lines)
    image_path = find_image(xml, page)
    image = image_path.read_bytes()
    try:
        with Image.open(io.BytesIO(image)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise GroundTruthError(xml.name, f"its image {image_path.name} is over {MAX_PIXELS:,} pixels", "Page")
            size, image_format = opened.size, (opened.format or "").lower() or None
            opened.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise GroundTruthError(xml.name, f"its image {image_path.name} cannot be read ({exc})", "Page") from None
    if size != (page.width, page.height):
        raise GroundTruthError(
            xml.name,
            f"its image {image_path.name} is {size[0]}x{size[1]} pixels but the XML describes {page.width}x"
            f"{page.height}: the coordinates would not fit it",
            "Page",
        )
    left_out: Counter[str] = Counter()
    lines = []
    for line in page.lines:
        if _wanted(line, params.line_types):
            lines.append(line)
        else:
            left_out[f"type {line.line_type or 'untyped'}"] += 1
    left_out["unreadable"] += len(page.skipped)
    document = None
    if params.document_pattern:
        match = re.search(params.document_pattern, xml.name)
        document = (match.group(1) if match and match.groups() else match.group(0) if match else None) or None
    spec = repo.PageSpec(
        collection=collection,
        name=str(xml.relative_to(Path(params.path))) if Path(params.path).is_dir() else xml.name,
        image_sha256=hashlib.sha256(image).hexdigest(),
        image_name=image_path.name,
        xml_sha256=hashlib.sha256(data).hexdigest(),
        format=page.format.value,
        schema=page.schema,
        width=page.width,
        height=page.height,
        licence=source.licence,
        attribution=source.attribution,
        document=document[:128] if document else None,
        lines=[
            repo.LineSpec(
                text=line.text,
                polygon=[list(p) for p in line.polygon],
                baseline=[list(p) for p in line.baseline],
                line_type=(line.line_type or None) and line.line_type[:64],
                line_id=(line.line_id or None) and line.line_id[:128],
                region_id=(line.region_id or None) and line.region_id[:128],
            )
            for line in lines
        ],
    )
    return Prepared(spec=spec, image=image, image_format=image_format, left_out=+left_out, clamped=page.clamped)


def store_page(session: Session, store: ImageStore, prepared: Prepared) -> str:
    """Put the image in the store and record the page in the caller's transaction: created, unchanged or updated."""
    spec = prepared.spec
    existing = repo.gt_page(session=session, collection=spec.collection, name=spec.name)
    if existing is not None and existing.xml_sha256 == spec.xml_sha256 and existing.image_sha256 == spec.image_sha256:
        return "unchanged"
    key = store.put(prepared.image)
    image = repo.upsert_image(
        session=session,
        sha256=key,
        source="imported",
        byte_size=len(prepared.image),
        format=prepared.image_format,
        width=spec.width,
        height=spec.height,
    )
    if image.phash is None:  # features and the perceptual hash, for the dataset guards' near-duplicate checks
        features = compute_features(prepared.image, max_pixels=MAX_PIXELS)
        repo.set_image_validation(
            session=session, sha256=key, status="valid", features=features.as_dict(), phash=features.phash
        )
    _, outcome = repo.save_gt_page(session=session, spec=spec)
    return outcome


def import_pages(
    context: FlowContext, params: ImportParams, *, progress: Callable[[str], None] | None = None
) -> ImportSummary:
    """Import every file under `params.path`, one transaction each; errors are collected, not raised."""
    path = Path(params.path)
    if params.document_pattern:
        try:
            re.compile(params.document_pattern)
        except re.error as exc:
            raise InkloopError(
                f"--document-pattern {params.document_pattern!r} is not a regular expression: {exc}"
            ) from None
    files = xml_files(path)
    collection = params.collection or default_collection(path)
    found = citation(path if path.is_dir() else path.parent)
    source = Source(params.licence or found.licence, params.attribution or found.attribution)
    summary = ImportSummary(collection=collection, files=len(files), licence=source.licence)
    left_out: Counter[str] = Counter()
    started = time.perf_counter()
    for n, xml in enumerate(files, start=1):
        try:
            prepared = prepare(xml, params, collection, source)
            with context.transaction() as session:
                outcome = store_page(session, context.store, prepared)
        except GroundTruthError as exc:
            summary.failed += 1
            summary.errors.append(str(exc))
            outcome = "failed"
        else:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if outcome != "unchanged":
                summary.lines += len(prepared.spec.lines)
                summary.clamped_lines += prepared.clamped
                left_out.update(prepared.left_out)
        if progress is not None and (n == len(files) or n % 10 == 0 or outcome == "failed"):
            progress(
                f"import: {n}/{len(files)} files ({time.perf_counter() - started:.0f} s), last {xml.name}: {outcome}"
            )
    summary.lines_left_out = dict(sorted(left_out.items()))
    return summary


# --- export -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedXml:
    version: str
    folder: Path
    pages: int
    lines: int
    format: Format
    licences: dict[str, int]


def _member_page(member: Any, size: tuple[int, int], file: str) -> GtPage:
    width, height = size
    lines = []
    for n, line in enumerate(member.lines or []):
        polygon = tuple(tuple(p) for p in line.get("polygon") or ())
        baseline = tuple(tuple(p) for p in line.get("baseline") or ())
        if not polygon and line.get("outline"):  # an annotated outline, in percent of the image
            polygon = tuple(tuple(p) for p in outline_pixels(line["outline"], width, height))
        if not polygon:
            x, y, w, h = line["box"]
            left, top = round(width * x / 100), round(height * y / 100)
            right, bottom = round(width * (x + w) / 100), round(height * (y + h) / 100)
            polygon = ((left, top), (right, top), (right, bottom), (left, bottom))
        lines.append(
            GtLine(
                text=line.get("text") or "",
                polygon=polygon,
                baseline=baseline,
                line_type=line.get("type"),
                line_id=line.get("id") or f"l{n + 1}",
            )
        )
    fmt = Format.page
    return GtPage(file, width, height, tuple(lines), fmt, "")


def export_version(session: Session, store: ImageStore, *, version: str, out: Path, format: Format) -> ExportedXml:
    """Write `version`'s pages that have lines as images plus PAGE XML or ALTO, into a new folder `out` (written
    beside it and renamed into place: a failed export leaves nothing)."""
    out = Path(out)
    problem = new_folder_problem(out)
    if problem:
        raise DatasetError(problem)
    row = repo.get_dataset(session=session, version=version)
    members = [m for m in repo.dataset_members(session=session, version_id=row.id) if m.lines]
    if not members:
        raise DatasetError(f"dataset version {version} has no pages with lines to export")
    gt = repo.gt_pages_by_id(session=session, ids=[m.gt_page_id for m in members if m.gt_page_id is not None])
    licences: Counter[str] = Counter()
    names: set[str] = set()
    lines = 0
    with staged_folder(out, error=DatasetError) as staging:
        for member in members:
            page = gt.get(member.gt_page_id) if member.gt_page_id is not None else None
            data = store.get(member.image_sha256)
            if page is not None:
                file = page.image_name
                licences[page.licence or "unknown"] += 1
                size = (page.width, page.height)
            else:
                # An annotated page as Label Studio showed it (turned by its EXIF orientation), whose percent
                # boxes and outlines are relative to that: a PNG, like the folder export's.
                data = as_png(data)
                file = f"{member.image_sha256[:20]}.png"
                licences["inkloop annotations"] += 1
                with Image.open(io.BytesIO(data)) as shown:
                    size = shown.size
            stem = Path(file).stem
            while Path(file).name.lower() in names:  # two collections may use one name
                stem = f"{stem}-{member.image_sha256[:8]}"
                file = stem + Path(file).suffix
            names.add(Path(file).name.lower())
            (staging / file).write_bytes(data)
            content = _member_page(member, size, file)
            (staging / f"{stem}.xml").write_bytes(write(content, format))
            lines += len(content.lines)
        _write_licences(staging, row.version, list(gt.values()), licences)
    return ExportedXml(row.version, out, len(members), lines, format, dict(licences))


def _write_licences(folder: Path, version: str, pages: list[Any], licences: Counter[str]) -> None:
    """LICENCES.md: what the exported pages may be used for and whom to credit; with one licence, a CITATION.cff
    too, which `inkloop datasets import` reads back."""
    lines = [f"# Dataset version {version}: licences", ""]
    for name, count in sorted(licences.items()):
        lines.append(f"- {count} pages: {name}")
    credits = sorted({(p.collection, p.licence or "unknown", p.attribution or "") for p in pages})
    if credits:
        lines += ["", "## Attribution", ""]
        lines += [f"- {c} ({lic}): {who or 'no attribution recorded'}" for c, lic, who in credits]
    (folder / "LICENCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if len(licences) == 1 and len(credits) == 1 and credits[0][1] != "unknown":
        import yaml

        record = {"cff-version": "1.2.0", "title": f"{credits[0][0]} (inkloop dataset version {version})"}
        record["message"] = credits[0][2] or "See LICENCES.md."
        record["license"] = credits[0][1]
        (folder / "CITATION.cff").write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")


# --- Prefect ------------------------------------------------------------------------------------------------------


@task(name="import-pages", **IO_TASK)
def _import(context: FlowContext, params: ImportParams) -> ImportSummary:
    return import_pages(context, params, progress=lambda line: print(line, file=sys.stderr, flush=True))


@flow(name="import-pages", validate_parameters=True)
def import_ground_truth(params: ImportParams) -> ImportSummary:
    """Import pages with line-level ground truth from PAGE XML or ALTO files (a second import creates nothing)."""
    started = time.perf_counter()
    with flow_context() as context:
        summary = _import(context, params)
    return finish(summary, started=started, name="import-pages", title="Imported pages")
