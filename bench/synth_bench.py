"""Synthetic paragraphs per second: `inkloop synth` end to end (render, page, PNG written), 1 worker and all cores.

    .venv/bin/python bench/synth_bench.py [--count 60] [--repeats 3]

Prints one JSON object with the machine and, per configuration, the median images/s over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import machine  # noqa: E402

from synth.generate import SynthOptions, generate  # noqa: E402


def run(count: int, repeats: int, workers: int, color: bool) -> dict[str, object]:
    rates = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory(prefix="inkloop-synth-bench-") as tmp:
            start = time.perf_counter()
            generate(Path(tmp) / "out", SynthOptions(count=count, seed=repeat, color=color), workers=workers)
            rates.append(count / (time.perf_counter() - start))
    return {"workers": workers, "color": color, "images_per_s": round(statistics.median(rates), 2), "runs": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    results = [run(args.count, args.repeats, 1, False), run(args.count, args.repeats, cores, False)]
    results.append(run(args.count, args.repeats, cores, True))
    print(json.dumps({"benchmark": "synth", "machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
