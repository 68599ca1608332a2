"""What an annotator's answer means: the edited copy of the model's reading carries the label (the bug this fixes:
a corrected line left the paragraph as the model read it)."""

from __future__ import annotations

from inkloop.labels import LabelSource, derive_label, outline_pixels

PREDICTION = "dear Sam,\nsee yuo soon"
BOXES = [(5.0, 10.0, 80.0, 12.0), (5.0, 30.0, 70.0, 12.0)]


def _lines(*texts: str) -> list[dict[str, object]]:
    return [{"text": t, "box": list(b)} for t, b in zip(texts, BOXES, strict=True)]


def test_a_corrected_line_gives_the_paragraph_joined_top_to_bottom() -> None:
    label = derive_label(paragraph=PREDICTION, lines=_lines("dear Sam,", "see you soon"), prediction=PREDICTION)
    assert label.source is LabelSource.lines
    assert label.text == "dear Sam,\nsee you soon"
    assert [line["text"] for line in label.lines] == ["dear Sam,", "see you soon"]


def test_a_corrected_paragraph_gives_the_text_and_re_pairs_lines_when_the_counts_agree() -> None:
    label = derive_label(
        paragraph="dear Sam,\nsee you soon", lines=_lines("dear Sam,", "see yuo soon"), prediction=PREDICTION
    )
    assert label.source is LabelSource.paragraph
    assert label.text == "dear Sam,\nsee you soon"
    assert [line["text"] for line in label.lines] == ["dear Sam,", "see you soon"]
    assert [line["box"] for line in label.lines] == [list(b) for b in BOXES]


def test_a_corrected_paragraph_with_another_line_count_leaves_line_texts_unknown() -> None:
    label = derive_label(
        paragraph="dear Sam, see you soon", lines=_lines("dear Sam,", "see yuo soon"), prediction=PREDICTION
    )
    assert label.source is LabelSource.paragraph and label.text == "dear Sam, see you soon"
    assert [line["text"] for line in label.lines] == ["", ""]


def test_both_edited_and_agreeing_is_fine_and_disagreeing_is_a_conflict() -> None:
    agree = derive_label(
        paragraph="dear Sam,\nsee you soon", lines=_lines("dear Sam,", "see  you soon "), prediction=PREDICTION
    )
    assert agree.source is LabelSource.both and agree.text == "dear Sam,\nsee you soon"
    clash = derive_label(
        paragraph="dear Sam,\nsee you later", lines=_lines("dear Sam,", "see you soon"), prediction=PREDICTION
    )
    assert clash.source is LabelSource.conflict


def test_nothing_edited_accepts_the_reading_and_an_emptied_paragraph_means_use_the_lines() -> None:
    same = derive_label(paragraph=PREDICTION, lines=_lines("dear Sam,", "see yuo soon"), prediction=PREDICTION)
    assert same.source is LabelSource.accepted and same.text == PREDICTION
    cleared = derive_label(paragraph="", lines=_lines("dear Sam,", "see you soon"), prediction=PREDICTION)
    assert cleared.source is LabelSource.lines and cleared.text == "dear Sam,\nsee you soon"


def test_without_a_known_prediction_a_lone_field_is_the_answer_and_two_must_agree() -> None:
    assert derive_label(paragraph="hello", lines=[], prediction=None).text == "hello"
    assert derive_label(paragraph="", lines=_lines("a", "b"), prediction=None).text == "a\nb"
    assert derive_label(paragraph="x\ny", lines=_lines("a", "b"), prediction=None).source is LabelSource.conflict


def test_lines_typed_into_only_some_boxes_need_review() -> None:
    # The pre-fill had no line texts (the segmenter's count differed); the annotator typed one line of two.
    label = derive_label(paragraph=PREDICTION, lines=_lines("dear Sam,", ""), prediction="dear Sam, see yuo soon")
    assert label.source is LabelSource.conflict


# --- today's screen: the reading pre-filled once (annotation/labeling.py) ---------------------------------------
# Under pre-filled lines the paragraph box starts empty; a page without line texts has the reading in the paragraph
# box and its boxes (if any) without text. The label is the paragraph when one is typed, else the lines.


def test_new_shape_a_corrected_line_with_the_paragraph_box_left_empty_gives_the_lines() -> None:
    label = derive_label(paragraph="", lines=_lines("dear Sam,", "see you soon"), prediction=PREDICTION)
    assert (label.source, label.text) == (LabelSource.lines, "dear Sam,\nsee you soon")
    assert [line["text"] for line in label.lines] == ["dear Sam,", "see you soon"]


def test_new_shape_nothing_touched_accepts_the_reading() -> None:
    label = derive_label(paragraph="", lines=_lines("dear Sam,", "see yuo soon"), prediction=PREDICTION)
    assert (label.source, label.text) == (LabelSource.accepted, PREDICTION)


def test_new_shape_a_typed_paragraph_is_the_label_with_the_boxes_deleted_or_left_as_they_were() -> None:
    deleted = derive_label(paragraph="dear Sam, see you soon", lines=[], prediction=PREDICTION)
    assert (deleted.source, deleted.text, deleted.lines) == (LabelSource.paragraph, "dear Sam, see you soon", [])
    # the annotator forgot to delete the pre-filled lines: still the paragraph, paired with the boxes when it can be
    kept = derive_label(
        paragraph="dear Sam,\nsee you soon", lines=_lines("dear Sam,", "see yuo soon"), prediction=PREDICTION
    )
    assert (kept.source, kept.text) == (LabelSource.paragraph, "dear Sam,\nsee you soon")
    assert [line["text"] for line in kept.lines] == ["dear Sam,", "see you soon"]


def test_new_shape_a_page_without_line_texts_is_corrected_in_its_paragraph_box() -> None:
    # Boxes came without texts (the segmenter's count differed from the reading's): the reading was in the paragraph.
    label = derive_label(paragraph="dear Sam,\nsee you soon", lines=_lines("", ""), prediction=PREDICTION)
    assert (label.source, label.text) == (LabelSource.paragraph, "dear Sam,\nsee you soon")
    assert [line["text"] for line in label.lines] == ["dear Sam,", "see you soon"]
    lineless = derive_label(paragraph="dear Sam, see you soon", lines=[], prediction="dear Sam, see yuo soon")
    assert (lineless.source, lineless.text) == (LabelSource.paragraph, "dear Sam, see you soon")


def test_the_same_correction_gives_the_same_label_on_the_old_screen_and_the_new() -> None:
    """Annotations stored from the first screens (paragraph pre-filled beside the lines) keep their labels."""
    corrected = _lines("dear Sam,", "see you soon")
    old = derive_label(paragraph=PREDICTION, lines=corrected, prediction=PREDICTION)
    new = derive_label(paragraph="", lines=corrected, prediction=PREDICTION)
    assert (old.text, old.lines, old.source) == (new.text, new.lines, new.source)
    retyped_old = derive_label(
        paragraph="Dear Sam, see you soon", lines=_lines(*PREDICTION.split("\n")), prediction=PREDICTION
    )
    retyped_new = derive_label(paragraph="Dear Sam, see you soon", lines=[], prediction=PREDICTION)
    assert (retyped_old.text, retyped_old.source) == (retyped_new.text, retyped_new.source)


def test_a_line_left_as_an_outline_keeps_it_in_the_label_and_exports_in_the_pages_pixels() -> None:
    outline = [(5.0, 10.0), (85.0, 11.0), (85.0, 22.0), (5.0, 21.0)]
    lines = [{**_lines("dear Sam,", "see yuo soon")[0], "polygon": outline}, _lines("x", "see you soon")[1]]
    label = derive_label(paragraph="", lines=lines, prediction=PREDICTION)
    assert label.text == "dear Sam,\nsee you soon"
    assert label.lines[0]["outline"] == [list(p) for p in outline]  # percent, as Label Studio drew it
    assert "outline" not in label.lines[1]  # a box stays a box
    assert outline_pixels(outline, 2000, 1000) == [[100, 100], [1700, 110], [1700, 220], [100, 210]]
