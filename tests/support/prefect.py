"""Prefect through its test harness: one temporary Prefect API for the whole session. And, for tests of the
`inkloop` command itself, a home whose local Prefect server is on a free port and is stopped after the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import INKLOOP
from tests.support.ports import free_port

SERVER_MARKER = b"prefect --no-prompt server start"  # in the command line of the server inkloop starts


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the session; flow-run heartbeats off (each would cost about a second)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    settings = {PREFECT_HOME: home, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(settings), prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class CliHome:
    """An INKLOOP_HOME for the real `inkloop` command in subprocesses (the machine's INKLOOP_* and PREFECT_*
    variables left out), whose local Prefect server, when a command starts one, listens on a free port: never
    4200, never another test's. `stop_server` stops whatever server runs from this home."""

    home: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("INKLOOP_", "PREFECT_"))}
        return {
            **clean,
            "INKLOOP_HOME": str(self.home),
            "INKLOOP_PREFECT_PORT": str(self.port),
            **self.extra_env,
            **extra,
        }

    def inkloop(self, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [INKLOOP, *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [INKLOOP, *args],
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def pid_file(self) -> Path:
        return self.prefect_home / "inkloop-prefect-server.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_record(self) -> dict[str, Any] | None:
        """The pid file's record (pid, start time, url), or None without one."""
        try:
            return dict(json.loads(self.pid_file.read_text()))
        except FileNotFoundError:
            return None

    def server_processes(self) -> list[int]:
        """The live `prefect server start` processes started from this home (found by their working folder, so a
        server whose pid file was lost is found too)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                cwd = Path(os.readlink(proc / "cwd"))
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if SERVER_MARKER in command and cwd == self.prefect_home.resolve() and state != "Z":
                found.append(int(proc.name))
        return found

    def stop_server(self) -> None:
        """`inkloop prefect down`; then SIGKILL to any server of this home still alive (a test never leaves one)."""
        self.inkloop("prefect", "down", timeout=60)
        for pid in self.server_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def cli_home(tmp_path: Path) -> Iterator[CliHome]:
    """A fresh, initialised home for `inkloop` subprocesses; any Prefect server started from it is stopped after."""
    home = CliHome(tmp_path / "home")
    try:
        initialised = home.inkloop("init", timeout=120)
        assert initialised.returncode == 0, initialised.stderr
        yield home
    finally:
        home.stop_server()
