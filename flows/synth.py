"""Synthesis: extra training pages for a dataset version, stitched from its annotated train lines and rendered in
fonts, each recorded in `synthetic_samples` (generator, parameters, seed, source lines).

Only the version's **train** split gives lines, and synthetic pages only ever train: a val or test page's lines
never reach training through a stitched page. Page i of a run depends only on (seed, i), and the store is
content-addressed, so a rerun (or a run killed half-way and rerun) makes the same pages and records each once.

A page answered with the whole paragraph (the labeling screen allows it: no line boxes with text) gives the lines
the segmenter cuts from it when it finds as many as the text has, paired top to bottom: the rule training applies
to the same page (model/data.py), so a stitched page trusts the segmenter exactly as far as training does. A
version with no lines at all makes no stitched pages and the summary says why (`not stitched`); only a count asked
for explicitly (`-p stitched=N`) turns that into an error.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps
from prefect import flow, task
from pydantic import BaseModel, ConfigDict, Field

from db import repo
from db.models import DatasetVersion
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import ImageSource, ImageStatus, Split
from inkloop.errors import DatasetError
from model.preprocess import page_lines
from synth.generate import Generator, SynthOptions
from synth.stitch import LineCrop, crop_lines, stitch_sample

_BATCH = 25  # pages committed together
DEFAULT_STITCHED = 100


class SynthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, description="Dataset version whose train lines to stitch (default: newest).")
    stitched: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description=(
            f"Pages stitched from the train split's lines (default {DEFAULT_STITCHED}, or none, said in the summary, "
            "when the version has no lines to stitch). A count given here is required: no lines is then an error."
        ),
    )
    rendered: int = Field(100, ge=0, le=100_000, description="Pages rendered in handwriting fonts.")
    seed: int = Field(0, ge=0, description="Page i depends only on (version, seed, i).")
    max_lines: int = Field(8, ge=1, le=30, description="Most lines on a page.")


class SynthSummary(FlowSummary):
    """What a synthesis run did."""

    version: str | None = None
    train_pages: int = 0  # train pages that gave lines to stitch
    segmented_pages: int = 0  # of those, pages answered with the paragraph alone, cut into lines by the segmenter
    source_lines: int = 0
    stitched: int = 0  # new pages recorded by this run
    rendered: int = 0
    already_there: int = 0  # made by an earlier run with the same seed
    not_stitched: str | None = None  # why no page was stitched though some were asked for

    def stitched_line(self) -> str:
        """The stitched pages in a few words, for the summary of a flow that ran this one (retrain)."""
        if self.not_stitched:
            return f"{self.stitched}: {self.not_stitched}"
        if self.segmented_pages:
            annotated = self.train_pages - self.segmented_pages
            return (
                f"{self.stitched} (lines of {self.train_pages} train pages: {annotated} annotated, "
                f"{self.segmented_pages} answered with the paragraph alone and cut by the segmenter)"
            )
        return f"{self.stitched} (annotated lines of {self.train_pages} train pages)"


@dataclass(frozen=True)
class SourceLine:
    image_sha256: str
    index: int  # the line's position on its page, top to bottom
    crop: LineCrop
    cut: Literal["annotation", "segmenter"] = "annotation"  # who drew the line's box (segmenter: a paragraph answer)


@dataclass(frozen=True)
class LinePool:
    lines: list[SourceLine]
    train_pages: int  # every page of the train split
    paragraph_only: int  # of them, pages with no annotated line (a box with its text)


def _segmented(page: Image.Image, text: str) -> list[LineCrop]:
    """The segmenter's lines of a page paired with its text's lines, top to bottom, when it finds as many lines as
    the text has (else none: which text went with which line is unknown). Its crops are what training reads from
    the same page: the line's own band of the deskewed page, ink dark on light paper."""
    rows = text.split("\n")
    if not all(row.strip() for row in rows):  # a blank row has no line of ink to pair with
        return []
    found = page_lines(page)
    if len(found) != len(rows):
        return []
    return [
        LineCrop(Image.fromarray(np.round(255 * (1 - np.clip(line.crop, 0, 1))).astype(np.uint8), "L"), row)
        for line, row in zip(found, rows, strict=True)
    ]


def train_lines(context: FlowContext, version: DatasetVersion) -> LinePool:
    """Every line of the version's train pages: the annotated ones (a text and a box), and on a page with none, the
    segmenter's where their count agrees with the page's text (see the module's docstring)."""
    with context.transaction(write=False) as session:
        members = repo.dataset_members(session=session, version_id=version.id, split=Split.train)
    found: list[SourceLine] = []
    paragraph_only = 0
    for member in members:
        lines = [(line.get("text") or "", line.get("box") or []) for line in member.lines or []]
        usable = [(i, text, box) for i, (text, box) in enumerate(lines) if text and len(box) == 4]
        paragraph_only += not usable
        with Image.open(io.BytesIO(context.store.get(member.image_sha256))) as image:
            page = ImageOps.exif_transpose(image) or image
            if not usable:
                for index, crop in enumerate(_segmented(page, member.text or "")):
                    found.append(SourceLine(member.image_sha256, index, crop, cut="segmenter"))
                continue
            for index, text, box in usable:
                # crop_lines leaves out a box with no area inside the page.
                for crop in crop_lines(page, [(text, box)]):
                    found.append(SourceLine(member.image_sha256, index, crop))
    return LinePool(found, train_pages=len(members), paragraph_only=paragraph_only)


def _why_no_lines(version: str, pool: LinePool) -> str:
    if not pool.train_pages:
        return f"{version} has no train pages"
    pages = f"{pool.train_pages} train page{'s' if pool.train_pages != 1 else ''}"
    if pool.paragraph_only == pool.train_pages:
        return (
            f"no annotated lines (paragraph answers only) in the {pages} of {version}, and the segmenter found as "
            "many lines as the text has on none of them"
        )
    return f"no line of the {pages} of {version} could be cut (boxes outside the page)"


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _record(
    context: FlowContext,
    version: DatasetVersion,
    pages: list[tuple[Image.Image, str, str, dict[str, Any], int]],
    batch: str,
    summary: SynthSummary,
) -> None:
    """Store a batch of pages and record each once (a rerun finds them by their content)."""
    encoded = [_png(image) for image, *_ in pages]
    keys = [context.store.put(data) for data in encoded]
    with context.transaction() as session:
        for key, data, (image, text, generator, params, seed) in zip(keys, encoded, pages, strict=True):
            if repo.synthetic_sample_exists(session=session, image_sha256=key):
                summary.already_there += 1
                continue
            repo.upsert_image(
                session=session,
                sha256=key,
                source=ImageSource.synthetic,
                byte_size=len(data),
                format="png",
                width=image.width,
                height=image.height,
            )
            repo.set_image_validation(session=session, sha256=key, status=ImageStatus.valid)
            repo.add_synthetic_sample(
                session=session,
                image_sha256=key,
                text=text,
                generator=generator,
                params=params,
                seed=seed,
                batch=batch,
                dataset_version_id=version.id,
            )
            if generator == "stitch":
                summary.stitched += 1
            else:
                summary.rendered += 1


def synthesize(context: FlowContext, params: SynthParams, *, require_lines: bool | None = None) -> SynthSummary:
    """The version's stitched and rendered pages, recorded. With no lines to stitch, the stitched pages are left out
    and `not_stitched` says why, unless `require_lines` (default: when `params.stitched` names a count, i.e. someone
    asked for stitched pages) makes it a DatasetError: a count asked for and silently not made would be a lie."""
    stitched = DEFAULT_STITCHED if params.stitched is None else params.stitched
    required = params.stitched is not None if require_lines is None else require_lines
    with context.transaction(write=False) as session:
        if params.version is not None:
            version = repo.get_dataset(session=session, version=params.version)
        else:
            newest = repo.newest_dataset(session=session)
            if newest is None:
                raise DatasetError("no dataset version yet: run inkloop datasets build")
            version = newest
    summary = SynthSummary(version=version.version)
    found = train_lines(context, version) if stitched else LinePool([], 0, 0)
    pool = found.lines
    summary.source_lines = len(pool)
    summary.train_pages = len({line.image_sha256 for line in pool})
    summary.segmented_pages = len({line.image_sha256 for line in pool if line.cut == "segmenter"})
    if stitched and not pool:
        why = _why_no_lines(version.version, found)
        if required:
            raise DatasetError(
                f"dataset version {version.version} has no lines to stitch: {why} "
                "(run without stitched, or with stitched=0, for font-rendered pages only)"
            )
        summary.not_stitched = why
        stitched = 0
    batch = f"{version.version}/seed-{params.seed}"
    pending: list[tuple[Image.Image, str, str, dict[str, Any], int]] = []

    def flush() -> None:
        if pending:
            _record(context, version, pending, batch, summary)
            pending.clear()

    for index in range(stitched):
        seed = params.seed * 1_000_003 + index
        page = stitch_sample([line.crop for line in pool], np.random.default_rng([version.id, seed]), params.max_lines)
        sources = [[pool[i].image_sha256, pool[i].index] for i in page.sources]
        lines = [{"text": text, "box": list(box)} for text, box in zip(page.text.split("\n"), page.boxes, strict=True)]
        record: dict[str, Any] = {"lines": lines, "source_lines": sources}
        if any(pool[i].cut == "segmenter" for i in page.sources):
            record["source_cuts"] = [pool[i].cut for i in page.sources]  # who drew each source line's box
        pending.append((page.image, page.text, "stitch", record, seed))
        if len(pending) >= _BATCH:
            flush()
    if params.rendered:
        # The version is part of the seed, so each version gets pages of its own (a page is recorded once).
        seed = version.id * 1_000_003 + params.seed
        generator = Generator(SynthOptions(count=params.rendered, seed=seed, max_lines=params.max_lines))
        for index in range(params.rendered):
            image, text, meta = generator.sample(index)
            pending.append((image.convert("L"), text, "font", {**meta, "index": index}, seed))
            if len(pending) >= _BATCH:
                flush()
    flush()
    return summary


# --- Prefect ----------------------------------------------------------------------------------------------------


@task(name="synthesize-pages", **IO_TASK)
def _synthesize(context: FlowContext, params: SynthParams) -> SynthSummary:
    return synthesize(context, params)


@flow(name="synth", validate_parameters=True)
def synth(params: SynthParams | None = None) -> SynthSummary:
    """Pages stitched from a dataset version's annotated train lines, and font-rendered pages, for its train split."""
    params = params or SynthParams()
    started = time.perf_counter()
    with flow_context() as context:
        summary = _synthesize(context, params)
    return finish(summary, started=started, name="synth", title="Synthetic pages")
