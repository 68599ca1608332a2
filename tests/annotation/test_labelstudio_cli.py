"""`inkloop labelstudio up|status|down|install` as a user runs them: the installed command in a subprocess, with
its own INKLOOP_HOME, reusing the test suite's Label Studio virtualenv.

To spare a second ~30 s database creation, the home's Label Studio starts from a copy of the session server's
database (same admin and token); the session fixture itself exercises a first start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.labelstudio import LabelStudioHandle, copy_database
from tests.support.ports import free_port


def inkloop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("inkloop")
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cli_env(label_studio: LabelStudioHandle, inkloop_home: Path) -> dict[str, str]:
    url = f"http://127.0.0.1:{free_port()}"
    database = label_studio.server.data_dir / "label_studio.sqlite3"
    copy_database(database, inkloop_home / "labelstudio" / "data" / "label_studio.sqlite3")
    return {
        "INKLOOP_HOME": str(inkloop_home),
        "INKLOOP_LABEL_STUDIO_VENV": str(label_studio.venv),
        "INKLOOP_LABEL_STUDIO_URL": url,
        "INKLOOP_LABEL_STUDIO_TOKEN": label_studio.token,
    }


def test_up_status_down(cli_env: dict[str, str], inkloop_home: Path) -> None:
    url = cli_env["INKLOOP_LABEL_STUDIO_URL"]
    up = inkloop("labelstudio", "up", "--no-install", env=cli_env)
    assert up.returncode == 0, up.stderr + up.stdout
    assert f"Label Studio 1.23.2 is up at {url} (pid " in up.stdout
    assert "login   annotator@inkloop.local / inkloop-annotator" in up.stdout
    assert f"images  {inkloop_home.resolve() / 'store'}" in up.stdout
    try:
        status = inkloop("labelstudio", "status", "--json", env=cli_env)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert (report["url"], report["healthy"], report["version"], report["installed"]) == (url, True, "1.23.2", True)
        assert isinstance(report["pid"], int)
        assert "password" not in status.stdout and cli_env["INKLOOP_LABEL_STUDIO_TOKEN"] not in status.stdout

        again = inkloop("labelstudio", "up", env=cli_env)
        assert again.returncode == 0 and f"was already running at {url} (pid {report['pid']};" in again.stdout
    finally:
        down = inkloop("labelstudio", "down", env=cli_env)
    assert down.returncode == 0 and down.stdout.strip() == f"stopped Label Studio (pid {report['pid']})"
    assert not (inkloop_home / "labelstudio" / "label-studio.pid").exists()
    text = inkloop("labelstudio", "status", env=cli_env).stdout
    assert "not running (start it: inkloop labelstudio up)" in text
    assert inkloop("labelstudio", "down", env=cli_env).stdout.strip() == "no Label Studio started by inkloop is running"


def test_a_failed_start_quotes_the_log(cli_env: dict[str, str], inkloop_home: Path) -> None:
    (inkloop_home / "labelstudio" / "data" / "label_studio.sqlite3").write_bytes(b"this is not a database" * 100)
    up = inkloop("labelstudio", "up", "--no-install", env=cli_env)
    assert up.returncode == 1
    assert up.stderr.startswith("inkloop: error: Label Studio exited (code 1) before answering")
    assert "file is not a database" in up.stderr  # a line of Label Studio's own log
    assert not (inkloop_home / "labelstudio" / "label-studio.pid").exists()


def test_up_refuses_a_label_studio_elsewhere(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "INKLOOP_LABEL_STUDIO_URL": "https://labels.example.org"}
    up = inkloop("labelstudio", "up", env=env)
    assert up.returncode == 1
    assert up.stderr.startswith(
        "inkloop: error: INKLOOP_LABEL_STUDIO_URL points at https://labels.example.org; "
        "inkloop only starts a local one on 127.0.0.1/localhost"
    )


def test_up_refuses_a_port_in_use(cli_env: dict[str, str], label_studio: LabelStudioHandle) -> None:
    up = inkloop("labelstudio", "up", env={**cli_env, "INKLOOP_LABEL_STUDIO_URL": label_studio.url})
    assert up.returncode == 1
    assert (
        f"port {label_studio.server.port} of {label_studio.url} is in use by a program inkloop did not start"
        in up.stderr
    )


def test_up_without_label_studio_says_how_to_install(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "INKLOOP_LABEL_STUDIO_VENV": str(tmp_path / "nowhere")}
    up = inkloop("labelstudio", "up", "--no-install", env=env)
    assert up.returncode == 1
    assert f"no Label Studio installed in {tmp_path / 'nowhere'}; run `inkloop labelstudio install`" in up.stderr
    status = inkloop("labelstudio", "status", env=env)
    assert status.returncode == 0 and f"{tmp_path / 'nowhere'} (not installed)" in status.stdout


def test_install_is_a_no_op_when_installed(cli_env: dict[str, str]) -> None:
    result = inkloop("labelstudio", "install", env=cli_env)
    assert result.returncode == 0
    assert (
        result.stdout.strip() == f"Label Studio 1.23.2 is already installed in {cli_env['INKLOOP_LABEL_STUDIO_VENV']}"
    )
