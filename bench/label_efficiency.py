"""Does the route flow's policy teach the model more per label than random pages? (`make` not needed.)

    .venv/bin/python bench/label_efficiency.py --out label_efficiency.json --chart label_efficiency.png

A pool of production pages from the shifted distribution (block capitals in the held-out font families, seven in
ten handwriting, the rest printed; the demo's shift is its handwriting part), read once by the shipped model as
the endpoint would. Two arms choose `budget` pages of the pool to label:

- routing: annotation.routing.plan, the route flow's own policy (least confident first, the random audit share,
  near-duplicates once), with a different audit salt per seed;
- random: `budget` pages drawn uniformly.

Each choice fine-tunes the shipped model with the retrain flow's recipe (flows.retrain.resolve_config over
model/configs/retrain.json, `--config FILE` over it as `-p config=FILE` does; replay pages of the base recipe's
kind beside the new labels; validation on replay pages). On a CPU, `--config model/configs/retrain-demo.json`
(the demo's short recipe: 120 steps of 16 lines) makes the grid fit in about an hour. The stitched and
font-rendered synthetic pages the retrain flow adds are left out (the same for both arms). Each model then reads
a disjoint test set of the same shift and a general held-out set (mixed case, held-out hands, a fifth light on
dark): a gain bought by forgetting shows on the second.

A finished cell keeps its readings under DATA/runs/<recipe>/, so a rerun after an interruption trains only the
cells that are missing. Output: CER per arm and budget (mean over seeds; 95% interval from a bootstrap over test
pages of the seed-averaged errors), the labels routing needs to match random's CER at the largest budget, JSON on
stdout (and --out) with the machine, and a PNG chart (--chart).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation.routing import Candidate, plan  # noqa: E402
from devtools.traffic import Upload, production_pages  # noqa: E402
from flows.retrain import RetrainParams, replay_folder, resolve_config  # noqa: E402
from inkloop.files import atomic_write  # noqa: E402
from inkloop.labels import LABELS  # noqa: E402
from inkloop.text import edit_distance  # noqa: E402
from model.recognizer import SHIPPED_MODEL, Recognizer  # noqa: E402
from model.registry import read_card  # noqa: E402
from model.train import train  # noqa: E402
from monitoring.features import compute_features  # noqa: E402

ARMS = ("routing", "random")


def machine() -> dict[str, object]:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version()}


@dataclass(frozen=True)
class Read:
    """One page and how a model read it."""

    upload: Upload
    prediction: str
    confidence: float

    @property
    def edits(self) -> int:
        return edit_distance(self.prediction, self.upload.text or "")

    @property
    def chars(self) -> int:
        return max(len(self.upload.text or ""), 1)


def read(model: Path, folder: Path, pages: list[Upload]) -> list[Read]:
    recognizer = Recognizer.load(model)
    predictions = recognizer.predict_paths([folder / p.name for p in pages])
    return [Read(p, pred.text, pred.confidence) for p, pred in zip(pages, predictions, strict=True)]


def choose(arm: str, pool: list[Read], phashes: dict[str, str | None], budget: int, seed: int) -> list[Upload]:
    if arm == "random":
        return random.Random(seed).sample([r.upload for r in pool], budget)
    by_name = {r.upload.name: r.upload for r in pool}
    candidates = [Candidate(r.upload.name, r.upload.name, r.confidence, False, phashes[r.upload.name]) for r in pool]
    chosen = plan(candidates, budget=budget, threshold=1.0, audit_rate=0.02, salt=f"seed-{seed}").chosen
    return [by_name[d.candidate.image_sha256] for d in chosen]


def labels_folder(folder: Path, source: Path, pages: list[Upload]) -> Path:
    """A labels folder of `pages` (their images linked from `source`)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lines = []
    for page in pages:
        (folder / page.name).symlink_to((source / page.name).resolve())
        lines.append(json.dumps({"file": page.name, "text": page.text}))
    (folder / LABELS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def cer_and_interval(runs: list[list[Read]], rng: np.random.Generator, replicates: int = 2000) -> dict[str, float]:
    """CER of the seed-averaged errors per page, its 95% bootstrap interval over pages, and the seeds' spread."""
    edits = np.mean([[r.edits for r in run] for run in runs], axis=0)
    chars = np.array([r.chars for r in runs[0]], dtype=float)
    draws = rng.integers(0, len(chars), size=(replicates, len(chars)))
    boot = edits[draws].sum(axis=1) / chars[draws].sum(axis=1)
    per_seed = [sum(r.edits for r in run) / sum(r.chars for r in run) for run in runs]
    return {
        "cer": round(float(edits.sum() / chars.sum()), 5),
        "low": round(float(np.percentile(boot, 2.5)), 5),
        "high": round(float(np.percentile(boot, 97.5)), 5),
        "seed_min": round(min(per_seed), 5),
        "seed_max": round(max(per_seed), 5),
    }


def labels_to_match(curve: dict[int, float], target: float) -> float | None:
    """The smallest budget (interpolated on a log scale between measured budgets) at which `curve` <= target."""
    budgets = sorted(curve)
    if curve[budgets[0]] <= target:
        return float(budgets[0])
    for low, high in zip(budgets, budgets[1:], strict=False):
        if curve[high] <= target:
            a, b = curve[low], curve[high]
            t = (a - target) / (a - b) if a != b else 1.0
            return float(round(np.exp(np.log(low) + t * (np.log(high) - np.log(low))), 1))
    return None


def chart(result: dict[str, Any], path: Path) -> None:
    """Two panels (shifted test set, general held-out set): CER against labels, one line per arm, with intervals."""
    width, height, pad = 1200, 520, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 15)
    except OSError:
        font = ImageFont.load_default()
    colours = {"routing": (31, 119, 180), "random": (255, 127, 14)}
    budgets = result["budgets"]
    for panel, (key, title) in enumerate((("shifted", "shifted test set"), ("general", "general held-out set"))):
        left = panel * width // 2 + pad
        right = (panel + 1) * width // 2 - 20
        top, bottom = 50, height - pad
        values = [result["baseline"][key]["cer"]] + [
            result["cells"][arm][str(b)][key][bound] for arm in ARMS for b in budgets for bound in ("low", "high")
        ]
        high = max(values) * 1.1 or 1.0
        xs = {b: left + (right - left) * i / max(len(budgets) - 1, 1) for i, b in enumerate(budgets)}

        def y(v: float, top: int = top, bottom: int = bottom, high: float = high) -> float:
            return bottom - (bottom - top) * v / high

        draw.text((left, 15), f"CER on the {title} (bars: 95% interval over pages)", fill="black", font=font)
        draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
        for i in range(5):
            v = high * i / 4
            draw.text((left - 60, y(v) - 8), f"{v:.3f}", fill="black", font=font)
            draw.line([(left, y(v)), (right, y(v))], fill=(230, 230, 230))
        for b, x in xs.items():
            draw.text((x - 12, bottom + 8), str(b), fill="black", font=font)
        draw.text(((left + right) // 2 - 40, bottom + 30), "labels (budget)", fill="black", font=font)
        base = result["baseline"][key]["cer"]
        draw.line([(left, y(base)), (right, y(base))], fill=(120, 120, 120), width=1)
        draw.text((right - 170, y(base) - 20), f"shipped model {base:.4f}", fill=(90, 90, 90), font=font)
        for n, arm in enumerate(ARMS):
            offset = (n - 0.5) * 8
            cells = [result["cells"][arm][str(b)][key] for b in budgets]
            points = [(xs[b] + offset, y(c["cer"])) for b, c in zip(budgets, cells, strict=True)]
            draw.line(points, fill=colours[arm], width=3)
            for (px, _), c in zip(points, cells, strict=True):
                draw.line([(px, y(c["low"])), (px, y(c["high"]))], fill=colours[arm], width=2)
                draw.ellipse([px - 4, y(c["cer"]) - 4, px + 4, y(c["cer"]) + 4], fill=colours[arm])
            draw.text((left + 20, bottom - 50 + 20 * n), arm, fill=colours[arm], font=font)  # below the lines
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="50,100,200,400")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=800, help="Pages of the shift the arms choose from.")
    parser.add_argument("--test", type=int, default=150, help="Pages of the shift, disjoint from the pool.")
    parser.add_argument("--general", type=int, default=100, help="Pages of the general held-out set.")
    parser.add_argument(
        "--config",
        type=Path,
        help="TrainConfig fields over model/configs/retrain.json, as `-p config=` of the retrain flow "
        "(model/configs/retrain-demo.json: the demo's short CPU recipe).",
    )
    parser.add_argument("--steps", type=int, help="Fine-tuning steps (overrides the recipe, as -p max_steps=).")
    parser.add_argument("--replay", type=int, default=400, help="Replay pages (the retrain flow's default: 400).")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "label-efficiency")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    if max(budgets) > args.pool:
        parser.error(f"the largest budget ({max(budgets)}) exceeds the pool ({args.pool})")
    started = time.perf_counter()
    workers = os.cpu_count() or 1
    data: Path = args.data
    pool_pages = production_pages(data / "pool", count=args.pool, seed=301, workers=workers, dark_share=0, caps_share=1)
    test_pages = production_pages(data / "test", count=args.test, seed=302, workers=workers, dark_share=0, caps_share=1)
    general_pages = production_pages(
        data / "general", count=args.general, seed=303, workers=workers, dark_share=0.2, caps_share=0
    )
    replay = replay_folder(data / "replay", args.replay, 21)
    replay_val = replay_folder(data / "replay", 60, 22)
    print(f"pages ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    shipped = SHIPPED_MODEL
    pool = read(shipped, data / "pool", pool_pages)
    phashes = {p.name: compute_features(p.data).phash for p in pool_pages}
    baseline = {
        "shifted": read(shipped, data / "test", test_pages),
        "general": read(shipped, data / "general", general_pages),
    }
    card = read_card(shipped)

    runs: dict[str, dict[int, dict[str, list[list[Read]]]]] = {
        arm: {b: {"shifted": [], "general": []} for b in budgets} for arm in ARMS
    }
    fits: list[float] = []
    # A finished cell keeps its readings (written atomically): a rerun after an interruption skips it.
    recipe_key = hashlib.sha256(
        json.dumps([str(args.config), args.steps, args.replay, args.pool, args.test, args.general]).encode()
    ).hexdigest()[:12]
    for seed in range(args.seeds):
        for budget in budgets:
            for arm in ARMS:
                config = resolve_config(
                    card.config, RetrainParams(config=args.config, max_steps=args.steps)
                ).model_copy(update={"seed": seed})
                out = data / "runs" / recipe_key / f"{arm}-{budget}-{seed}"
                done = out / "readings.json"
                if not done.is_file():
                    chosen = choose(arm, pool, phashes, budget, seed)
                    folder = labels_folder(data / "runs" / "chosen", data / "pool", chosen)
                    if out.exists():
                        shutil.rmtree(out)
                    tick = time.perf_counter()
                    train([folder, replay], [replay_val], out, config, init=shipped, cache_dir=data / "cache" / "lines")
                    fit_s = time.perf_counter() - tick
                    readings = {
                        "fit_s": fit_s,
                        **{
                            key: [[r.prediction, r.confidence] for r in read(out / "model.pt", data / key, pages)]
                            for key, pages in (("test", test_pages), ("general", general_pages))
                        },
                    }
                    with atomic_write(done) as partial:
                        partial.write_text(json.dumps(readings))
                    shutil.rmtree(out / "checkpoints", ignore_errors=True)
                saved = json.loads(done.read_text())
                fits.append(saved["fit_s"])
                for key, name, pages in (("shifted", "test", test_pages), ("general", "general", general_pages)):
                    runs[arm][budget][key].append(
                        [Read(p, text, conf) for p, (text, conf) in zip(pages, saved[name], strict=True)]
                    )
                shifted = runs[arm][budget]["shifted"][-1]
                cer = sum(r.edits for r in shifted) / sum(r.chars for r in shifted)
                print(f"seed {seed} budget {budget} {arm}: shifted CER {cer:.4f}", file=sys.stderr)

    rng = np.random.default_rng(0)
    cells = {
        arm: {
            str(b): {key: cer_and_interval(runs[arm][b][key], rng) for key in ("shifted", "general")} for b in budgets
        }
        for arm in ARMS
    }
    random_best = cells["random"][str(max(budgets))]["shifted"]["cer"]
    routing_curve = {b: cells["routing"][str(b)]["shifted"]["cer"] for b in budgets}
    result = {
        "bench": "label_efficiency",
        "machine": machine(),
        "pool": args.pool,
        "test_pages": args.test,
        "general_pages": args.general,
        "budgets": budgets,
        "seeds": args.seeds,
        "recipe": {
            "config": str(args.config or "model/configs/retrain.json"),
            "steps": config.max_steps,
            "batch_size": config.batch_size,
            "replay_pages": args.replay,
            **config.model_dump(mode="json", include={"lr", "weight_decay", "warmup_fraction"}),
        },
        "baseline": {key: cer_and_interval([reads], rng) for key, reads in baseline.items()},
        "cells": cells,
        "random_cer_at_largest_budget": random_best,
        "routing_labels_to_match_it": labels_to_match(routing_curve, random_best),
        "fine_tune_seconds_median": round(float(np.median(fits)), 1),
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.chart:
        chart(result, args.chart)


if __name__ == "__main__":
    main()
