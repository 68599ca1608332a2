"""Render a paragraph of text as an ink mask (0 = paper, 255 = full ink), glyph by glyph, with the irregularity
of handwriting: per-glyph size, rotation and baseline jitter, uneven spacing, slant and stroke width."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

from synth.fonts import Font, truetype


@dataclass(frozen=True)
class Handwriting:
    """How one paragraph is written. `sample` draws a random style; all lengths are in pixels."""

    size: int  # font size
    line_spacing: float  # baseline-to-baseline distance / font size
    margin_left: int
    margin_top: int
    margin_right: int
    margin_bottom: int
    slant: float  # shear, x += slant * (height - y)
    size_jitter: float  # std of per-glyph scale
    rotation_jitter: float  # std of per-glyph rotation, degrees
    baseline_jitter: float  # std of per-glyph baseline offset / size
    letter_spacing: float  # extra advance per glyph / size
    word_spacing: float  # space width multiplier
    stroke: int  # extra stroke width (bolder pen)
    line_drift: float  # baseline slope across a line, radians

    @classmethod
    def sample(cls, rng: np.random.Generator, handwriting_font: bool) -> Handwriting:
        size = int(rng.integers(26, 46))
        jitter = 1.0 if handwriting_font else 0.5
        return cls(
            size=size,
            line_spacing=float(rng.uniform(1.25, 1.9)),
            margin_left=int(rng.integers(8, 60)),
            margin_top=int(rng.integers(8, 50)),
            margin_right=int(rng.integers(8, 60)),
            margin_bottom=int(rng.integers(8, 50)),
            slant=float(rng.normal(0.0, 0.12)) if rng.random() < 0.7 else 0.0,
            size_jitter=float(rng.uniform(0.0, 0.06) * jitter),
            rotation_jitter=float(rng.uniform(0.0, 4.0) * jitter),
            baseline_jitter=float(rng.uniform(0.0, 0.05) * jitter),
            letter_spacing=float(rng.uniform(-0.02, 0.08)),
            word_spacing=float(rng.uniform(0.8, 1.6)),
            stroke=int(rng.random() < 0.25),
            line_drift=float(rng.normal(0.0, 0.01)),
        )

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Rendered:
    mask: np.ndarray  # (H, W) uint8 ink coverage
    baselines: list[float]  # y of each line's baseline, after rendering (before any later warp)
    line_height: float


def wrap(words: list[str], font: Font, style: Handwriting, max_width: float, max_lines: int) -> list[str]:
    """Greedy line breaking by measured width; stops after `max_lines` lines (the remaining words are unused)."""
    face = truetype(font.path, style.size)
    space = face.getlength(" ") * style.word_spacing
    lines: list[str] = []
    current: list[str] = []
    width = 0.0
    for word in words:
        w = face.getlength(word) * (1 + style.letter_spacing)
        if current and width + space + w > max_width:
            lines.append(" ".join(current))
            if len(lines) == max_lines:
                return lines
            current, width = [], 0.0
        width = width + space + w if current else w
        current.append(word)
    if current and len(lines) < max_lines:
        lines.append(" ".join(current))
    return lines


def _glyph(font: Font, char: str, size: int, stroke: int, angle: float) -> tuple[np.ndarray, int, int, float]:
    """The glyph's ink, where its top-left lies relative to the pen (x, baseline), and the pen's advance."""
    face = truetype(font.path, max(size, 6))
    ascent = face.getmetrics()[0]
    # Relative to the ascender line; whole pixels for a whole stroke width (PIL types it float for fractional ones).
    left, top, right, bottom = (int(edge) for edge in face.getbbox(char, stroke_width=stroke))
    w, h = max(right - left, 1) + 2, max(bottom - top, 1) + 2
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), char, font=face, fill=255, stroke_width=stroke, stroke_fill=255)
    if abs(angle) > 0.2:
        canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)  # grows evenly around the centre
    dx = left - 1 - (canvas.width - w) // 2
    dy = top - 1 - ascent - (canvas.height - h) // 2
    return np.asarray(canvas), dx, dy, face.getlength(char)


def render(lines: list[str], font: Font, style: Handwriting, rng: np.random.Generator) -> Rendered:
    face = truetype(font.path, style.size)
    ascent, descent = face.getmetrics()
    pitch = style.size * style.line_spacing
    widths = [face.getlength(line) * (1 + style.letter_spacing) * 1.15 + style.size for line in lines]
    width = int(style.margin_left + max(widths, default=style.size) + style.margin_right)
    height = int(style.margin_top + ascent + pitch * (len(lines) - 1) + descent * 1.5 + style.margin_bottom)
    mask = np.zeros((height, width), dtype=np.uint8)
    space = face.getlength(" ") * style.word_spacing
    baselines = []
    for index, line in enumerate(lines):
        baseline = style.margin_top + ascent + index * pitch
        baselines.append(baseline)
        indent = float(rng.uniform(0, style.size * 0.8)) if index > 0 and rng.random() < 0.15 else 0.0
        x = style.margin_left + indent
        for char in line:
            if char == " ":
                x += space + float(rng.normal(0, style.size * 0.03))
                continue
            size = int(round(style.size * max(0.6, 1 + float(rng.normal(0, style.size_jitter)))))
            glyph, dx, dy, advance = _glyph(font, char, size, style.stroke, float(rng.normal(0, style.rotation_jitter)))
            y = (
                baseline
                + (x - style.margin_left) * style.line_drift
                + float(rng.normal(0, style.baseline_jitter * size))
            )
            _paste_max(mask, glyph, int(round(x + dx)), int(round(y + dy)))
            x += advance + style.letter_spacing * style.size
    if style.slant:
        mask = _shear(mask, style.slant)
    return Rendered(mask=mask, baselines=baselines, line_height=pitch)


def _paste_max(mask: np.ndarray, glyph: np.ndarray, x: int, y: int) -> None:
    h, w = glyph.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, mask.shape[0]), min(x + w, mask.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    region = mask[y0:y1, x0:x1]
    np.maximum(region, glyph[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def _shear(mask: np.ndarray, slant: float) -> np.ndarray:
    """Slant the writing: x' = x + slant * (h - y), widening the canvas so nothing is cut off."""
    h, w = mask.shape
    extra = int(math.ceil(abs(slant) * h))
    image = Image.fromarray(mask)
    # PIL's affine maps output to input. Forward: x_out = x_in + slant * (h - y), shifted right by `extra` when
    # the slant is negative so that x_out >= 0; inverted: x_in = x_out + slant * y - slant * h - shift.
    shift = extra if slant < 0 else 0
    sheared = image.transform(
        (w + extra, h),
        Image.Transform.AFFINE,
        (1, slant, -slant * h - shift, 0, 1, 0),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(sheared)
