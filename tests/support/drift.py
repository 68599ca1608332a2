"""Production traffic for the drift tests and benchmark: real pages, really read.

`observe` reads rendered pages with a real recognizer (the shipped model unless given) and computes their real
image features, optionally after a transform (a blur, say); `as_requests` turns the readings into the rows the
drift report reads (monitoring.drift.compare), `record` writes them into a database the way the endpoint, the
ingest flow and sync do (a request, a validated image with its features, and for every `audit_every`-th page an
`audit` task answered with the page's true text).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter
from sqlalchemy.orm import Session

from db import repo
from db.models import AnnotationTask
from db.repo import WindowRequest
from inkloop.domain import ImageStatus, TaskReason, TaskState
from inkloop.labels import read_records
from inkloop.store import ImageStore
from model.recognizer import SHIPPED_MODEL, Recognizer
from monitoring.features import compute_features
from synth.generate import SynthOptions, generate
from tests.support.datasets import Page
from tests.support.paths import SHIPPED_VERSION

MODEL = SHIPPED_VERSION


@dataclass(frozen=True)
class Observed:
    data: bytes  # the image as sent
    text: str  # what is written on it
    reading: str  # what the model read
    confidence: float
    features: dict[str, Any]


def observe(
    pages: Sequence[Page],
    *,
    recognizer: Recognizer | None = None,
    transform: Callable[[Image.Image], Image.Image] | None = None,
) -> list[Observed]:
    recognizer = recognizer or Recognizer.load(SHIPPED_MODEL)
    datas = []
    for page in pages:
        if transform is None:
            datas.append(page.data)
            continue
        with Image.open(io.BytesIO(page.data)) as image:
            out = io.BytesIO()
            transform(image).save(out, "PNG")
            datas.append(out.getvalue())
    images: list[Image.Image] = [Image.open(io.BytesIO(data)) for data in datas]
    predictions = recognizer.predict_images(images, batch_size=32)
    return [
        Observed(data, page.text, p.text, p.confidence, compute_features(data).as_dict())
        for page, data, p in zip(pages, datas, predictions, strict=True)
    ]


def as_requests(observed: Sequence[Observed], *, at: datetime, audit_every: int = 3) -> list[WindowRequest]:
    """The drift report's rows for these pages, every `audit_every`-th one audited (0: none)."""
    return [
        WindowRequest(
            request_id=str(uuid.uuid4()),
            created_at=at,
            model_version=MODEL,
            text=o.reading,
            confidence=o.confidence,
            image_status=ImageStatus.valid,
            features=o.features,
            audit_label=o.text if audit_every and i % audit_every == 0 else None,
        )
        for i, o in enumerate(observed)
    ]


def record(
    session: Session,
    observed: Sequence[Observed],
    *,
    start: datetime,
    spacing: timedelta,
    audit_every: int = 3,
    project: str = "inkloop",
    store: ImageStore | None = None,
    confidence: Callable[[float], float] = lambda c: c,
) -> None:
    """Write the pages as logged from `start`, one every `spacing`, validated; every `audit_every`-th (0: none)
    routed as `audit` and answered with its true text. `confidence` rewrites the logged confidence (a
    miscalibrated model)."""
    for i, o in enumerate(observed):
        key = store.put(o.data) if store is not None else f"{uuid.uuid4().hex}{uuid.uuid4().hex}"
        at = start + i * spacing
        request_id = str(uuid.uuid4())
        repo.log_request(
            session=session,
            request_id=request_id,
            image_sha256=key,
            image_bytes=len(o.data),
            model_version=MODEL,
            text=o.reading,
            confidence=confidence(o.confidence),
            latency_ms=1.0,
            created_at=at,
        )
        repo.upsert_image(session=session, sha256=key, source="production", byte_size=len(o.data))
        repo.set_image_validation(
            session=session, sha256=key, status="valid", features=o.features, phash=o.features.get("phash")
        )
        if audit_every and i % audit_every == 0:
            task = AnnotationTask(
                uid=str(uuid.uuid4()),
                project=project,
                image_sha256=key,
                request_id=request_id,
                reason=TaskReason.audit,
                state=TaskState.completed,
                model_version=MODEL,
                prediction_text=o.reading,
                completed_at=at,
            )
            session.add(task)
            session.flush()
            repo.add_annotation_revision(
                session=session,
                task_id=task.id,
                ls_annotation_id=task.id + 500_000,
                annotator="auditor@example.com",
                annotated_at=at,
                text=o.text,
                raw={"paragraph": o.text, "lines": []},
            )


def rendered(folder: Path, options: SynthOptions) -> list[Page]:
    """`options.count` rendered pages (two worker processes), with their text; no line boxes."""
    generate(folder, options, workers=2)
    return [Page(Path(r["path"]).read_bytes(), r["text"], None) for r in read_records(folder)]


def blurred(image: Image.Image) -> Image.Image:
    """Out of focus: a Gaussian blur of 2.5 px. The shipped model reads such pages several times worse."""
    return image.convert("L").filter(ImageFilter.GaussianBlur(2.5))


@dataclass(frozen=True)
class Traffic:
    """Pages as production sends them, read by the shipped model; the drift tests' windows are cut from these."""

    reference: list[Observed]  # 200 paragraphs like the training data: dark ink on light paper
    same: list[Observed]  # 1000 more drawn the same way: 20 current windows of 50
    dark: list[Observed]  # 60 light-on-dark pages
    blurred_pages: list[Page]  # 150 pages that production sends out of focus
    blurred: list[Observed]  # ... as the shipped model reads them


@pytest.fixture(scope="session")
def drift_traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    folder = tmp_path_factory.mktemp("drift-traffic")
    recognizer = Recognizer.load(SHIPPED_MODEL)

    def pages(name: str, count: int, seed: int, dark_share: float = 0.0) -> list[Page]:
        return rendered(folder / name, SynthOptions(count=count, seed=seed, max_lines=3, dark_share=dark_share))

    blurry = pages("blurred", 150, 304)
    return Traffic(
        reference=observe(pages("reference", 200, 301), recognizer=recognizer),
        same=observe(pages("same", 1000, 302), recognizer=recognizer),
        dark=observe(pages("dark", 60, 303, dark_share=1.0), recognizer=recognizer),
        blurred_pages=blurry,
        blurred=observe(blurry, recognizer=recognizer, transform=blurred),
    )
