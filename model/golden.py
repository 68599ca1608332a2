"""The golden pages: six paragraphs with their exact text (model/golden/, see its README), read by the golden test,
kept out of every training split by the dataset guard, and compared on by the gates."""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).with_name("golden")
