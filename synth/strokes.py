"""Handwriting drawn as pen strokes: text as the trajectories a pen follows, not filled glyph outlines.

A font-rendered page repeats one glyph for every "a", pastes cursive letters one by one and has one stroke width.
Here the letters are the Hershey fonts' single-stroke centrelines (`HersheyFonts` on PyPI, MIT; the Hershey
glyph data is public domain): their script faces are joined cursive, drawn word by word with the joins intact.
A `Writer` is a consistent style (face, size, slant, spacing, baseline wander, pen, pressure) that varies within
bounds from line to line (`Writer.vary`); every letter instance is deformed on its own (a small random affine and
a smooth displacement field), so no two "a"s are the same. The pen draws each stroke with a width that follows
a smooth pressure profile, thins where the pen moves fast (long segments), tapers where it is put down and
lifted, and sometimes pools ink where a stroke starts.

`render_strokes` returns the same ink mask (0 = paper, 255 = full ink) as `synth.render.render`, so the page
composition (paper, lighting, camera) is shared.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from synth.render import Rendered

# Hershey faces that read as handwriting: joined script (simplex and complex), cursive, and two plain faces for
# people who print. Their glyph units: cap height about 21, x-height about 9-12 (scripts: base line 9, cap -12).
FACES = ("scripts", "scriptc", "cursive", "futural", "rowmans")
CAP_UNITS = 21.0
BASE_UNITS = 9.0  # the base line's y in every face's glyph units
SUPERSAMPLE = 3  # strokes are drawn at this many times the page's resolution and box-filtered down
Glyph = tuple[tuple[np.ndarray, ...], float, float]  # strokes (each (n, 2) in glyph units), left edge, advance


@functools.cache
def _face(name: str) -> dict[str, Glyph]:
    from HersheyFonts import HersheyFonts

    if name not in FACES:
        raise ValueError(f"unknown stroke face {name!r}; one of {', '.join(FACES)}")
    font = HersheyFonts()
    font.load_default_font(name)
    glyphs: dict[str, Glyph] = {}
    for code in range(32, 127):
        char = chr(code)
        found = list(font.glyphs_for_text(char))
        if not found:
            continue
        glyph = found[0]
        strokes = tuple(np.asarray(s, dtype=np.float64) for s in glyph.strokes if len(s) >= 2)
        glyphs[char] = (strokes, float(glyph.left_offset), float(glyph.char_width))
    return glyphs


def covers(face: str, text: str) -> bool:
    glyphs = _face(face)
    return all(ch in glyphs for ch in text)


def _smooth(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting: the polyline's corners rounded off, its ends kept (pens move in curves)."""
    for _ in range(rounds):
        if len(points) < 3:
            return points
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2] = 0.75 * a + 0.25 * b
        cut[1::2] = 0.25 * a + 0.75 * b
        points = np.vstack([points[:1], cut[1:-1], points[-1:]])
    return points


@dataclass(frozen=True)
class Writer:
    """One person's hand. `sample` draws a writer; `vary` the same writer on another line. Lengths in pixels."""

    face: str
    size: float  # cap height
    slant: float  # shear, x += slant * (baseline - y)
    letter_spacing: float  # extra advance per letter / size
    word_spacing: float  # space width multiplier
    line_spacing: float  # baseline-to-baseline / size
    wander: float  # amplitude of the baseline's slow wave / size
    wander_period: float  # its period / size
    drift: float  # baseline slope across a line, radians
    pen: float  # pen width / size
    pressure: float  # spread of the pressure profile along a stroke (0: constant width)
    thinning: float  # how much fast segments thin (0..0.6)
    deform: float  # per-letter deformation / size
    size_jitter: float  # std of per-letter scale
    ink: int  # darkest ink value, 0..255 of the mask
    margin: int

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Writer:
        size = float(rng.uniform(24, 46))
        return cls(
            face=FACES[int(rng.choice(len(FACES), p=[0.3, 0.15, 0.25, 0.15, 0.15]))],
            size=size,
            slant=float(rng.normal(0.12, 0.15)),
            letter_spacing=float(rng.uniform(-0.03, 0.08)),
            word_spacing=float(rng.uniform(0.8, 1.7)),
            line_spacing=float(rng.uniform(1.35, 2.0)),
            wander=float(rng.uniform(0.0, 0.08)),
            wander_period=float(rng.uniform(8, 30)),
            drift=float(rng.normal(0.0, 0.012)),
            pen=float(rng.uniform(0.04, 0.11)),
            pressure=float(rng.uniform(0.0, 0.45)),
            thinning=float(rng.uniform(0.0, 0.5)),
            deform=float(rng.uniform(0.01, 0.06)),
            size_jitter=float(rng.uniform(0.0, 0.07)),
            ink=int(rng.integers(170, 256)),
            margin=int(rng.integers(10, 50)),
        )

    def vary(self, rng: np.random.Generator) -> Writer:
        """The same hand on another line: size, slant, spacing and baseline change a little, the rest stays."""
        return replace(
            self,
            size=self.size * float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08)),
            slant=self.slant + float(rng.normal(0.0, 0.02)),
            letter_spacing=self.letter_spacing + float(rng.normal(0.0, 0.01)),
            drift=self.drift + float(rng.normal(0.0, 0.005)),
        )

    def as_dict(self) -> dict[str, object]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def measure(text: str, writer: Writer) -> float:
    """The width of `text` in pixels (before slant and jitter)."""
    glyphs = _face(writer.face)
    scale = writer.size / CAP_UNITS
    width = 0.0
    for ch in text:
        advance = glyphs[ch][2] * scale
        width += advance * writer.word_spacing if ch == " " else advance + writer.letter_spacing * writer.size
    return width


def wrap_strokes(words: list[str], writer: Writer, max_width: float, max_lines: int) -> list[str]:
    """Greedy line breaking by measured width, as synth.render.wrap does for fonts."""
    lines: list[str] = []
    current: list[str] = []
    for word in words:
        trial = " ".join([*current, word])
        if current and measure(trial, writer) > max_width:
            lines.append(" ".join(current))
            if len(lines) == max_lines:
                return lines
            current = []
        current.append(word)
    if current and len(lines) < max_lines:
        lines.append(" ".join(current))
    return lines


def _deformed(strokes: tuple[np.ndarray, ...], writer: Writer, rng: np.random.Generator) -> list[np.ndarray]:
    """One instance of a letter: its smoothed strokes under a small random affine and a smooth displacement field
    (glyph units)."""
    angle = math.radians(float(rng.normal(0.0, 3.0)))
    scale = 1.0 + float(rng.normal(0.0, writer.size_jitter))
    shear = float(rng.normal(0.0, 0.05))
    affine = scale * np.array([[math.cos(angle), -math.sin(angle) + shear], [math.sin(angle), math.cos(angle)]])
    amplitude = writer.deform * CAP_UNITS
    phases = rng.uniform(0, 2 * math.pi, size=4)
    period = float(rng.uniform(12, 28))
    out = []
    for stroke in strokes:
        points = _smooth(stroke) @ affine.T
        x, y = points[:, 0], points[:, 1]
        dx = amplitude * (
            np.sin(2 * math.pi * y / period + phases[0]) + 0.5 * np.sin(2 * math.pi * x / period + phases[1])
        )
        dy = amplitude * (
            np.sin(2 * math.pi * x / period + phases[2]) + 0.5 * np.sin(2 * math.pi * y / period + phases[3])
        )
        out.append(np.column_stack([x + dx, y + dy]))
    return out


def _pen(draw: ImageDraw.ImageDraw, points: np.ndarray, writer: Writer, rng: np.random.Generator, ink: int) -> None:
    """One stroke on the supersampled canvas: width from pressure, speed and the taper at both ends."""
    if len(points) < 2:
        return
    base = writer.pen * writer.size * SUPERSAMPLE
    steps = np.hypot(*np.diff(points, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    length = max(float(along[-1]), 1e-6)
    t = along / length
    wave = np.sin(2 * math.pi * (t * float(rng.uniform(0.5, 1.5)) + float(rng.uniform(0, 1))))
    pressure = 1.0 + writer.pressure * wave
    speed = np.concatenate([steps[:1], steps]) / max(float(np.median(steps)), 1e-6)
    thin = 1.0 - writer.thinning * np.clip(speed - 1.0, 0.0, 1.0)
    taper = np.clip(np.minimum(t, 1 - t) / 0.12, 0.35, 1.0) if length > 4 * base else np.ones_like(t)
    widths = np.maximum(base * pressure * thin * taper, 1.0)
    for i in range(0, len(points) - 1, 3):
        chunk = points[i : i + 4]
        width = float(widths[i : i + 4].mean())
        draw.line([tuple(p) for p in chunk], fill=ink, width=max(int(round(width)), 1), joint="curve")
        x, y = chunk[-1]
        r = width / 2
        draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    if rng.random() < 0.3:  # ink pooling where the pen came down
        x, y = points[0]
        r = float(widths[0]) * 0.65
        draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)


def render_strokes(lines: list[str], writer: Writer, rng: np.random.Generator) -> Rendered:
    """Lines of text in `writer`'s hand as an ink mask with each line's baseline (synth.render.Rendered)."""
    glyphs = _face(writer.face)
    pitch = writer.size * writer.line_spacing
    ascent, descent = writer.size * 1.2, writer.size * 0.9
    widest = max((measure(line, writer) for line in lines), default=writer.size)
    lean = abs(writer.slant) * (ascent + descent)
    width = int(2 * writer.margin + widest * 1.15 + lean + writer.size)
    height = int(2 * writer.margin + ascent + pitch * max(len(lines) - 1, 0) + descent * 1.5)
    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    baselines = []
    for index, text in enumerate(lines):
        hand = writer.vary(rng) if index else writer
        scale = hand.size / CAP_UNITS
        baseline = writer.margin + ascent + index * pitch
        baselines.append(baseline)
        phase = float(rng.uniform(0, 2 * math.pi))
        x = writer.margin + (max(-hand.slant, 0.0) * ascent) + float(rng.uniform(0, writer.size * 0.3))
        start = x
        ink = int(np.clip(hand.ink + rng.normal(0, 8), 120, 255))
        for ch in text:
            strokes, left, advance = glyphs[ch]
            if ch == " ":
                x += advance * scale * hand.word_spacing + float(rng.normal(0, hand.size * 0.03))
                continue
            for stroke in _deformed(strokes, hand, rng):
                gx = x + (stroke[:, 0] - left) * scale
                wander = (
                    hand.wander
                    * hand.size
                    * np.sin(2 * math.pi * (gx - start) / (hand.wander_period * hand.size) + phase)
                )
                gy = baseline + wander + (gx - start) * hand.drift + (stroke[:, 1] - BASE_UNITS) * scale
                gx = gx + hand.slant * (baseline - gy)
                _pen(draw, np.column_stack([gx, gy]) * SUPERSAMPLE, hand, rng, ink)
            x += advance * scale + hand.letter_spacing * hand.size
    mask = np.asarray(canvas.resize((width, height), Image.Resampling.BOX))
    return Rendered(mask=mask, baselines=baselines, line_height=pitch)
