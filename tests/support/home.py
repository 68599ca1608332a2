"""Every test starts with no INKLOOP_* variables of the machine, only a private INKLOOP_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def inkloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("INKLOOP_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("INKLOOP_HOME", str(home))
    return home
