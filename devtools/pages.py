"""Pages with known text, as the tests and the benchmarks use them: rendered paragraphs with their line boxes,
the same paper photographed again, and pages really read by a recognizer (`observe`) as the drift report reads
them (`as_requests`). Nothing here touches a database (devtools/records.py writes pages as the loop would)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter

from db.repo import WindowRequest
from devtools.traffic import CLERK
from inkloop.domain import ImageStatus
from inkloop.labels import read_records
from model.preprocess import page_lines
from model.recognizer import SHIPPED_MODEL, Recognizer
from model.registry import read_card
from monitoring.features import compute_features
from synth.fonts import FontSet
from synth.generate import Generator, SynthOptions, generate


@cache
def shipped_version() -> str:
    """The shipped model's version ("base-4"): the champion a fresh installation starts from."""
    return read_card(SHIPPED_MODEL).version


@dataclass(frozen=True)
class Page:
    data: bytes  # PNG
    text: str  # what is written
    boxes: list[tuple[float, float, float, float]] | None  # one per line, percent; None where segmentation disagrees

    @property
    def reading(self) -> str:
        """The model's reading: right but for one character of the first line."""
        first, *rest = self.text.split("\n")
        wrong = first[:-1] + ("x" if first[-1:] != "x" else "y")
        return "\n".join([wrong, *rest])

    def lines(self, texts: list[str] | None = None) -> list[dict[str, object]]:
        rows = texts if texts is not None else self.text.split("\n")
        return [{"text": t, "box": list(b)} for t, b in zip(rows, self.boxes or [], strict=True)]


def handwritten_pages(count: int, seed: int) -> list[Page]:
    return synthetic_pages(SynthOptions(count=count, seed=seed, max_lines=3, dark_share=0.0))


def shifted_pages(count: int, seed: int) -> list[Page]:
    """Traffic the shipped model reads poorly: one clerk's block capitals, in a held-out hand it never trained on
    (devtools.traffic.CLERK)."""
    return synthetic_pages(
        SynthOptions(count=count, seed=seed, max_lines=3, dark_share=0.0, font_set=FontSet.heldout, families=(CLERK,))
    )


def synthetic_pages(options: SynthOptions) -> list[Page]:
    """Rendered pages with their text and, where the segmenter finds one line per text line, their line boxes."""
    count = options.count
    generator = Generator(options)
    pages = []
    for index in range(count):
        image, text, _ = generator.sample(index)
        out = io.BytesIO()
        image.save(out, "PNG")
        found = page_lines(image)
        rows = text.split("\n")
        boxes = [line.percent_box() for line in found] if len(found) == len(rows) else None
        pages.append(Page(out.getvalue(), text, boxes))
    return pages


def rephotographed(page: Page, *, degrees: float = 0.3, quality: int = 90) -> bytes:
    """The page rotated slightly and saved as JPEG: another photo of the same paper."""
    with Image.open(io.BytesIO(page.data)) as image:
        turned = image.convert("L").rotate(degrees, fillcolor=int(image.convert("L").getpixel((0, 0))))  # type: ignore[arg-type]
        out = io.BytesIO()
        turned.save(out, "JPEG", quality=quality)
    return out.getvalue()


def rendered(folder: Path, options: SynthOptions) -> list[Page]:
    """`options.count` rendered pages (two worker processes), with their text; no line boxes."""
    generate(folder, options, workers=2)
    return [Page(Path(r["path"]).read_bytes(), r["text"], None) for r in read_records(folder)]


def blurred(image: Image.Image) -> Image.Image:
    """Out of focus: a Gaussian blur of 2.5 px. The shipped model reads such pages several times worse."""
    return image.convert("L").filter(ImageFilter.GaussianBlur(2.5))


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
            model_version=shipped_version(),
            text=o.reading,
            confidence=o.confidence,
            image_status=ImageStatus.valid,
            features=o.features,
            audit_label=o.text if audit_every and i % audit_every == 0 else None,
        )
        for i, o in enumerate(observed)
    ]
