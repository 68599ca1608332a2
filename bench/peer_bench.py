"""inkloop side by side with Tesseract, the tool a user would try first: the same pages, CER and seconds per page for
each, in one run.

    .venv/bin/python bench/peer_bench.py [--model PATH] [--pages 120] [--caps-pages 60] [--out peer.json]

Sets (none of them in any training split):
- `heldout/dark_on_light`, `heldout/light_on_dark`: paragraphs in the held-out font families (the shipped model's
  reported held-out recipe: `make base-model`'s seed 3, half of the pages light on dark), split by polarity;
- `golden`: the six golden pages (model/golden/);
- `block_capitals`: held-out families, every page in capitals (forms, notes), dark on light, seed 5.

Tesseract is Debian's `tesseract-ocr` (`make tesseract` installs it), run as a user would: `tesseract PAGE stdout
--psm 6` (one uniform block of text), English model, one process per page, one thread (the same budget inkloop's
single server process gets per request). inkloop reads each page as it is served (segmentation, the artifact,
decoding), one page at a time. Both outputs are compared with the truth after the same normalisation: each line
stripped, empty lines dropped, lines joined with a newline. CER is total edits over total characters, with a 95%
bootstrap interval over pages; seconds are the median per page.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import machine  # noqa: E402

from inkloop.labels import read_records  # noqa: E402
from inkloop.text import edit_distance  # noqa: E402
from model.golden import GOLDEN_DIR  # noqa: E402
from model.recognizer import SHIPPED_MODEL, Recognizer, open_image  # noqa: E402
from synth.fonts import FontSet  # noqa: E402
from synth.generate import SynthOptions, generate  # noqa: E402


def normalise(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def tesseract_version() -> str:
    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=True)
    return (out.stdout or out.stderr).splitlines()[0]


def tesseract(path: Path) -> str:
    # One thread, as one request in one server process gets; OMP would otherwise spread over every core.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    done = subprocess.run(
        ["tesseract", str(path), "stdout", "--psm", "6", "-l", "eng"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tesseract failed on {path}: {done.stderr.strip()[-300:]}")
    return done.stdout


def cer_with_interval(edits: list[int], chars: list[int], rng: np.random.Generator) -> dict[str, float]:
    e, c = np.array(edits, dtype=float), np.array(chars, dtype=float)
    draws = rng.integers(0, len(e), size=(2000, len(e)))
    boot = e[draws].sum(axis=1) / c[draws].sum(axis=1)
    return {
        "cer": round(float(e.sum() / c.sum()), 4),
        "low": round(float(np.percentile(boot, 2.5)), 4),
        "high": round(float(np.percentile(boot, 97.5)), 4),
    }


def sets(folder: Path, pages: int, caps_pages: int) -> dict[str, list[dict]]:
    heldout = generate(
        folder / "heldout", SynthOptions(count=pages, seed=3, font_set=FontSet.heldout, dark_share=0.5), workers=2
    )
    caps = generate(
        folder / "caps",
        SynthOptions(count=caps_pages, seed=5, font_set=FontSet.heldout, dark_share=0.0, caps_share=1.0),
        workers=2,
    )
    records = read_records(heldout)
    return {
        "heldout/dark_on_light": [r for r in records if not r["dark_background"]],
        "heldout/light_on_dark": [r for r in records if r["dark_background"]],
        "golden": read_records(GOLDEN_DIR),
        "block_capitals": read_records(caps),
    }


def run_set(recognizer: Recognizer, records: list[dict], rng: np.random.Generator) -> dict:
    readers = {
        "inkloop": lambda r: recognizer.predict_images([open_image(r["path"])])[0].text,
        "tesseract": lambda r: tesseract(Path(r["path"])),
    }
    result: dict[str, object] = {"pages": len(records)}
    for name, read in readers.items():
        edits, chars, seconds = [], [], []
        by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for record in records:
            start = time.perf_counter()
            text = read(record)
            seconds.append(time.perf_counter() - start)
            truth = normalise(record["text"])
            edits.append(edit_distance(normalise(text), truth))
            chars.append(len(truth))
            family = by_family[record.get("font_family", "?")]
            family[0] += edits[-1]
            family[1] += chars[-1]
        result[name] = {
            **cer_with_interval(edits, chars, rng),
            "s_per_page_median": round(statistics.median(seconds), 3),
            "cer_by_family": {f: round(e / max(c, 1), 4) for f, (e, c) in sorted(by_family.items())},
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="artifact to compare (default: shipped)")
    parser.add_argument("--pages", type=int, default=120, help="held-out pages (half of them light on dark)")
    parser.add_argument("--caps-pages", type=int, default=60, help="block-capital pages")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed: run `make tesseract` (Debian's tesseract-ocr)")
    torch.set_num_threads(1)  # the same budget as one Tesseract process
    recognizer = Recognizer.load(args.model)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inkloop-peer-bench-") as tmp:
        chosen = sets(Path(tmp), args.pages, args.caps_pages)
        results = {name: run_set(recognizer, records, rng) for name, records in chosen.items() if records}
    wins = {name: r["inkloop"]["cer"] < r["tesseract"]["cer"] for name, r in results.items()}
    report = {
        "benchmark": "peer",
        "machine": {**machine(), "torch": torch.__version__, "threads": 1},
        "model": recognizer.version,
        "runtime": recognizer.runtime.value,
        "tesseract": tesseract_version() + " (--psm 6, eng, OMP_THREAD_LIMIT=1)",
        "sets": results,
        "inkloop_better_on": wins,
        "inkloop_better_on_every_set": all(wins.values()),
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
