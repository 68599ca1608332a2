"""The folder dataset format shared by `inkloop synth` (writes it) and training (reads it): images next to a
`labels.jsonl` with one {"file": ..., "text": ...} object per line (other keys are kept as metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inkloop.errors import InkloopError

LABELS = "labels.jsonl"


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
