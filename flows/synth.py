"""Synthesis: extra training pages for a dataset version, stitched from its annotated train lines and rendered in
fonts, each recorded in `synthetic_samples` (generator, parameters, seed, source lines).

Only the version's **train** split gives lines, and synthetic pages only ever train: a val or test page's lines
never reach training through a stitched page. Page i of a run depends only on (seed, i), and the store is
content-addressed, so a rerun (or a run killed half-way and rerun) makes the same pages and records each once.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from prefect import flow, task
from pydantic import BaseModel, ConfigDict, Field

from db import repo
from db.models import DatasetVersion
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import ImageSource, ImageStatus, Split
from inkloop.errors import DatasetError
from synth.generate import Generator, SynthOptions
from synth.stitch import LineCrop, crop_lines, stitch_sample

_BATCH = 25  # pages committed together


class SynthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, description="Dataset version whose train lines to stitch (default: newest).")
    stitched: int = Field(100, ge=0, le=100_000, description="Pages stitched from annotated train lines.")
    rendered: int = Field(100, ge=0, le=100_000, description="Pages rendered in handwriting fonts.")
    seed: int = Field(0, ge=0, description="Page i depends only on (version, seed, i).")
    max_lines: int = Field(8, ge=1, le=30, description="Most lines on a page.")


class SynthSummary(FlowSummary):
    """What a synthesis run did."""

    version: str | None = None
    train_pages: int = 0  # train members with usable line boxes
    source_lines: int = 0
    stitched: int = 0  # new pages recorded by this run
    rendered: int = 0
    already_there: int = 0  # made by an earlier run with the same seed


@dataclass(frozen=True)
class SourceLine:
    image_sha256: str
    index: int  # the line's position on its page, top to bottom
    crop: LineCrop


def train_lines(context: FlowContext, version: DatasetVersion) -> list[SourceLine]:
    """Every annotated line of the version's train pages (lines with a text and a box)."""
    with context.transaction(write=False) as session:
        members = repo.dataset_members(session=session, version_id=version.id, split=Split.train)
    found: list[SourceLine] = []
    for member in members:
        lines = [(line.get("text") or "", line.get("box") or []) for line in member.lines or []]
        usable = [(i, text, box) for i, (text, box) in enumerate(lines) if text and len(box) == 4]
        if not usable:
            continue
        with Image.open(io.BytesIO(context.store.get(member.image_sha256))) as image:
            page = ImageOps.exif_transpose(image) or image
            for index, text, box in usable:
                # crop_lines leaves out a box with no area inside the page.
                for crop in crop_lines(page, [(text, box)]):
                    found.append(SourceLine(member.image_sha256, index, crop))
    return found


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


def synthesize(context: FlowContext, params: SynthParams) -> SynthSummary:
    with context.transaction(write=False) as session:
        if params.version is not None:
            version = repo.get_dataset(session=session, version=params.version)
        else:
            newest = repo.newest_dataset(session=session)
            if newest is None:
                raise DatasetError("no dataset version yet: run inkloop datasets build")
            version = newest
    summary = SynthSummary(version=version.version)
    pool = train_lines(context, version) if params.stitched else []
    summary.source_lines = len(pool)
    summary.train_pages = len({line.image_sha256 for line in pool})
    if params.stitched and not pool:
        raise DatasetError(
            f"dataset version {version.version} has no annotated train lines to stitch "
            "(run with stitched=0 for font-rendered pages only)"
        )
    batch = f"{version.version}/seed-{params.seed}"
    pending: list[tuple[Image.Image, str, str, dict[str, Any], int]] = []

    def flush() -> None:
        if pending:
            _record(context, version, pending, batch, summary)
            pending.clear()

    for index in range(params.stitched):
        seed = params.seed * 1_000_003 + index
        page = stitch_sample([line.crop for line in pool], np.random.default_rng([version.id, seed]), params.max_lines)
        sources = [[pool[i].image_sha256, pool[i].index] for i in page.sources]
        lines = [{"text": text, "box": list(box)} for text, box in zip(page.text.split("\n"), page.boxes, strict=True)]
        pending.append((page.image, page.text, "stitch", {"lines": lines, "source_lines": sources}, seed))
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
