"""Where things are: the repository, the golden pages, the `inkloop` executable of this virtualenv."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "model" / "golden"
INKLOOP = str(Path(sys.executable).with_name("inkloop"))


def _shipped_version() -> str:
    from model.export import read_card
    from model.recognizer import SHIPPED_MODEL

    return read_card(SHIPPED_MODEL).version


# The shipped model's version ("base-4"): the champion a fresh installation starts from.
SHIPPED_VERSION = _shipped_version()

# The real handwriting sets (../shared/data/real-handwriting, README there): read by tests, never copied in.
REAL_HANDWRITING = REPO.parent / "shared" / "data" / "real-handwriting"
