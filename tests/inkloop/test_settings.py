"""Settings: embedded defaults under INKLOOP_HOME, and a clear error naming the variable for a malformed value."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkloop.errors import SettingsError
from inkloop.settings import known_variables, load_settings, mask_url


def test_defaults_live_under_home(inkloop_home: Path) -> None:
    settings = load_settings()
    assert settings.home == inkloop_home.resolve()
    assert settings.database_url == f"sqlite:///{inkloop_home.resolve() / 'inkloop.db'}"
    assert settings.store_url == str(inkloop_home.resolve() / "store")
    assert settings.is_sqlite and settings.store_is_local
    assert settings.label_studio_url == "http://127.0.0.1:8080"
    assert 0.0 <= settings.confidence_threshold <= 1.0


def test_relative_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INKLOOP_HOME", "rel/home")
    assert load_settings().home == tmp_path.resolve() / "rel" / "home"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INKLOOP_CONFIDENCE_THRESHOLD", "abc", "valid number"),
        ("INKLOOP_CONFIDENCE_THRESHOLD", "1.5", "less than or equal to 1"),
        ("INKLOOP_AUDIT_RATE", "-0.1", "greater than or equal to 0"),
        ("INKLOOP_DAILY_LABEL_BUDGET", "ten", "valid integer"),
        ("INKLOOP_DATABASE_URL", "mysql://db/x", "must be sqlite:/// or postgresql+psycopg://"),
        ("INKLOOP_DATABASE_URL", "not a url", "not a database URL; write sqlite:///"),
        ("INKLOOP_DATABASE_URL", "sqlite://", "in-memory SQLite"),
        ("INKLOOP_DATABASE_URL", "postgresql+psycopg://u@db:abc/x", "the port 'abc' is not a number; write host:5432"),
        ("INKLOOP_DATABASE_URL", "postgresql://u@db:99999/x", "the port 99999 is out of range (1 to 65535)"),
        ("INKLOOP_STORE_URL", "nosuchprotocol://bucket/x", "protocol 'nosuchprotocol'"),
        ("INKLOOP_LABEL_STUDIO_URL", "ftp://host", "http:// or https://"),
        ("INKLOOP_INFERENCE_RUNTIME", "tensorrt", "'auto', 'onnx-int8', 'onnx' or 'torchscript'"),
        ("INKLOOP_MAX_UPLOAD_BYTES", "0", "greater than 0"),
        ("INKLOOP_DEBUG", "maybe", "valid boolean"),
        ("INKLOOP_SCHEDULES", "retrain=nightly", "is not 'every N' with a unit s, m, h or d"),
        ("INKLOOP_FLOW_CONCURRENCY", "0", "greater than or equal to 1"),
    ],
)
def test_malformed_value_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert variable in message
    assert repr(value) in message
    assert expected in message


def test_misspelt_variable_is_an_error_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_DATABSE_URL", "sqlite:///x.db")
    with pytest.raises(
        SettingsError, match=r"unknown setting INKLOOP_DATABSE_URL \(did you mean INKLOOP_DATABASE_URL\?\)"
    ):
        load_settings()


def test_every_field_has_a_variable() -> None:
    assert "INKLOOP_DATABASE_URL" in known_variables()
    assert "INKLOOP_STORE_URL" in known_variables()
    assert "INKLOOP_LABEL_STUDIO_TOKEN" in known_variables()


def test_postgres_urls_name_the_installed_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    for given in ("postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db"):
        monkeypatch.setenv("INKLOOP_DATABASE_URL", given)
        assert load_settings().database_url == "postgresql+psycopg://u:p@h:5432/db"


def test_store_url_accepts_fsspec_urls_and_file_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INKLOOP_STORE_URL", "s3://bucket/prefix/")
    assert load_settings().store_url == "s3://bucket/prefix"
    assert not load_settings().store_is_local
    monkeypatch.setenv("INKLOOP_STORE_URL", f"file://{tmp_path}/objs")
    assert load_settings().store_url == str(tmp_path.resolve() / "objs")


def test_passwords_are_masked_for_printing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", "postgresql+psycopg://ink:s3cret@db.example:5432/inkloop")
    settings = load_settings()
    assert settings.masked_database_url() == "postgresql+psycopg://ink:***@db.example:5432/inkloop"
    assert "s3cret" not in settings.masked_database_url()
    assert mask_url("s3://key:secret@bucket/x") == "s3://key:***@bucket/x"
    assert mask_url("/plain/path") == "/plain/path"


def test_token_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_TOKEN", "tok-123")
    settings = load_settings()
    assert "tok-123" not in repr(settings)
    assert settings.label_studio_token.get_secret_value() == "tok-123"


def test_a_malformed_database_url_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", "postgresql://ada:s3cret@db:port/x")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "s3cret" not in str(refused.value) and "ada:***@db:port" in str(refused.value)
