"""`inkloop flow run` as a user runs it, with no Prefect server up: the first run starts the local server and
later runs reuse it (two first runs at once start one); PREFECT_API_URL still wins; a flow whose service is down
fails before Prefect starts. Every test runs the real command in subprocesses, on a home whose server listens on a
free port and is stopped after it (tests/support/prefect.py)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.prefect import CliHome

STARTING = "starting the Prefect server on"


@pytest.mark.slow
def test_the_first_run_starts_the_local_server_and_the_next_run_reuses_it(cli_home: CliHome, tmp_path: Path) -> None:
    # A stale pid file, as a reboot leaves it: its pid is alive (this test) but is no Prefect server.
    cli_home.prefect_home.mkdir(parents=True)
    cli_home.pid_file.write_text(f'{{"pid": {os.getpid()}, "started": 0, "url": "{cli_home.url}"}}\n')

    first = cli_home.inkloop("flow", "run", "ingest")
    assert first.returncode == 0, first.stdout + first.stderr
    starting, running, *rows = first.stdout.strip().splitlines()
    assert starting.startswith(f"{STARTING} {cli_home.url}") and "inkloop prefect down" in starting
    assert running.startswith(f"ingest: running on the local Prefect server at {cli_home.url}")
    assert any(row.split() == ["requests", "0"] for row in rows) and first.stderr == ""
    server = cli_home.server_record()
    assert server is not None and server["pid"] != os.getpid() and server["url"] == cli_home.url
    assert cli_home.server_processes() == [server["pid"]]

    second = cli_home.inkloop("flow", "run", "ingest", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert STARTING not in second.stdout + second.stderr
    assert cli_home.server_record() == server  # the same server: same pid, same start
    status = cli_home.inkloop("prefect", "status", "--json")
    assert f'"pid": {server["pid"]}' in status.stdout and '"healthy": true' in status.stdout
    api = f"{cli_home.url}/api"
    flow_runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED", "COMPLETED"]

    # PREFECT_API_URL still wins: a second home runs on this server and starts none of its own.
    other = CliHome(tmp_path / "other")
    try:
        assert other.inkloop("init").returncode == 0
        there = other.inkloop("flow", "run", "ingest", PREFECT_API_URL=api)
        assert there.returncode == 0, there.stdout + there.stderr
        assert there.stdout.startswith(f"ingest: running on the Prefect API at {api}")
        assert other.server_record() is None and other.server_processes() == []
        assert len(httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()) == 3
    finally:
        other.stop_server()

    down = cli_home.inkloop("prefect", "down")
    assert down.stdout.strip() == f"stopped the Prefect server (pid {server['pid']})"
    assert cli_home.server_processes() == []


@pytest.mark.slow
def test_two_first_runs_at_once_start_one_server(cli_home: CliHome) -> None:
    runs = [cli_home.popen("flow", "run", "ingest") for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stdout + stderr
        assert f"ingest: running on the local Prefect server at {cli_home.url}" in stdout
    assert sum(stdout.count(STARTING) for stdout, _ in outputs) == 1
    log = (cli_home.prefect_home / "prefect-server.log").read_text()
    assert log.count("=== inkloop: ") == 1  # one server was started, not a second that lost the port
    record = cli_home.server_record()
    assert record is not None and cli_home.server_processes() == [record["pid"]]


def test_a_port_taken_by_another_program_is_one_line(cli_home: CliHome) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cli_home.port))
        taken.listen()
        result = cli_home.inkloop("flow", "run", "ingest", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"inkloop: error: port {cli_home.port} on 127.0.0.1 is in use by a program inkloop did not start; stop it, "
        "or set INKLOOP_PREFECT_PORT to another port"
    )
    assert cli_home.server_processes() == []


@pytest.mark.parametrize("flow", ["route", "sync"])
def test_a_flow_that_needs_label_studio_fails_at_once_when_it_is_down(cli_home: CliHome, flow: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = cli_home.inkloop("flow", "run", flow, timeout=120, INKLOOP_LABEL_STUDIO_URL=url)
    took = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"inkloop: error: Label Studio at {url} is not reachable: [Errno 111] Connection refused: {flow} cannot "
        "run without it; start it: inkloop labelstudio up"
    )
    assert result.stdout == ""
    assert took < 15, f"{took:.0f} s: the failure waited for something"  # a bound on a hang, not a benchmark
    assert cli_home.server_record() is None  # said before any Prefect server was started


@pytest.mark.slow
def test_the_loop_runs_without_label_studio_and_its_steps_that_need_it_fail_at_their_first_try(
    cli_home: CliHome,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    skip = '["dataset", "retrain", "drift"]'
    result = cli_home.inkloop("flow", "run", "loop", "-p", f"skip={skip}", INKLOOP_LABEL_STUDIO_URL=url)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"loop: Label Studio at {url} is not reachable: [Errno 111] Connection refused: route, sync will fail " \
        "at their first try (start it: inkloop labelstudio up)" in lines  # fmt: skip
    rows = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert rows["ingest"].split() == ["ingest", "nothing", "new"]
    assert rows["route"].startswith("  route    failed: LabelStudioUnavailableError: Label Studio at")
    assert rows["sync"].startswith("  sync     failed: LabelStudioUnavailableError: Label Studio at")
    failed = "inkloop: error: loop: route, sync failed; the other steps ran (see each step's line)"
    assert result.stderr.strip() == failed
    task_runs = httpx.post(f"{cli_home.url}/api/task_runs/filter", json={}, timeout=10).json()
    tries = [r["run_count"] for r in task_runs if r["name"].startswith("label-studio-project")]
    assert tries == [1, 1]  # route's and sync's first task, one try each (with retries, 4 over 22 s)
