"""Labels: the folder dataset format shared by `inkloop synth` and `inkloop datasets export` (write it) and
training (reads it): images next to a `labels.jsonl` with one {"file": ..., "text": ...} object per line (other
keys are kept as metadata; "lines" [{"text", "box"}] gives a page's annotated line boxes); and what an
annotator's answer in Label Studio means (derive_label)."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inkloop.errors import InkloopError

LABELS = "labels.jsonl"
# A dataset export's manifest beside its labels (flows/dataset_export.py): the version, counts, and the licences of
# its pages, which training copies into the model card.
DATASET_MANIFEST = "dataset.json"


def folder_licences(folders: list[str] | list[Path]) -> tuple[dict[str, int], dict[str, str]]:
    """Pages by licence and attributions by collection, summed over the dataset exports among `folders` (a folder
    without a manifest, e.g. synthetic pages, adds nothing)."""
    licences: dict[str, int] = {}
    attributions: dict[str, str] = {}
    for folder in folders:
        manifest = Path(folder) / DATASET_MANIFEST
        if not manifest.is_file():
            continue
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LabelsError(f"{manifest}: not readable JSON ({exc})") from None
        for name, count in (data.get("licences") or {}).items():
            licences[name] = licences.get(name, 0) + int(count)
        attributions.update(data.get("attributions") or {})
    return dict(sorted(licences.items())), dict(sorted(attributions.items()))


class LabelsError(InkloopError):
    """A labels.jsonl that is missing or malformed, or names an image that does not exist."""


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every record of `folder/labels.jsonl`, checked (each names an existing image and has a string text), with
    "path" added: the image's full path."""
    labels = Path(folder) / LABELS
    if not labels.is_file():
        raise LabelsError(f"{folder} has no {LABELS}")
    records = []
    for number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            path, text = Path(folder) / record["file"], record["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LabelsError(f"{labels}:{number}: not a {{'file', 'text'}} JSON object ({exc})") from None
        if not isinstance(text, str) or not path.is_file():
            raise LabelsError(f"{labels}:{number}: missing image {record['file']!r} or non-string text")
        records.append({**record, "path": path})
    if not records:
        raise LabelsError(f"{labels} lists no images")
    return records


def read_labels(folder: Path) -> list[tuple[Path, str]]:
    """(image path, text) for each record of `folder/labels.jsonl`."""
    return [(record["path"], record["text"]) for record in read_records(folder)]


# --- what an annotator's answer means ---------------------------------------------------------------------------
#
# The answer is in whichever field differs from the model's reading (the prediction), with an empty field counting
# as untouched. One rule reads both shapes of answer a database holds:
# - today's (annotation/labeling.py): the screen pre-fills ONE copy of the reading, the line texts when every line
#   box has its text, else the paragraph box, so a completed task shows one truth. The paragraph box under lined
#   pages starts empty: text typed there is the label; left empty, the lines are.
# - the first screens': both copies pre-filled, the paragraph box and one text per line box. An annotator corrected
#   one (usually a line in its box) and left the other as it was. Taking the paragraph box blindly (the first
#   design) kept the model's uncorrected text whenever a line was fixed: a dataset would teach the model its own
#   mistakes. Comparing each copy with the prediction finds the edited one, so these answers keep their labels.


class LabelSource(enum.StrEnum):
    """Which field of an answer carries the annotator's text."""

    accepted = "accepted"  # neither copy edited: the model's reading was right
    lines = "lines"  # the line texts were edited: the paragraph is the lines, top to bottom
    paragraph = "paragraph"  # the paragraph box was edited
    both = "both"  # both edited, and they agree
    conflict = "conflict"  # both edited, and they disagree: a person must decide (the task needs review)


@dataclass(frozen=True)
class DerivedLabel:
    text: str
    # [{"text", "box"}, with "outline" for a line drawn as a polygon] top to bottom; a line's text is "" where it is
    # not known
    lines: list[dict[str, Any]]
    source: LabelSource


def rows(text: str) -> list[str]:
    """Lines of a text with blank ones dropped and inner whitespace collapsed: what two copies must agree on."""
    return [" ".join(row.split()) for row in text.split("\n") if row.strip()]


def _shape(text: str, line: Mapping[str, Any]) -> dict[str, Any]:
    """A label's line: its text and box, and the outline the annotator left it as (percent of the image, as Label
    Studio draws it) when it is a polygon; an export turns that into the page's pixels (flows/dataset_export.py)."""
    shaped: dict[str, Any] = {"text": text, "box": list(line.get("box") or [])}
    if line.get("polygon"):
        shaped["outline"] = [list(point) for point in line["polygon"]]
    return shaped


def outline_pixels(outline: Sequence[Sequence[float]], width: int, height: int) -> list[list[int]]:
    """A percent outline (a label line's "outline") as points in the pixels of a `width` x `height` page."""
    return [[round(float(x) * width / 100), round(float(y) * height / 100)] for x, y in outline]


def derive_label(*, paragraph: str, lines: Sequence[Mapping[str, Any]], prediction: str | None) -> DerivedLabel:
    """The label an answer gives, from its paragraph box, its line boxes (top to bottom, each {"text", "box"}) and
    the model reading the screen was pre-filled with (`prediction`; None when unknown, which counts as empty).

    Edited lines give the paragraph (joined top to bottom); an edited paragraph gives the text, and its lines get
    its rows as texts only when the counts agree (else they keep their boxes with no text); both edited and
    disagreeing is a conflict. An empty field counts as not edited: an empty paragraph box (as today's screen
    leaves it under pre-filled lines, or as an annotator clears it) means "use the lines".
    """
    predicted = rows(prediction or "")
    line_rows = [" ".join(str(line.get("text") or "").split()) for line in lines]
    written = [row for row in line_rows if row]
    paragraph_rows = rows(paragraph)
    lines_edited = bool(written) and written != predicted
    paragraph_edited = bool(paragraph_rows) and paragraph_rows != predicted
    boxes = [_shape(row, line) for row, line in zip(line_rows, lines, strict=True)]
    if lines_edited and paragraph_edited:
        if written == paragraph_rows:
            return DerivedLabel("\n".join(written), boxes, LabelSource.both)
        return DerivedLabel("\n".join(paragraph_rows), boxes, LabelSource.conflict)
    if lines_edited:
        if len(written) < len(line_rows):
            # Some boxes were left without text (their pre-fill was empty, or the annotator cleared it) while
            # others were typed in: the paragraph they give would be missing lines.
            return DerivedLabel("\n".join(written), boxes, LabelSource.conflict)
        return DerivedLabel("\n".join(written), boxes, LabelSource.lines)
    if paragraph_edited:
        if len(paragraph_rows) == len(boxes):
            paired = [dict(box, text=row) for box, row in zip(boxes, paragraph_rows, strict=True)]
        else:
            paired = [dict(box, text="") for box in boxes]
        return DerivedLabel("\n".join(paragraph_rows), paired, LabelSource.paragraph)
    text = "\n".join(predicted or paragraph_rows or written)
    return DerivedLabel(text, boxes, LabelSource.accepted)
