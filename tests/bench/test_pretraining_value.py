"""bench/pretraining_value.py on the real letters (../shared/data/real-handwriting): its splits keep writers and
pages apart, its interpolation of the lines needed, and one tiny run end to end (a real fine-tune of the shipped
model on a few Hooker lines, read on two Hooker pages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "real-handwriting"
sys.path.insert(0, str(ROOT / "bench"))
import pretraining_value  # noqa: E402


def test_stanford_writers_are_letters_and_the_held_out_ones_never_train() -> None:
    assert pretraining_value.stanford_writer("Page10-Lettre75-76--Lettre76_1") == "Lettre76"
    assert pretraining_value.stanford_writer("PageX-LettreX--SC0033B_s4_b01_f14_i087") == "SC0033B_s4_b01_f14_i087"
    assert pretraining_value.stanford_heldout("Lettre75") and not pretraining_value.stanford_heldout("Lettre57")
    assert pretraining_value.stanford_heldout("SC0033B_s4_b01_f14_i093")
    assert not pretraining_value.stanford_heldout("SC0033B_s4_b01_f14_i085")
    train, heldout = pretraining_value.stanford_lines(DATA)
    assert {line.writer for line in train}.isdisjoint({line.writer for line in heldout})
    # Measured: 242 handwritten lines with text; about 2/3 of their characters are the held-out writers'.
    assert len(train) + len(heldout) == 242
    held_chars = sum(len(line.line.text) for line in heldout)
    assert 0.6 < held_chars / (held_chars + sum(len(line.line.text) for line in train)) < 0.8
    assert len({line.writer for line in heldout}) >= 8


def test_hooker_evaluation_pages_are_never_in_the_pool_and_the_order_is_fixed() -> None:
    pool, evaluation = pretraining_value.hooker_split(DATA, None, seed=0)
    assert {p.name for p in pool}.isdisjoint({p.name for p in evaluation})
    assert len(evaluation) == pytest.approx((len(pool) + len(evaluation)) / 5, abs=1)
    again, _ = pretraining_value.hooker_split(DATA, 10, seed=0)
    assert [p.name for p in again] == [p.name for p in pool]  # the same N lines on every run
    # A larger N holds every smaller one.
    assert pretraining_value.first_lines(pool, 300)[:100] == pretraining_value.first_lines(pool, 100)


def test_lines_to_reach_the_target() -> None:
    reach = pretraining_value.lines_to_reach
    # Between 100 (0.3) and 1000 (0.1) lines, 0.2 is halfway on a log scale: about 316.
    assert reach([(0, 0.7), (100, 0.3), (1000, 0.1)], 0.2) == {"lines": 316, "interpolated": True}
    assert reach([(0, 0.7), (100, 0.15)], 0.2) == {"lines": 100, "interpolated": False}
    assert reach([(0, 0.7), (100, 0.5), (300, 0.4)], 0.2) == {"lines": None, "beyond": 300}
    assert reach([(0, 0.1)], 0.2) == {"lines": 0, "interpolated": False}


@pytest.mark.slow
def test_a_tiny_run_fine_tunes_and_reads_real_lines(tmp_path: Path) -> None:
    out = tmp_path / "value.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pretraining_value.py"), "--shots", "16", "--epochs", "2"]
        + ["--eval-pages", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "few-shot: fine-tuning on 16 Hooker lines" in done.stderr  # progress
    assert "lines to reach CER 0.2" in done.stdout  # the summary
    report = json.loads(out.read_text())
    zero = report["zero_shot"]
    # base-4 reads unseen real writers badly (0.6-0.7 measured); the interval is over the held-out writers.
    assert 0.3 < zero["cer"] < 1.0 and zero["low"] <= zero["cer"] <= zero["high"]
    assert zero["interval_over"] == "writers" and len(zero["by_writer"]) == len(zero["writers"]) >= 8
    assert 0 <= zero["confidence"]["ece"] <= 1
    curve = report["few_shot"]["curve"]
    assert [c["shots"] for c in curve] == [0, 16]
    assert curve[1]["training"]["lines"] == 16 and curve[1]["training"]["steps"] >= 20
    assert curve[0]["lines"] == curve[1]["lines"] > 20  # the same evaluation lines, before and after
    assert curve[0]["interval_over"] == "pages"  # one writer: the spread is over pages
    # A fine-tune of 20 steps changes what the model reads (a model left as it was would read the same).
    assert curve[1]["cer"] != curve[0]["cer"]
    assert report["machine"]["threads"] == 2 and report["command"].startswith(".venv/bin/python bench/")
