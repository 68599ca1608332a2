"""`inkloop tensorboard`: TensorBoard on INKLOOP_HOME/tensorboard, where every training run writes its curves
(model/train.py `Tracking`), in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from inkloop.cli.common import require_free_port
from inkloop.errors import InkloopError
from inkloop.settings import load_settings

_STOP_S = 10.0  # how long TensorBoard gets to exit after Ctrl-C or SIGTERM before it is killed


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
    logdir = load_settings().home / "tensorboard"
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
    code, stopped = _foreground(command)
    if code != 0 and not stopped:
        raise InkloopError(f"TensorBoard exited with code {code}; its messages are above")


def _foreground(command: list[str]) -> tuple[int, bool]:
    """Run `command` until it exits, Ctrl-C is pressed or this process gets SIGTERM; (its exit code, whether it was
    stopped by Ctrl-C or SIGTERM rather than exiting on its own).

    Ctrl-C reaches the child too (the terminal signals the whole foreground process group); SIGTERM, sent to this
    process alone, is passed on, so stopping `inkloop tensorboard` never leaves a TensorBoard behind."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    stopped = False

    def pass_on(signum: int, _frame: Any) -> None:
        nonlocal stopped
        stopped = True
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        try:
            return process.wait(), stopped
        except KeyboardInterrupt:
            try:
                return process.wait(timeout=_STOP_S), True
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait(), True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:  # a second Ctrl-C while waiting for it to stop
            process.kill()
            process.wait()


def register(app: typer.Typer) -> None:
    app.command()(tensorboard)
