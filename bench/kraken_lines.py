"""kraken's shipped baseline segmenter (blla) on page images, one JSON line per page: the peer that inkloop's own line
segmenter is compared with.

    .venv-kraken/bin/python bench/kraken_lines.py IMAGE [IMAGE ...] --out FILE.jsonl

Runs in its own virtualenv, never inkloop's: kraken 7.1.1 pins lightning, click, rich, scipy and coremltools versions
that conflict with inkloop's. Install it with `bash deploy/kraken-venv.sh` (CPU-only torch). This script imports
nothing from inkloop: only kraken (and torch, which kraken brings), PIL and the standard library.

kraken is Apache-2.0 (https://github.com/mittagessen/kraken); its default segmentation model `blla.mlmodel` ships
inside the kraken wheel (kraken/blla.mlmodel) under the same licence, so nothing is downloaded at run time.

Each page runs `kraken.blla.segment(image)` with the default model on CPU, torch limited to 2 threads. The default
model is loaded once, before the first page, and passed to every call (what `segment()` loads itself when given no
model), so `seconds` is the wall time of the segment call alone: network, vectorisation, polygons, reading order.
Output, one line per image:

    {"image": PATH, "seconds": S, "width": W, "height": H,
     "lines": [{"baseline": [[x, y], ...], "polygon": [[x, y], ...]}, ...]}

Lines are in kraken's reading order (the order of `Segmentation.lines`), coordinates are integer pixels of the image as
stored (no EXIF rotation is applied). A line that kraken returns without a boundary keeps `"polygon": []`.
Progress goes to stderr, one line per page.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from kraken import blla
from kraken.lib import vgsl
from PIL import Image


def _points(points: Sequence[Sequence[float]] | None) -> list[list[int]]:
    return [[int(round(x)), int(round(y))] for x, y in (points or [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="page images")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines output file")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    # blla.segment() is deprecated in favour of kraken.tasks.SegmentationTaskModel (removed in kraken 8)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kraken\.blla")
    warnings.filterwarnings("ignore", message=r"`blla\.segment\(\)` is deprecated")

    started = time.perf_counter()
    model = vgsl.TorchVGSLModel.load_model(resources.files("kraken").joinpath("blla.mlmodel"))
    print(f"kraken: default model loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    total = len(args.images)
    with args.out.open("w", encoding="utf-8") as out:
        for n, path in enumerate(args.images, 1):
            with Image.open(path) as im:
                im.load()  # decode before the clock starts
            started = time.perf_counter()
            seg = blla.segment(im, model=model, device="cpu")
            seconds = time.perf_counter() - started
            lines = [{"baseline": _points(line.baseline), "polygon": _points(line.boundary)} for line in seg.lines]
            record = {
                "image": str(path),
                "seconds": round(seconds, 3),
                "width": im.width,
                "height": im.height,
                "lines": lines,
            }
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(f"kraken: {n}/{total} {path.name} {seconds:.1f} s, {len(lines)} lines", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
