"""From any reasonable image to the network's input: orientation from EXIF, any mode (RGB/RGBA/L/LA/P/CMYK/1,
16-bit and float), either polarity, the paper's level removed, cut into text lines (model/segment.py), each line
scaled to the network's height. The output has ink = 1 and paper = 0, so padding is blank paper."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from inkloop.errors import InkloopError
from model.segment import Line, segment


class ImageInputError(InkloopError):
    """The file is not an image the recognizer can read."""


def to_grayscale(image: Image.Image) -> np.ndarray:
    """8-bit-range float32 grayscale (H, W), 0 = black, 255 = white."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        return (pixels - low) * (255.0 / max(high - low, 1e-6))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def normalize(gray: np.ndarray) -> np.ndarray:
    """Ink = 1, paper = 0 whatever the polarity: paper is the majority of a page, so a dark median means light
    writing on a dark background."""
    if np.median(gray) < 128:
        gray = 255.0 - gray
    paper = float(np.percentile(gray, 90))
    ink = float(np.percentile(gray, 1))
    return np.clip((paper - gray) / max(paper - ink, 32.0), 0.0, 1.0).astype(np.float32)


def fit(
    ink: np.ndarray, height: int, width: int, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Resize keeping the aspect ratio so the page fits (height, width) times `scale`, and place it at `offset`
    (fractions of the free space; (0, 0) is the top-left corner) on a blank canvas."""
    h, w = ink.shape
    factor = min(height / h, width / w) * scale
    new_h, new_w = max(int(round(h * factor)), 1), max(int(round(w * factor)), 1)
    resized = np.asarray(Image.fromarray(ink).resize((new_w, new_h), Image.Resampling.BILINEAR), dtype=np.float32)
    canvas = np.zeros((height, width), dtype=np.float32)
    top = int((height - new_h) * offset[0])
    left = int((width - new_w) * offset[1])
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def line_input(crop: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """A line crop (ink = 1) scaled to `height` rows keeping its aspect ratio (squeezed if wider than
    `max_width`), as float32 (height, width)."""
    h, w = crop.shape
    width = int(min(max(round(w * height / max(h, 1)), 8), max_width))
    resized = Image.fromarray(crop.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def page_lines(image: Image.Image) -> list[Line]:
    """The text lines of one paragraph image, top to bottom (empty for a blank page)."""
    if image.width < 1 or image.height < 1:
        raise ImageInputError("the image has no pixels")
    return segment(to_grayscale(image))


def prepare_lines(image: Image.Image, height: int, max_width: int) -> list[np.ndarray]:
    """The network inputs for one paragraph image: its text lines, top to bottom (empty for a blank page)."""
    return [line_input(line.crop, height, max_width) for line in page_lines(image)]


def prepare(image: Image.Image, height: int, width: int) -> np.ndarray:
    """A whole page fitted into (height, width): the input of the 2022 reference design (bench only)."""
    if image.width < 1 or image.height < 1:
        raise ImageInputError("the image has no pixels")
    return fit(normalize(to_grayscale(image)), height, width)
