"""From "enough labels" to a promoted model: 200 newly annotated production pages on CPU with the default retrain
config (model/configs/retrain.json: 300 steps of 32 lines, 400 replay pages), timed step by step.

    .venv/bin/python bench/retrain_bench.py [--pages 200] [--max-steps N]

Setup (not timed): a fresh embedded installation (SQLite, a folder store) under a temporary folder; `pages` pages
of a production shift the shipped model reads poorly (block capitals in the held-out handwriting families, 3-6
lines), each logged as served by base-2, validated, routed (every third one as `audit`) and answered correctly
with line boxes, as sync stores answers. Timed, once (a retrain is minutes, not milliseconds): `dataset` (the
dataset flow), `training` (the retrain flow without its gate: export, replay pages made and cached, fine-tuning,
calibration, registration), each gate and the promotion (the gate flow). Prints one JSON object with the machine,
the seconds of each step, and the production CER before and after on the test split no model trained on (overall
and its `audit` slice, the unbiased sample), with the 95% interval of the change.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from store_bench import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=None, help="Override the config's steps (a quick check).")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the installation in this folder.")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="inkloop-retrain-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    os.environ.update(
        INKLOOP_HOME=str(home),
        INKLOOP_DATABASE_URL=f"sqlite:///{root / 'inkloop.db'}",
        INKLOOP_LABEL_STUDIO_PROJECT="bench",
        INKLOOP_MIN_NEW_LABELS="100",
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    from db.migrate import upgrade
    from db.session import make_engine, session_factory, session_scope
    from devtools.pages import synthetic_pages
    from devtools.records import labelled
    from inkloop.domain import TaskReason
    from inkloop.store import ImageStore
    from synth.fonts import FontSet
    from synth.generate import SynthOptions

    upgrade(os.environ["INKLOOP_DATABASE_URL"])
    store = ImageStore(str(home / "store"))
    options = SynthOptions(
        count=args.pages, seed=2024, max_lines=6, dark_share=0.0, caps_share=1.0, font_set=FontSet.heldout
    )
    engine = make_engine(os.environ["INKLOOP_DATABASE_URL"])
    with session_scope(session_factory(engine)) as session:
        for i, page in enumerate(synthetic_pages(options)):
            reason = TaskReason.audit if i % 3 == 0 else TaskReason.low_confidence
            labelled(session, store, page, project="bench", reason=reason)
    engine.dispose()

    from prefect.testing.utilities import prefect_test_harness

    from flows.dataset import DatasetParams, dataset
    from flows.gate import GateParams, gate
    from flows.retrain import RetrainParams, retrain

    seconds: dict[str, float] = {}
    with prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        built = dataset(DatasetParams())
        seconds["dataset"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        trained = retrain(RetrainParams(gate=False, max_steps=args.max_steps, force=True))
        seconds["training"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        gated = gate(GateParams(model=trained.candidate))
        seconds["gate_total"] = round(time.perf_counter() - started, 1)

    from db import repo

    engine = make_engine(os.environ["INKLOOP_DATABASE_URL"])
    with session_scope(session_factory(engine), write=False) as session:
        model = repo.get_model(session=session, version=trained.candidate or "")
        report = repo.gate_reports(session=session, model_id=model.id)[0].checks
    engine.dispose()
    for name, value in report["seconds"].items():
        seconds[f"gate_{name}"] = value
    seconds["promotion_and_report"] = round(seconds["gate_total"] - sum(report["seconds"].values()), 1)
    seconds["enough_labels_to_promoted"] = round(seconds["dataset"] + seconds["training"] + seconds["gate_total"], 1)
    slices = {s["name"]: s for s in report["slices"]}

    def cer(name: str) -> dict[str, Any] | None:
        found = slices.get(name)
        if not found or not found["pages"]:
            return None
        keys = ("pages", "champion_cer", "candidate_cer", "delta", "low", "high")
        return {k: found[k] for k in keys}

    result = {
        "benchmark": "retrain_bench",
        "machine": machine(),
        "pages": args.pages,
        "dataset": {"version": built.version, "splits": built.splits},
        "training": {
            "steps": trained.steps,
            "device": trained.device,
            "new_labels": trained.new_labels,
            "train_pages": trained.train_pages,
            "replay_pages": trained.replay_pages,
            "val_cer": trained.val_cer,
        },
        "seconds": seconds,
        "gate": {"passed": gated.passed, "promoted": gated.promoted, "failures": gated.failures},
        "production_test_cer": cer("test/all"),
        "audit_test_cer": cer("test/reason/audit"),
        "golden_cer": cer("golden/all"),
        "heldout_synthetic_cer": cer("heldout/all"),
        "report": gated.report,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
