"""Real handwritten pages with their ground truth (../shared/data/real-handwriting, README there), copied into a
test's folder to be imported as `inkloop datasets import` finds them."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.paths import REAL_HANDWRITING

STANFORD = REAL_HANDWRITING / "stanford-memorials"  # ALTO v4, CC BY 4.0
HOOKER = REAL_HANDWRITING / "hooker"  # PAGE 2013, CC BY-SA 4.0


def copy_pages(source: Path, folder: Path, count: int, *, first: int = 0) -> list[Path]:
    """`count` pages of a real set (XML and image), from the `first` in name order, into `folder`, with the set's
    CITATION.cff when it has one."""
    folder.mkdir(parents=True, exist_ok=True)
    xmls = sorted((source / "pages").glob("*.xml"))[first : first + count]
    for xml in xmls:
        shutil.copy(xml, folder / xml.name)
        shutil.copy(xml.with_suffix(".jpg"), folder / f"{xml.stem}.jpg")
    if (source / "CITATION.cff").exists():
        shutil.copy(source / "CITATION.cff", folder / "CITATION.cff")
    return [folder / xml.name for xml in xmls]
