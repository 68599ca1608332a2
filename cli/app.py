"""The root of the `inkloop` command line: global options, and every command group registered in one place."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import (
    admin,
    datasets,
    demo,
    drift,
    flow,
    labelstudio,
    lineage,
    models,
    prefect_server,
    recognizer,
    serve,
    tensorboard,
)
from cli.common import OneLineErrors
from inkloop import __version__

app = typer.Typer(
    cls=OneLineErrors,
    help="inkloop: a handwriting recognizer that keeps improving on its own production traffic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


for module in (
    admin,
    recognizer,
    serve,
    models,
    datasets,
    lineage,
    flow,
    prefect_server,
    labelstudio,
    tensorboard,
    drift,
    demo,
):
    module.register(app)
