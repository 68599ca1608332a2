"""Ingest: read the request log past a watermark, compute image features, validate them with Great Expectations,
and mark each new image valid or quarantined.

Exactly once. A batch's images and the watermark that moves past the batch commit in one transaction, so a crash
before the commit redoes the whole batch and a crash after it redoes nothing; an image is one row whatever the
number of requests that sent it. Two runs at once cannot both commit the same batch: the commit re-reads the
watermark under a row lock and refuses if another run moved it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, computed_field

from db import repo
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import ImageSource, ImageStatus
from inkloop.errors import ConflictError, CorruptObjectError, ObjectNotFoundError
from inkloop.store import ImageStore
from monitoring.features import ImageFeatures, compute_features

if TYPE_CHECKING:
    # Great Expectations takes about 2 s to import on 2 cores: only a run with new images to validate pays it. An
    # `inkloop flow run ingest` with nothing new took 3.8-4.0 s with the local Prefect server up, 5.9-6.1 s when
    # this module imported it (quiet 2-core VM, 2026-12-07).
    from monitoring.validation import BatchValidation

WATERMARK = "ingest"
# Store problems are reasons of their own: the bytes never reached the validator.
MISSING_REASON = "image_missing"
FEATURE_COLUMNS = [f.name for f in dataclasses.fields(ImageFeatures)]
CORRUPT_REASON = "image_corrupt"


class IngestParams(BaseModel):
    """Parameters of the ingest flow (the Prefect UI shows and validates them)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(500, ge=1, le=10_000, description="Request-log rows read and committed together.")
    max_batches: int | None = Field(None, ge=1, description="Stop after this many batches (default: the whole log).")
    data_docs: bool = Field(True, description="Write Great Expectations Data Docs under INKLOOP_HOME/reports.")


@dataclass(frozen=True)
class LogRow:
    """The part of a request-log row ingest needs, detached from the session."""

    id: int
    request_id: str
    image_sha256: str
    source: str
    confidence: float


@dataclass(frozen=True)
class Batch:
    start: int  # the watermark it was read after
    rows: list[LogRow]
    new_images: list[LogRow]  # one row per image not yet validated: the latest request that sent it

    @property
    def end(self) -> int:
        return self.rows[-1].id


@dataclass
class BatchOutcome:
    requests: int
    new_images: int
    valid: int
    quarantined: int
    reasons: Counter[str]
    watermark: int


class IngestSummary(FlowSummary):
    """What an ingest run did; `reasons` counts quarantined images by reason, most common first."""

    batches: int = 0
    requests: int = 0
    new_images: int = 0
    valid: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    watermark_from: int = 0
    watermark_to: int = 0
    data_docs: str | None = None

    def add(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.requests += outcome.requests
        self.new_images += outcome.new_images
        self.valid += outcome.valid
        self.quarantined += outcome.quarantined
        self.reasons = dict((Counter(self.reasons) + outcome.reasons).most_common())
        self.watermark_to = outcome.watermark

    @computed_field  # type: ignore[prop-decorator]
    @property
    def images_per_s(self) -> float | None:
        return round(self.new_images / self.seconds, 1) if self.seconds and self.new_images else None


# --- plain functions (each testable without Prefect) ------------------------------------------------------------


def read_batch(context: FlowContext, *, batch_size: int) -> Batch | None:
    """The next `batch_size` log rows past the watermark, and which of their images still need validating."""
    with context.transaction(write=False) as session:
        start = repo.get_watermark(session=session, name=WATERMARK)
        rows = [
            LogRow(r.id, r.request_id, r.image_sha256, r.source, r.confidence)
            for r in repo.requests_after(session=session, after_id=start, limit=batch_size)
        ]
        if not rows:
            return None
        latest: dict[str, LogRow] = {}
        for row in rows:  # oldest first, so the last request for an image wins
            latest[row.image_sha256] = row
        done = repo.validated_images(session=session, sha256s=latest)
    return Batch(start=start, rows=rows, new_images=[r for sha, r in latest.items() if sha not in done])


def _features_of(store: ImageStore, key: str) -> tuple[ImageFeatures | None, str | None]:
    try:
        data = store.get(key)
    except ObjectNotFoundError:
        return None, MISSING_REASON
    except CorruptObjectError:
        return None, CORRUPT_REASON
    return compute_features(data), None


def image_features(
    store: ImageStore, keys: Sequence[str], *, workers: int | None = None
) -> dict[str, tuple[ImageFeatures | None, str | None]]:
    """Features of each stored image, or the store problem that kept its bytes away.

    Threads, not processes: decoding and the numpy work release the GIL, and a thread pool starts instantly.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(keys, pool.map(lambda key: _features_of(store, key), keys), strict=True))


def validation_frame(
    images: Sequence[LogRow], features: dict[str, tuple[ImageFeatures | None, str | None]]
) -> pd.DataFrame:
    """One row per image for the Great Expectations suite: the image's features and its request's fields."""
    records = []
    for row in images:
        found, problem = features[row.image_sha256]
        if found is not None:
            record: dict[str, Any] = found.as_dict()
        else:  # the store lost or damaged the bytes: nothing could be measured
            record = dict.fromkeys(FEATURE_COLUMNS) | {"decodable": False, "error": problem}
        record.update(
            request_id=row.request_id,
            image_sha256=row.image_sha256,
            source=row.source,
            confidence=row.confidence,
        )
        records.append(record)
    return pd.DataFrame.from_records(records)


def decide(
    images: Sequence[LogRow],
    features: dict[str, tuple[ImageFeatures | None, str | None]],
    validation: BatchValidation,
) -> dict[str, list[str]]:
    """The reasons each image is quarantined for (an empty list: valid)."""
    decisions: dict[str, list[str]] = {}
    for row in images:
        reasons = list(validation.reasons.get(row.image_sha256, []))
        problem = features[row.image_sha256][1]
        if problem is not None:
            reasons.insert(0, problem)
        decisions[row.image_sha256] = sorted(set(reasons), key=reasons.index)
    return decisions


def commit_batch(
    context: FlowContext,
    batch: Batch,
    features: dict[str, tuple[ImageFeatures | None, str | None]],
    decisions: dict[str, list[str]],
) -> BatchOutcome:
    """Images and the watermark, in one transaction; refuses if another run moved the watermark meanwhile."""
    reasons: Counter[str] = Counter()
    valid = quarantined = 0
    with context.transaction() as session:
        current = repo.get_watermark(session=session, name=WATERMARK)
        if current != batch.start:
            raise ConflictError(
                f"another ingest run moved the watermark from {batch.start} to {current} while this one worked; "
                "nothing of this batch was kept (the next run goes on from there)"
            )
        for row in batch.new_images:
            found, _ = features[row.image_sha256]
            image = repo.upsert_image(
                session=session,
                sha256=row.image_sha256,
                source=ImageSource.imported if row.source == "import" else ImageSource.production,
                byte_size=found.byte_size if found is not None else 0,
                format=found.format if found is not None else None,
                width=found.width if found is not None else None,
                height=found.height if found is not None else None,
            )
            failing = decisions[row.image_sha256]
            repo.set_image_validation(
                session=session,
                sha256=image.sha256,
                status=ImageStatus.quarantined if failing else ImageStatus.valid,
                reasons=failing,
                features=found.as_dict() if found is not None else None,
                phash=found.phash if found is not None and found.decodable else None,
            )
            if failing:
                quarantined += 1
                reasons.update(failing)
            else:
                valid += 1
        details = {"requests": len(batch.rows), "valid": valid, "quarantined": quarantined}
        repo.set_watermark(session=session, name=WATERMARK, position=batch.end, details=details)
    return BatchOutcome(
        requests=len(batch.rows),
        new_images=len(batch.new_images),
        valid=valid,
        quarantined=quarantined,
        reasons=reasons,
        watermark=batch.end,
    )


# --- Prefect ----------------------------------------------------------------------------------------------------


@task(name="read-batch", **IO_TASK)
def _read_batch(context: FlowContext, batch_size: int) -> Batch | None:
    return read_batch(context, batch_size=batch_size)


@task(name="image-features", **IO_TASK)
def _image_features(context: FlowContext, keys: list[str]) -> dict[str, tuple[ImageFeatures | None, str | None]]:
    return image_features(context.store, keys)


@task(name="validate", cache_policy=NO_CACHE)
def _validate(frame: pd.DataFrame, max_bytes: int) -> BatchValidation:
    from monitoring.validation import validate_batch

    return validate_batch(frame, max_bytes=max_bytes)


@task(name="commit-batch", **IO_TASK)
def _commit_batch(
    context: FlowContext,
    batch: Batch,
    features: dict[str, tuple[ImageFeatures | None, str | None]],
    decisions: dict[str, list[str]],
) -> BatchOutcome:
    return commit_batch(context, batch, features, decisions)


@task(name="data-docs", cache_policy=NO_CACHE)
def _data_docs(validations: list[BatchValidation], folder: Path) -> str | None:
    from monitoring.validation import write_data_docs

    path = None
    for validation in validations:
        path = write_data_docs(validation, folder)
    return str(path) if path is not None else None


@flow(name="ingest", log_prints=False, validate_parameters=True)
def ingest(params: IngestParams | None = None) -> IngestSummary:
    """Validate the images of new request-log rows; mark them valid or quarantined; publish the counts."""
    params = params or IngestParams()
    logger = get_run_logger()
    started = time.perf_counter()
    summary = IngestSummary()
    validations: list[BatchValidation] = []
    with flow_context() as context:
        with context.transaction(write=False) as session:
            summary.watermark_from = summary.watermark_to = repo.get_watermark(session=session, name=WATERMARK)
        try:
            while params.max_batches is None or summary.batches < params.max_batches:
                batch = _read_batch(context, params.batch_size)
                if batch is None:
                    break
                features = _image_features(context, [r.image_sha256 for r in batch.new_images])
                decisions: dict[str, list[str]] = {}
                if batch.new_images:  # a batch of repeat uploads only moves the watermark
                    from monitoring.validation import BatchRefusedError

                    frame = validation_frame(batch.new_images, features)
                    try:
                        validation = _validate(frame, context.settings.max_upload_bytes)
                    except BatchRefusedError as refused:  # the run fails; its Data Docs show why (finally, below)
                        if refused.validation is not None:
                            validations.append(refused.validation)
                        raise
                    decisions = decide(batch.new_images, features, validation)
                    validations.append(validation)
                outcome = _commit_batch(context, batch, features, decisions)
                summary.add(outcome)
                logger.info(
                    "batch up to request %d: %d requests, %d new images, %d valid, %d quarantined",
                    outcome.watermark,
                    outcome.requests,
                    outcome.new_images,
                    outcome.valid,
                    outcome.quarantined,
                )
        finally:
            if params.data_docs and validations:
                summary.data_docs = _data_docs(validations, context.settings.paths.data_docs)
    return finish(summary, started=started, name="ingest", title="Ingest")
