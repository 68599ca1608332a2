"""`inkloop flow run | serve`: the Prefect flows (flows/), now or on their schedules."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Annotated

import typer

from cli.common import group, print_fields
from flows.runner import FLOWS
from inkloop.errors import InkloopError
from inkloop.settings import load_settings

flow_app = group(f"The Prefect flows: {', '.join(FLOWS)}.")

VERBOSE = typer.Option("--verbose", "-v", help="Show Prefect's own log lines too.")


@flow_app.command("run")
def flow_run(
    name: Annotated[str, typer.Argument(help=", ".join(FLOWS))],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A flow parameter as key=value (repeat), e.g. -p batch_size=200."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON.")] = False,
    verbose: Annotated[bool, VERBOSE] = False,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server",
            help="Start no Prefect server: run on the local one only if it is up, else on a temporary API of this "
            "run alone (nothing is left running or kept for the UI; it takes 10-20 s longer to start).",
        ),
    ] = False,
) -> None:
    """Run one flow now and print what it did: on PREFECT_API_URL when set, else on the local Prefect server,
    which the first run starts (detached, under INKLOOP_HOME/prefect, port INKLOOP_PREFECT_PORT) and later runs
    reuse, sparing each the 10-20 s of starting Prefect; `inkloop prefect down` stops it. The services the flow
    needs (Label Studio for route and sync) are checked first: one that is down fails the run at once."""
    from db.ready import open_ready_engine
    from devtools.prefect_server import use_prefect
    from flows.runner import check_services

    def say(line: str) -> None:  # progress lines; with --json, stdout holds the JSON alone
        typer.echo(line, err=as_json)

    settings = load_settings()
    open_ready_engine(settings).dispose()  # a clear "run inkloop init" before Prefect starts
    down = check_services(name, settings)  # before Prefect too: a missing Label Studio is said at once
    where = use_prefect(settings, verbose=verbose, start=not no_server, echo=say)
    from flows.runner import FlowFailed, parse_params, run

    params = parse_params(name, param or [])
    if not as_json:
        typer.echo(f"{name}: running on {where}" + ("" if verbose else " (--verbose shows Prefect's log)"))
    for service in down:
        say(f"{name}: {service.describe()}")
    started = time.monotonic()
    failure: FlowFailed | None = None
    try:
        summary = run(name, params, down=down)
    except FlowFailed as exc:  # it still says what it did: print that, then the error
        summary, failure = exc.summary, exc
    if as_json:
        typer.echo(summary.model_dump_json())
    else:
        rows = {f"  {label}": value for label, value in summary.rows() if label != "seconds"}
        rows["  took"] = f"{time.monotonic() - started:.1f} s ({summary.seconds:g} s in the flow itself)"
        print_fields(rows)
    if failure is not None:
        raise InkloopError(str(failure))


@flow_app.command("serve")
def flow_serve(
    every: Annotated[
        list[str] | None,
        typer.Option("--every", "-e", help="A flow's interval in minutes as name=minutes (repeat), e.g. -e ingest=1."),
    ] = None,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Serve the flows as scheduled Prefect deployments until interrupted: ingest and sync every 5 minutes, route
    every 15, the dataset at 01:00 UTC, retrain at 02:00 (it gates its candidate), drift at 06:00; INKLOOP_SCHEDULES
    changes them, --every too. This process runs the scheduled runs; the Prefect UI shows them. Without
    PREFECT_API_URL it starts the local Prefect server first (schedules need one)."""
    from db.ready import open_ready_engine
    from devtools import prefect_server

    settings = load_settings()
    open_ready_engine(settings).dispose()
    from flows.runner import FLOWS

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
    if not os.environ.get("PREFECT_API_URL"):
        # Prefect's temporary API runs no scheduler: schedules need a server.
        local = prefect_server.LocalPrefect.from_settings(settings)
        prefect_server.up(local, echo=typer.echo)
        typer.echo(f"runs, logs and schedules: {local.url} (stop the server: inkloop prefect down)")
    from flows.runner import schedules, serve

    plan = schedules(settings.schedules, intervals)
    print_fields({f"  {name}": schedule.describe() for name, schedule in plan.items()})
    typer.echo(f"  at most {settings.flow_concurrency} run of each flow at a time; the next waits its turn")
    if settings.retrain_pool:
        typer.echo(f"  retrain runs on the workers of the work pool {settings.retrain_pool!r} (INKLOOP_RETRAIN_POOL)")
    prefect_server.use_prefect(settings, verbose=verbose)
    serve(intervals)


def register(app: typer.Typer) -> None:
    app.add_typer(flow_app, name="flow")
