"""`make screenshots` (devtools/screenshots.py) on a home where the demo has not run: one clear line, no files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_without_a_demo_home_it_says_to_run_the_demo_and_writes_nothing(inkloop_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "images"
    done = subprocess.run(
        [sys.executable, "-m", "devtools.screenshots", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith("run `make demo DEMO_ARGS=--once` first"), done.stderr
    assert not out.exists()
