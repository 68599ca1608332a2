"""`inkloop init`, `inkloop status` and `inkloop store ...`: the installation itself."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from cli.common import breakdown, group, print_fields
from inkloop.settings import load_settings
from inkloop.store import ImageStore


def init(
    wait_db: Annotated[
        float,
        typer.Option("--wait-db", min=0, help="Seconds to keep retrying while the database is unreachable."),
    ] = 0.0,
) -> None:
    """Create INKLOOP_HOME and the store, migrate the database to the newest schema, and say where things are."""
    from db.migrate import init_database

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    ImageStore(settings.store_url).ensure()
    migrated = init_database(settings, wait_s=wait_db)
    note = "already at head" if not migrated.changed else f"migrated from {migrated.before or 'empty'}"
    print_fields(
        {
            "home": str(settings.home),
            "database": settings.masked_database_url(),
            "store": settings.masked_store_url(),
            "schema": f"{migrated.revision} (head; {note})",
        }
    )


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Where things are, the schema revision, and how many requests, images, tasks, labels and models exist."""
    from db.migrate import schema_revision
    from db.ready import open_ready_engine
    from db.repo import status_counts
    from db.session import session_factory, session_scope

    settings = load_settings()
    engine = open_ready_engine(settings)
    try:
        revision, head = schema_revision(engine, settings)
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
    print_fields(
        {
            "home": str(settings.home),
            "database": settings.masked_database_url(),
            "store": settings.masked_store_url(),
            "schema": f"{revision} (head)",
            "requests": str(counts.requests),
            "rejected": breakdown(counts.rejections),
            "images": breakdown(counts.images),
            "tasks": breakdown(counts.annotation_tasks),
            "annotations": str(counts.annotations),
            "datasets": str(counts.dataset_versions),
            "models": breakdown(counts.model_versions),
        }
    )


store_app = group("The content-addressed image store.")


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


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(status)
    app.add_typer(store_app, name="store")
