"""Training data from labelled folders: annotated line boxes are used as drawn, so a page the segmenter reads
wrong still teaches the reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from model.data import Page, load_lines, read_pages
from model.preprocess import to_grayscale
from model.segment import segment
from tests.support.pages import FONT

TEXT = "hello world ink\nread me 42 paper"


def _crowded_page(folder: Path, lines: list[dict[str, Any]] | None) -> Path:
    """Two lines written so close that the segmenter sees one."""
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("L", (260, 70), 235)
    ImageDraw.Draw(image).multiline_text((6, 4), TEXT, font=ImageFont.truetype(FONT, 16), fill=15, spacing=-6)
    image.save(folder / "page.png")
    record = {"file": "page.png", "text": TEXT, **({"lines": lines} if lines is not None else {})}
    (folder / "labels.jsonl").write_text(json.dumps(record) + "\n")
    return folder


def test_annotated_boxes_give_the_lines_the_segmenter_misses(tmp_path: Path) -> None:
    boxes = [[0.0, 0.0, 100.0, 38.0], [0.0, 38.0, 100.0, 62.0]]
    lines = [{"text": t, "box": b} for t, b in zip(TEXT.split("\n"), boxes, strict=True)]
    folder = _crowded_page(tmp_path / "boxed", lines)
    with Image.open(folder / "page.png") as image:
        assert len(segment(to_grayscale(image))) == 1  # the segmenter merges the two lines
    (page,) = read_pages(folder)
    assert page.boxes == tuple(tuple(b) for b in boxes)
    crops = load_lines([page], height=32, max_width=512)
    assert [text for _, text in crops] == TEXT.split("\n")
    assert all(crop.shape[0] == 32 and crop.max() > 0 for crop, _ in crops)
    # Without the boxes the page cannot be used: its one segmented line does not match two lines of text.
    unboxed = read_pages(_crowded_page(tmp_path / "plain", None))
    assert unboxed[0].boxes is None and load_lines(unboxed, height=32, max_width=512) == []


def test_boxes_are_ignored_unless_each_line_of_the_text_has_one_with_its_text(tmp_path: Path) -> None:
    partial = [{"text": "hello world ink", "box": [0, 0, 100, 38]}, {"text": "", "box": [0, 38, 100, 62]}]
    (page,) = read_pages(_crowded_page(tmp_path / "partial", partial))
    assert page.boxes is None
    assert load_lines([Page(page.path, page.text)], 32, 512) == []
