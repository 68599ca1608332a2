"""What a pretrained model is worth on real handwriting: how well it reads writers it has never seen, and how few
real lines of a new hand it needs to read that hand. Every change to synthesis or to the base model is kept or
dropped by these numbers (docs/benchmarks.md, "Pretraining value").

    .venv/bin/python bench/pretraining_value.py [--model PATH] [--shots 100,300,1000] [--epochs 8]
        [--minutes 10] [--eval-pages 60] [--data DIR] [--out value.json]

- zero-shot: the model reads the handwritten lines of the Stanford memorial letters written by the held-out
  writers (STANFORD_HELDOUT: one letter is one writer; those letters never train a model inkloop ships), each
  line cut along its ground-truth polygon grown as training cuts it. CER with a 95% bootstrap interval over
  writers (over pages for Hooker's one hand below), CER per writer, and how its confidence holds under this
  shift: ECE over lines, and the CER of the quarter of lines it is least sure of against the rest.
- few-shot adaptation, the loop's real job: the model is fine-tuned (model.train.train, as `inkloop train --init`
  does, its own network and charset) on N real lines of Hooker's hand for each N of `--shots`, and reads the
  Hooker evaluation pages (every HOOKER_EVAL_EVERY-th page in name order, about 20 lines each; never trained on).
  The N lines come whole pages at a time from the other pages in a fixed shuffled order (`--seed`), so a larger N
  holds every smaller one; three more pool pages are the validation pages training calibrates its confidence on.
  Each fine-tune runs `--epochs` passes over its lines (at least 20 steps), capped at `--minutes`; the learning
  rate is ADAPT_LR with training's warm-up and cosine decay. The table gives the CER after N lines and the N at
  which it first reaches TARGET_CER (by log-linear interpolation between the measured N; "> N" when none does).

Hooker's pages are CC BY-SA: the fine-tuned models live in a temporary folder and are deleted; the JSON holds
numbers only. A kraken model trained on about all of this hand is reported at CER 0.11-0.12 (the set's README),
the line to cross with a fraction of the lines. Everything runs on the CPU unless a GPU is present; progress goes
to stderr, a summary table to stdout, the JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_bench import DEFAULT_DATA, LETTER, clean, counts, load_pages  # noqa: E402
from store_bench import machine  # noqa: E402

from inkloop.groundtruth import GtLine  # noqa: E402
from inkloop.labels import LABELS  # noqa: E402
from inkloop.text import edit_distance  # noqa: E402
from model.confidence import expected_calibration_error  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.export import load_artifact  # noqa: E402
from model.preprocess import line_input, to_grayscale  # noqa: E402
from model.recognizer import SHIPPED_MODEL, Recognizer, open_image  # noqa: E402
from model.segment import POLYGON_GROW, polygon_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Stanford writers held out of every model inkloop ships: letters 69, 75 and 76, and the archive's images 087 to
# 093 of folder 14 (one block of pages: the typed letter on image 086 ends the letter before them). About 2/3 of the
# set's handwritten characters, so the zero-shot figure rests on several writers and many lines.
STANFORD_HELDOUT_LETTERS = frozenset({"Lettre69", "Lettre75", "Lettre76"})
STANFORD_HELDOUT_IMAGES = range(87, 94)
HOOKER_EVAL_EVERY = 5
VALIDATION_PAGES = 3
ADAPT_LR = 5e-4
TARGET_CER = 0.20
BATCH = 32
TORCH_THREADS = 2


@dataclass(frozen=True)
class RealLine:
    image: Path
    line: GtLine
    writer: str


def stanford_writer(name: str) -> str:
    """The writer of a Stanford page: its letter (Page10-Lettre75-76--Lettre76_1: Lettre76), else the page itself
    (PageX-LettreX--SC0033B_s4_b01_f14_i087: the archive image)."""
    match = LETTER.search(name)
    return match.group(1) if match else name.rsplit("--", 1)[-1]


def stanford_heldout(writer: str) -> bool:
    if writer in STANFORD_HELDOUT_LETTERS:
        return True
    image = writer.rsplit("_i", 1)
    return len(image) == 2 and image[1].isdigit() and int(image[1]) in STANFORD_HELDOUT_IMAGES


def stanford_lines(data: Path) -> tuple[list[RealLine], list[RealLine]]:
    """The handwritten lines with text of the training writers and of the held-out writers."""
    train: list[RealLine] = []
    heldout: list[RealLine] = []
    for page in load_pages(data / "stanford-memorials", None):
        writer = stanford_writer(page.name)
        for line in page.page.lines:
            if counts(line, ["Handwritten"]):
                (heldout if stanford_heldout(writer) else train).append(RealLine(page.image, line, writer))
    return train, heldout


def hooker_split(data: Path, eval_pages: int | None, seed: int) -> tuple[list, list]:
    """(adaptation pool pages in a fixed shuffled order, evaluation pages): every HOOKER_EVAL_EVERY-th page in name
    order is for evaluation (the first `eval_pages` of them), the rest is the pool."""
    pages = [p for p in load_pages(data / "hooker", None) if any(line.text for line in p.page.lines)]
    evaluation = [p for i, p in enumerate(pages) if i % HOOKER_EVAL_EVERY == 0][:eval_pages]
    pool = [p for i, p in enumerate(pages) if i % HOOKER_EVAL_EVERY != 0]
    random.Random(seed).shuffle(pool)
    return pool, evaluation


def page_lines(pages: Sequence) -> list[RealLine]:
    return [RealLine(p.image, line, "hooker") for p in pages for line in p.page.lines if line.text]


# --- reading and scoring -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    edits: int
    chars: int
    confidence: float
    writer: str
    page: str


def read(recognizer: Recognizer, lines: Sequence[RealLine]) -> list[Read]:
    """Each line cut along its polygon (grown by POLYGON_GROW, as training cuts it) and read; an empty crop reads
    nothing (all its characters are errors) with confidence 0."""
    by_image: dict[Path, list[int]] = defaultdict(list)
    for i, line in enumerate(lines):
        by_image[line.image].append(i)
    results: list[Read | None] = [None] * len(lines)
    for image, indices in by_image.items():
        gray = to_grayscale(open_image(image))
        crops = [polygon_line(gray, lines[i].line.polygon, lines[i].line.baseline, grow=POLYGON_GROW) for i in indices]
        kept = [(i, c) for i, c in zip(indices, crops, strict=True) if c.size]
        inputs = [line_input(c, recognizer.line_height, recognizer.max_line_width) for _, c in kept]
        decoded = recognizer.read_lines(inputs) if inputs else []
        for (i, _), d in zip(kept, decoded, strict=True):
            truth = lines[i].line.text
            confidence = float(recognizer.calibration(d.raw_confidence))
            results[i] = Read(edit_distance(clean(d.text), truth), len(truth), confidence, lines[i].writer, image.name)
        for i in set(indices) - {i for i, _ in kept}:
            results[i] = Read(len(lines[i].line.text), len(lines[i].line.text), 0.0, lines[i].writer, image.name)
    return [r for r in results if r is not None]


def score(reads: Sequence[Read], rng: np.random.Generator, *, by_writer: bool) -> dict[str, object]:
    """CER with a 95% bootstrap interval (over writers when there are several, else over pages: a page's lines
    are alike, so resampling lines would understate the spread), confidence quality on lines, and (by_writer) CER
    per writer."""
    edits = np.array([r.edits for r in reads], dtype=float)
    chars = np.array([r.chars for r in reads], dtype=float)
    writers = sorted({r.writer for r in reads})
    over = "writers" if len(writers) > 1 else "pages"
    keys = [r.writer if over == "writers" else r.page for r in reads]
    groups = [np.array([i for i, k in enumerate(keys) if k == key]) for key in sorted(set(keys))]
    group_edits = np.array([edits[g].sum() for g in groups])
    group_chars = np.array([chars[g].sum() for g in groups])
    draws = rng.integers(0, len(groups), size=(2000, len(groups)))
    boot = group_edits[draws].sum(axis=1) / np.maximum(group_chars[draws].sum(axis=1), 1)
    line_cer = np.minimum(edits / np.maximum(chars, 1), 1.0)
    confidence = np.array([r.confidence for r in reads])
    order = np.argsort(confidence, kind="stable")
    quarter = max(len(reads) // 4, 1)
    least, rest = order[:quarter], order[quarter:]
    out: dict[str, object] = {
        "lines": len(reads),
        "chars": int(chars.sum()),
        "cer": round(float(edits.sum() / max(chars.sum(), 1)), 4),
        "low": round(float(np.percentile(boot, 2.5)), 4),
        "high": round(float(np.percentile(boot, 97.5)), 4),
        "interval_over": over,
        "confidence": {
            "mean": round(float(confidence.mean()), 4),
            "accuracy": round(float(1 - line_cer.mean()), 4),
            "ece": round(expected_calibration_error(confidence, line_cer), 4),
            "least_confident_quarter_cer": round(float(edits[least].sum() / max(chars[least].sum(), 1)), 4),
            "rest_cer": round(float(edits[rest].sum() / max(chars[rest].sum(), 1)), 4) if len(rest) else None,
        },
    }
    if by_writer and len(writers) > 1:
        out["by_writer"] = {
            w: round(
                float(sum(r.edits for r in reads if r.writer == w) / sum(r.chars for r in reads if r.writer == w)), 4
            )
            for w in writers
        }
    return out


# --- adapting -----------------------------------------------------------------------------------------------------


def write_folder(folder: Path, lines: Sequence[RealLine]) -> int:
    """A labels folder whose records are pages holding only the given lines (their polygons and baselines, in
    page pixels; the images where they are): training cuts exactly these lines. Returns the number of lines."""
    folder.mkdir(parents=True)
    by_image: dict[Path, list[GtLine]] = defaultdict(list)
    for line in lines:
        by_image[line.image].append(line.line)
    with open(folder / LABELS, "w", encoding="utf-8") as out:
        for image, chosen in by_image.items():
            records = [
                {"text": line.text, "box": [0, 0, 0, 0], "polygon": [list(p) for p in line.polygon]}
                | {"baseline": [list(p) for p in line.baseline]}
                for line in chosen
            ]
            text = "\n".join(line.text for line in chosen)
            out.write(json.dumps({"file": str(image.resolve()), "text": text, "lines": records}) + "\n")
    return len(lines)


def first_lines(pool: Sequence, n: int) -> list[RealLine]:
    """The first n lines with text of the pool pages, page after page."""
    return page_lines(pool)[:n]


def adapt(
    model: Path,
    lines: Sequence[RealLine],
    validation: Sequence,
    work: Path,
    *,
    epochs: float,
    minutes: float,
    seed: int,
) -> tuple[Path, dict[str, object]]:
    from model.train import train

    _, card = load_artifact(model)
    if card.config is None:
        raise SystemExit(f"{model} has no training config in its card: it cannot be fine-tuned")
    train_dir, val_dir = work / "train", work / "val"
    write_folder(train_dir, lines)
    write_folder(val_dir, page_lines(validation))
    steps = max(int(math.ceil(epochs * len(lines) / BATCH)), 20)
    config = TrainConfig.model_validate(
        {
            **card.config,
            "batch_size": BATCH,
            "max_steps": steps,
            "max_minutes": minutes,
            "lr": ADAPT_LR,
            "val_every_steps": steps + 1,  # no validation while training: the last weights are the result
            "num_workers": 0,
            "seed": seed,
        }
    )
    started = time.monotonic()
    result = train([train_dir], [val_dir], work / "out", config, init=model, version=f"adapted-{len(lines)}")
    run = result.card.training
    return result.artifact, {
        "lines": len(lines),
        "steps": run.steps if run else steps,
        "planned_steps": steps,
        "stopped_early": run.stopped_early if run else None,
        "seconds": round(time.monotonic() - started, 1),
    }


def lines_to_reach(points: Sequence[tuple[int, float]], target: float) -> dict[str, object]:
    """The N at which CER first reaches `target`, interpolating log-linearly between measured N (N = 0 is the
    model as it is); None with "beyond" the largest N when no measured N reaches it."""
    for (n0, c0), (n1, c1) in zip(points, points[1:], strict=False):
        if c1 <= target < c0:
            if n0 == 0:
                return {"lines": n1, "interpolated": False}
            t = (c0 - target) / (c0 - c1)
            return {
                "lines": int(round(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))),
                "interpolated": True,
            }
    if points and points[0][1] <= target:
        return {"lines": 0, "interpolated": False}
    return {"lines": None, "beyond": points[-1][0] if points else 0}


# --- the run ------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    recognizer = Recognizer.load(args.model)
    started = time.monotonic()
    train_writers, heldout = stanford_lines(args.data)
    print(f"zero-shot: {len(heldout)} Stanford lines of held-out writers", file=sys.stderr, flush=True)
    zero_shot = score(read(recognizer, heldout), rng, by_writer=True)
    pool, evaluation = hooker_split(args.data, args.eval_pages, args.seed)
    evaluation_lines = page_lines(evaluation)
    validation, pool = pool[:VALIDATION_PAGES], pool[VALIDATION_PAGES:]
    print(
        f"few-shot: reading {len(evaluation_lines)} lines of {len(evaluation)} Hooker pages",
        file=sys.stderr,
        flush=True,
    )
    before = score(read(recognizer, evaluation_lines), rng, by_writer=False)
    curve: list[dict[str, object]] = [{"shots": 0, **before}]
    points = [(0, float(before["cer"]))]  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="pretraining-value-") as scratch:
        for n in args.shots:
            lines = first_lines(pool, n)
            if len(lines) < n:
                raise SystemExit(f"the Hooker pool has {len(lines)} lines, fewer than {n}")
            print(f"few-shot: fine-tuning on {n} Hooker lines", file=sys.stderr, flush=True)
            artifact, run_info = adapt(
                args.model,
                lines,
                validation,
                Path(scratch) / f"n{n}",
                epochs=args.epochs,
                minutes=args.minutes,
                seed=args.seed,
            )
            adapted = Recognizer.load(artifact)
            cell = score(read(adapted, evaluation_lines), rng, by_writer=False)
            curve.append({"shots": n, **cell, "training": run_info})
            points.append((n, float(cell["cer"])))  # type: ignore[arg-type]
            print(
                f"few-shot: {n} lines -> CER {cell['cer']:.3f} ({run_info['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return {
        "benchmark": "pretraining_value",
        "command": " ".join([".venv/bin/python bench/pretraining_value.py", *map(shlex.quote, sys.argv[1:])]),
        "machine": {
            **machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        },
        "model": recognizer.version,
        "runtime": str(recognizer.runtime),
        "zero_shot": {
            "set": "stanford-memorials, held-out writers",
            "writers": sorted({line.writer for line in heldout}),
            "training_writers": sorted({line.writer for line in train_writers}),
            **zero_shot,
        },
        "few_shot": {
            "set": "hooker",
            "evaluation_pages": len(evaluation),
            "pool_pages": len(pool),
            "validation_pages": VALIDATION_PAGES,
            "epochs": args.epochs,
            "minutes_cap": args.minutes,
            "lr": ADAPT_LR,
            "curve": curve,
            "target_cer": TARGET_CER,
            "to_reach_target": lines_to_reach(points, TARGET_CER),
        },
        "minutes": round((time.monotonic() - started) / 60, 1),
        "licences": "Stanford memorials CC BY 4.0; Hooker CC BY-SA 4.0: this file holds numbers only, and the "
        "models fine-tuned on Hooker lines were deleted.",
    }


def summary(report: dict) -> str:
    zero = report["zero_shot"]
    out = [
        f"model {report['model']} ({report['runtime']})",
        f"zero-shot, {len(zero['writers'])} held-out Stanford writers, {zero['lines']} lines: CER {zero['cer']:.3f} "
        f"[{zero['low']:.3f}, {zero['high']:.3f}], ECE {zero['confidence']['ece']:.3f}, least-confident quarter "
        f"{zero['confidence']['least_confident_quarter_cer']:.3f} vs rest {zero['confidence']['rest_cer']:.3f}",
        f"{'Hooker lines trained on':<26} {'CER':>6}  {'95% interval':<15} {'s':>6}",
    ]
    for cell in report["few_shot"]["curve"]:
        seconds = cell.get("training", {}).get("seconds", "")
        out.append(f"{cell['shots']:<26} {cell['cer']:>6.3f}  [{cell['low']:.3f}, {cell['high']:.3f}]  {seconds:>6}")
    reach = report["few_shot"]["to_reach_target"]
    target = report["few_shot"]["target_cer"]
    out.append(
        f"lines to reach CER {target}: "
        + (
            f"{reach['lines']}{' (interpolated)' if reach.get('interpolated') else ''}"
            if reach["lines"] is not None
            else f"more than {reach['beyond']}"
        )
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="the pretrained model (default: shipped)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real-handwriting folder")
    parser.add_argument("--shots", default="100,300,1000", help="comma-separated numbers of Hooker lines")
    parser.add_argument("--epochs", type=float, default=8.0, help="passes over the lines in each fine-tune")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time cap of each fine-tune")
    parser.add_argument("--eval-pages", type=int, default=60, help="Hooker pages read (every fifth page)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the JSON (default: stdout)")
    args = parser.parse_args()
    try:
        args.shots = sorted({int(n) for n in args.shots.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--shots takes comma-separated whole numbers, not {args.shots!r}")
    if any(n <= 0 for n in args.shots):
        parser.error("--shots must be positive")
    torch.set_num_threads(TORCH_THREADS)
    report = run(args)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
        print(summary(report))
    else:
        print(text)


if __name__ == "__main__":
    main()
