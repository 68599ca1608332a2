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


def stitch(lines: Sequence[LineCrop], rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One paragraph ('L' image, dark ink on light paper) from `lines` in the given order; text joined by \\n."""
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
    for crop, indent in zip(crops, indents, strict=True):
        top, left = int(y), margin + indent
        region = canvas[top : top + crop.shape[0], left : left + crop.shape[1]]
        np.minimum(region, crop[: region.shape[0], : region.shape[1]], out=region)
        y += crop.shape[0] + gap
    image = Image.fromarray((canvas + paper).clip(0, 255).astype(np.uint8), "L")
    return image, "\n".join(line.text for line in lines)


def stitch_random(pool: Sequence[LineCrop], rng: np.random.Generator, max_lines: int = 12) -> tuple[Image.Image, str]:
    """A paragraph of 1..max_lines lines drawn from `pool` without replacement."""
    if not pool:
        raise StitchError("no line crops to stitch")
    count = int(rng.integers(1, min(max_lines, len(pool)) + 1))
    chosen = rng.choice(len(pool), size=count, replace=False)
    return stitch([pool[int(i)] for i in chosen], rng)
