"""The local Prefect server of the embedded default: `prefect server start` under INKLOOP_HOME/prefect on
127.0.0.1, detached, found again by later commands (`inkloop prefect up|down|status`).

`inkloop flow run` starts it when it is not up (`use_prefect(start=True)`) and leaves it running, so every later
run reuses it. Without a server each run paid for Prefect's temporary API: a server started inside the process,
its database migrated, stopped at the end; that was 10-20 s of every `inkloop flow run ingest` with nothing to do
(whose flow took 0.2 s), 55 s on a busy machine. Measured on 2 cores with a load average of 7 (other work), medians
of 3 fresh homes: today's code 32 s for the first run and 26 s for the next; with the server, 30 s for the first
(the server's first start, which creates its database, included) and 13 s for the next, whose Prefect part is
about 2 s (0.6 s on an idle machine) and whose flow is running 6 s after the command began. The rest is importing
the flow's own libraries (Great Expectations: 2.5 s idle, 5 s at that load) and Python's exit. With the server,
every run, its logs and artifacts show in Prefect's UI, and schedules need it anyway (the temporary API runs no
scheduler). An idle server holds about 240 MB and 2% of one core; `inkloop prefect down` stops it, and
`inkloop flow run --no-server` still runs on a temporary API, for a run that must leave nothing running.

Two commands that find no server at once start one: whoever checks and starts holds the lock file beside the pid
file, and the other then finds that server and waits for it to answer. A pid file whose process is gone, or is not
this server, is stale and ignored; a port another program holds is a one-line error naming INKLOOP_PREFECT_PORT.

Prefect's settings are environment variables read when prefect is imported, so choosing the API (`use_prefect`)
must happen before anything imports prefect; this module never imports it.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.processes import Daemon, Echo, quiet
from inkloop.errors import InkloopError
from inkloop.settings import Settings
from inkloop.wait import WaitTimeoutError, wait_until

HOST = "127.0.0.1"
# Prefect's temporary API counts only its own sleeps toward this timeout, so under load it fails later than it
# says: with the default 20, a run on a 2-core machine whose cores were both busy failed 5 times in 6 (after 40-48 s
# of wall time); with 120 all 6 started (45-78 s). It only matters when no server is up.
EPHEMERAL_STARTUP_TIMEOUT_S = "120"
# A first start creates the server's database: 11-15 s on 2 cores (later starts 5-8 s).
FIRST_START_S = 15


@dataclass(frozen=True)
class LocalPrefect:
    """Where the local Prefect server lives: its home (database, UI files, log, pid file) and its port."""

    home: Path
    port: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalPrefect:
        return cls(home=settings.paths.prefect, port=settings.prefect_port)

    @property
    def url(self) -> str:
        """The UI's address."""
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def daemon(self) -> Daemon:
        # Not Prefect's own server.pid: `prefect server start` checks that one.
        return Daemon(
            "the Prefect server",
            pid_file=self.home / "inkloop-prefect-server.pid",
            log_file=self.home / "prefect-server.log",
            marker=b"prefect --no-prompt server start",
        )


def answers(api_url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Prefect API answers its health check (a warm server answers in a few milliseconds)."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _environment(server: LocalPrefect) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(server.home),  # prefect.db (SQLite) lives here
            # As settings, not only flags: the UI computes the API address it calls from them.
            "PREFECT_SERVER_API_HOST": HOST,
            "PREFECT_SERVER_API_PORT": str(server.port),
            "PREFECT_UI_API_URL": server.api_url,
            # The UI's files are copied at the first start; by default into site-packages, which may be read-only.
            "PREFECT_SERVER_UI_STATIC_DIRECTORY": str(server.home / "ui"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _port_taken(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ServerStatus:
    url: str
    pid: int | None  # the process inkloop started, while it lives
    healthy: bool


def status(server: LocalPrefect) -> ServerStatus:
    return ServerStatus(url=server.url, pid=server.daemon.pid(), healthy=answers(server.api_url))


def up(
    server: LocalPrefect, *, timeout_s: float = 120.0, echo: Echo = quiet, note: str = ""
) -> tuple[ServerStatus, bool]:
    """Start the local Prefect server and wait until it answers; (status, False) when it was already up.

    Under the server's lock, so of two commands that find no server at once only the first starts one and the
    second waits for it. `note` ends the line that says a server is starting.
    """
    daemon = server.daemon
    with daemon.starting():
        record = daemon.record()  # None for a stale pid file: its process is gone, or is not this server
        if record is not None and record.get("url", server.url) != server.url:
            raise InkloopError(
                f"the local Prefect server runs at {record['url']} (pid {record['pid']}), not at {server.url} "
                "(INKLOOP_PREFECT_PORT changed); stop it first: inkloop prefect down"
            )
        pid = int(record["pid"]) if record else None
        if pid is None and _port_taken(server.port):
            if answers(server.api_url):
                raise InkloopError(
                    f"a Prefect server that inkloop did not start from {server.home} answers on port {server.port} "
                    f"(another INKLOOP_HOME's?); set INKLOOP_PREFECT_PORT to another port, or "
                    f"PREFECT_API_URL={server.api_url} to run on that server"
                )
            raise InkloopError(
                f"port {server.port} on {HOST} is in use by a program inkloop did not start; stop it, or set "
                "INKLOOP_PREFECT_PORT to another port"
            )
        started = pid is None
        if started:
            server.home.mkdir(parents=True, exist_ok=True)
            first = not (server.home / "prefect.db").exists()
            echo(
                f"starting the Prefect server on {server.url}"
                + (f" (first start: about {FIRST_START_S} s)" if first else "")
                + note
            )
            command = [sys.executable, "-m", "prefect", "--no-prompt", "server", "start"]
            process = daemon.start(command, env=_environment(server), cwd=server.home, url=server.url)
            pid = process.pid

    def healthy() -> bool:
        if answers(server.api_url):
            return True
        if daemon.pid() is None:
            raise InkloopError(f"the Prefect server exited before answering; the end of {daemon.log_file}:\n"
                               f"{daemon.log_tail()}")  # fmt: skip
        return False

    try:
        wait_until(healthy, timeout_s=timeout_s, interval_s=0.25, what=f"the Prefect server answering {server.url}")
    except WaitTimeoutError:
        if started:
            daemon.stop()
        raise InkloopError(
            f"the Prefect server did not answer {server.url} within {timeout_s:.0f} s; the end of "
            f"{daemon.log_file}:\n{daemon.log_tail()}"
        ) from None
    except BaseException:
        if started:
            daemon.stop()
        raise
    return status(server), started


def down(server: LocalPrefect) -> int | None:
    """Stop the Prefect server `up` started; its pid, or None when none ran."""
    with server.daemon.starting():  # not while another command is starting it
        return server.daemon.stop()


def flush() -> None:
    """Send the logs and events this process's flow runs still hold to the API (they go in the background), so
    a server stopped next has them all, and nothing tries to reach it after it is gone."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=5)


def use_prefect(settings: Settings, *, verbose: bool = False, start: bool = False, echo: Echo = quiet) -> str:
    """Choose the Prefect API this process's flows report to, before prefect is imported; says which.

    PREFECT_API_URL when set (it must answer). Else, with `start`, the local server, started (detached, so later
    commands reuse it) when it is not up yet; without `start`, the local server when it is up, else Prefect's
    temporary local API, with its files under INKLOOP_HOME and a start-up timeout a busy machine does not break.
    Prefect's own log lines stay off the terminal unless `verbose` (they still reach the server and its UI).
    """
    if "PREFECT_HOME" not in os.environ:
        settings.paths.prefect.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(settings.paths.prefect)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        # The terminal handler only (PREFECT_LOGGING_LEVEL would also keep the run's logs from the server and its
        # UI). Not even errors: Prefect prints a traceback per failed try, and the CLI ends with one line saying
        # what failed.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    given = os.environ.get("PREFECT_API_URL", "").strip()
    if given:
        if not answers(given):
            raise InkloopError(f"no Prefect API answers at PREFECT_API_URL={given}")
        return f"the Prefect API at {given}"
    local = LocalPrefect.from_settings(settings)
    if start:
        up(local, echo=echo, note=" for this and later runs (stop it: inkloop prefect down)")
        os.environ["PREFECT_API_URL"] = local.api_url
        return f"the local Prefect server at {local.url}"
    if local.daemon.pid() is not None and answers(local.api_url):
        os.environ["PREFECT_API_URL"] = local.api_url
        return f"the local Prefect server at {local.url}"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S)
    return "a temporary local Prefect API (start a server to keep the runs: inkloop prefect up)"
