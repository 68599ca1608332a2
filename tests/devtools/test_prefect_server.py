"""`inkloop flow run` as a user runs it: on the local Prefect server of `inkloop prefect up` (every run, its logs
and its summary in Prefect's UI), and, with --no-server, on Prefect's temporary API even while another process
keeps both cores busy. Either way the terminal shows inkloop's summary, not Prefect's log. (The first `flow run`
starting the server itself: tests/cli/test_flow_run.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.paths import INKLOOP
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INKLOOP_", "PREFECT_"))}
    return {**clean, "INKLOOP_HOME": str(home), **extra}


def _inkloop(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INKLOOP, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    initialised = _inkloop("init", env=_env(home))
    assert initialised.returncode == 0, initialised.stderr
    return home


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Another program keeping every core busy while the test runs."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_a_flow_runs_from_the_cli_while_both_cores_are_busy(home: Path, busy_cores: None) -> None:
    # No server, a fresh Prefect home: Prefect starts (and migrates) its temporary API on a saturated machine,
    # the case that timed out one run in three with Prefect's default start-up timeout.
    env = _env(home, INKLOOP_PREFECT_PORT=str(free_port()))  # were a server started by mistake: not on 4200
    try:
        result = _inkloop("flow", "run", "ingest", "--no-server", env=env)
        started_a_server = (home / "prefect" / "inkloop-prefect-server.pid").exists()
    finally:
        _inkloop("prefect", "down", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    first, *rows = result.stdout.strip().splitlines()
    assert first.startswith("ingest: running on a temporary local Prefect API")
    assert any(row.split() == ["requests", "0"] for row in rows) and rows[-1].lstrip().startswith("took")
    assert result.stderr == ""  # no Prefect INFO lines, no banner about a temporary server
    assert "{" not in result.stdout  # a summary a person reads, not a Python dict
    assert not started_a_server


def test_runs_go_to_the_local_prefect_server_and_show_in_its_api(home: Path) -> None:
    port = free_port()
    env = _env(home, INKLOOP_PREFECT_PORT=str(port))
    try:
        up = _inkloop("prefect", "up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Prefect server is up at http://127.0.0.1:{port}" in up.stdout
        again = _inkloop("prefect", "up", env=env)
        assert "was already running" in again.stdout
        status = _inkloop("prefect", "status", "--json", env=env)
        assert '"healthy": true' in status.stdout

        run = _inkloop("flow", "run", "ingest", env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.startswith(f"ingest: running on the local Prefect server at http://127.0.0.1:{port}")

        api = f"http://127.0.0.1:{port}/api"
        flow_runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
        defaults = {"batch_size": 500, "max_batches": None, "data_docs": True}
        assert [(r["state_type"], r["parameters"].get("params")) for r in flow_runs] == [("COMPLETED", defaults)]
        artifacts = httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).json()
        (summary,) = [a for a in artifacts if a["key"] == "ingest-summary"]
        assert summary["flow_run_id"] == flow_runs[0]["id"] and "| requests | 0 |" in summary["data"]
        logs = httpx.post(f"{api}/logs/filter", json={}, timeout=10).json()
        assert any(log["flow_run_id"] == flow_runs[0]["id"] and log["level"] == 20 for log in logs)  # INFO kept
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200  # the UI
    finally:
        down = _inkloop("prefect", "down", env=env)
    assert down.returncode == 0 and down.stdout.startswith("stopped the Prefect server")
    assert "not running" in _inkloop("prefect", "status", env=env).stdout


def test_an_unreachable_prefect_api_url_is_one_line(home: Path) -> None:
    env = _env(home, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    result = _inkloop("flow", "run", "ingest", env=env, timeout=60)
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"inkloop: error: no Prefect API answers at PREFECT_API_URL={env['PREFECT_API_URL']}"
    )


def test_flow_serve_runs_the_flows_on_their_schedules(home: Path) -> None:
    """`inkloop flow serve` starts the local server (Prefect's temporary API has no scheduler) and its scheduler
    creates runs that this process runs. (With SQLAlchemy 2.1 Prefect 3.8's scheduler failed every cycle and no
    scheduled run was ever created; hence the <2.1 pin in pyproject.toml.)"""
    port = free_port()
    env = _env(home, INKLOOP_PREFECT_PORT=str(port))
    api = f"http://127.0.0.1:{port}/api"
    serving = subprocess.Popen(
        [INKLOOP, "flow", "serve", "-e", "ingest=0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:

        def completed_ingest_runs() -> int:
            try:
                runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=5).json()
            except httpx.HTTPError:
                return 0
            return sum(1 for r in runs if r["state_type"] == "COMPLETED" and r["deployment_id"] is not None)

        from inkloop.wait import wait_until

        assert wait_until(completed_ingest_runs, timeout_s=180, interval_s=2, what="a scheduled ingest run") >= 1
    finally:
        serving.terminate()
        output, _ = serving.communicate(timeout=60)
        _inkloop("prefect", "down", env=env)
    assert f"runs, logs and schedules: http://127.0.0.1:{port}" in output
