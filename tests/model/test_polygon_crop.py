"""Ground-truth lines cut along their polygons (model.segment.polygon_line): a neighbour's ink inside the line's box
but outside its polygon is left out, a grown polygon keeps strokes just past it, a slanted baseline is levelled, the
crop is at the working scale, and a polygon with no area gives an empty crop. Synthetic arrays only: fast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from model.segment import WORK_WIDTH, polygon_line, polygon_lines

PAPER, INK = 235.0, 20.0


def page(height: int = 200, width: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(PAPER + rng.normal(0, 3, (height, width)), 0, 255).astype(np.float32)


def draw_segment(gray: np.ndarray, start: tuple[float, float], end: tuple[float, float], thickness: int = 3) -> None:
    """A dark straight stroke from start to end (x, y)."""
    for t in np.linspace(0, 1, 4 * int(np.hypot(end[0] - start[0], end[1] - start[1])) + 2):
        x, y = start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
        r, c = int(round(y)), int(round(x))
        gray[r - thickness // 2 : r + thickness // 2 + 1, c - thickness // 2 : c + thickness // 2 + 1] = INK


# A line's outline with a tall part on the left (an ascender's room) and a low part on the right: its box reaches
# up to row 70 all along, its polygon only left of column 140.
NOTCHED = ((50, 70), (140, 70), (140, 95), (350, 95), (350, 125), (50, 125))


def test_ink_outside_the_polygon_is_paper() -> None:
    gray = page()
    gray[100:110, 60:340] = INK  # the line's own strokes
    gray[75:85, 60:80] = INK  # its ascender, inside the polygon's tall part
    gray[75:85, 150:170] = INK  # the line above's descender: inside the box, outside the polygon
    crop = polygon_line(gray, NOTCHED)
    assert crop.dtype == np.float32
    assert crop.shape == (56, 301)  # the polygon's box, rows 70-125 and columns 50-350 (page <= WORK_WIDTH wide)
    # Crop coordinates are page coordinates less (50, 70).
    assert crop[30:40, 10:290].mean() > 0.9  # the line
    assert crop[5:15, 10:30].mean() > 0.9  # its ascender
    assert crop[:25, 95:125].max() == 0.0  # the neighbour's descender is gone
    assert crop.max() <= 1.0 and crop.min() >= 0.0


def test_a_bounding_box_would_have_kept_the_neighbour() -> None:
    # The contrast the polygon is for: the same window without the polygon keeps the neighbour's stroke.
    gray = page()
    gray[75:85, 150:170] = INK
    gray[100:110, 60:340] = INK
    box = ((50, 70), (350, 70), (350, 125), (50, 125))
    assert polygon_line(gray, box)[5:15, 100:120].mean() > 0.9
    assert polygon_line(gray, NOTCHED)[5:15, 100:120].max() == 0.0


def test_a_grown_polygon_keeps_strokes_just_past_its_outline() -> None:
    # Tight polygons cut off the line's own ascenders and descenders; `grow` widens the outline by that many pixels.
    gray = page()
    gray[100:110, 60:340] = INK
    gray[89:94, 200:300] = INK  # an ascender's tip, 1-6 px above the outline's low part (row 95)
    exact = polygon_line(gray, NOTCHED)
    grown = polygon_line(gray, NOTCHED, grow=8)
    assert exact[19:24, 150:250].max() == 0.0  # crop coordinates: page less (50, 70)
    assert grown.shape == (56 + 16, 301 + 16)  # the box widened by 8 on every side
    assert grown[8 + 19 : 8 + 24, 8 + 150 : 8 + 250].mean() > 0.9  # and less (8, 8) more
    with pytest.raises(ValueError, match="not -1"):
        polygon_line(gray, NOTCHED, grow=-1)


def ink_rows(crop: np.ndarray) -> int:
    rows = np.flatnonzero((crop > 0.5).any(axis=1))
    return int(rows[-1] - rows[0] + 1)


def test_a_slanted_baseline_is_levelled() -> None:
    gray = page()
    draw_segment(gray, (50, 100), (350, 140))  # falls 40 px over 300: 7.6 degrees
    polygon = ((40, 80), (360, 120), (360, 160), (40, 120))
    baseline = ((50, 102), (350, 142))
    as_is = polygon_line(gray, polygon)
    levelled = polygon_line(gray, polygon, baseline)
    assert ink_rows(as_is) >= 40
    assert ink_rows(levelled) <= 6  # the 3-px stroke, blurred a little by the rotation
    # The levelled crop is as long as the stroke along its slant, and cut to the turned polygon: about 40 rows.
    assert levelled.shape[1] >= 300 and 35 <= levelled.shape[0] <= 50


def test_a_baseline_rising_the_other_way_is_levelled_too() -> None:
    gray = page()
    draw_segment(gray, (50, 140), (350, 100))
    levelled = polygon_line(gray, ((40, 120), (360, 80), (360, 120), (40, 160)), ((50, 142), (350, 102)))
    assert ink_rows(levelled) <= 6


def test_a_baseline_steeper_than_the_limit_is_not_followed() -> None:
    gray = page(height=400)
    draw_segment(gray, (50, 100), (350, 250))  # 26.6 degrees: a curl or a stray point, not a slant
    polygon = ((40, 80), (360, 230), (360, 270), (40, 120))
    assert ink_rows(polygon_line(gray, polygon, ((50, 102), (350, 252)))) == ink_rows(polygon_line(gray, polygon))


def test_the_crop_is_at_the_working_scale() -> None:
    width = 2 * WORK_WIDTH  # worked at half size, as segment() and box_lines() do
    gray = page(height=400, width=width)
    gray[200:220, 400:2400] = INK
    crop = polygon_line(gray, ((380, 180), (2420, 180), (2420, 240), (380, 240)))
    assert crop.shape == pytest.approx((30, 1020), abs=2)
    assert crop[10:20, 20:1000].mean() > 0.8


@pytest.mark.parametrize(
    "polygon",
    [
        (),
        ((10, 10), (50, 10)),  # two points
        ((10, 10), (50, 10), (90, 10)),  # collinear: no area
        ((10, 10), (10.4, 10), (10.4, 10.4)),  # a speck
    ],
)
def test_a_polygon_without_area_gives_an_empty_crop(polygon: tuple[tuple[float, float], ...]) -> None:
    assert polygon_line(page(), polygon).shape == (0, 0)


def test_a_polygon_off_the_page_gives_an_empty_crop() -> None:
    assert polygon_line(page(), ((500, 10), (600, 10), (600, 50), (500, 50))).shape == (0, 0)


def test_a_polygon_past_the_edge_is_cut_at_the_edge() -> None:
    gray = page()
    gray[20:30, 300:399] = INK
    crop = polygon_line(gray, ((290, 10), (450, 10), (450, 40), (290, 40)))
    assert crop.shape == (31, 110)  # columns 290-399: the page ends there
    assert crop[10:20, 10:109].mean() > 0.9


@dataclass(frozen=True)
class Outlined:
    polygon: tuple[tuple[int, int], ...]
    baseline: tuple[tuple[int, int], ...] = ()


def test_polygon_lines_cuts_each_line_as_polygon_line_does() -> None:
    gray = page()
    draw_segment(gray, (50, 100), (350, 140))
    gray[20:30, 60:340] = INK
    lines = [
        Outlined(((50, 10), (350, 10), (350, 40), (50, 40))),
        Outlined(((40, 80), (360, 120), (360, 160), (40, 120)), ((50, 102), (350, 142))),
        Outlined(()),
    ]
    crops = polygon_lines(gray, lines)
    assert len(crops) == 3 and crops[2].shape == (0, 0)
    for crop, line in zip(crops, lines, strict=True):
        np.testing.assert_array_equal(crop, polygon_line(gray, line.polygon, line.baseline))
