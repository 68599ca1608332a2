"""An imported page's lines on the review screen and back, without a server: outlines in percent of the image, top
to bottom, the untranscribed lines left off; an answer's lines matched to the stored ones, so an unchanged answer
gives the page its lines exactly, a corrected text changes that line alone, and added or deleted lines make a new
set in top-to-bottom order."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.labeling import annotation_result, parse_annotation, task_payload
from annotation.review import answer_lines, corrected_lines, review_lines, review_text
from db.models import GroundTruthLine, GroundTruthPage
from db.repo import LineSpec
from devtools.annotators import correction

# A 1000 x 2000 pixel page: reading order puts the lower line first (its file says so); one line is untranscribed.
SECOND = [[100, 500], [900, 500], [900, 600], [100, 600]]
FIRST = [[100, 100], [900, 110], [900, 200], [100, 210]]


def _page() -> GroundTruthPage:
    page = GroundTruthPage(collection="c", name="p.xml", width=1000, height=2000, line_types=["DefaultLine"])
    page.lines = [
        GroundTruthLine(position=0, text="second  line ", polygon=SECOND, baseline=[[100, 590], [900, 590]],
                        line_type="DefaultLine", line_id="l2"),
        GroundTruthLine(position=1, text="first line", polygon=FIRST, baseline=[[100, 190], [900, 190]],
                        line_type="DefaultLine", line_id="l1"),
        GroundTruthLine(position=2, text="", polygon=[[10, 10], [20, 10], [20, 20]], baseline=[],
                        line_type="DefaultLine", line_id="l0"),
    ]  # fmt: skip
    return page


def _stored(page: GroundTruthPage) -> list[LineSpec]:
    return [LineSpec(x.text, x.polygon, x.baseline, x.line_type, x.line_id, x.region_id) for x in page.lines]


def _answer(page: GroundTruthPage, truth: str, *, result: list[dict[str, Any]] | None = None) -> list[LineSpec]:
    """What a review task of `page` gives back when an annotator answers it so that it reads `truth`."""
    lines = review_lines(page)
    reading = review_text(lines)
    payload = task_payload(
        uid="u", image_url="/x", text=reading, lines=lines, score=0, model_version="m", priority=1, reason="review"
    )
    task = {"id": 1, **payload}
    answer = {
        "id": 2,
        "result": result or correction(task, truth),
        "completed_by": 1,
        "updated_at": "2026-01-01T00:00Z",
    }
    parsed = parse_annotation(answer, task)
    label = parsed.label(reading)
    shaped = answer_lines(raw=parsed.raw(), lines=label.lines, text=label.text)
    assert shaped is not None
    return corrected_lines(page, shaped)


def test_the_screen_shows_the_transcribed_lines_top_to_bottom_as_outlines_in_percent() -> None:
    lines = review_lines(_page())
    assert lines == [
        {"text": "first line", "polygon": [[10.0, 5.0], [90.0, 5.5], [90.0, 10.0], [10.0, 10.5]]},
        {"text": "second line", "polygon": [[10.0, 25.0], [90.0, 25.0], [90.0, 30.0], [10.0, 30.0]]},
    ]
    assert review_text(lines) == "first line\nsecond line"


def test_a_line_without_an_outline_is_shown_as_its_box() -> None:
    page = _page()
    page.lines[1].polygon = []  # a baseline and a box from it: only the rectangle can be shown
    page.lines[1].baseline = [[100, 100], [900, 200]]
    assert review_lines(page)[0] == {"text": "first line", "box": (10.0, 5.0, 80.0, 5.0)}
    assert _answer(page, "first line\nsecond line") == _stored(page)  # and comes back as it was


def test_an_unchanged_answer_gives_the_page_its_lines_exactly() -> None:
    page = _page()
    assert _answer(page, "first line\nsecond line") == _stored(page)


def test_a_corrected_text_changes_that_line_alone_in_reading_order() -> None:
    page = _page()
    stored = _stored(page)
    assert _answer(page, "first line\nsecond lime") == [
        LineSpec("second lime", SECOND, stored[0].baseline, "DefaultLine", "l2"),
        *stored[1:],
    ]


def test_deleted_and_added_lines_make_a_new_set_top_to_bottom() -> None:
    page = _page()
    lines = review_lines(page)
    drawn = {"text": "a new last line", "box": (10.0, 40.0, 50.0, 4.0)}  # percent: y 800..880 px
    result = annotation_result(paragraph="", lines=[lines[0], drawn])  # the second line deleted
    new = _answer(page, "", result=result)
    untranscribed, first = _stored(page)[2], _stored(page)[1]
    rectangle = [[100, 800], [600, 800], [600, 880], [100, 880]]
    assert new == [untranscribed, first, LineSpec("a new last line", rectangle, [], "DefaultLine")]


def test_a_redrawn_outline_stays_its_line_without_its_old_baseline() -> None:
    page = _page()
    lines = review_lines(page)
    moved = {"text": "first line", "polygon": [[10.0, 5.0], [92.0, 5.0], [92.0, 11.0], [10.0, 11.0]]}
    new = _answer(page, "", result=annotation_result(paragraph="", lines=[moved, lines[1]]))
    assert [line.line_id for line in new] == ["l2", "l1", "l0"]  # the same lines: reading order kept
    assert new[1] == LineSpec("first line", [[100, 100], [920, 100], [920, 220], [100, 220]], [], "DefaultLine", "l1")


@pytest.mark.parametrize(
    ("paragraph", "lines", "why"),
    [
        ("first line second line", [], "the lines deleted and the paragraph typed"),
        ("", [{"text": "first line", "polygon": [[1, 1], [9, 1], [9, 4]]}, {"text": "", "box": (1, 9, 9, 3)}], "empty"),
    ],
)
def test_an_answer_without_a_text_per_line_corrects_nothing(paragraph: str, lines: list[Any], why: str) -> None:
    task = {"id": 1, "data": {"inkloop_uid": "u"}}
    answer = {"id": 2, "result": annotation_result(paragraph=paragraph, lines=lines), "completed_by": 1}
    parsed = parse_annotation({**answer, "updated_at": "2026-01-01T00:00Z"}, task)
    label = parsed.label("first line\nsecond line")
    assert answer_lines(raw=parsed.raw(), lines=label.lines, text=label.text) is None, why
