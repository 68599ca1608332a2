"""Small, real training data for model tests: printed single lines and short paragraphs drawn with a Debian font."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = ["hello world", "ink loop", "read me 42", "paper, pen!"]


def draw_page(text: str, size: tuple[int, int], font_size: int = 14, dark: bool = False) -> Image.Image:
    paper, ink = (20, 230) if dark else (235, 15)
    image = Image.new("L", size, paper)
    ImageDraw.Draw(image).multiline_text((6, 4), text, font=ImageFont.truetype(FONT, font_size), fill=ink, spacing=6)
    return image


def write_folder(folder: Path, texts: list[str], size: tuple[int, int], font_size: int = 14) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "labels.jsonl", "w") as labels:
        for i, text in enumerate(texts):
            draw_page(text, size, font_size, dark=i % 3 == 2).save(folder / f"{i:03d}.png")
            labels.write(json.dumps({"file": f"{i:03d}.png", "text": text}) + "\n")
    return folder


@pytest.fixture
def line_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "lines", LINES, (160, 24))


@pytest.fixture
def paragraph_folder(tmp_path: Path) -> Path:
    texts = [f"{a}\n{b}" for a, b in zip(LINES, LINES[1:] + LINES[:1], strict=True)] * 3
    return write_folder(tmp_path / "paras", texts, (200, 64), font_size=13)
