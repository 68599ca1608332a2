"""Dataset versions at scale: build a version over N annotated images and export it, SQLite and PostgreSQL side by
side on the same pages.

    .venv/bin/python bench/dataset_bench.py [--pages 10000] [--repeats 3] [--postgres URL | --no-postgres]

Setup (not timed): N small distinct PNG pages in a folder store, and for each backend a fresh migrated database
holding, per page, a logged request, a validated image (1% of them near-duplicates of another page), a completed
annotation task and its annotation with line boxes, written with bulk inserts. Timed, `repeats` times each (the
version is deleted between builds): `build` (flows.dataset.build_version, its own transaction, commit included),
`rebuild_unchanged` (the same build again: identity found, nothing written), `export` (every split, to a new folder).
Prints one JSON object with the machine and the median seconds of each, per backend.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import delete, insert, text
from store_bench import machine

from db.migrate import upgrade
from db.models import Annotation, AnnotationTask, DatasetMember, DatasetVersion, Request
from db.models import Image as ImageRow
from db.session import make_engine, session_factory, session_scope
from flows.dataset import DatasetParams, GoldenPages, build_version
from flows.dataset_export import export_version
from inkloop.store import ImageStore

PROJECT = "bench"


def pages(count: int, store: ImageStore) -> list[str]:
    """`count` distinct small PNG pages in the store; their keys."""
    rng = np.random.default_rng(7)
    base = np.full((96, 480), 235, np.uint8)
    for row in (20, 56):  # two "lines" of ink
        base[row : row + 18, 16:460] = np.where(rng.random((18, 444)) < 0.25, 20, 235)
    keys = []
    for _ in range(count):
        pixels = base.copy()
        pixels.flat[rng.integers(0, pixels.size, 24)] = rng.integers(0, 255, 24)  # each page its own bytes
        out = io.BytesIO()
        Image.fromarray(pixels, "L").save(out, "PNG", compress_level=1)
        keys.append(store.put(out.getvalue()))
    return keys


def phashes(count: int) -> list[str]:
    rng = np.random.default_rng(11)
    values = rng.integers(0, 2**63, count, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    for index in range(0, count, 100):  # 1%: a near-duplicate (2 bits away) of the page before
        if index:
            values[index] = values[index - 1] ^ np.uint64(0b101)
    return [f"{int(v):016x}" for v in values]


def populate(url: str, keys: list[str]) -> None:
    upgrade(url)
    now = datetime.now(UTC)
    hashes = phashes(len(keys))
    lines = [
        {"text": "first line", "box": [3.0, 20.0, 94.0, 20.0]},
        {"text": "second line", "box": [3.0, 58.0, 94.0, 20.0]},
    ]
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for start in range(0, len(keys), 2000):
                chunk = list(enumerate(keys[start : start + 2000], start))
                connection.execute(
                    insert(ImageRow),
                    [
                        {
                            "sha256": k,
                            "source": "production",
                            "byte_size": 1,
                            "status": "valid",
                            "phash": hashes[i],
                            "features": {"polarity": "dark_on_light"},
                            "created_at": now,
                        }
                        for i, k in chunk
                    ],
                )
                connection.execute(
                    insert(Request),
                    [
                        {
                            "request_id": f"r-{i}",
                            "image_sha256": k,
                            "image_bytes": 1,
                            "model_version": "base-2",
                            "text": "first lime\nsecond line",
                            "confidence": 0.4,
                            "latency_ms": 1.0,
                            "created_at": now,
                        }
                        for i, k in chunk
                    ],
                )
                connection.execute(
                    insert(AnnotationTask),
                    [
                        {
                            "id": i + 1,
                            "uid": str(uuid.uuid4()),
                            "project": PROJECT,
                            "image_sha256": k,
                            "request_id": f"r-{i}",
                            "reason": "audit" if i % 10 == 0 else "low_confidence",
                            "priority": 0.6,
                            "state": "completed",
                            "prediction_text": "first lime\nsecond line",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i, k in chunk
                    ],
                )
                connection.execute(
                    insert(Annotation),
                    [
                        {
                            "task_id": i + 1,
                            "ls_annotation_id": i + 1,
                            "revision": 1,
                            "annotator": "a@example.com",
                            "text": "first line\nsecond line",
                            "lines": lines,
                            "label_source": "lines",
                            "raw": {"paragraph": "first lime\nsecond line", "lines": lines},
                            "unreadable": False,
                            "skipped": False,
                            "annotated_at": now,
                            "synced_at": now,
                        }
                        for i, _ in chunk
                    ],
                )
    finally:
        engine.dispose()


def bench(url: str, store: ImageStore, keys: list[str], repeats: int, work: Path) -> dict[str, Any]:
    populate(url, keys)
    engine = make_engine(url)
    sessions = session_factory(engine)
    golden = GoldenPages.load()
    runs: dict[str, list[float]] = {"build": [], "rebuild_unchanged": [], "export": []}
    try:
        for repeat in range(repeats):
            with session_scope(sessions) as session:
                session.execute(delete(DatasetMember))
                session.execute(delete(DatasetVersion))
            start = time.perf_counter()
            with session_scope(sessions) as session:
                summary = build_version(session, project=PROJECT, params=DatasetParams(), golden=golden)
            runs["build"].append(time.perf_counter() - start)
            assert summary.created and summary.members == len(keys), summary
            start = time.perf_counter()
            with session_scope(sessions) as session:
                again = build_version(session, project=PROJECT, params=DatasetParams(), golden=golden)
            runs["rebuild_unchanged"].append(time.perf_counter() - start)
            assert not again.created
            start = time.perf_counter()
            with session_scope(sessions, write=False) as session:
                done = export_version(session, store, version=summary.version or "", out=work / f"export-{repeat}")
            runs["export"].append(time.perf_counter() - start)
            assert done.pages == len(keys)
        splits = summary.splits
    finally:
        engine.dispose()
    return {"splits": splits, **{name: round(statistics.median(seconds), 2) for name, seconds in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step; the median is reported")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="inkloop-dataset-bench-") as tmp:
        work = Path(tmp)
        store = ImageStore(str(work / "store"))
        started = time.perf_counter()
        keys = pages(args.pages, store)
        setup_s = round(time.perf_counter() - started, 1)
        results["sqlite"] = bench(f"sqlite:///{work / 'bench.db'}", store, keys, args.repeats, work / "sqlite")
        if not args.no_postgres:
            database = f"inkloop_dataset_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.postgres, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{database}"'))
                url = args.postgres.rsplit("/", 1)[0] + f"/{database}"
                try:
                    results["postgresql"] = bench(url, store, keys, args.repeats, work / "postgresql")
                finally:
                    with admin.connect() as connection:
                        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            finally:
                admin.dispose()
    report = {
        "benchmark": "dataset",
        "machine": machine(),
        "pages": args.pages,
        "repeats": args.repeats,
        "setup_pages_s": setup_s,
        "median_s": results,
        "goal_s": 30,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
