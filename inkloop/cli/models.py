"""`inkloop models ...`: the model registry (model/registry.py) from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from db.models import ModelVersion
from inkloop.card import ModelCard
from inkloop.cli.common import group
from inkloop.errors import InkloopError
from inkloop.settings import Settings, load_settings
from inkloop.store import ImageStore

models_app = group("The model registry: register, list, show, promote, roll back.")


@contextmanager
def _registry() -> Iterator[tuple[Settings, Session]]:
    """Settings and a transaction on the ready database, committed when the block ends."""
    from db.session import open_ready_engine, session_factory, session_scope

    settings = load_settings()
    engine = open_ready_engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            yield settings, session
    finally:
        engine.dispose()


def _model_line(row: ModelVersion) -> str:
    card = ModelCard.parse(row.card, source=f"model version {row.version}") if row.card else None
    figures = ", ".join(
        f"{label} CER {value:.4f}"
        for label, value in (
            ("val", card.cer("val") if card else None),
            ("held-out", card.cer("heldout_fonts") if card else None),
        )
        if value is not None
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
    from model.registry import register

    with _registry() as (settings, session):
        row, new = register(session=session, store=ImageStore(settings.store_url), path=artifact, version=version)
        if promote:
            row = repo.promote_model(session=session, version=row.version)
        line = _model_line(row)
    typer.echo(("registered " if new else "already registered ") + line)


@models_app.command("list")
def models_list() -> None:
    """Every registered model, oldest first, with its status and CER figures."""
    from db import repo

    with _registry() as (_, session):
        lines = [_model_line(row) for row in repo.list_models(session=session)]
    typer.echo("\n".join(lines) if lines else "no registered models; serving uses the shipped model")


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="A registered version.")]) -> None:
    """A registered model's card, as JSON."""
    from db import repo

    with _registry() as (_, session):
        row = repo.get_model(session=session, version=version)
        record = {
            "version": row.version,
            "status": row.status.value,
            "artifact_key": row.artifact_key,
            "card": row.card,
        }
    typer.echo(json.dumps(record, indent=2, ensure_ascii=False))


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even a model its gate rejected.")] = False,
) -> None:
    """Make VERSION the champion; running servers switch to it within INKLOOP_MODEL_REFRESH_SECONDS."""
    from db import repo

    with _registry() as (_, session):
        previous = repo.get_champion(session=session)
        row = repo.promote_model(session=session, version=version, allow_rejected=force)
        was = previous.version if previous else "the shipped model"
    typer.echo(f"champion: {row.version} (was {was})")


@models_app.command("rollback")
def models_rollback() -> None:
    """Make the most recently retired champion the champion again."""
    from db import repo

    with _registry() as (_, session):
        current = repo.get_champion(session=session)
        previous = repo.previous_champion(session=session)
        if previous is None:
            raise InkloopError("no earlier champion to roll back to")
        repo.promote_model(session=session, version=previous.version)
        was = current.version if current else "none"
    typer.echo(f"champion: {previous.version} (rolled back from {was})")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
