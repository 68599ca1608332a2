"""The CLI through typer's runner and as the installed `inkloop` command in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cli import app
from db.migrate import head_revision
from inkloop.errors import InvalidKeyError

runner = CliRunner()


def _inkloop_executable() -> str:
    found = Path(sys.executable).with_name("inkloop")
    assert found.exists(), f"the inkloop command is not installed next to {sys.executable}"
    return str(found)


def run_inkloop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_inkloop_executable(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "status", "store"):
        assert command in result.output


def test_init_then_status(inkloop_home: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert f"{head_revision()} (head; migrated from empty)" in result.output
    assert str(inkloop_home.resolve()) in result.output
    assert (inkloop_home / "inkloop.db").is_file()
    assert (inkloop_home / "store" / "objects").is_dir()

    again = runner.invoke(app, ["init"])
    assert again.exit_code == 0 and "already at head" in again.output

    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert f"schema       {head_revision()} (head)" in status.output
    assert "requests     0" in status.output

    as_json = json.loads(runner.invoke(app, ["status", "--json"]).output)
    assert as_json["schema_revision"] == as_json["schema_head"] == head_revision()
    assert as_json["schema_at_head"] is True
    assert as_json["database_url"] == f"sqlite:///{inkloop_home.resolve() / 'inkloop.db'}"
    assert as_json["counts"]["images"] == {"pending": 0, "valid": 0, "quarantined": 0}
    assert set(as_json["counts"]["model_versions"]) == {"candidate", "champion", "rejected", "retired"}


def test_status_before_init_is_one_line_and_creates_nothing(inkloop_home: Path) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"inkloop: error: no database at {inkloop_home.resolve() / 'inkloop.db'}; run `inkloop init` first"
    )
    assert not inkloop_home.exists()


def test_malformed_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_CONFIDENCE_THRESHOLD", "high")
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 1
    assert result.output.startswith("inkloop: error: invalid setting INKLOOP_CONFIDENCE_THRESHOLD='high'")
    assert len(result.output.strip().splitlines()) == 1


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(app, ["--debug", "store", "get", "../../etc/passwd"])
    assert isinstance(result.exception, InvalidKeyError)
    quiet = runner.invoke(app, ["store", "get", "../../etc/passwd"])
    assert quiet.exit_code == 1
    assert quiet.output.strip() == (
        "inkloop: error: invalid store key '../../etc/passwd': "
        "a key is the 64-character lowercase hex sha256 of the bytes"
    )


def test_store_commands(tmp_path: Path, inkloop_home: Path) -> None:
    image = tmp_path / "page.png"
    image.write_bytes(b"\x89PNG fake page")
    key = hashlib.sha256(image.read_bytes()).hexdigest()
    put = runner.invoke(app, ["store", "put", str(image), str(image)])
    assert put.exit_code == 0, put.output
    assert put.output.splitlines() == [f"{key}  {image}", f"{key}  {image}"]
    objects = [p for p in (inkloop_home / "store").rglob("*") if p.is_file()]
    assert [p.name for p in objects] == [key]

    out = tmp_path / "copy.png"
    assert runner.invoke(app, ["store", "get", key, "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == image.read_bytes()

    verify = runner.invoke(app, ["store", "verify"])
    assert verify.exit_code == 0 and "1 objects, 0 corrupt" in verify.output
    objects[0].write_bytes(b"bit rot")
    verify = runner.invoke(app, ["store", "verify"])
    assert verify.exit_code == 1 and "1 objects, 1 corrupt" in verify.output


def test_subprocess_errors_have_no_traceback(inkloop_home: Path) -> None:
    result = run_inkloop("status", env={"INKLOOP_HOME": str(inkloop_home), "INKLOOP_DATABSE_URL": "x"})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "inkloop: error: unknown setting INKLOOP_DATABSE_URL (did you mean INKLOOP_DATABASE_URL?)"
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("serve", "--port", "abc"), "Invalid value for '--port': Input should be a valid integer, unable to parse "
         "string as an integer (see inkloop serve --help)"),
        (("synth", "--count", "-5", "--out", "x"), "Invalid value for '--count': Input should be greater than or "
         "equal to 1 (see inkloop synth --help)"),
        (("--bogus",), "No such option: --bogus (see inkloop --help)"),
        (("models", "promot"), "No such command 'promot'. Did you mean 'promote'? (see inkloop models --help)"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_with_exit_code_2(args: tuple[str, ...], line: str) -> None:
    """Like every other mistake, one line on stderr, not a boxed usage block; exit code 2 is the convention for a
    command line that could not be parsed (1: the command ran and failed)."""
    result = run_inkloop(*args)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"inkloop: error: {line}\n", "")


def test_subprocess_init_and_status_on_postgresql(postgres_url: str, inkloop_home: Path) -> None:
    # A password in the URL must never be printed (trust auth accepts and ignores it).
    url = make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    env = {"INKLOOP_HOME": str(inkloop_home), "INKLOOP_DATABASE_URL": url}
    init = run_inkloop("init", env=env)
    assert init.returncode == 0, init.stderr
    status = run_inkloop("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["schema_at_head"] is True
    assert report["database_url"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert "s3cret-pw" not in init.stdout + status.stdout + init.stderr + status.stderr
    assert report["counts"]["requests"] == 0


def test_unreachable_database_is_one_line(inkloop_home: Path) -> None:
    env = {"INKLOOP_DATABASE_URL": "postgresql+psycopg://ink:pw@127.0.0.1:1/inkloop"}
    result = run_inkloop("init", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "inkloop: error: cannot reach database postgresql+psycopg://ink:***@127.0.0.1:1/inkloop"
    )
    assert "pw@" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_init_refuses_a_database_it_did_not_create(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE someone_elses (id int)"))
    engine.dispose()
    result = run_inkloop("init", env={"INKLOOP_DATABASE_URL": postgres_url})
    assert result.returncode == 1
    assert "has tables but no inkloop schema revision" in result.stderr


def test_status_names_an_old_schema(inkloop_home: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    from db.migrate import downgrade

    downgrade(f"sqlite:///{inkloop_home / 'inkloop.db'}", "base")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "has no inkloop schema; run `inkloop init`" in result.output


_LOADED = """
import sys
from cli import app
try:
    app(sys.argv[1:], standalone_mode=True)
except SystemExit as exit:
    heavy = sorted(m for m in ("torch", "pytorch_lightning", "prefect") if m in sys.modules)
    print("loaded:", ",".join(heavy) or "none", file=sys.stderr)
    raise
"""


def _run_and_report_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """`inkloop ARGS` in a fresh interpreter that then says which heavy libraries it had imported."""
    return subprocess.run(
        [sys.executable, "-c", _LOADED, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_predict_and_train_refuse_missing_paths_before_loading_anything(tmp_path: Path) -> None:
    predict = _run_and_report_imports("predict", str(tmp_path / "nonexistent.png"))
    assert predict.returncode == 1
    assert f"inkloop: error: {tmp_path / 'nonexistent.png'}: no such file or folder" in predict.stderr
    assert "loaded: none" in predict.stderr  # answered before torch (and the model) loaded

    train = _run_and_report_imports("train", "--data", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "r"))
    assert train.returncode == 1
    assert f"--data {tmp_path / 'nonexistent'}: no such folder" in train.stderr
    assert "loaded: none" in train.stderr and not (tmp_path / "r").exists()

    (tmp_path / "nolabels").mkdir()
    no_labels = runner.invoke(app, ["train", "--data", str(tmp_path / "nolabels")])
    assert no_labels.exit_code == 1 and "has no labels.jsonl" in no_labels.output


def test_predict_reads_the_images_of_a_folder_and_names_what_it_cannot_read(tmp_path: Path) -> None:
    from tests.support.paths import GOLDEN

    folder = tmp_path / "pages"
    folder.mkdir()
    for page in sorted(GOLDEN.glob("*.png"))[:2]:
        (folder / page.name).write_bytes(page.read_bytes())
    (folder / "notes.txt").write_text("not a page")  # not an image suffix: not read
    (folder / "broken.PNG").write_text("this is not a picture")
    result = runner.invoke(app, ["predict", str(folder), "--json"])
    assert result.exit_code == 1  # one file could not be read; the others were
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["000000.png", "000002.png", "broken.PNG"]
    assert all(line["text"] and 0 <= line["confidence"] <= 1 for line in lines[:2])
    error = lines[2]["error"]
    assert "not an image file inkloop can read" in error and "PIL" not in error

    empty = runner.invoke(app, ["predict", str(tmp_path)])
    assert empty.exit_code == 1 and "a folder with no images in it" in empty.output


def test_serve_on_a_busy_port_says_so_before_announcing_anything(inkloop_home: Path) -> None:
    import socket

    assert runner.invoke(app, ["init"]).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_inkloop("serve", "--port", str(port), env={"INKLOOP_HOME": str(inkloop_home)})
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"inkloop: error: port {port} on 127.0.0.1 is already in use; choose another with --port"
    )
    assert "serving on" not in result.stdout
