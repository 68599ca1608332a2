"""The model registry: artifacts into the store, versions into the database, promotion and rollback from the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from inkloop.card import Parent
from inkloop.store import ImageStore, sha256_hex
from model.export import update_card
from model.recognizer import SHIPPED_MODEL
from model.registry import RegistryError, materialize, read_card, register

runner = CliRunner()


@pytest.fixture
def second_model(tmp_path: Path) -> Path:
    path = tmp_path / "second.pt"
    shutil.copy(SHIPPED_MODEL, path)
    parent = Parent(version=read_card(SHIPPED_MODEL).version)
    update_card(path, lambda card: card.model_copy(update={"version": "second", "parent": parent}))
    return path


def test_read_card_without_torch_and_clear_errors(tmp_path: Path) -> None:
    card = read_card(SHIPPED_MODEL)
    assert card.version and card.charset and card.input.line_height > 0
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RegistryError, match="not a model artifact"):
        read_card(tmp_path / "notes.txt")
    with pytest.raises(RegistryError, match="no model file"):
        read_card(tmp_path / "missing.pt")


def test_register_is_idempotent_and_records_lineage(session, tmp_path: Path, second_model: Path) -> None:
    store = ImageStore(str(tmp_path / "store"))
    base, new = register(session=session, store=store, path=SHIPPED_MODEL)
    assert new and base.artifact_key == sha256_hex(SHIPPED_MODEL.read_bytes()) and store.exists(base.artifact_key)
    again, new_again = register(session=session, store=store, path=SHIPPED_MODEL)
    assert again.id == base.id and not new_again
    second, _ = register(session=session, store=store, path=second_model)
    assert second.parent_id == base.id and second.card is not None and second.card["version"] == "second"
    with pytest.raises(RegistryError, match="different artifact"):
        register(session=session, store=store, path=second_model, version=base.version)
    cached = materialize(store, second.artifact_key, tmp_path / "cache")
    assert cached.read_bytes() == second_model.read_bytes()


def test_cli_register_promote_list_and_rollback(migrated_url: str, monkeypatch, second_model: Path) -> None:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    assert runner.invoke(app, ["init"]).exit_code == 0
    base_version = read_card(SHIPPED_MODEL).version
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "no registered models" in listed.output

    first = runner.invoke(app, ["models", "register", str(SHIPPED_MODEL), "--promote"])
    assert first.exit_code == 0 and f"registered {base_version}" in first.output and "champion" in first.output
    second = runner.invoke(app, ["models", "register", str(second_model)])
    assert second.exit_code == 0 and "candidate" in second.output
    promoted = runner.invoke(app, ["models", "promote", "second"])
    assert promoted.exit_code == 0 and f"champion: second (was {base_version})" in promoted.output

    listing = runner.invoke(app, ["models", "list"]).output
    assert "second" in listing and "retired" in listing and "held-out CER" in listing
    rolled = runner.invoke(app, ["models", "rollback"])
    assert rolled.exit_code == 0 and f"champion: {base_version} (rolled back from second)" in rolled.output
    shown = runner.invoke(app, ["models", "show", base_version, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["status"] == "champion"

    unknown = runner.invoke(app, ["models", "promote", "nope"])
    assert unknown.exit_code == 1 and "no model version 'nope'" in unknown.output
    not_a_model = runner.invoke(app, ["models", "register", str(Path(__file__))])
    assert not_a_model.exit_code == 1 and "not a model artifact" in not_a_model.output
