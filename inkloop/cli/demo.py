"""`inkloop demo`: the main job on the embedded default. It starts the local Prefect server (so every flow run
shows in Prefect's UI), then runs the steps of demo_run.py, imported only once Prefect's API is chosen."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from inkloop.settings import load_settings


def demo(
    pages: Annotated[
        int, typer.Option("--pages", min=40, max=2000, help="Pages of the shifted traffic's first wave.")
    ] = 200,
    port: Annotated[int, typer.Option("--port", help="Port of the endpoint the demo starts.")] = 8000,
    once: Annotated[bool, typer.Option("--once", help="Stop the services at the end instead of waiting.")] = False,
) -> None:
    """The whole loop on the embedded default: traffic the model reads poorly, annotated in Label Studio, a new
    model trained, gated and promoted, the endpoint swapped, drift reported; prints CER before and after."""
    from flows import prefect_server

    settings = load_settings()
    local = prefect_server.LocalPrefect.from_settings(settings)
    started = False
    if not os.environ.get("PREFECT_API_URL"):
        _, started = prefect_server.up(local, echo=typer.echo)
    where = prefect_server.use_prefect(settings)
    typer.echo(f"prefect      {where}")
    from inkloop.cli.demo_run import run_demo  # imports prefect: only once use_prefect has chosen its API

    def stop_prefect() -> None:
        if once and started:
            prefect_server.flush()
            prefect_server.down(local)

    run_demo(settings, pages=pages, port=port, once=once, echo=typer.echo, prefect=where, stop_prefect=stop_prefect)


def register(app: typer.Typer) -> None:
    app.command()(demo)
