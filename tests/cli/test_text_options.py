"""Command-line options that are stored (a promotion's or a reference window's reason, a dataset's description, a
model's version) follow the rule for text from outside (inkloop/untrusted.py) on SQLite and PostgreSQL: one line
`inkloop: error: ...` naming the option and the problem, exit 1, before the database is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.app import app
from db import repo
from db.models import DatasetVersion, ModelVersion
from model.recognizer import SHIPPED_MODEL
from tests.support.databases import session_on
from tests.support.servers import inkloop_process

runner = CliRunner()
WINDOW = ["--from", "2026-11-01", "--to", "2026-11-08"]


@pytest.fixture
def cli_env(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    monkeypatch.setenv("INKLOOP_STORE_URL", str(tmp_path / "store"))
    return migrated_url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["drift", "reference", *WINDOW, "--reason", "clean\x00week"],
            "--reason contains a NUL character (U+0000) at character 6",
        ),
        (
            ["drift", "reference", *WINDOW, "--reason", "clean week \x1b[2J"],
            "--reason contains the control character U+001B at character 12",
        ),
        (
            ["models", "promote", "m-0001", "--force", "--reason", "it reads\x00better"],
            "--reason contains a NUL character (U+0000) at character 9",
        ),
        (
            ["datasets", "build", "--description", "first\x07batch"],
            "--description contains the control character U+0007 at character 6",
        ),
        (
            ["models", "register", str(SHIPPED_MODEL), "--version", "m\x00"],
            "--version contains a NUL character (U+0000) at character 2",
        ),
        (
            ["models", "register", str(SHIPPED_MODEL), "--version", "m-0001\nm-0002"],
            "--version must be one line: it contains '\\n' (U+000A) at character 7",
        ),
        (
            ["models", "register", str(SHIPPED_MODEL), "--version", "m" * 65],
            "--version is 65 characters long; at most 64 are kept",
        ),
    ],
    ids=["nul-reason", "escape-reason", "promote-reason", "bell-description", "nul-version", "two-lines", "long"],
)
def test_a_stored_option_with_a_refused_text_is_one_line_and_stores_nothing(
    cli_env: str, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.output == f"inkloop: error: {message}\n"
    with session_on(cli_env) as session:
        assert repo.drift_reference(session=session) is None
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0


def test_a_reason_of_several_lines_is_kept(cli_env: str) -> None:
    reason = "the week after the fix\n\tno outage, no new fonts"
    result = runner.invoke(app, ["drift", "reference", *WINDOW, "--reason", reason])
    assert result.exit_code == 0, result.output
    with session_on(cli_env) as session:
        pinned = repo.drift_reference(session=session)
        assert pinned is not None and pinned.reason == reason


def test_bytes_that_are_not_utf8_in_an_argument_are_named_before_the_database_is_opened(inkloop_home: Path) -> None:
    # A real process: the byte 0xff in argv reaches Python as the lone surrogate U+DCFF, which neither database can
    # store. No database exists here, so an error about anything but the option would mean it was not checked first.
    process = inkloop_process("drift", "reference", *WINDOW, "--reason", "caf\udcff", home=inkloop_home)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, (out, err)
    assert err == (
        "inkloop: error: --reason is not valid Unicode: a lone surrogate (U+DCFF) at character 4, as bytes that are "
        "not UTF-8 give\n"
    )
