"""`inkloop labelstudio install | up | down | status`: the local Label Studio of the embedded default
(devtools/labelstudio.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import group, print_fields
from inkloop.settings import load_settings
from inkloop.store import ImageStore

labelstudio_app = group("The local Label Studio of the embedded default: install, up, down, status.")


def _install_label_studio(venv: Path) -> None:
    """Install Label Studio into its own virtualenv when missing; pip's current line on a terminal spinner."""
    from rich.console import Console
    from rich.text import Text

    from devtools import labelstudio as server

    console = Console(stderr=True)
    if not console.is_terminal:
        server.install(venv, echo=typer.echo)
        return
    with console.status("pip") as spinner:
        server.install(
            venv,
            echo=lambda line: console.print(line, highlight=False),
            on_pip_line=lambda line: spinner.update(Text(line.strip()[:70])) if line.strip() else None,
        )


@labelstudio_app.command("install")
def labelstudio_install() -> None:
    """Create Label Studio's own virtualenv (INKLOOP_LABEL_STUDIO_VENV) with its pinned packages; a no-op when done."""
    from devtools import labelstudio as server

    venv = server.from_settings(load_settings()).venv
    if server.is_installed(venv):
        typer.echo(f"Label Studio {server.LABEL_STUDIO_VERSION} is already installed in {venv}")
        return
    _install_label_studio(venv)


@labelstudio_app.command("up")
def labelstudio_up(
    install: Annotated[
        bool, typer.Option("--install/--no-install", help="Install Label Studio first when it is missing (~2 min).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for it to answer.")] = 300.0,
) -> None:
    """Start a local Label Studio on 127.0.0.1 (the port of INKLOOP_LABEL_STUDIO_URL), detached, and wait for it."""
    from devtools import labelstudio as server

    settings = load_settings()
    ls = server.from_settings(settings)
    server.require_local(ls)
    if install and not server.is_installed(ls.venv):
        _install_label_studio(ls.venv)
    if settings.store_is_local:
        ImageStore(settings.store_url).ensure()  # the folder Label Studio serves images from
    current, started = server.up(ls, timeout_s=timeout, echo=typer.echo)
    verb = "is up" if started else "was already running"
    typer.echo(f"Label Studio {current.version} {verb} at {ls.url} (pid {current.pid}; stop: inkloop labelstudio down)")
    print_fields(_label_studio_fields(ls))


def _label_studio_fields(ls: Any) -> dict[str, str]:
    return {
        "login": f"{ls.username} / {ls.password}",
        "images": str(ls.document_root) if ls.document_root else "not served (the store is not a local folder)",
        "data": str(ls.data_dir),
        "log": str(ls.log_file),
    }


@labelstudio_app.command("down")
def labelstudio_down() -> None:
    """Stop the Label Studio that `inkloop labelstudio up` started."""
    from devtools import labelstudio as server

    ls = server.from_settings(load_settings())
    pid = server.down(ls)
    if pid is not None:
        typer.echo(f"stopped Label Studio (pid {pid})")
    elif ls.is_local and server.status(ls).healthy:
        typer.echo(f"no Label Studio started by inkloop is running; something else answers at {ls.url}")
    else:
        typer.echo("no Label Studio started by inkloop is running")


@labelstudio_app.command("status")
def labelstudio_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """The Label Studio at INKLOOP_LABEL_STUDIO_URL: whether it answers, its version, and the process inkloop runs."""
    from devtools import labelstudio as server

    ls = server.from_settings(load_settings())
    current = server.status(ls)
    report: dict[str, Any] = {
        "url": ls.url,
        "healthy": current.healthy,
        "version": current.version,
        "pid": current.pid,
        "local": ls.is_local,
    }
    if ls.is_local:
        report.update({"username": ls.username, "venv": str(ls.venv), "installed": server.is_installed(ls.venv)})
        report.update({k: v for k, v in _label_studio_fields(ls).items() if k != "login"})
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    if current.running:
        state = f"running (pid {current.pid}), " + ("healthy" if current.healthy else "not answering yet")
    elif current.healthy:
        state = "answering, not started by inkloop"
    else:
        state = "not running" + (" (start it: inkloop labelstudio up)" if ls.is_local else "")
    fields = {"url": ls.url, "state": state, "version": current.version or "-"}
    if ls.is_local:
        fields.update(_label_studio_fields(ls))
        fields["venv"] = f"{ls.venv}" + ("" if report["installed"] else " (not installed)")
    print_fields(fields)


def register(app: typer.Typer) -> None:
    app.add_typer(labelstudio_app, name="labelstudio")
