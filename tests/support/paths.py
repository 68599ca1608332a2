"""Where things are: the repository, the golden pages, the `inkloop` executable of this virtualenv."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "model" / "golden"
INKLOOP = str(Path(sys.executable).with_name("inkloop"))
