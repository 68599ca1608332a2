"""Paragraphs stitched from line images: given line crops with their texts (rendered lines, or lines annotators
transcribed), stack a random selection into a new paragraph, as the 2022 recognizer built synthetic paragraphs
from real IAM lines. Real handwriting thereby reaches the paragraph model in layouts it has not seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from inkloop.errors import InkloopError


class StitchError(InkloopError):
    """No line crops to stitch, or a crop that is not an image."""


@dataclass(frozen=True)
class LineCrop:
    image: Image.Image
    text: str


def _dark_on_light(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    # The paper is the majority of a line crop: if it is dark, the writing is light; flip it.
    return 255.0 - pixels if np.median(pixels) < 128 else pixels


@dataclass(frozen=True)
class Stitched:
    image: Image.Image  # 'L', dark ink on light paper
    text: str  # the lines' texts joined by \\n
    boxes: list[tuple[float, float, float, float]]  # each line's box, x, y, width, height in percent of the page
    sources: list[int]  # index in the pool of each line, top to bottom


def crop_lines(image: Image.Image, lines: Sequence[tuple[str, Sequence[float]]]) -> list[LineCrop]:
    """The crops of a page's annotated lines: (text, (x, y, width, height) in percent of the page) each; boxes
    with no area inside the page are left out."""
    page = image.convert("L")
    width, height = page.size
    crops = []
    for text, (x, y, w, h) in lines:
        left, top = max(int(width * x / 100), 0), max(int(height * y / 100), 0)
        right, bottom = (
            min(int(np.ceil(width * (x + w) / 100)), width),
            min(int(np.ceil(height * (y + h) / 100)), height),
        )
        if right > left and bottom > top and text:
            crops.append(LineCrop(page.crop((left, top, right, bottom)), text))
    return crops


def stitch(lines: Sequence[LineCrop], rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One paragraph ('L' image, dark ink on light paper) from `lines` in the given order; text joined by \\n."""
    page = stitch_page(lines, rng)
    return page.image, page.text


def stitch_page(lines: Sequence[LineCrop], rng: np.random.Generator) -> Stitched:
    """One paragraph from `lines` in the given order, with where each line landed."""
    if not lines:
        raise StitchError("no line crops to stitch")
    line_height = float(rng.uniform(36, 80))
    crops = []
    for line in lines:
        pixels = _dark_on_light(line.image)
        h, w = pixels.shape
        scale = line_height * float(rng.uniform(0.9, 1.1)) / max(h, 1)
        size = (max(int(w * scale), 1), max(int(h * scale), 1))
        resized = np.asarray(
            Image.fromarray(pixels.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR), np.float32
        )
        crops.append(resized - np.median(resized))  # paper at 0, ink negative
    paper = float(rng.uniform(200, 250))
    gap = line_height * float(rng.uniform(0.05, 0.5))
    margin = int(rng.integers(8, 40))
    indents = [int(rng.uniform(0, line_height)) if rng.random() < 0.3 else 0 for _ in crops]
    width = max(c.shape[1] + i for c, i in zip(crops, indents, strict=True)) + 2 * margin
    height = int(sum(c.shape[0] for c in crops) + gap * (len(crops) - 1)) + 2 * margin
    canvas = np.zeros((height, width), dtype=np.float32)
    y = float(margin)
    boxes = []
    for crop, indent in zip(crops, indents, strict=True):
        top, left = int(y), margin + indent
        region = canvas[top : top + crop.shape[0], left : left + crop.shape[1]]
        np.minimum(region, crop[: region.shape[0], : region.shape[1]], out=region)
        boxes.append(
            tuple(
                round(100 * v / total, 3)
                for v, total in ((left, width), (top, height), (region.shape[1], width), (region.shape[0], height))
            )
        )
        y += crop.shape[0] + gap
    image = Image.fromarray((canvas + paper).clip(0, 255).astype(np.uint8), "L")
    return Stitched(image, "\n".join(line.text for line in lines), boxes, list(range(len(lines))))  # type: ignore[arg-type]


def stitch_random(pool: Sequence[LineCrop], rng: np.random.Generator, max_lines: int = 12) -> tuple[Image.Image, str]:
    """A paragraph of 1..max_lines lines drawn from `pool` without replacement."""
    page = stitch_sample(pool, rng, max_lines)
    return page.image, page.text


def stitch_sample(pool: Sequence[LineCrop], rng: np.random.Generator, max_lines: int = 12) -> Stitched:
    """stitch_random's paragraph with its line boxes, and which lines of `pool` it used (`sources`)."""
    if not pool:
        raise StitchError("no line crops to stitch")
    count = int(rng.integers(1, min(max_lines, len(pool)) + 1))
    chosen = [int(i) for i in rng.choice(len(pool), size=count, replace=False)]
    page = stitch_page([pool[i] for i in chosen], rng)
    return Stitched(page.image, page.text, page.boxes, chosen)
