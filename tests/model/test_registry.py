"""The model registry: artifacts into the store, versions into the database, promotion and rollback from the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from db import repo
from inkloop.card import Parent
from inkloop.domain import ModelStatus, PromotionKind
from inkloop.store import ImageStore, sha256_hex
from model.export import update_card
from model.gates import Check, GateConfig, GateResult, gate_result
from model.recognizer import SHIPPED_MODEL
from model.registry import (
    PromotionRefused,
    RegistryError,
    materialize,
    promote,
    read_card,
    record_gate,
    register,
    rollback,
)

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


def _gated(candidate: str, champion: str, passed: bool) -> GateResult:
    check = Check(name="regression", passed=passed, summary="test/all CER went " + ("down" if passed else "up"))
    return gate_result(
        candidate=candidate,
        champion=champion,
        dataset_version=None,
        checks=[check],
        slices=[],
        worse=[],
        config=GateConfig(),
        created_at="2026-12-07T00:00:00+00:00",
        seconds={},
    )


def test_the_gate_promotes_what_passes_and_rejects_what_fails(session, tmp_path: Path, second_model: Path) -> None:
    store = ImageStore(str(tmp_path / "store"))
    base, _ = register(session=session, store=store, path=SHIPPED_MODEL)
    promote(session=session, version=base.version, actor="test")
    register(session=session, store=store, path=second_model)

    report_only = record_gate(
        session=session, result=_gated("second", base.version, True), dataset_version_id=None, report_path="r1.html",
        promote=False, actor="gate (test)",
    )  # fmt: skip
    assert (
        not report_only.promoted and repo.get_model(session=session, version="second").status is ModelStatus.candidate
    )
    failed = record_gate(
        session=session, result=_gated("second", base.version, False), dataset_version_id=None, report_path="r2.html",
        promote=True, actor="gate (test)",
    )  # fmt: skip
    assert not failed.promoted and repo.get_model(session=session, version="second").status is ModelStatus.rejected
    # A later pass does not lift a rejection by itself: a person decides that.
    later = record_gate(
        session=session, result=_gated("second", base.version, True), dataset_version_id=None, report_path="r3.html",
        promote=True, actor="gate (test)",
    )  # fmt: skip
    assert not later.promoted and repo.get_champion(session=session).version == base.version  # type: ignore[union-attr]
    second = repo.get_model(session=session, version="second")
    assert [r.passed for r in repo.gate_reports(session=session, model_id=second.id)] == [True, False, True]
    assert repo.gate_reports(session=session, model_id=second.id)[0].id == later.report_id  # newest first


def test_a_rejected_model_serves_only_when_forced_with_a_reason(session, tmp_path: Path, second_model: Path) -> None:
    store = ImageStore(str(tmp_path / "store"))
    base, _ = register(session=session, store=store, path=SHIPPED_MODEL)
    first = promote(session=session, version=base.version, actor="test")
    assert first.changed and first.previous is None
    register(session=session, store=store, path=second_model)
    record_gate(
        session=session, result=_gated("second", base.version, False), dataset_version_id=None, report_path="r.html",
        promote=True, actor="gate (test)",
    )  # fmt: skip
    with pytest.raises(PromotionRefused, match="rejected by its gate .regression: test/all CER went up.") as refused:
        promote(session=session, version="second", actor="ana")
    assert refused.value.failures == ["regression: test/all CER went up"]
    with pytest.raises(PromotionRefused, match="needs a reason"):
        promote(session=session, version="second", actor="ana", force=True, reason="  ")
    forced = promote(session=session, version="second", actor="ana", force=True, reason="the gate's pages are stale")
    assert forced.changed and forced.forced and forced.previous is not None and forced.previous.version == base.version
    (record,) = [p for p in repo.promotions(session=session) if p.model_id == forced.champion.id]
    assert record.kind is PromotionKind.forced and record.actor == "ana" and record.gate_report_id is not None
    assert not promote(session=session, version="second", actor="ana").changed  # the champion already

    back = rollback(session=session, actor="ben")
    assert back.champion.version == base.version and back.previous is not None and back.previous.version == "second"
    assert repo.promotions(session=session)[-1].kind is PromotionKind.rollback
