"""Pages with known text for the dataset tests, and annotated tasks written the way sync writes them.

`handwritten_pages` renders distinct paragraphs in the project's handwriting fonts (synth.Generator), each with
its line boxes as the segmenter finds them; `labelled` records one as a request the model read with a mistake,
routed and answered (an annotation revision with the label derived from the answer, as sync stores it), for tests
that need annotations in the database without driving Label Studio.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image
from sqlalchemy.orm import Session

from db import repo
from db.models import AnnotationTask
from flows.traffic import CLERK
from inkloop.domain import TaskReason, TaskState
from inkloop.labels import derive_label
from inkloop.store import ImageStore
from model.preprocess import page_lines
from monitoring.features import compute_features
from synth.fonts import FontSet
from synth.generate import Generator, SynthOptions
from tests.support.paths import SHIPPED_VERSION


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
    (flows.traffic.CLERK)."""
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


def labelled(
    session: Session,
    store: ImageStore,
    page: Page,
    *,
    project: str,
    answer: str | None = None,
    reason: TaskReason = TaskReason.low_confidence,
    state: TaskState = TaskState.completed,
    unreadable: bool = False,
    skipped: bool = False,
    ls_annotation_id: int | None = None,
    data: bytes | None = None,
    document: str | None = None,
) -> str:
    """Record `page` as logged, validated, routed and answered: the annotator fixed the lines in their boxes (or,
    where the page has no boxes, the paragraph) to `answer` (default: the page's text). Returns the image key."""
    data = data or page.data
    key = store.put(data)
    features = compute_features(data)
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    repo.log_request(
        session=session,
        request_id=request_id,
        image_sha256=key,
        image_bytes=len(data),
        model_version=SHIPPED_VERSION,
        text=page.reading,
        confidence=0.4,
        line_boxes=page.boxes,
        latency_ms=1.0,
        document=document,
        created_at=now,
    )
    repo.upsert_image(session=session, sha256=key, source="production", byte_size=len(data))
    repo.set_image_validation(
        session=session, sha256=key, status="valid", features=features.as_dict(), phash=features.phash
    )
    task = AnnotationTask(
        uid=str(uuid.uuid4()),
        project=project,
        image_sha256=key,
        request_id=request_id,
        reason=reason,
        state=state,
        model_version=SHIPPED_VERSION,
        prediction_text=page.reading,
        completed_at=now,
    )
    session.add(task)
    session.flush()
    text = answer if answer is not None else page.text
    if page.boxes is not None:
        paragraph, lines = page.reading, page.lines(text.split("\n"))
    else:
        paragraph, lines = text, []
    label = derive_label(paragraph=paragraph, lines=lines, prediction=page.reading)
    repo.add_annotation_revision(
        session=session,
        task_id=task.id,
        ls_annotation_id=ls_annotation_id or task.id + 100_000,
        annotator="annotator@example.com",
        annotated_at=now,
        text=label.text,
        lines=label.lines,
        label_source=label.source,
        raw={"paragraph": paragraph, "lines": lines},
        unreadable=unreadable,
        skipped=skipped,
    )
    return key
