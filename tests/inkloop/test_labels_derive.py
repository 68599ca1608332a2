"""What an annotator's answer means: the edited copy of the model's reading carries the label (the bug this fixes:
a corrected line left the paragraph as the model read it)."""

from __future__ import annotations

from inkloop.labels import LabelSource, derive_label

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
