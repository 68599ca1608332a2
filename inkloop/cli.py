"""The `inkloop` command line.

Errors are one readable line on stderr and a non-zero exit code; `--debug` (or INKLOOP_DEBUG=1) shows the
traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from inkloop import __version__
from inkloop.errors import DatabaseError, InkloopError, SchemaNotReadyError
from inkloop.settings import Settings, load_settings
from inkloop.store import ImageStore


class _OneLineErrors(TyperGroup):
    """Turn exceptions from any command into `inkloop: error: ...` and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors and exits keep typer's handling
            raise
        except Exception as exc:
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo(f"inkloop: error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None


def _one_line(exc: Exception) -> str:
    if isinstance(exc, InkloopError):
        return str(exc)
    # Driver messages run over several lines; the first says what went wrong.
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} (rerun with --debug for the traceback)"


app = typer.Typer(
    cls=_OneLineErrors,
    help="inkloop: a handwriting recognizer that keeps improving on its own production traffic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
store_app = typer.Typer(cls=_OneLineErrors, help="The content-addressed image store.", no_args_is_help=True)
app.add_typer(store_app, name="store")
models_app = typer.Typer(
    cls=_OneLineErrors, help="The model registry: register, list, show, promote, roll back.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
flow_app = typer.Typer(cls=_OneLineErrors, help="The data flows (Prefect): ingest, route, sync.", no_args_is_help=True)
app.add_typer(flow_app, name="flow")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inkloop {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="INKLOOP_DEBUG", help="Show tracebacks instead of one-line errors."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """inkloop: serve, log, validate, annotate, retrain and promote a handwritten-paragraph recognizer."""


# --- database helpers -------------------------------------------------------------------------------------------


def _engine(settings: Settings, *, must_exist: bool) -> Engine:
    from db.session import make_engine, sqlite_path

    path = sqlite_path(settings.database_url)
    if path is not None:
        if must_exist and not path.exists():
            raise SchemaNotReadyError(f"no database at {path}; run `inkloop init` first")
        path.parent.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.database_url)


def _wait_for_database(engine: Engine, settings: Settings, wait_s: float) -> None:
    """Connect, retrying for up to `wait_s` seconds (a database container may still be starting)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with engine.connect():
                return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                detail = _one_line(exc).split(" (rerun", 1)[0]
                raise DatabaseError(f"cannot reach database {settings.masked_database_url()}: {detail}") from None
            time.sleep(1.0)


def _schema_revision(engine: Engine, settings: Settings) -> tuple[str | None, str]:
    from db.migrate import current_revision, head_revision

    try:
        return current_revision(engine), head_revision()
    except OperationalError as exc:
        detail = _one_line(exc).split(" (rerun", 1)[0]
        raise DatabaseError(f"cannot reach database {settings.masked_database_url()}: {detail}") from None


def _ready_engine(settings: Settings) -> Engine:
    """An engine on a database at the schema this code needs, or SchemaNotReadyError saying to run init."""
    engine = _engine(settings, must_exist=True)
    revision, head = _schema_revision(engine, settings)
    if revision != head:
        engine.dispose()
        if revision is None:
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} has no inkloop schema; run `inkloop init`"
            )
        raise SchemaNotReadyError(
            f"database {settings.masked_database_url()} is at schema {revision}, this inkloop needs {head}; "
            "run `inkloop init` to migrate"
        )
    return engine


# --- commands ---------------------------------------------------------------------------------------------------


@app.command()
def init(
    wait_db: Annotated[
        float,
        typer.Option("--wait-db", min=0, help="Seconds to keep retrying while the database is unreachable."),
    ] = 0.0,
) -> None:
    """Create INKLOOP_HOME and the store, migrate the database to the newest schema, and say where things are."""
    from db.migrate import has_any_table, upgrade

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = ImageStore(settings.store_url)
    store.ensure()
    engine = _engine(settings, must_exist=False)
    try:
        _wait_for_database(engine, settings, wait_db)
        current, head = _schema_revision(engine, settings)
        if current is None and has_any_table(engine):
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} has tables but no inkloop schema revision; "
                "refusing to migrate a database inkloop did not create"
            )
        if current != head:
            try:
                upgrade(settings.database_url)
            except SQLAlchemyError as exc:
                raise DatabaseError(f"migrating {settings.masked_database_url()} failed: {_one_line(exc)}") from None
        revision, _ = _schema_revision(engine, settings)
    finally:
        engine.dispose()
    note = "already at head" if current == head else f"migrated from {current or 'empty'}"
    _print_fields(
        {
            "home": str(settings.home),
            "database": settings.masked_database_url(),
            "store": settings.masked_store_url(),
            "schema": f"{revision} (head; {note})",
        }
    )


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Where things are, the schema revision, and how many requests, images, tasks, labels and models exist."""
    from db.repo import status_counts
    from db.session import session_factory, session_scope

    settings = load_settings()
    engine = _ready_engine(settings)
    try:
        revision, head = _schema_revision(engine, settings)
        with session_scope(session_factory(engine), write=False) as session:
            counts = status_counts(session=session)
    finally:
        engine.dispose()
    report = {
        "home": str(settings.home),
        "database_url": settings.masked_database_url(),
        "store_url": settings.masked_store_url(),
        "schema_revision": revision,
        "schema_head": head,
        "schema_at_head": revision == head,
        "counts": asdict(counts),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_fields(
        {
            "home": report["home"],
            "database": report["database_url"],
            "store": report["store_url"],
            "schema": f"{revision} (head)",
            "requests": str(counts.requests),
            "rejected": _breakdown(counts.rejections),
            "images": _breakdown(counts.images),
            "tasks": _breakdown(counts.annotation_tasks),
            "annotations": str(counts.annotations),
            "datasets": str(counts.dataset_versions),
            "models": _breakdown(counts.model_versions),
        }
    )


def _breakdown(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
    return f"{total}" + (f" ({parts})" if parts else "")


def _print_fields(fields: dict[str, str]) -> None:
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        typer.echo(f"{key.ljust(width)}  {value}")


@app.command()
def synth(
    count: Annotated[int, typer.Option("--count", min=1, help="How many paragraph images to write.")],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the PNGs and labels.jsonl.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same images.")] = 0,
    fonts: Annotated[
        list[Path] | None, typer.Option("--fonts", help="A folder of .ttf/.otf fonts to use as well (repeatable).")
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
        font_set=_choice(FontSet, font_set, "--font-set"),
        font_dirs=tuple(fonts or ()),
        corpus=corpus or SHIPPED_CORPUS,
        policy=_choice(OutOfCharset, charset_policy, "--charset-policy"),
        color=color,
        dark_share=dark_share,
        caps_share=caps_share,
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


def _choice(enum_cls: Any, value: str, option: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InkloopError(f"{option} must be one of {allowed}, not {value!r}") from None


@app.command()
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
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.ckpt.")] = False,
    version: Annotated[str | None, typer.Option("--version", help="Version name written in the model card.")] = None,
) -> None:
    """Train the paragraph recognizer (GPU with mixed precision when there is one) and export OUT/model.pt."""
    from pydantic import ValidationError

    from model.config import TrainConfig
    from model.train import train as run_training

    fields: dict[str, Any] = {}
    if config_file is not None:
        try:
            fields = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InkloopError(f"cannot read config {config_file}: {exc}") from None
    fields.update({k: v for k, v in {"max_steps": max_steps, "batch_size": batch_size}.items() if v is not None})
    try:
        config = TrainConfig.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InkloopError(f"invalid training config: {problems}") from None
    if init is None and grow_charset:
        raise InkloopError("--grow-charset needs --init (a new model already has the default charset)")
    result = run_training(
        list(data), list(val or []), out, config, init=init, grow_charset=grow_charset, resume=resume, version=version
    )
    metrics = result.card["metrics"]
    typer.echo(
        f"model {result.card['version']} -> {result.artifact}: val CER {metrics['val']['cer']:.4f} on "
        f"{metrics['val']['pages']} pages, confidence ECE {metrics['confidence']['ece']:.3f}, "
        f"{result.card['training']['steps']} steps in {result.card['training']['wall_s']:.0f} s "
        f"on {result.card['training']['device']}"
    )


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files to read.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    model_path: Annotated[Path | None, typer.Option("--model", help="Model artifact (default: shipped).")] = None,
) -> None:
    """Read the text in paragraph images. A file that cannot be read gets an error line; the others still run."""
    from model.preprocess import ImageInputError
    from model.recognizer import Recognizer, open_image

    recognizer = Recognizer.load(model_path)
    failed = 0
    for path in images:
        try:
            prediction = recognizer.predict_images([open_image(path)])[0]
        except ImageInputError as exc:
            failed += 1
            if as_json:
                typer.echo(json.dumps({"path": str(path), "error": str(exc)}))
            else:
                typer.echo(f"inkloop: error: {exc}", err=True)
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


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Folder of PNGs + labels.jsonl.")],
    model_path: Annotated[Path | None, typer.Option("--model", help="Model artifact (default: shipped).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    examples: Annotated[int, typer.Option("--examples", min=0, help="Pages to include in the JSON report.")] = 0,
    into_card: Annotated[
        str | None, typer.Option("--into-card", help="Also record the result in the model card under this name.")
    ] = None,
) -> None:
    """CER of a model on a labelled folder, overall, by polarity and by font, and the quality of its confidence."""
    from model.evaluate import evaluate as run_evaluation
    from model.export import update_card
    from model.recognizer import Recognizer

    recognizer = Recognizer.load(model_path)
    report = run_evaluation(recognizer, data, keep_pages=examples)
    if into_card:
        summary = {k: v for k, v in report.items() if k not in ("examples", "model")}
        update_card(recognizer.path, {"metrics": {into_card: summary}})
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    polarity = {k.split("/", 1)[1]: v for k, v in report["cer_by"].items() if k.startswith("polarity/")}
    typer.echo(f"model {report['model']} on {report['pages']} pages of {data}: CER {report['cer']:.4f}")
    if polarity:
        typer.echo("  " + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in polarity.items()))
    conf = report["confidence"]
    typer.echo(
        f"  confidence: mean {conf['mean']:.3f}, ECE {conf['ece']:.3f}, "
        f"CER-coverage area {conf['cer_coverage_auc']:.4f} (random order {conf['cer_coverage_auc_random']:.4f})"
    )


@store_app.command("put")
def store_put(
    files: Annotated[list[Path], typer.Argument(help="Files to store.", exists=True, dir_okay=False, readable=True)],
) -> None:
    """Store files; print each one's key (its sha256). Storing the same bytes again writes nothing."""
    store = ImageStore(load_settings().store_url)
    for path in files:
        typer.echo(f"{store.put(path.read_bytes())}  {path}")


@store_app.command("get")
def store_get(
    key: Annotated[str, typer.Argument(help="The object's key (64 hex characters).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write) an object's bytes after checking they still hash to the key."""
    data = ImageStore(load_settings().store_url).get(key)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)


@store_app.command("verify")
def store_verify() -> None:
    """Re-hash every stored object; exit 1 and list the keys whose bytes changed."""
    store = ImageStore(load_settings().store_url)
    total, corrupt = store.verify()
    for key in corrupt:
        typer.echo(f"corrupt  {key}", err=True)
    typer.echo(f"{total} objects, {len(corrupt)} corrupt")
    if corrupt:
        raise typer.Exit(1)


# --- serving ----------------------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes (each loads the model).")] = 1,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="Serve this artifact instead of the registry's champion.")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """The HTTP API (/v1/predict, /v1/feedback, /healthz, /v1/model, /docs) and the web page at /."""
    import uvicorn

    settings = load_settings()
    _ready_engine(settings).dispose()  # fail here, in one line, rather than in every worker
    if model_path is not None:
        if workers > 1:
            raise InkloopError("--model serves one file in one process; register it and promote it for --workers")
        from serving.app import create_app

        uvicorn.run(create_app(settings, model_path), host=host, port=port, log_level=log_level)
        return
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        # Each worker runs torch; without this every one of them would use every core.
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    typer.echo(f"inkloop serving on http://{host}:{port} ({workers} worker{'s' * (workers > 1)}); Ctrl-C stops")
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level)


# --- model registry ---------------------------------------------------------------------------------------------


def _registry_session() -> Any:
    from db.session import session_factory, session_scope

    settings = load_settings()
    engine = _ready_engine(settings)
    return settings, engine, session_scope(session_factory(engine))


def _model_line(row: Any) -> str:
    heldout = ((row.card or {}).get("metrics") or {}).get("heldout_fonts", {}).get("cer")
    val = ((row.card or {}).get("metrics") or {}).get("val", {}).get("cer")
    figures = ", ".join(
        f"{name} CER {value:.4f}" for name, value in (("val", val), ("held-out", heldout)) if value is not None
    )
    return f"{row.version:<24} {row.status.value:<10} {row.created_at:%Y-%m-%d %H:%M}  {figures}"


@models_app.command("register")
def models_register(
    artifact: Annotated[Path, typer.Argument(help="A model.pt written by `inkloop train`.")],
    version: Annotated[str | None, typer.Option("--version", help="Default: the version in its model card.")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Make it the champion right away.")] = False,
) -> None:
    """Copy an artifact into the store and record it as a candidate (or the champion, with --promote)."""
    from db import repo
    from inkloop.registry import register

    settings, engine, scope = _registry_session()
    try:
        with scope as session:
            row, new = register(session=session, store=ImageStore(settings.store_url), path=artifact, version=version)
            if promote:
                row = repo.promote_model(session=session, version=row.version)
            line = _model_line(row)
    finally:
        engine.dispose()
    typer.echo(("registered " if new else "already registered ") + line)


@models_app.command("list")
def models_list() -> None:
    """Every registered model, oldest first, with its status and CER figures."""
    from db import repo

    _, engine, scope = _registry_session()
    try:
        with scope as session:
            lines = [_model_line(row) for row in repo.list_models(session=session)]
    finally:
        engine.dispose()
    typer.echo("\n".join(lines) if lines else "no registered models; serving uses the shipped model")


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="A registered version.")]) -> None:
    """A registered model's card, as JSON."""
    from db import repo

    _, engine, scope = _registry_session()
    try:
        with scope as session:
            row = repo.get_model(session=session, version=version)
            record = {"version": row.version, "status": row.status.value, "artifact_key": row.artifact_key}
            record["card"] = row.card
    finally:
        engine.dispose()
    typer.echo(json.dumps(record, indent=2, ensure_ascii=False))


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even a model its gate rejected.")] = False,
) -> None:
    """Make VERSION the champion; running servers switch to it within INKLOOP_MODEL_REFRESH_SECONDS."""
    from db import repo

    _, engine, scope = _registry_session()
    try:
        with scope as session:
            previous = repo.get_champion(session=session)
            row = repo.promote_model(session=session, version=version, allow_rejected=force)
            was = previous.version if previous else "the shipped model"
    finally:
        engine.dispose()
    typer.echo(f"champion: {row.version} (was {was})")


@models_app.command("rollback")
def models_rollback() -> None:
    """Make the most recently retired champion the champion again."""
    from sqlalchemy import select

    from db import repo
    from db.models import ModelStatus, ModelVersion

    _, engine, scope = _registry_session()
    try:
        with scope as session:
            current = repo.get_champion(session=session)
            query = select(ModelVersion).where(ModelVersion.status == ModelStatus.retired)
            previous = session.scalar(query.order_by(ModelVersion.promoted_at.desc()).limit(1))
            if previous is None:
                raise InkloopError("no earlier champion to roll back to")
            repo.promote_model(session=session, version=previous.version)
            was = current.version if current else "none"
    finally:
        engine.dispose()
    typer.echo(f"champion: {previous.version} (rolled back from {was})")


# --- flows ------------------------------------------------------------------------------------------------------


def _print_summary(name: str, summary: dict[str, Any]) -> None:
    shown = {k: v for k, v in summary.items() if v not in (None, {}, 0) or k in ("requests", "created", "tasks_seen")}
    typer.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))


@flow_app.command("run")
def flow_run(
    name: Annotated[str, typer.Argument(help="ingest, route or sync.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A flow parameter as key=value (repeat), e.g. -p batch_size=200."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON.")] = False,
) -> None:
    """Run one flow now, on Prefect's local API unless PREFECT_API_URL names a server."""
    settings = load_settings()
    _ready_engine(settings).dispose()  # a clear "run inkloop init" before Prefect starts
    from flows.runner import parse_params, run, use_local_prefect

    use_local_prefect(settings)
    params = parse_params(name, param or [])
    summary = run(name, params)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(name, summary)


@flow_app.command("serve")
def flow_serve(
    every: Annotated[
        list[str] | None,
        typer.Option("--every", "-e", help="A flow's interval in minutes as name=minutes (repeat), e.g. -e ingest=1."),
    ] = None,
) -> None:
    """Serve the flows as scheduled Prefect deployments (ingest and sync every 5 minutes, route every 15) until
    interrupted. This process runs the scheduled runs; the Prefect UI shows them."""
    from datetime import timedelta

    settings = load_settings()
    _ready_engine(settings).dispose()
    from flows.runner import FLOWS, serve, use_local_prefect

    intervals: dict[str, timedelta] = {}
    for item in every or []:
        name, _, minutes = item.partition("=")
        if name not in FLOWS:
            raise InkloopError(f"--every {item!r}: no flow named {name!r}; the flows are {', '.join(FLOWS)}")
        try:
            intervals[name] = timedelta(minutes=float(minutes))
        except ValueError:
            raise InkloopError(f"--every {item!r}: minutes must be a number") from None
        if intervals[name].total_seconds() <= 0:
            raise InkloopError(f"--every {item!r}: minutes must be positive")
    use_local_prefect(settings)
    serve(intervals)


# --- Label Studio -----------------------------------------------------------------------------------------------

labelstudio_app = typer.Typer(
    cls=_OneLineErrors,
    help="The local Label Studio of the embedded default: install, up, down, status.",
    no_args_is_help=True,
)
app.add_typer(labelstudio_app, name="labelstudio")


def _install_label_studio(venv: Path) -> None:
    """Install Label Studio into its own virtualenv when missing; pip's current line on a terminal spinner."""
    from rich.console import Console
    from rich.text import Text

    from annotation import server

    console = Console(stderr=True)
    if not console.is_terminal:
        server.install(venv, echo=typer.echo)
        return
    with console.status("pip") as spinner:
        server.install(
            venv,
            echo=lambda line: console.print(line, highlight=False),
            on_pip_line=lambda line: spinner.update(Text(line.strip()[:70])) if line.strip() else None,
        )


@labelstudio_app.command("install")
def labelstudio_install() -> None:
    """Create Label Studio's own virtualenv (INKLOOP_LABEL_STUDIO_VENV) with its pinned packages; a no-op when done."""
    from annotation import server

    venv = server.from_settings(load_settings()).venv
    if server.is_installed(venv):
        typer.echo(f"Label Studio {server.LABEL_STUDIO_VERSION} is already installed in {venv}")
        return
    _install_label_studio(venv)


@labelstudio_app.command("up")
def labelstudio_up(
    install: Annotated[
        bool, typer.Option("--install/--no-install", help="Install Label Studio first when it is missing (~2 min).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for it to answer.")] = 300.0,
) -> None:
    """Start a local Label Studio on 127.0.0.1 (the port of INKLOOP_LABEL_STUDIO_URL), detached, and wait for it."""
    from annotation import server

    settings = load_settings()
    ls = server.from_settings(settings)
    server.require_local(ls)
    if install and not server.is_installed(ls.venv):
        _install_label_studio(ls.venv)
    if settings.store_is_local:
        ImageStore(settings.store_url).ensure()  # the folder Label Studio serves images from
    current, started = server.up(ls, timeout_s=timeout, echo=typer.echo)
    verb = "is up" if started else "was already running"
    typer.echo(f"Label Studio {current.version} {verb} at {ls.url} (pid {current.pid}; stop: inkloop labelstudio down)")
    _print_fields(_label_studio_fields(ls))


def _label_studio_fields(ls: Any) -> dict[str, str]:
    return {
        "login": f"{ls.username} / {ls.password}",
        "images": str(ls.document_root) if ls.document_root else "not served (the store is not a local folder)",
        "data": str(ls.data_dir),
        "log": str(ls.log_file),
    }


@labelstudio_app.command("down")
def labelstudio_down() -> None:
    """Stop the Label Studio that `inkloop labelstudio up` started."""
    from annotation import server

    ls = server.from_settings(load_settings())
    pid = server.down(ls)
    if pid is not None:
        typer.echo(f"stopped Label Studio (pid {pid})")
    elif ls.is_local and server.status(ls).healthy:
        typer.echo(f"no Label Studio started by inkloop is running; something else answers at {ls.url}")
    else:
        typer.echo("no Label Studio started by inkloop is running")


@labelstudio_app.command("status")
def labelstudio_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """The Label Studio at INKLOOP_LABEL_STUDIO_URL: whether it answers, its version, and the process inkloop runs."""
    from annotation import server

    ls = server.from_settings(load_settings())
    current = server.status(ls)
    report: dict[str, Any] = {
        "url": ls.url,
        "healthy": current.healthy,
        "version": current.version,
        "pid": current.pid,
        "local": ls.is_local,
    }
    if ls.is_local:
        report.update({"username": ls.username, "venv": str(ls.venv), "installed": server.is_installed(ls.venv)})
        report.update({k: v for k, v in _label_studio_fields(ls).items() if k != "login"})
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    if current.running:
        state = f"running (pid {current.pid}), " + ("healthy" if current.healthy else "not answering yet")
    elif current.healthy:
        state = "answering, not started by inkloop"
    else:
        state = "not running" + (" (start it: inkloop labelstudio up)" if ls.is_local else "")
    fields = {"url": ls.url, "state": state, "version": current.version or "-"}
    if ls.is_local:
        fields.update(_label_studio_fields(ls))
        fields["venv"] = f"{ls.venv}" + ("" if report["installed"] else " (not installed)")
    _print_fields(fields)


# --- demo -------------------------------------------------------------------------------------------------------


@app.command()
def demo(
    pages: Annotated[int, typer.Option("--pages", min=1, max=2000, help="Sample paragraphs to send.")] = 40,
    port: Annotated[int, typer.Option("--port", help="Port of the endpoint the demo starts.")] = 8000,
    once: Annotated[bool, typer.Option("--once", help="Stop the services at the end instead of waiting.")] = False,
) -> None:
    """The loop's first half on the embedded default: Label Studio and the endpoint up, sample traffic (with blank
    and broken uploads), ingest, route; prints what happened and where annotators find the queue."""
    settings = load_settings()
    from flows.runner import use_local_prefect

    use_local_prefect(settings)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the demo prints its own summary
    from flows.demo import run_demo

    run_demo(settings, pages=pages, port=port, once=once, echo=typer.echo)
