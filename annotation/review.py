"""An imported page in Label Studio and back: its lines as a review task pre-fills them (outlines and texts, in
percent of the image), and the lines an annotator's answer gives the page (in its pixels).

Shown are the lines a review can check: those with text and a shape that has an area. The others (drawn but not
transcribed, or a baseline alone) are not on the screen and stay as they are. The screen lists the lines top to
bottom (annotation/labeling.py pre-fills the line texts only when, in that order, they are the whole reading), so
the reading sent with a review task is its lines' texts in that order.

An answer's line is the stored line it was pre-filled from when its outline is unchanged (to within a pixel: the
percent round trip), or when its box overlaps that line's far more than any other's (an outline the annotator
redrew); such a line keeps its ids and type, and its baseline while its outline is unchanged. A line the annotator
drew is new: no ids, no baseline, the page's line type when the page has one. When the answer holds the same lines
as were shown, the page keeps its reading order; when lines were added or deleted, the new set is ordered top to
bottom, as the screen lists it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from db.models import GroundTruthLine, GroundTruthPage
from db.repo import LineSpec
from inkloop.labels import rows

# Percent with 4 decimals is within 0.002 pixels on a 5,000-pixel page: the round trip gives the same pixels back.
PERCENT_DECIMALS = 4
# How far (pixels) a point may move in the percent round trip and still be the same point.
SAME_POINT_PX = 1
# Least overlap (intersection over union of the boxes) for a redrawn outline to still be the line it was drawn over.
SAME_LINE_IOU = 0.5

Pixels = list[list[int]]  # [[x, y], ...] in the page image's pixels


@dataclass(frozen=True)
class _Shown:
    """A stored line as a review task shows it: its outline in pixels (its polygon, or its box as a rectangle)."""

    line: GroundTruthLine
    outline: Pixels


def _pixel_box(points: Sequence[Sequence[int]]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _rectangle(left: int, top: int, right: int, bottom: int) -> Pixels:
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def _shown_lines(page: GroundTruthPage) -> list[_Shown]:
    """The page's lines a review shows (transcribed, with an area), in reading order."""
    shown = []
    for line in page.lines:
        if not line.text.strip():
            continue
        if len(line.polygon) >= 3:
            outline = [[int(x), int(y)] for x, y in line.polygon]
        elif line.polygon or line.baseline:  # no outline: the box around what there is
            outline = _rectangle(*_pixel_box(line.polygon or line.baseline))
        else:
            continue
        left, top, right, bottom = _pixel_box(outline)
        if right > left and bottom > top:
            shown.append(_Shown(line, outline))
    return shown


def _percent(page: GroundTruthPage, point: Sequence[int]) -> list[float]:
    return [round(100 * point[0] / page.width, PERCENT_DECIMALS), round(100 * point[1] / page.height, PERCENT_DECIMALS)]


def review_lines(page: GroundTruthPage) -> list[dict[str, Any]]:
    """The lines a review task of `page` pre-fills, top to bottom: `{"text", "polygon"}` (percent of the image) for
    a line with an outline, `{"text", "box"}` (percent) for one without (annotation.labeling.task_payload's lines)."""
    keyed: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for shown in _shown_lines(page):
        text = " ".join(shown.line.text.split())
        left, top, right, bottom = _pixel_box(shown.outline)
        if len(shown.line.polygon) >= 3:
            line: dict[str, Any] = {"text": text, "polygon": [_percent(page, p) for p in shown.outline]}
        else:
            (x, y), (x2, y2) = _percent(page, (left, top)), _percent(page, (right, bottom))
            line = {"text": text, "box": (x, y, round(x2 - x, PERCENT_DECIMALS), round(y2 - y, PERCENT_DECIMALS))}
        # The labeling screen's order: by the top, then the left, of a line's box.
        keyed.append(((top, left), line))
    return [line for _, line in sorted(keyed, key=lambda item: item[0])]


def review_text(lines: Sequence[Mapping[str, Any]]) -> str:
    """The reading a review task is pre-filled with: its lines' texts, top to bottom."""
    return "\n".join(line["text"] for line in lines)


def answer_lines(
    *, raw: Mapping[str, Any] | None, lines: Sequence[Mapping[str, Any]] | None, text: str
) -> list[dict[str, Any]] | None:
    """The lines of a stored answer, each with its label text and its shape as submitted (percent): None unless the
    lines are the label, every one with its text and together the whole of it (an answer that retyped the
    paragraph over lines it deleted, or left a line empty, says nothing line by line)."""
    submitted = list((raw or {}).get("lines") or [])
    labelled = list(lines or [])
    if not labelled or len(submitted) != len(labelled) or not all(str(line.get("text") or "") for line in labelled):
        return None
    if [line["text"] for line in labelled] != rows(text):
        return None
    return [{**shape, "text": line["text"]} for shape, line in zip(submitted, labelled, strict=True)]


def _to_pixels(page: GroundTruthPage, line: Mapping[str, Any]) -> tuple[Pixels, bool]:
    """An answer's line shape in the page's pixels, and whether it is an outline (else a box's rectangle)."""

    def px(x: float, y: float) -> list[int]:
        return [
            min(max(round(x * page.width / 100), 0), page.width),
            min(max(round(y * page.height / 100), 0), page.height),
        ]

    if line.get("polygon"):
        return [px(float(x), float(y)) for x, y in line["polygon"]], True
    x, y, w, h = (float(v) for v in line["box"])
    (left, top), (right, bottom) = px(x, y), px(x + w, y + h)
    return _rectangle(left, top, right, bottom), False


def _same_outline(a: Pixels, b: Pixels) -> bool:
    return len(a) == len(b) and all(
        abs(p[0] - q[0]) <= SAME_POINT_PX and abs(p[1] - q[1]) <= SAME_POINT_PX for p, q in zip(a, b, strict=True)
    )


def _iou(a: Pixels, b: Pixels) -> float:
    (al, at, ar, ab), (bl, bt, br, bb) = _pixel_box(a), _pixel_box(b)
    inter = max(0, min(ar, br) - max(al, bl)) * max(0, min(ab, bb) - max(at, bt))
    union = (ar - al) * (ab - at) + (br - bl) * (bb - bt) - inter
    return inter / union if union > 0 else 0.0


def corrected_lines(page: GroundTruthPage, answer: Sequence[Mapping[str, Any]]) -> list[LineSpec]:
    """The lines `page` has after an annotator's answer (`answer_lines`: texts with shapes in percent, top to
    bottom), in the page's pixels, in reading order (see the module docstring for which line is which)."""
    shown = _shown_lines(page)
    shown_ids = {id(s.line) for s in shown}
    new = [(_to_pixels(page, line), str(line["text"])) for line in answer]
    matched: dict[int, _Shown] = {}  # index in `new` -> the stored line it is
    free = list(shown)
    for i, ((outline, _), _) in enumerate(new):
        same = next((s for s in free if _same_outline(s.outline, outline)), None)
        if same is not None:
            matched[i] = same
            free.remove(same)
    for i, ((outline, _), _) in enumerate(new):
        if i in matched or not free:
            continue
        best = max(free, key=lambda s: _iou(s.outline, outline))
        if _iou(best.outline, outline) >= SAME_LINE_IOU:
            matched[i] = best
            free.remove(best)
    page_type = page.line_types[0] if page.line_types and len(page.line_types) == 1 else None

    def spec(i: int) -> LineSpec:
        (outline, is_outline), text = new[i]
        was = matched.get(i)
        if was is None:
            return LineSpec(text=text, polygon=outline, baseline=[], line_type=page_type)
        stored = was.line
        kept_text = stored.text if " ".join(stored.text.split()) == text else text
        if _same_outline(was.outline, outline):
            polygon, baseline = stored.polygon, stored.baseline
        else:
            polygon, baseline = outline, []
        return LineSpec(kept_text, polygon, baseline, stored.line_type, stored.line_id, stored.region_id)

    hidden = [
        LineSpec(line.text, line.polygon, line.baseline, line.line_type, line.line_id, line.region_id)
        for line in page.lines
        if id(line) not in shown_ids
    ]
    if len(matched) == len(new) == len(shown):
        # The same lines, edited: the page keeps its reading order.
        by_line = {id(s.line): spec(i) for i, s in matched.items()}
        return [
            by_line.get(id(line))
            or LineSpec(line.text, line.polygon, line.baseline, line.line_type, line.line_id, line.region_id)
            for line in page.lines
        ]
    # Lines added or deleted: the new set, top to bottom as the screen lists it.
    return sorted([spec(i) for i in range(len(new))] + hidden, key=_spec_top_left)


def _spec_top_left(line: LineSpec) -> tuple[int, int]:
    points = line.polygon or line.baseline
    if not points:
        return (0, 0)
    left, top, _, _ = _pixel_box(points)
    return top, left
