"""`inkloop serve`: the HTTP API and web page (serving/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import require_free_port
from inkloop.errors import InkloopError
from inkloop.settings import load_settings


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
    from db.ready import open_ready_engine

    settings = load_settings()
    if model_path is not None and workers > 1:
        raise InkloopError("--model serves one file in one process; register it and promote it for --workers")
    if model_path is not None and not model_path.is_file():
        raise InkloopError(f"--model {model_path}: no model file there")
    open_ready_engine(settings).dispose()  # fail here, in one line, rather than in every worker
    require_free_port(host, port)

    import uvicorn

    if model_path is not None:
        from serving.app import create_app

        uvicorn.run(create_app(settings, model_path), host=host, port=port, log_level=log_level)
        return
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        # Each worker runs torch; without this every one of them would use every core.
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    typer.echo(f"inkloop serving on http://{host}:{port} ({workers} worker{'s' * (workers > 1)}); Ctrl-C stops")
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command()(serve)
