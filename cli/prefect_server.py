"""`inkloop prefect up | down | status`: the local Prefect server (devtools/prefect_server.py), with its UI."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import group, print_fields
from inkloop.settings import load_settings

prefect_app = group("The local Prefect server and its UI (flow runs, logs, artifacts): up, down, status.")


@prefect_app.command("up")
def prefect_up(
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for it to answer.")] = 120.0,
) -> None:
    """Start a Prefect server on 127.0.0.1 (port INKLOOP_PREFECT_PORT) under INKLOOP_HOME/prefect, detached, and
    wait for it. `inkloop flow run` reports every run to it, and starts it itself when it is not up."""
    from devtools import prefect_server

    local = prefect_server.LocalPrefect.from_settings(load_settings())
    current, started = prefect_server.up(local, timeout_s=timeout, echo=typer.echo)
    verb = "is up" if started else "was already running"
    typer.echo(f"Prefect server {verb} at {local.url} (pid {current.pid}; stop: inkloop prefect down)")
    print_fields({"ui": local.url, "api": local.api_url, "data": str(local.home), "log": str(local.daemon.log_file)})


@prefect_app.command("down")
def prefect_down() -> None:
    """Stop the Prefect server that `inkloop prefect up` or a first `inkloop flow run` started."""
    from devtools import prefect_server

    pid = prefect_server.down(prefect_server.LocalPrefect.from_settings(load_settings()))
    typer.echo(f"stopped the Prefect server (pid {pid})" if pid else "no Prefect server started by inkloop is running")


@prefect_app.command("status")
def prefect_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Whether the local Prefect server runs and answers, and where its UI, data and log are."""
    from devtools import prefect_server

    local = prefect_server.LocalPrefect.from_settings(load_settings())
    current = prefect_server.status(local)
    report = {
        "url": local.url,
        "api_url": local.api_url,
        "pid": current.pid,
        "healthy": current.healthy,
        "data": str(local.home),
        "log": str(local.daemon.log_file),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    if current.pid is not None:
        state = f"running (pid {current.pid}), " + ("answering" if current.healthy else "not answering yet")
    elif current.healthy:
        state = "answering, not started by inkloop"
    else:
        state = "not running (the next inkloop flow run starts it, or: inkloop prefect up)"
    print_fields({"ui": local.url, "state": state, "data": str(local.home), "log": str(local.daemon.log_file)})


def register(app: typer.Typer) -> None:
    app.add_typer(prefect_app, name="prefect")
