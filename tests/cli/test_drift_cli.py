"""`inkloop drift reference` (pin, show, unpin, and its errors) on SQLite and PostgreSQL, and `inkloop drift ui` as
a real process serving the workspace's drift history."""

from __future__ import annotations

import getpass
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.common import require_free_port
from db import repo
from inkloop.wait import wait_until
from tests.support.databases import session_on
from tests.support.ports import free_port
from tests.support.servers import inkloop_process

runner = CliRunner()


@pytest.fixture
def cli_env(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    return migrated_url


def _drift(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["drift", *args])
    return result.exit_code, result.output


def test_a_reference_window_is_pinned_shown_and_unpinned(cli_env: str) -> None:
    code, out = _drift("reference")
    assert code == 0
    assert out.startswith("no reference window pinned: reports compare with the days after the champion's promotion")

    code, out = _drift("reference", "--from", "2026-11-01", "--to", "2026-11-08T06:30", "--reason", "clean week")
    assert code == 0, out
    assert out.splitlines() == [
        "pinned reference window 2026-11-01 00:00 .. 2026-11-08 06:30 UTC",
        "0 logged requests in it (none yet: a report with this reference will say not enough data)",
    ]
    code, out = _drift("reference")
    lines = out.splitlines()
    assert lines[0] == "reference  2026-11-01 00:00 .. 2026-11-08 06:30 UTC"
    assert lines[1].startswith("pinned     ") and lines[1].endswith(f"UTC by {getpass.getuser()}")
    assert lines[2] == "reason     clean week"

    # A zoned time is converted to UTC.
    code, out = _drift("reference", "--from", "2026-11-02T01:00+02:00", "--to", "2026-11-03T00:00Z")
    assert code == 0 and out.splitlines()[0] == "pinned reference window 2026-11-01 23:00 .. 2026-11-03 00:00 UTC"
    with session_on(cli_env) as session:
        pinned = repo.drift_reference(session=session)
        assert pinned is not None and pinned.start == datetime(2026, 11, 1, 23, tzinfo=UTC)

    code, out = _drift("reference", "--clear")
    assert code == 0 and out.startswith("unpinned the reference window")
    code, out = _drift("reference", "--clear")
    assert code == 0 and out.strip() == "no reference window was pinned"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-01"], "give both --from and --to to pin a reference window"),
        (["--from", "last week", "--to", "2026-11-02"], "--from 'last week' is not a date or time; use ISO 8601"),
        (["--from", "2026-11-02", "--to", "2026-11-01"], "the reference window must end after it starts"),
        (["--clear", "--to", "2026-11-01"], "--clear takes no --from or --to"),
    ],
)
def test_a_bad_reference_window_is_one_clear_line_and_pins_nothing(cli_env: str, args: list[str], message: str) -> None:
    code, out = _drift("reference", *args)
    assert code == 1
    assert out.startswith(f"inkloop: error: {message}"), out
    code, out = _drift("reference")
    assert out.startswith("no reference window pinned")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_drift_ui_serves_the_workspace_until_terminated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    process = inkloop_process("drift", "ui", "--port", str(port), home=home)
    try:

        def projects() -> list[dict[str, Any]]:
            if process.poll() is not None:
                raise AssertionError(f"inkloop drift ui exited with {process.returncode}")
            return list(_get(f"http://127.0.0.1:{port}/api/projects"))

        found = wait_until(
            projects, timeout_s=90, interval_s=0.3, what="Evidently's UI", retry_on=(urllib.error.URLError,)
        )
        assert [p["name"] for p in found] == ["inkloop production"]
        project_id = found[0]["id"]
        panels = _get(f"http://127.0.0.1:{port}/api/v2/dashboards/{project_id}")["panels"]
        assert [p["title"] for p in panels] == [
            "Share of drifted columns",
            "Mean confidence",
            "Estimated vs audited CER",
            "Refusal rate",
        ]
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    folder = home.resolve() / "evidently"
    assert out.splitlines()[:2] == [
        f"Evidently UI at http://127.0.0.1:{port}/projects/{project_id} (Ctrl-C stops it)",
        f"no drift reports yet in {folder}; `inkloop flow run drift` adds one",
    ]
    require_free_port("127.0.0.1", port)


def test_drift_ui_on_a_taken_port_is_one_line(inkloop_home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = _drift("ui", "--port", str(port))
    assert code == 1
    assert out.strip() == f"inkloop: error: port {port} on 127.0.0.1 is already in use; choose another with --port"


def test_reference_windows_need_a_migrated_database(inkloop_home: Path) -> None:
    code, out = _drift("reference", "--from", "2026-11-01", "--to", "2026-11-02")
    assert code == 1 and out.startswith("inkloop: error:") and "inkloop init" in out
