"""`inkloop tensorboard`: TensorBoard on INKLOOP_HOME/tensorboard, where every training run writes its curves
(model/train.py `Tracking`), in the foreground until Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import foreground, require_free_port
from inkloop.errors import InkloopError
from inkloop.settings import load_settings


def tensorboard_runs(logdir: Path) -> list[str]:
    """The runs under `logdir` that TensorBoard shows: folders holding an event file, relative to it."""
    folders = {path.parent for path in logdir.rglob("events.out.tfevents.*") if path.is_file()}
    return sorted(str(folder.relative_to(logdir)) for folder in folders)


def tensorboard(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 6006,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 shows the curves to the network).")
    ] = "127.0.0.1",
) -> None:
    """TensorBoard on every training run's curves (INKLOOP_HOME/tensorboard); Ctrl-C stops it."""
    logdir = load_settings().paths.tensorboard
    logdir.mkdir(parents=True, exist_ok=True)
    require_free_port(host, port)
    runs = tensorboard_runs(logdir)
    typer.echo(f"TensorBoard at http://{host}:{port}/ (Ctrl-C stops it)")
    if runs:
        shown = ", ".join(runs[:8]) + (f" and {len(runs) - 8} more" if len(runs) > 8 else "")
        typer.echo(f"{len(runs)} training run{'s' * (len(runs) > 1)} in {logdir}: {shown}")
    else:
        typer.echo(f"no training runs yet in {logdir}; runs appear here as `inkloop flow run retrain` trains them")
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host, "--port", str(port)]
    code, stopped = foreground(command)
    if code != 0 and not stopped:
        raise InkloopError(f"TensorBoard exited with code {code}; its messages are above")


def register(app: typer.Typer) -> None:
    app.command()(tensorboard)
