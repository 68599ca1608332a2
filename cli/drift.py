"""`inkloop drift reference | ui`: the reference window drift reports compare with, and Evidently's UI on their
history (the reports themselves come from `inkloop flow run drift`)."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.common import foreground, group, print_fields, require_free_port
from inkloop.errors import InkloopError
from inkloop.settings import load_settings
from inkloop.untrusted import checked_text

drift_app = group("Drift reports: the reference window, and Evidently's UI on their history.")


def parse_moment(value: str, option: str) -> datetime:
    """An ISO 8601 date or date and time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InkloopError(
            f"{option} {value!r} is not a date or time; use ISO 8601, e.g. 2026-11-01 or 2026-11-01T08:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@drift_app.command("reference")
def reference(
    start: Annotated[
        str | None, typer.Option("--from", help="Start of the reference window (ISO 8601, UTC unless zoned).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the reference window (exclusive).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why this window (kept with it).")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Unpin: reports fall back to the automatic reference.")
    ] = False,
) -> None:
    """Pin the reference window drift reports compare with (--from and --to), unpin it (--clear), or show it."""
    from db import repo
    from db.ready import ready_session

    if reason is not None:
        checked_text(reason, what="--reason")
    if clear and (start or end):
        raise InkloopError("--clear takes no --from or --to")
    if (start is None) != (end is None):
        raise InkloopError("give both --from and --to to pin a reference window")
    settings = load_settings()
    with ready_session(settings) as session:
        if clear:
            count = repo.clear_drift_reference(session=session)
            typer.echo(
                "unpinned the reference window: reports compare with the days after the champion's promotion, "
                "else the first days of traffic"
                if count
                else "no reference window was pinned"
            )
            return
        if start is not None and end is not None:
            begin, finish = parse_moment(start, "--from"), parse_moment(end, "--to")
            actor = getpass.getuser()
            row = repo.pin_drift_reference(session=session, start=begin, end=finish, actor=actor, reason=reason)
            requests = len(repo.window_requests(session=session, start=begin, end=finish))
            typer.echo(f"pinned reference window {row.start:%Y-%m-%d %H:%M} .. {row.end:%Y-%m-%d %H:%M} UTC")
            note = "" if requests else " (none yet: a report with this reference will say not enough data)"
            typer.echo(f"{requests} logged requests in it{note}")
            return
        pinned = repo.drift_reference(session=session)
        if pinned is None:
            typer.echo(
                "no reference window pinned: reports compare with the days after the champion's promotion, "
                "else the first days of traffic (pin one with --from and --to)"
            )
            return
        print_fields(
            {
                "reference": f"{pinned.start:%Y-%m-%d %H:%M} .. {pinned.end:%Y-%m-%d %H:%M} UTC",
                "pinned": f"{pinned.created_at:%Y-%m-%d %H:%M} UTC by {pinned.actor}",
                "reason": pinned.reason or "-",
            }
        )


@drift_app.command("ui")
def ui(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8001,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 shows the history to the network).")
    ] = "127.0.0.1",
) -> None:
    """Evidently's UI on the drift reports' history (INKLOOP_HOME/evidently); Ctrl-C stops it."""
    from evidently.ui.workspace import Workspace

    from monitoring import drift_workspace

    folder = load_settings().paths.evidently
    folder.mkdir(parents=True, exist_ok=True)
    require_free_port(host, port)
    project = drift_workspace.project(Workspace(str(folder)))
    reports = len(drift_workspace.snapshot_ids(folder))
    typer.echo(f"Evidently UI at http://{host}:{port}/projects/{project.id} (Ctrl-C stops it)")
    typer.echo(
        f"{reports} drift report{'s' * (reports != 1)} in {folder}"
        if reports
        else f"no drift reports yet in {folder}; `inkloop flow run drift` adds one"
    )
    command = [
        sys.executable,
        "-m",
        "evidently.cli",
        "ui",
        "--workspace",
        str(folder),
        "--host",
        host,
        "--port",
        str(port),
    ]
    # Evidently's UI reports usage to its makers unless DO_NOT_TRACK is set; inkloop never phones home.
    code, stopped = foreground(command, env={**os.environ, "DO_NOT_TRACK": "1"})
    if code != 0 and not stopped:
        raise InkloopError(f"Evidently's UI exited with code {code}; its messages are above")


def register(app: typer.Typer) -> None:
    app.add_typer(drift_app, name="drift")
