"""`inkloop demo`: the main job on the embedded default. It starts the local Prefect server (so every flow run
shows in Prefect's UI), then runs the steps of devtools/demo.py, imported only once Prefect's API is chosen."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from inkloop.settings import Settings, load_settings

if TYPE_CHECKING:  # devtools.demo imports prefect: only once use_prefect has chosen its API
    from devtools.demo import DemoReport


def demo(
    pages: Annotated[
        int, typer.Option("--pages", min=40, max=2000, help="Pages of the shifted traffic's first wave.")
    ] = 200,
    port: Annotated[int, typer.Option("--port", help="Port of the endpoint the demo starts.")] = 8000,
    once: Annotated[bool, typer.Option("--once", help="Stop the services at the end instead of waiting.")] = False,
) -> None:
    """The whole loop on the embedded default: traffic the model reads poorly, annotated in Label Studio, a new
    model trained, gated and promoted, the endpoint swapped, drift reported; prints CER before and after."""
    from devtools import prefect_server

    settings = load_settings()
    local = prefect_server.LocalPrefect.from_settings(settings)
    started = False
    if not os.environ.get("PREFECT_API_URL"):
        _, started = prefect_server.up(local, echo=typer.echo)
    where = prefect_server.use_prefect(settings)
    typer.echo(f"prefect      {where}")
    from devtools.demo import run_demo  # imports prefect: only once use_prefect has chosen its API

    def stop_prefect() -> None:
        prefect_server.flush()
        prefect_server.down(local)

    run_demo(
        settings,
        pages=pages,
        port=port,
        once=once,
        echo=typer.echo,
        prefect=where,
        stop_prefect=stop_prefect if once and started else None,
        show=lambda report: print_report(report, settings, typer.echo),
    )


def print_report(report: DemoReport, settings: Settings, echo: Callable[[str], object]) -> None:
    """What the demo did: the CER of each wave as served, before and after on pages no model trained on, the new
    champion's record (as `inkloop models show` prints it), one request's lineage, the drift verdict, and where
    each UI is."""
    from cli.lineage import lineage_record, render_tree
    from cli.models import render_show, serves, show_record
    from db import repo
    from db.ready import ready_session

    echo("")
    for name, wave in report.waves.items():
        cer, models = wave.served_cer()
        refused = sum(n for status, n in wave.result.statuses.items() if status != 200)
        extra = f", {refused} refused ({', '.join(wave.result.errors)})" if refused else ""
        answered = wave.result.statuses.get(200, 0)
        echo(f"{name:<12} {answered} answered{extra}: CER {cer:.4f} as served by {', '.join(models)}")
    if report.before and report.after:
        (old, old_cer), (new, new_cer) = report.before, report.after
        if old == new:
            echo(
                f"CER          on the second wave's pages: {old} {old_cer:.4f} (no new champion: see the retrain line)"
            )
        else:
            echo(
                f"CER          on the second wave's pages (no model trained on them): {old} {old_cer:.4f} -> "
                f"{new} {new_cer:.4f}"
            )
    with ready_session(settings, write=False) as session:
        if report.champion:
            echo("")
            champion = repo.get_model(session=session, version=report.champion)
            echo("\n".join(render_show(show_record(session, champion, serves(settings, champion)))))
        if report.lineage_request:
            echo("")
            echo(f"$ inkloop lineage {report.lineage_request}")
            record = lineage_record(repo.lineage(session=session, request_id=report.lineage_request))
            echo("\n".join(render_tree(record)))
    drift = report.loops.get("drift")
    with ready_session(settings, write=False) as session:
        waiting = len(repo.tasks_in_state(session=session, project=settings.label_studio_project, state="open"))
    user, password = report.label_studio_login
    login = f" (login {user} / {password})" if user else ""
    echo("")
    drifted = drift.results.drift if drift is not None else None
    if drifted is not None:
        echo(f"drift        {drifted.verdict}: {drifted.report}")
    else:  # the step did not run, or failed: its line says why
        echo(f"drift        {drift.drift if drift is not None else 'not run'}")
    echo("drift UI     inkloop drift ui   (Evidently's UI on every report, http://127.0.0.1:8001)")
    flows_stop = " (stops now: inkloop prefect up starts it again)" if "the Prefect server" in report.stopping else ""
    echo(f"flow runs    {report.prefect}{flows_stop}")
    project = f"/projects/{report.ls_project_id}/data" if report.ls_project_id else ""
    ls_stops = " (stops now: inkloop labelstudio up starts it again)" if "Label Studio" in report.stopping else ""
    echo(f"annotate     {report.label_studio_url}{project}{login}: {waiting} tasks wait for a person{ls_stops}")
    if report.stopping:
        echo(f"stopping     {', '.join(report.stopping)} (--once; without it they stay up until Ctrl-C)")
    echo(f"took         {report.seconds / 60:.1f} min")


def register(app: typer.Typer) -> None:
    app.command()(demo)
