"""The GPU recipe (deploy/gpu-base-model.sh), run end to end with tiny settings on whatever this machine has: it
is what a lent GPU runs for 10 minutes, so a broken step must show here first, not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import SHIPPED_VERSION

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "gpu-base-model.sh"


@pytest.mark.slow
def test_the_gpu_recipe_writes_artifact_card_and_timings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "WORK": str(tmp_path / "work"),
        "INKLOOP": str(Path(sys.executable).parent / "inkloop"),
        "PAGES": "10",
        "VAL_PAGES": "4",
        "HELDOUT_PAGES": "4",
        "STEPS": "2",
        "BATCH": "4",
        "WORKERS": "2",
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "config.json", "model.pt", "timings.tsv"]
    card = json.loads((out / "card.json").read_text())
    # A fine-tune of the shipped model, named the next base version (base-4 -> base-5).
    number = int(SHIPPED_VERSION.removeprefix("base-"))
    assert card["version"] == f"base-{number + 1}" and card["parent"]["version"] == SHIPPED_VERSION
    assert card["training"]["steps"] == 2 and card["training"]["precision"] in ("32-true", "bf16-mixed")
    heldout = card["metrics"]["heldout_fonts"]
    assert heldout["pages"] == 4 and 0.0 <= heldout["cer"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert (config["batch_size"], config["max_steps"], config["num_workers"], config["max_minutes"]) == (4, 2, 2, 4)
    steps = [line.split("\t")[0] for line in (out / "timings.tsv").read_text().splitlines()[1:]]
    assert steps == ["synth-train", "synth-val", "synth-heldout", "train", "evaluate"]


def test_the_gpu_recipe_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "set OUT to the folder the artifact, card and timings go to" in done.stderr
