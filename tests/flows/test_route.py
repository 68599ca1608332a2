"""The route flow against a real Label Studio: what annotators see, in which order, within the budget, never twice."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

import flows.route as route_module
from flows.route import RouteParams, route
from inkloop.domain import TaskReason, TaskState
from tests.support.loop import Loop, valid_image
from tests.support.paths import GOLDEN, SHIPPED_VERSION

PAGES = sorted(GOLDEN.glob("*.png"))


def _ls_task_count(loop: Loop, project_id: int) -> int:
    with loop.label_studio.client() as client:
        return int(client.project(project_id)["task_number"])


def test_uncertain_and_flagged_pages_reach_annotators_least_confident_first(loop: Loop) -> None:
    confidences = [0.6, 0.3, 0.95, 0.5, 0.97]
    keys = [
        valid_image(loop, p.read_bytes(), confidence=c, text=f"text {i}\nline two")
        for i, (p, c) in enumerate(zip(PAGES, confidences, strict=False))
    ]
    flagged = valid_image(loop, PAGES[5].read_bytes(), confidence=0.99, flagged=True)

    summary = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))

    assert summary.created == 4
    assert summary.created_by_reason == {"low_confidence": 3, "flagged": 1}
    tasks = loop.tasks()
    assert {t.image_sha256 for t in tasks} == {keys[0], keys[1], keys[3], flagged}
    assert all(t.state is TaskState.open and t.ls_task_id for t in tasks)
    assert {t.reason for t in tasks} == {TaskReason.low_confidence, TaskReason.flagged}
    project_id = summary.ls_project_id
    assert project_id is not None
    assert _ls_task_count(loop, project_id) == 4

    with loop.label_studio.annotator() as annotator:
        client = annotator.client
        # The annotator's queue starts with the least confident page, pre-filled with the model's text.
        first = annotator.next_task(project_id)
        assert first is not None and first["data"]["image_sha256"] == keys[1]
        predictions = first["predictions"]
        assert len(predictions) == 1 and predictions[0]["model_version"] == SHIPPED_VERSION
        texts = [r["value"].get("text") for r in predictions[0]["result"] if r["type"] == "textarea"]
        assert ["text 1\nline two"] in texts or any("text 1" in "".join(t) for t in texts if t)
        # The image is served to the annotator's browser.
        image = client.get_file(first["data"]["image"])
        assert image == PAGES[1].read_bytes()

    again = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    assert again.created == 0
    assert _ls_task_count(loop, project_id) == 4


def _line_regions(client, ls_task_id: int) -> list[tuple[str, tuple[float, ...]]]:  # noqa: ANN001
    result = client.task(ls_task_id)["predictions"][0]["result"]
    return [
        (r["value"]["text"][0], tuple(r["value"][k] for k in ("x", "y", "width", "height")))
        for r in result
        if r["type"] == "textarea" and r["id"].startswith("line-") and "x" in r["value"]
    ]


def _outline_regions(client, ls_task_id: int) -> list[tuple[str, list[list[float]]]]:  # noqa: ANN001
    result = client.task(ls_task_id)["predictions"][0]["result"]
    shapes = {r["id"]: r for r in result if r["type"] == "polygonlabels"}
    return [
        (r["value"]["text"][0], shapes[r["id"]]["value"]["points"])
        for r in result
        if r["type"] == "textarea" and r["id"] in shapes
    ]


def test_logged_outlines_are_pre_filled_as_polygons_and_unlogged_pages_get_the_segmenters(loop: Loop) -> None:
    # Since migration 0008 the endpoint logs each line's outline: routing pre-fills the lines as polygons, as
    # imported pages are, not as upright boxes (which on a slanted or crowded page overlap the next lines).
    boxes = [(4.0, 10.0, 90.0, 30.0), (4.0, 55.0, 60.0, 30.0)]
    outlines = [
        [(4.0, 12.0), (50.0, 10.0), (94.0, 14.0), (94.0, 38.0), (4.0, 40.0)],
        [(4.0, 56.0), (64.0, 55.0), (64.0, 85.0), (4.0, 84.0)],
    ]
    logged = valid_image(
        loop, PAGES[0].read_bytes(), confidence=0.1, text="first line\nsecond", line_boxes=boxes, line_outlines=outlines
    )
    boxes_only = valid_image(loop, PAGES[1].read_bytes(), confidence=0.15, text="one\ntwo", line_boxes=boxes)
    unlogged = valid_image(loop, PAGES[2].read_bytes(), confidence=0.2, text="whole text")

    route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))

    tasks = {t.image_sha256: t.ls_task_id or 0 for t in loop.tasks()}
    assert all(tasks.values())
    with loop.label_studio.client() as client:
        assert _outline_regions(client, tasks[logged]) == [
            ("first line", [list(p) for p in outlines[0]]),
            ("second", [list(p) for p in outlines[1]]),
        ]
        # A request logged before 0008 has boxes only: they stay boxes.
        assert _outline_regions(client, tasks[boxes_only]) == []
        assert [text for text, _ in _line_regions(client, tasks[boxes_only])] == ["one", "two"]
        # Without logged lines the page is segmented again, and its lines come as the segmenter's outlines.
        found = _outline_regions(client, tasks[unlogged])
        assert found and _line_regions(client, tasks[unlogged]) == []
    assert all(len(points) >= 3 and all(0 <= v <= 100 for p in points for v in p) for _, points in found)


def test_line_regions_come_from_the_logged_lines_else_from_the_segmenter(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = [(4.0, 10.5, 90.0, 30.0), (4.0, 55.0, 60.25, 30.0)]
    logged = valid_image(loop, PAGES[0].read_bytes(), confidence=0.1, text="first line\nsecond", line_boxes=boxes)
    unlogged = valid_image(loop, PAGES[1].read_bytes(), confidence=0.2, text="whole text")
    segmented: list[str] = []
    real = route_module.page_lines

    def recording_page_lines(data: bytes, text: str) -> list[dict[str, Any]]:
        segmented.append(text)
        return real(data, text)

    monkeypatch.setattr(route_module, "page_lines", recording_page_lines)

    route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))

    assert segmented == ["whole text"], "only the request without logged lines is segmented again"
    tasks = {t.image_sha256: t for t in loop.tasks()}
    logged_id, unlogged_id = tasks[logged].ls_task_id, tasks[unlogged].ls_task_id
    assert logged_id is not None and unlogged_id is not None
    with loop.label_studio.client() as client:
        assert _line_regions(client, logged_id) == [("first line", boxes[0]), ("second", boxes[1])]
        assert _outline_regions(client, unlogged_id), "the segmenter found the page's lines"


def test_the_daily_budget_holds_across_runs_and_near_duplicates_go_once(loop: Loop) -> None:
    page = PAGES[0].read_bytes()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(page)).convert("L").save(buffer, format="JPEG", quality=85)
    original = valid_image(loop, page, confidence=0.1)
    valid_image(loop, buffer.getvalue(), confidence=0.2)  # the same page, re-encoded: another sha256
    for p, c in zip(PAGES[1:4], [0.3, 0.4, 0.5], strict=True):
        valid_image(loop, p.read_bytes(), confidence=c)

    first = route(RouteParams(budget=2, threshold=0.8, audit_rate=0.0))
    assert first.created == 2 and first.near_duplicates == 1
    assert first.over_budget == {"low_confidence": 2}
    assert original in {t.image_sha256 for t in loop.tasks()}
    second = route(RouteParams(budget=2, threshold=0.8, audit_rate=0.0))
    assert second.created == 0 and second.budget_left == 0
    third = route(RouteParams(budget=4, threshold=0.8, audit_rate=0.0))
    assert third.created == 2  # the two left over, not the near-duplicate
    assert len(loop.tasks()) == 4


def test_a_crash_between_label_studio_and_the_commit_never_makes_a_task_twice(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for p, c in zip(PAGES[:3], [0.1, 0.2, 0.3], strict=True):
        valid_image(loop, p.read_bytes(), confidence=c)

    def dies(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("killed after Label Studio answered")

    monkeypatch.setattr(route_module, "confirm", dies)
    with pytest.raises(RuntimeError, match="killed"):
        route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    tasks = loop.tasks()
    assert len(tasks) == 3 and all(t.state is TaskState.queued for t in tasks)

    monkeypatch.undo()
    for name, value in loop.env().items():
        monkeypatch.setenv(name, value)
    summary = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    assert summary.created == 0 and summary.recovered == 3
    assert all(t.state is TaskState.open for t in loop.tasks())
    assert summary.ls_project_id is not None
    assert _ls_task_count(loop, summary.ls_project_id) == 3


def test_label_studio_down_fails_clearly_and_records_nothing(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    valid_image(loop, PAGES[0].read_bytes(), confidence=0.1)
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(route_module._project, "retry_delay_seconds", [0, 0, 0])
    with pytest.raises(Exception, match="not reachable"):
        route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    assert loop.tasks() == []
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", loop.label_studio.url)
    assert route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0)).created == 1
