"""Drift reports at scale: 10,000 current rows against 10,000 reference rows, read from the database, SQLite and
PostgreSQL side by side; and how long Evidently's UI takes to start on the workspace.

    .venv/bin/python bench/drift_bench.py [--rows 10000] [--repeats 5] [--postgres URL | --no-postgres]

Setup (not timed): 400 real pages rendered and read by the shipped model with their real image features
(tests/support/drift.py), 200 like the training data for the reference and 200 half light-on-dark for the current
window; each window's rows are drawn from its pages with replacement and bulk-inserted into a fresh migrated
database as logged requests with validated images, one page in 30 answered as an `audit` task (the audited CER's
sample). Timed, `repeats` times (each run replaces the last: the same windows): `load` (both windows' requests,
features and audit labels from the database), `frame` (inkloop's columns), `evidently` (the Report with the drift
preset and its tests), `save` (the HTML page, the workspace snapshot, the row, the index), and their total. Then
`inkloop drift ui` is started `repeats` times until its API answers. Prints one JSON object with the machine and
the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text
from store_bench import machine

from db.migrate import upgrade  # noqa: E402
from db.models import Annotation, AnnotationTask, Image, Request  # noqa: E402
from db.session import make_engine  # noqa: E402
from devtools.pages import Observed, observe, rendered  # noqa: E402
from flows.drift import DriftParams, measure, resolve_windows, save, window_key  # noqa: E402
from synth.generate import SynthOptions  # noqa: E402

AUDIT_EVERY = 30
INKLOOP = str(Path(sys.executable).parent / "inkloop")


def populate(url: str, windows: dict[str, tuple[list[Observed], datetime, timedelta]], rows: int) -> None:
    upgrade(url)
    rng = np.random.default_rng(3)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            task_id = 0
            for name, (pool, start, spacing) in windows.items():
                picks = rng.integers(0, len(pool), rows)
                for chunk in range(0, rows, 2000):
                    images, requests, tasks, answers = [], [], [], []
                    for i in range(chunk, min(chunk + 2000, rows)):
                        page = pool[int(picks[i])]
                        key = uuid.uuid4().hex + uuid.uuid4().hex
                        at = start + i * spacing
                        request_id = f"{name}-{i}"
                        images.append(
                            {
                                "sha256": key,
                                "source": "production",
                                "byte_size": len(page.data),
                                "status": "valid",
                                "features": page.features,
                                "phash": page.features.get("phash"),
                                "created_at": at,
                            }
                        )
                        requests.append(
                            {
                                "request_id": request_id,
                                "image_sha256": key,
                                "image_bytes": len(page.data),
                                "model_version": "base-2",
                                "text": page.reading,
                                "confidence": page.confidence,
                                "latency_ms": 1.0,
                                "created_at": at,
                            }
                        )
                        if i % AUDIT_EVERY == 0:
                            task_id += 1
                            tasks.append(
                                {
                                    "id": task_id,
                                    "uid": str(uuid.uuid4()),
                                    "project": "inkloop",
                                    "image_sha256": key,
                                    "request_id": request_id,
                                    "reason": "audit",
                                    "state": "completed",
                                    "priority": 0.0,
                                    "created_at": at,
                                    "updated_at": at,
                                    "completed_at": at,
                                }
                            )
                            answers.append(
                                {
                                    "task_id": task_id,
                                    "ls_annotation_id": task_id,
                                    "revision": 1,
                                    "annotator": "auditor",
                                    "text": page.text,
                                    "unreadable": False,
                                    "skipped": False,
                                    "annotated_at": at,
                                    "synced_at": at,
                                }
                            )
                    connection.execute(insert(Image), images)
                    connection.execute(insert(Request), requests)
                    if tasks:
                        connection.execute(insert(AnnotationTask), tasks)
                        connection.execute(insert(Annotation), answers)
    finally:
        engine.dispose()


def report_runs(url: str, home: Path, end: datetime, repeats: int) -> dict[str, Any]:
    os.environ["INKLOOP_HOME"] = str(home)
    os.environ["INKLOOP_DATABASE_URL"] = url
    params = DriftParams(end=end)
    current, reference, kind = resolve_windows.fn(params)
    key = window_key(reference, current)
    runs: dict[str, list[float]] = {"load": [], "frame": [], "evidently": [], "save": [], "total": []}
    summary = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = measure.fn(current, reference, kind, params)
        saving = time.perf_counter()
        save.fn(result, current, reference, key)
        done = time.perf_counter()
        summary = result.summary
        for name in ("load", "frame", "evidently"):
            runs[name].append(summary.seconds[name])
        runs["save"].append(done - saving)
        runs["total"].append(done - started)
    assert summary is not None and summary.reference is not None
    page = next((home / "reports" / "drift").glob("drift-*.html"))
    return {
        "rows": {"current": summary.current.rows, "reference": summary.reference.rows},
        "audited_pages": summary.cer.audited_pages,
        "verdict": summary.verdict.value,
        "drifted_columns": summary.drifted_columns,
        "methods": sorted({c.method for c in summary.columns}),
        "estimated_cer": round(summary.cer.estimated or 0, 4),
        "audited_cer": round(summary.cer.audited or 0, 4),
        "audited_interval": [round(summary.cer.low or 0, 4), round(summary.cer.high or 0, 4)],
        "report_html_mb": round(page.stat().st_size / 1e6, 1),
        "median_s": {name: round(statistics.median(values), 2) for name, values in runs.items()},
    }


def ui_start(home: Path, repeats: int) -> dict[str, Any]:
    """Seconds from `inkloop drift ui` to its API answering, `repeats` times."""
    times = []
    for _ in range(repeats):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "INKLOOP_HOME": str(home)}
        started = time.perf_counter()
        process = subprocess.Popen(
            [INKLOOP, "drift", "ui", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects", timeout=2) as answer:
                        if answer.status == 200 and json.loads(answer.read()):
                            break
                except (urllib.error.URLError, ConnectionError):
                    if process.poll() is not None:
                        raise RuntimeError("inkloop drift ui exited") from None
                    time.sleep(0.1)
            times.append(time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows in each window")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each step; the median is reported")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    end = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="inkloop-drift-bench-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        reference_pool = observe(
            rendered(work / "reference", SynthOptions(count=200, seed=1, max_lines=3, dark_share=0.0))
        )
        current_pool = observe(rendered(work / "current", SynthOptions(count=200, seed=2, max_lines=3, dark_share=0.5)))
        setup_pages_s = round(time.perf_counter() - started, 1)
        windows = {
            # The reference: the first week of traffic; the current window: the last 22 hours.
            "reference": (reference_pool, end - timedelta(days=10), timedelta(days=6.5) / args.rows),
            "current": (current_pool, end - timedelta(hours=22), timedelta(hours=22) / args.rows),
        }
        backends = {"sqlite": f"sqlite:///{work / 'bench.db'}"}
        database = f"inkloop_drift_bench_{uuid.uuid4().hex[:8]}"
        admin = None
        if not args.no_postgres:
            admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{database}"'))
            backends["postgresql"] = args.postgres.rsplit("/", 1)[0] + f"/{database}"
        try:
            for name, url in backends.items():
                started = time.perf_counter()
                populate(url, windows, args.rows)
                populated = round(time.perf_counter() - started, 1)
                results[name] = {"populate_s": populated, **report_runs(url, work / name, end, args.repeats)}
            ui = ui_start(work / "sqlite", args.repeats)
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()
    print(
        json.dumps(
            {
                "benchmark": "drift",
                "machine": machine(),
                "rows_per_window": args.rows,
                "pages_behind_the_rows": {"reference": 200, "current": 200},
                "audit_every": AUDIT_EVERY,
                "repeats": args.repeats,
                "setup_pages_s": setup_pages_s,
                "report": results,
                "ui_start": ui,
                "goal_s": 5,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
