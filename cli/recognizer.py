"""`inkloop synth | train | predict | evaluate`: making data, training, reading pages, measuring a model.

Each command checks what it was given (files, folders, the config) before it imports torch or Lightning, so a
typo is answered at once rather than after a model loads.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import choice
from inkloop.errors import InkloopError
from inkloop.labels import read_records
from inkloop.settings import load_settings

# What `inkloop predict FOLDER` reads from a folder (by extension, case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".mpo")


def synth(
    count: Annotated[int, typer.Option("--count", min=1, help="How many paragraph images to write.")],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the PNGs and labels.jsonl.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same images.")] = 0,
    fonts: Annotated[
        list[Path] | None, typer.Option("--fonts", help="A folder of font files to use as well (repeatable).")
    ] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="UTF-8 text to write (default: shipped).")] = None,
    font_set: Annotated[str, typer.Option("--font-set", help="train, heldout (never trained on) or all.")] = "train",
    charset_policy: Annotated[
        str, typer.Option("--charset-policy", help="Characters the model cannot write: fold, drop or error.")
    ] = "fold",
    color: Annotated[bool, typer.Option("--color", help="Write RGB pages (default: grayscale, smaller).")] = False,
    dark_share: Annotated[float, typer.Option("--dark-share", help="Share of light-on-dark pages.")] = 0.2,
    caps_share: Annotated[
        float, typer.Option("--caps-share", help="Share of pages written in block capitals, in any font.")
    ] = 0.0,
    realism: Annotated[
        float,
        typer.Option(
            "--realism", help="Share of pages with squared paper, pencil, thin pens, shadows and steep camera angles."
        ),
    ] = 0.0,
    strokes_share: Annotated[
        float,
        typer.Option(
            "--strokes-share",
            help="Share of pages drawn as pen strokes by sampled writers (Hershey centrelines), not from fonts.",
        ),
    ] = 0.0,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", help="Only this font family, as named in its font file (repeatable)."),
    ] = None,
    max_lines: Annotated[
        int, typer.Option("--max-lines", help="Lines per paragraph are 1..this (1 gives single lines).")
    ] = 12,
    lines_from: Annotated[
        Path | None, typer.Option("--lines-from", help="Stitch paragraphs from this folder's line crops instead.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes; 0 means one per core.")] = 0,
) -> None:
    """Write synthetic handwritten paragraphs (PNG) and their texts (labels.jsonl)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from inkloop.text import OutOfCharset
    from synth.corpus import SHIPPED_CORPUS
    from synth.fonts import FontSet
    from synth.generate import SynthOptions, generate

    options = SynthOptions(
        count=count,
        seed=seed,
        font_set=choice(FontSet, font_set, "--font-set"),
        font_dirs=tuple(fonts or ()),
        corpus=corpus or SHIPPED_CORPUS,
        policy=choice(OutOfCharset, charset_policy, "--charset-policy"),
        color=color,
        dark_share=dark_share,
        caps_share=caps_share,
        realism=realism,
        strokes_share=strokes_share,
        families=tuple(family or ()),
        max_lines=max_lines,
        lines_from=lines_from,
    )
    started = time.monotonic()
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("synth", total=count)
        generate(out, options, workers=workers or os.cpu_count() or 1, progress=lambda n: bar.advance(task, n))
    elapsed = time.monotonic() - started
    typer.echo(f"wrote {count} paragraphs to {out} ({count / elapsed:.1f}/s); texts in {out / 'labels.jsonl'}")


def _check_folders(folders: list[Path], option: str) -> None:
    """Each training folder exists and its labels.jsonl names existing images (the kernel's labels format)."""
    for folder in folders:
        if not folder.is_dir():
            raise InkloopError(f"{option} {folder}: no such folder (a folder of images and a labels.jsonl)")
        read_records(folder)


def train(
    data: Annotated[list[Path], typer.Option("--data", help="Folder of PNGs + labels.jsonl to train on (repeatable).")],
    val: Annotated[list[Path] | None, typer.Option("--val", help="Validation folder (default: 5% of --data).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where checkpoints, logs and model.pt go.")] = Path("runs/latest"),
    init: Annotated[Path | None, typer.Option("--init", help="Warm start from this model artifact.")] = None,
    grow_charset: Annotated[
        bool, typer.Option("--grow-charset", help="With --init: add the data's new characters to the charset.")
    ] = False,
    config_file: Annotated[Path | None, typer.Option("--config", help="JSON file of TrainConfig fields.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimizer steps.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Lines per optimizer step (default: the config's batch_size)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.ckpt.")] = False,
    version: Annotated[str | None, typer.Option("--version", help="Version name written in the model card.")] = None,
) -> None:
    """Train the paragraph recognizer (GPU with mixed precision when there is one) and export OUT/model.pt."""
    if init is None and grow_charset:
        raise InkloopError("--grow-charset needs --init (a new model already has the default charset)")
    if init is not None and not init.is_file():
        raise InkloopError(f"--init {init}: no model file there")
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise InkloopError(f"--resume: nothing to resume, {out / 'checkpoints' / 'last.ckpt'} does not exist")
    _check_folders(list(data), "--data")
    _check_folders(list(val or []), "--val")
    fields: dict[str, Any] = {}
    if config_file is not None:
        try:
            fields = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InkloopError(f"cannot read config {config_file}: {exc}") from None
        if not isinstance(fields, dict):
            raise InkloopError(f"config {config_file} must hold a JSON object of TrainConfig fields")
    fields.update({k: v for k, v in {"max_steps": max_steps, "batch_size": batch_size}.items() if v is not None})

    from pydantic import ValidationError

    from model.config import TrainConfig
    from model.train import train as run_training

    try:
        config = TrainConfig.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InkloopError(f"invalid training config: {problems}") from None
    result = run_training(
        list(data),
        list(val or []),
        out,
        config,
        init=init,
        grow_charset=grow_charset,
        resume=resume,
        version=version,
        cache_dir=load_settings().paths.line_cache,
    )
    card = result.card
    val_metrics = card.metrics["val"]
    confidence = f", confidence ECE {val_metrics.confidence.ece:.3f}" if val_metrics.confidence else ""
    run = card.training
    trained = f", {run.steps_text()} in {run.wall_s:.0f} s on {run.device}" if run else ""
    typer.echo(
        f"model {card.version} -> {result.artifact}: val CER {val_metrics.cer:.4f} on {val_metrics.pages} pages"
        f"{confidence}{trained}"
    )


def image_paths(arguments: list[Path]) -> tuple[list[Path], list[str]]:
    """The image files to read (a folder gives its images, sorted) and an error line for each argument that
    is neither an existing file nor a folder with images."""
    found: list[Path] = []
    problems: list[str] = []
    for path in arguments:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                problems.append(f"{path}: a folder with no images in it (looked for {', '.join(IMAGE_SUFFIXES)})")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them, to read.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    model_path: Annotated[Path | None, typer.Option("--model", help="Model artifact (default: shipped).")] = None,
) -> None:
    """Read the text in paragraph images. A file that cannot be read gets an error line; the others still run."""

    def report_error(path: Path | str, message: str) -> None:
        if as_json:
            typer.echo(json.dumps({"path": str(path), "error": message}))
        else:
            typer.echo(f"inkloop: error: {message}", err=True)

    paths, problems = image_paths(list(images))
    for problem in problems:
        report_error(problem.split(": ", 1)[0], problem)
    if not paths:
        raise typer.Exit(1)
    if model_path is not None and not model_path.is_file():
        raise InkloopError(f"--model {model_path}: no model file there")

    from model.preprocess import ImageInputError
    from model.recognizer import Recognizer, open_image

    recognizer = Recognizer.load(model_path)
    failed = len(problems)
    for path in paths:
        try:
            prediction = recognizer.predict_images([open_image(path)])[0]
        except ImageInputError as exc:
            failed += 1
            report_error(path, str(exc))
            continue
        if as_json:
            record = {
                "path": str(path),
                "text": prediction.text,
                "confidence": prediction.confidence,
                "model_version": recognizer.version,
            }
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            typer.echo(f"== {path} (confidence {prediction.confidence:.2f})\n{prediction.text}")
    if failed:
        raise typer.Exit(1)


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Folder of PNGs + labels.jsonl.")],
    model_path: Annotated[Path | None, typer.Option("--model", help="Model artifact (default: shipped).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    examples: Annotated[int, typer.Option("--examples", min=0, help="Pages to include in the JSON report.")] = 0,
    into_card: Annotated[
        str | None, typer.Option("--into-card", help="Also record the result in the model card under this name.")
    ] = None,
    lines: Annotated[
        bool,
        typer.Option(
            "--lines",
            help="Read each page's ground-truth lines (polygons of imported pages, else annotated boxes) instead of "
            "segmenting it: the line-level CER, with a 95% interval.",
        ),
    ] = False,
) -> None:
    """CER of a model on a labelled folder, overall, by polarity and by font, and the quality of its confidence."""
    _check_folders([data], "--data")
    if model_path is not None and not model_path.is_file():
        raise InkloopError(f"--model {model_path}: no model file there")

    from model.evaluate import evaluate as run_evaluation
    from model.evaluate import evaluate_lines
    from model.export import update_card
    from model.recognizer import Recognizer

    recognizer = Recognizer.load(model_path)
    if lines:
        try:
            line_report = evaluate_lines(recognizer, data)
        except ValueError as exc:
            raise InkloopError(str(exc)) from None
        if into_card:
            update_card(recognizer.path, lambda card: card.with_metrics(into_card, line_report.metrics()))
        if as_json:
            typer.echo(line_report.model_dump_json(indent=2))
            return
        low, high = line_report.interval
        typer.echo(
            f"model {line_report.model} on {line_report.lines} ground-truth lines of {line_report.pages} pages of "
            f"{data}: CER {line_report.cer:.4f} (95% {low:.4f}-{high:.4f})"
        )
        if line_report.skipped_pages:
            typer.echo(f"  {line_report.skipped_pages} pages without line outlines or boxes left out")
        return
    report = run_evaluation(recognizer, data, keep_pages=examples)
    if into_card:
        update_card(recognizer.path, lambda card: card.with_metrics(into_card, report.metrics()))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    polarity = {k.split("/", 1)[1]: v for k, v in report.cer_by.items() if k.startswith("polarity/")}
    typer.echo(f"model {report.model} on {report.pages} pages of {data}: CER {report.cer:.4f}")
    if polarity:
        typer.echo("  " + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in polarity.items()))
    stream = {k.split("/", 1)[1]: v for k, v in report.cer_by.items() if k.startswith("stream/")}
    if stream:
        typer.echo("  " + ", ".join(f"{k} pages {v:.4f}" for k, v in stream.items()) + " (audit: a random sample)")
    conf = report.confidence
    typer.echo(
        f"  confidence: mean {conf.mean or 0:.3f}, ECE {conf.ece:.3f}, "
        f"CER-coverage area {conf.cer_coverage_auc:.4f} (random order {conf.cer_coverage_auc_random:.4f})"
    )


def quantize(
    model_path: Annotated[Path, typer.Option("--model", help="Model artifact to add an int8 graph to.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of PNGs + labels.jsonl to calibrate and check on.")],
    pages: Annotated[int, typer.Option("--pages", min=1, help="Pages of --data to use.")] = 48,
) -> None:
    """Embed an int8 graph in a model artifact (about 1.8x faster on CPU), calibrated and checked on a folder's
    pages; kept only where it reads them as the float graph does. `inkloop train` does this itself."""
    _check_folders([data], "--data")
    if not model_path.is_file():
        raise InkloopError(f"--model {model_path}: no model file there")

    from inkloop.labels import read_labels
    from model.runtimes import INT8_MAX_CER, has_int8
    from model.train import add_int8

    card = add_int8(model_path, read_labels(data), limit=pages, data=str(data))
    metric = card.metrics.get("int8")
    if metric is None:
        raise InkloopError(f"no lines found on the pages of {data} to calibrate on")
    verdict = (
        "embedded: the onnx-int8 runtime serves it on CPU"
        if has_int8(model_path)
        else f"more than {INT8_MAX_CER} worse, left out: the float graph serves"
    )
    typer.echo(
        f"on {metric.pages} pages of {data}: int8 CER {metric.cer:.4f}, float {metric.cer_by['float']:.4f}; {verdict}"
    )


def register(app: typer.Typer) -> None:
    for command in (synth, train, predict, evaluate, quantize):
        app.command()(command)
