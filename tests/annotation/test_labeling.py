"""The labeling config and the task / annotation JSON, without a server: names come from the XML, payloads are
valid for Label Studio's own checker, and what an annotator submits parses back to what they meant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk.label_interface import LabelInterface

from annotation.labeling import (
    UID_KEY,
    Line,
    annotation_result,
    image_url_for,
    label_config,
    parse_annotation,
    parse_label_config,
    task_payload,
)
from inkloop.errors import InvalidKeyError, InvalidTaskError, MalformedAnnotationError

KEY = "ab" + "cd" + "e" * 60
LINES: list[Line] = [
    {"text": "second line", "box": (5.0, 40.0, 80.0, 12.0)},
    {"text": "first line", "box": (5.0, 10.0, 90.0, 12.0)},
]


def _payload(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "uid": "task-1",
        "image_url": "/data/local-files/?d=objects/ab/cd/x",
        "text": "first line\nsecond line",
        "lines": LINES,
        "score": 0.42,
        "model_version": "base-2",
        "priority": 0.58,
        "reason": "low_confidence",
        "meta": {"request_id": "r-1", "image_sha256": KEY},
    }
    return task_payload(**{**fields, **changes})


def _annotation(result: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "task": 3,
        "result": result,
        "completed_by": 2,
        "created_username": " Ann Lee ann@example.org, 2",
        "was_cancelled": False,
        "lead_time": 12.5,
        "created_at": "2026-01-02T03:04:05.123456Z",
        "updated_at": "2026-01-02T03:05:00.000001Z",
        **changes,
    }


TASK = {"id": 3, "data": {"image": "/x", UID_KEY: "task-1"}}


def test_names_come_from_the_shipped_config() -> None:
    config = label_config()
    assert (config.image, config.image_key, config.paragraph, config.line_text) == (
        "image",
        "image",
        "paragraph",
        "line_text",
    )
    assert (config.lines, config.line_label, config.quality, config.unreadable) == (
        "line",
        "Line",
        "quality",
        "Unreadable",
    )
    assert (config.outlines, config.outline_label) == ("outline", "Line outline")
    assert LabelInterface(config.xml)  # Label Studio's own parser accepts it


def test_renamed_tags_are_followed() -> None:
    xml = label_config().xml.replace('name="paragraph"', 'name="whole_text"').replace("$image", "$photo")
    config = parse_label_config(xml)
    assert config.paragraph == "whole_text" and config.image_key == "photo"
    payload = _payload(config=config, lines=[])
    assert payload["data"]["photo"].startswith("/data/local-files/")
    assert payload["predictions"][0]["result"][-1]["from_name"] == "whole_text"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda x: x.replace('perRegion="true"', ""), 'exactly one <TextArea perRegion="true">'),
        (lambda x: x.replace("PolygonLabels", "Polygon"), "exactly one <PolygonLabels> .line outlines."),
        (lambda x: x.replace("<Choice value", "<Foo value"), "exactly one <Choice> in <Choices>"),
        (lambda x: x.replace("$image", "image"), "must name a task field"),
        (lambda x: x.replace("</View>", ""), "not well-formed XML"),
    ],
)
def test_config_errors_say_what_is_missing(edit: Any, message: str) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        parse_label_config(edit(label_config().xml))


def test_task_payload_carries_data_and_one_prediction() -> None:
    payload = _payload()
    assert payload["data"] == {
        "image": "/data/local-files/?d=objects/ab/cd/x",
        UID_KEY: "task-1",
        "reason": "low_confidence",
        "priority": 0.58,
        "request_id": "r-1",
        "image_sha256": KEY,
    }
    (prediction,) = payload["predictions"]
    assert prediction["model_version"] == "base-2" and prediction["score"] == 0.42
    result = prediction["result"]
    # a box and its text per line (one region: same id); the lines are the whole reading, so no paragraph copy
    assert [(r["id"], r["type"]) for r in result] == [
        ("line-1", "rectanglelabels"),
        ("line-1", "textarea"),
        ("line-2", "rectanglelabels"),
        ("line-2", "textarea"),
    ]
    assert result[0]["value"] == {
        "x": 5.0,
        "y": 40.0,
        "width": 80.0,
        "height": 12.0,
        "rotation": 0,
        "rectanglelabels": ["Line"],
    }
    assert result[1]["value"]["text"] == ["second line"]
    assert LabelInterface(label_config().xml).validate_prediction(prediction, return_errors=True) == []


def test_without_lines_the_prediction_is_the_paragraph_alone() -> None:
    (prediction,) = _payload(lines=[], text="")["predictions"]
    assert prediction["result"] == [
        {"id": "paragraph", "from_name": "paragraph", "to_name": "image", "type": "textarea", "value": {"text": [""]}}
    ]


def _fields(prediction: dict[str, Any]) -> dict[str, list[str]]:
    """The texts a prediction pre-fills, by tag: what the labeling screen shows before anyone types."""
    shown: dict[str, list[str]] = {}
    for item in prediction["result"]:
        if item["type"] == "textarea":
            shown.setdefault(item["from_name"], []).extend(item["value"]["text"])
    return shown


def test_the_reading_is_pre_filled_once_in_the_lines_when_they_are_the_whole_of_it() -> None:
    (prediction,) = _payload()["predictions"]
    assert _fields(prediction) == {"line_text": ["second line", "first line"]}  # no paragraph copy to go stale


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        ([], "the model found no lines"),
        ([{"text": "", "box": b["box"]} for b in LINES], "boxes without texts (the segmenter's count differed)"),
        ([{"text": "first line", "box": LINES[1]["box"]}, {"text": "", "box": LINES[0]["box"]}], "one box lacks text"),
        ([{"text": "first line", "box": LINES[1]["box"]}, {"text": "2nd", "box": LINES[0]["box"]}], "not the reading"),
    ],
)
def test_otherwise_the_paragraph_box_carries_the_reading_and_boxes_come_with_empty_texts(
    lines: list[Any], why: str
) -> None:
    (prediction,) = _payload(lines=lines)["predictions"]
    fields = _fields(prediction)
    assert fields.pop("paragraph") == ["first line\nsecond line"], why
    assert fields == ({"line_text": [""] * len(lines)} if lines else {}), "the boxes come with empty texts"
    assert LabelInterface(label_config().xml).validate_prediction(prediction, return_errors=True) == []


def test_an_answer_leaves_out_empty_fields_as_the_screen_does() -> None:
    lines = [{"text": "first line", "box": (5.0, 10.0, 90.0, 12.0)}, {"text": "", "box": (5.0, 40.0, 80.0, 12.0)}]
    result = annotation_result(paragraph=" \n", lines=lines)
    assert [(r["id"], r["from_name"]) for r in result] == [
        ("line-1", "line"),
        ("line-1", "line_text"),
        ("line-2", "line"),
    ]
    parsed = parse_annotation(_annotation(result), TASK)
    assert parsed.paragraph == "" and [line["text"] for line in parsed.lines] == ["first line", ""]


def test_nul_characters_are_dropped_from_an_answer_and_counted() -> None:
    result = annotation_result(
        paragraph="dear\x00 Sam", lines=[{"text": "\x00line\x00", "box": (5.0, 10.0, 90.0, 12.0)}]
    )
    parsed = parse_annotation(_annotation(result, created_username=" Ann ann\x00@example.org, 2"), TASK)
    assert (parsed.paragraph, parsed.text, parsed.lines[0]["text"]) == ("dear Sam", "dear Sam", "line")
    assert parsed.annotator == "ann@example.org"
    assert parsed.nul_characters == 4
    assert "\x00" not in repr(parsed.raw())
    assert parse_annotation(_annotation(result[:2]), TASK).nul_characters == 2  # the line alone
    # a lone surrogate (a JSON "\\ud800" escape) no database stores either: dropped the same way
    surrogate = parse_annotation(_annotation(annotation_result(paragraph="dear \ud800Sam")), TASK)
    assert (surrogate.text, surrogate.nul_characters) == ("dear Sam", 1)


def test_boxes_are_clipped_to_the_image() -> None:
    payload = _payload(lines=[{"text": "edge", "box": (-2.0, 95.0, 50.0, 10.0)}])
    value = payload["predictions"][0]["result"][0]["value"]
    assert (value["x"], value["y"], value["width"], value["height"]) == (0.0, 95.0, 48.0, 5.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": 1.5}, "score must be within 0..1, not 1.5"),
        ({"score": float("nan")}, "score must be finite"),
        ({"uid": ""}, "uid must be a non-empty string"),
        ({"model_version": ""}, "model_version must be a non-empty string"),
        ({"meta": {"priority": 3}}, "meta may not set priority"),
        ({"lines": [{"text": "x", "box": (120.0, 0.0, 5.0, 5.0)}]}, r"line 0 box \(120.0, 0.0, 5.0, 5.0\) has no area"),
        ({"lines": [{"text": "x", "box": (1, 2, 3)}]}, "line 0 box must be"),
        ({"lines": [{"box": (1, 2, 3, 4)}]}, "line 0 must be"),
    ],
)
def test_bad_payloads_name_the_bad_value(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        _payload(**changes)


def test_image_url_is_relative_to_the_document_root(tmp_path: Path) -> None:
    store = tmp_path / "home" / "store"
    assert image_url_for(store, KEY) == f"/data/local-files/?d=objects/ab/cd/{KEY}"
    assert image_url_for(store, KEY, document_root=tmp_path) == f"/data/local-files/?d=home/store/objects/ab/cd/{KEY}"
    with pytest.raises(InvalidTaskError, match="outside Label Studio's document root"):
        image_url_for(store, KEY, document_root=tmp_path / "elsewhere")
    with pytest.raises(InvalidKeyError):
        image_url_for(store, "../../etc/passwd")


def test_a_submission_parses_back() -> None:
    result = annotation_result(paragraph="", lines=LINES, unreadable=False)
    parsed = parse_annotation(_annotation(result), TASK)
    assert (parsed.ls_annotation_id, parsed.ls_task_id, parsed.uid) == (7, 3, "task-1")
    assert parsed.annotator == "ann@example.org"
    # an empty paragraph box: the line texts, top to bottom
    assert parsed.text == "first line\nsecond line"
    assert [line["text"] for line in parsed.lines] == ["first line", "second line"]
    assert parsed.lines[0]["box"] == (5.0, 10.0, 90.0, 12.0)
    assert not parsed.unreadable and not parsed.skipped
    assert parsed.lead_time_s == 12.5
    assert parsed.created_at == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parsed.updated_at.tzinfo is not None and parsed.updated_at > parsed.created_at


def test_the_paragraph_box_wins_and_unreadable_is_read() -> None:
    result = annotation_result(paragraph="  The whole text\nas typed \n", lines=LINES, unreadable=True)
    parsed = parse_annotation(_annotation(result), TASK)
    assert parsed.text == "The whole text\nas typed"
    assert parsed.unreadable


def test_a_skip_parses_with_no_text() -> None:
    parsed = parse_annotation(_annotation([], was_cancelled=True, lead_time=None), TASK)
    assert parsed.skipped and parsed.text == "" and parsed.lines == () and parsed.lead_time_s is None


def test_annotator_from_a_user_object_or_a_bare_id() -> None:
    user = {"id": 4, "email": "bo@example.org", "first_name": ""}
    assert parse_annotation(_annotation([], completed_by=user), TASK).annotator == "bo@example.org"
    assert parse_annotation(_annotation([], created_username=None), TASK).annotator == "2"
    # the username of another id is not trusted
    assert parse_annotation(_annotation([], created_username="x@y.z, 9"), TASK).annotator == "2"


def test_unknown_tags_are_ignored() -> None:
    result = [
        *annotation_result(paragraph="text"),
        {"from_name": "mood", "type": "choices", "value": {"choices": ["a"]}},
    ]
    assert parse_annotation(_annotation(result), TASK).text == "text"


@pytest.mark.parametrize(
    ("annotation", "task", "message"),
    [
        (_annotation([], updated_at=None), TASK, "task 3, annotation 7: updated_at must be an ISO 8601"),
        (_annotation([], updated_at="yesterday"), TASK, "updated_at is not an ISO 8601 timestamp: 'yesterday'"),
        (_annotation([], completed_by=None), TASK, "completed_by must be a user id or a user, not None"),
        (_annotation([], id="7"), TASK, "annotation id must be an integer, not '7'"),
        ({**_annotation([]), "result": {"x": 1}}, TASK, "result must be a list"),
        (_annotation([{"from_name": "paragraph"}]), TASK, "result item 0 must be an object with a value"),
        (_annotation([{"from_name": "line", "value": {"x": 1}}]), TASK, r"result item 0 \(line\): a line box needs"),
        (_annotation([{"from_name": "paragraph", "value": {"text": [3]}}]), TASK, "text must be a list of strings"),
        (_annotation([], lead_time="slow"), TASK, "lead_time must be a number of seconds, not 'slow'"),
        (_annotation([], task=99), TASK, "belongs to task 99"),
        (_annotation([]), {"id": 3, "data": {}}, "task data has no inkloop_uid"),
        (_annotation([]), {"data": {}}, "task id must be an integer, not None"),
    ],
)
def test_malformed_annotations_name_what_is_wrong(
    annotation: dict[str, Any], task: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedAnnotationError, match=message):
        parse_annotation(annotation, task)


# --- lines drawn as outlines (imported pages) ---------------------------------------------------------------------

OUTLINE = [[10.0, 20.0], [60.0, 18.0], [62.0, 30.0], [9.0, 31.0]]  # percent of the image


def test_a_line_with_a_polygon_is_pre_filled_as_an_outline_and_a_boxed_line_stays_a_box() -> None:
    lines = [{"text": "first line", "polygon": OUTLINE}, {"text": "second line", "box": (5.0, 40.0, 80.0, 12.0)}]
    (prediction,) = _payload(lines=lines)["predictions"]
    result = prediction["result"]
    assert [(r["id"], r["from_name"], r["type"]) for r in result] == [
        ("line-1", "outline", "polygonlabels"),
        ("line-1", "line_text", "textarea"),
        ("line-2", "line", "rectanglelabels"),
        ("line-2", "line_text", "textarea"),
    ]
    assert result[0]["value"] == {"points": OUTLINE, "closed": True, "polygonlabels": ["Line outline"]}
    # the text item is the same region: it repeats the outline, as Label Studio's per-region text does
    assert result[1]["value"] == {"points": OUTLINE, "closed": True, "text": ["first line"]}
    assert _fields(prediction) == {"line_text": ["first line", "second line"]}  # one truth: the lines alone
    assert LabelInterface(label_config().xml).validate_prediction(prediction, return_errors=True) == []


def test_an_outline_is_clipped_to_the_image_and_a_bad_one_is_named() -> None:
    (prediction,) = _payload(lines=[{"text": "edge", "polygon": [[-1, 95], [50, 95], [50, 104]]}], text="edge")[
        "predictions"
    ]
    assert prediction["result"][0]["value"]["points"] == [[0.0, 95.0], [50.0, 95.0], [50.0, 100.0]]
    with pytest.raises(InvalidTaskError, match="line 0 polygon must be 3 or more"):
        _payload(lines=[{"text": "x", "polygon": [[1, 2], [3, 4]]}])
    with pytest.raises(InvalidTaskError, match="line 0 polygon has no area"):
        _payload(lines=[{"text": "x", "polygon": [[1, 2], [3, 2], [5, 2]]}])


def test_an_outline_parses_back_with_its_polygon_and_its_bounding_box() -> None:
    lines: list[dict[str, Any]] = [
        {"text": "second line", "box": (5.0, 40.0, 80.0, 12.0)},
        {"text": "first line", "polygon": OUTLINE},
    ]
    parsed = parse_annotation(_annotation(annotation_result(paragraph="", lines=lines)), TASK)
    first, second = parsed.lines
    assert first == {"text": "first line", "box": (9.0, 18.0, 53.0, 13.0), "polygon": tuple(map(tuple, OUTLINE))}
    assert second == {"text": "second line", "box": (5.0, 40.0, 80.0, 12.0)}  # a box has no polygon
    assert parsed.text == "first line\nsecond line"
    # stored as JSON gives it back: lists, so a second sync finds the same answer
    assert parsed.raw()["lines"][0] == {"text": "first line", "box": [9.0, 18.0, 53.0, 13.0], "polygon": OUTLINE}
    # ... and so does the label derived from it: the outline in percent, which an export turns into pixels.
    assert parsed.label(None).lines[0] == {"text": "first line", "box": [9.0, 18.0, 53.0, 13.0], "outline": OUTLINE}


def test_an_outline_known_only_from_its_text_item_is_a_line() -> None:
    text_only = [{"id": "r1", "from_name": "line_text", "value": {"points": OUTLINE, "text": ["a line"]}}]
    (line,) = parse_annotation(_annotation(text_only), TASK).lines
    assert line["text"] == "a line" and line["polygon"] == tuple(map(tuple, OUTLINE))
    bad = [{"id": "r1", "from_name": "outline", "value": {"points": [[1, "x"], [2, 3], [4, 5]]}}]
    with pytest.raises(MalformedAnnotationError, match=r"result item 0 \(outline\): a line outline needs 3 or more"):
        parse_annotation(_annotation(bad), TASK)
