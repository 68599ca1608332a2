"""devtools.labelstudio without starting Label Studio: where things live, what the process is told, and that a
failed install leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import labelstudio as server
from inkloop.errors import LabelStudioError
from inkloop.settings import LOCAL_LABEL_STUDIO_TOKEN, load_settings
from tests.support.ports import free_port


def test_defaults_live_under_home(inkloop_home: Path) -> None:
    ls = server.from_settings(load_settings())
    home = inkloop_home.resolve()
    assert ls.venv == home / "labelstudio" / "venv"
    assert (ls.data_dir, ls.log_file, ls.pid_file) == (
        home / "labelstudio" / "data",
        home / "labelstudio" / "label-studio.log",
        home / "labelstudio" / "label-studio.pid",
    )
    assert ls.document_root == home / "store"
    assert (ls.url, ls.port, ls.is_local, ls.token) == ("http://127.0.0.1:8080", 8080, True, LOCAL_LABEL_STUDIO_TOKEN)


def test_venv_setting_and_remote_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_VENV", str(tmp_path / "ls-venv"))
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", "http://localhost:9001/")
    monkeypatch.setenv("INKLOOP_STORE_URL", "s3://bucket/images")
    ls = server.from_settings(load_settings())
    assert ls.venv == tmp_path / "ls-venv" and ls.port == 9001 and ls.is_local
    assert ls.document_root is None  # an object store cannot be served as local files
    assert server._environment(ls)["LOCAL_FILES_SERVING_ENABLED"] == "false"
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", "https://labels.example.org")
    remote = server.from_settings(load_settings())
    assert remote.port == 443 and not remote.is_local
    with pytest.raises(LabelStudioError, match="points at https://labels.example.org; inkloop only starts a local"):
        server.require_local(remote)


def test_blank_venv_setting_means_the_default(monkeypatch: pytest.MonkeyPatch, inkloop_home: Path) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_VENV", " ")
    assert load_settings().label_studio_venv == inkloop_home.resolve() / "labelstudio" / "venv"


def test_the_process_environment_is_offline_and_closed(monkeypatch: pytest.MonkeyPatch, inkloop_home: Path) -> None:
    monkeypatch.setenv("HOST", "somewhere.example.org")  # Label Studio would read these unprefixed names
    monkeypatch.setenv("DEBUG", "1")
    ls = server.from_settings(load_settings())
    env = server._environment(ls)
    assert "HOST" not in env and "DEBUG" not in env
    assert env["LABEL_STUDIO_BASE_DATA_DIR"] == str(ls.data_dir)  # nothing lands in ~/.local/share
    assert env["LABEL_STUDIO_USER_TOKEN"] == LOCAL_LABEL_STUDIO_TOKEN
    assert env["LABEL_STUDIO_USERNAME"] == server.DEFAULT_USERNAME
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert (env["LATEST_VERSION_CHECK"], env["COLLECT_ANALYTICS"], env["SENTRY_DSN"], env["FRONTEND_SENTRY_DSN"]) == (
        "false",
        "false",
        "",
        "",
    )
    assert env["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert (env["LOCAL_FILES_SERVING_ENABLED"], env["LOCAL_FILES_DOCUMENT_ROOT"]) == (
        "true",
        str(inkloop_home.resolve() / "store"),
    )


def test_a_token_label_studio_cannot_keep_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_TOKEN", "abc")
    with pytest.raises(LabelStudioError, match="must be 6 to 40 characters"):
        server.up(server.from_settings(load_settings()))


def test_is_installed_needs_the_stamp_of_these_constraints(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    assert not server.is_installed(venv)
    (venv / server.INSTALL_STAMP).write_text("label-studio==1.0.0 constraints-sha256:0\n")
    assert not server.is_installed(venv)
    (venv / server.INSTALL_STAMP).write_text(server._install_id(server.CONSTRAINTS_FILE) + "\n")
    assert server.is_installed(venv)


@pytest.mark.slow
def test_a_failed_install_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: the pinned version cannot be found, so pip fails fast
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("label-studio==0.0.1\n")
    venv = tmp_path / "ls-venv"
    lines: list[str] = []
    with pytest.raises(LabelStudioError, match=r"pip install label-studio failed \(exit code 1\); nothing was left"):
        server.install(venv, constraints=constraints, on_pip_line=lines.append)
    assert not venv.exists()
    assert lines  # pip's output was passed on


def test_install_will_not_replace_a_folder_that_is_not_a_venv(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabelStudioError, match="exists and is not a virtualenv"):
        server.install(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_status_and_down_when_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")
    ls = server.from_settings(load_settings())
    ls.root.mkdir(parents=True)
    ls.pid_file.write_text('{"pid": 999999999}')  # stale: no such process
    current = server.status(ls)
    assert (current.running, current.healthy, current.version) == (False, False, None)
    assert server.down(ls) is None and not ls.pid_file.exists()
