"""One truth on a completed task (issue 30, point 5): the labeling screen pre-fills the model's reading once (the
line texts, else the paragraph box), the simulated annotators answer as the screen's header asks, and what Label
Studio stores for a completed task holds the annotator's text in one field only, the one the label comes from.

The first design pre-filled both copies: a completed task kept the corrected lines beside the model's uncorrected
paragraph, and a reviewer could not tell which was the label.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from annotation.client import LabelStudioClient
from annotation.labeling import label_config, parse_annotation, task_payload
from devtools.annotators import SimulatedAnnotator, correction, prefilled
from inkloop.labels import LabelSource
from tests.support.labelstudio import LabelStudioHandle, answer_texts

READING = "dear Sam,\nsee yuo soon"  # the model's reading: one mistake on line 2
TRUTH = "dear Sam,\nsee you soon"
BOXES = [(4.0, 8.0, 60.0, 10.0), (4.0, 22.0, 70.0, 10.0)]
LINED = [{"text": text, "box": box} for text, box in zip(READING.split("\n"), BOXES, strict=True)]
UNTEXTED = [{"text": "", "box": box} for box in BOXES]  # boxes whose count differed from the reading's lines

# (name, the model's lines, what the page reads, the field the label must come from)
CASES = [
    ("a line corrected in its box", LINED, TRUTH, LabelSource.lines),
    ("lines wrong: the paragraph retyped", LINED, "dear Sam, see you soon", LabelSource.paragraph),
    ("no lines found: the paragraph corrected", [], TRUTH, LabelSource.paragraph),
    ("boxes without text: the paragraph corrected", UNTEXTED, TRUTH, LabelSource.paragraph),
]


def _payload(uid: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return task_payload(
        uid=uid,
        image_url=f"/data/local-files/?d=objects/{uid}.png",
        text=READING,
        lines=lines,
        score=0.3,
        model_version="m1",
        priority=0.7,
        reason="low_confidence",
    )


def _one_truth(result: list[dict[str, Any]], expected: str) -> None:
    """The result's texts sit in one field (the paragraph box, or the line texts) and read `expected`."""
    config = label_config()
    texts = answer_texts(result)
    assert len(texts) == 1, f"two fields hold text: {texts}"
    ((field, values),) = texts.items()
    shown = values[0] if field == config.paragraph else "\n".join(values)
    assert shown == expected


@pytest.mark.parametrize(("name", "lines", "truth", "source"), CASES, ids=[c[0] for c in CASES])
def test_the_screen_pre_fills_one_copy_and_an_answer_keeps_one_truth(
    name: str, lines: list[dict[str, Any]], truth: str, source: LabelSource
) -> None:
    task = {"id": 1, **_payload("t", lines)}
    _one_truth(task["predictions"][0]["result"], READING)
    assert prefilled(task)[0] == READING  # what the simulated annotators see pre-filled
    result = correction(task, truth)
    _one_truth(result, truth)
    parsed = parse_annotation(
        {"id": 2, "result": result, "completed_by": 1, "updated_at": "2026-01-02T03:04:05Z"},
        {"id": 1, "data": task["data"]},
    )
    label = parsed.label(READING)
    assert (label.text, label.source) == (truth, source), name


@pytest.fixture
def client(label_studio: LabelStudioHandle) -> Any:
    with label_studio.client() as admin:
        yield admin


def test_a_completed_task_in_label_studio_shows_one_truth(client: LabelStudioClient) -> None:
    project = client.ensure_project(f"one truth {uuid.uuid4().hex[:8]}", model_version="m1")
    ids = client.import_tasks(project, [_payload(name, lines) for name, lines, _, _ in CASES])
    truths = {name: (truth, source) for name, _, truth, source in CASES}
    annotator = SimulatedAnnotator(client)
    seen = set()
    while (task := annotator.next_task(project)) is not None:
        name = task["data"]["inkloop_uid"]
        seen.add(name)
        # what the labeling screen opens on: the model's reading, once
        _one_truth(task["predictions"][0]["result"], READING)
        annotator.submit(task["id"], result=correction(task, truths[name][0]))
    assert seen == set(truths)

    for name, task_id in ids.items():
        stored = client.task(task_id)
        (answer,) = stored["annotations"]
        truth, source = truths[name]
        _one_truth(answer["result"], truth)  # what a reviewer opening the completed task reads
        label = parse_annotation(answer, stored).label(READING)
        assert (label.text, label.source) == (truth, source), name
