"""Image-store throughput: new puts (fsync'd, atomic), repeated puts (the idempotent path) and verified gets.

    .venv/bin/python bench/store_bench.py [--count 200] [--repeats 5] [--sizes 65536,524288] [--url DIR]

Prints one JSON object: the machine, then for each payload size the median over repeats of objects/s and MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from inkloop.store import ImageStore


def machine() -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def bench_size(root: Path, size: int, count: int, repeats: int) -> dict[str, object]:
    runs: dict[str, list[float]] = {"put_new": [], "put_existing": [], "get_verified": []}
    for repeat in range(repeats):
        store = ImageStore(str(root / f"s{size}-{repeat}"))
        store.ensure()
        payloads = [os.urandom(size) for _ in range(count)]

        start = time.perf_counter()
        keys = [store.put(p) for p in payloads]
        runs["put_new"].append(time.perf_counter() - start)

        start = time.perf_counter()
        for payload in payloads:
            store.put(payload)
        runs["put_existing"].append(time.perf_counter() - start)

        start = time.perf_counter()
        for key in keys:
            store.get(key)
        runs["get_verified"].append(time.perf_counter() - start)
    figures: dict[str, object] = {"bytes": size, "objects_per_run": count, "repeats": repeats}
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        figures[name] = {
            "objects_per_s": round(count / median, 1),
            "mb_per_s": round(count * size / median / 1e6, 1),
            "median_s": round(median, 4),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="objects per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per size; the median is reported")
    parser.add_argument("--sizes", default="65536,524288", help="payload sizes in bytes, comma-separated")
    parser.add_argument("--url", default=None, help="store folder (default: a temporary folder)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="inkloop-store-bench-") as tmp:
        root = Path(args.url) if args.url else Path(tmp)
        results = [bench_size(root, size, args.count, args.repeats) for size in sizes]
    print(json.dumps({"benchmark": "store", "machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
