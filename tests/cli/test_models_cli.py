"""`inkloop models show | promote | rollback | list` on SQLite and PostgreSQL: a candidate its gate rejected, shown
with its training run and failed check, promoted only with --force and a reason on record; and `inkloop
tensorboard` as a real process serving a training run's curves."""

from __future__ import annotations

import getpass
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.app import app
from cli.common import require_free_port
from db import repo
from db.models import DatasetVersion
from inkloop.domain import PromotionKind, RunStatus
from inkloop.store import ImageStore
from inkloop.wait import wait_until
from model.export import read_card
from model.gates import Check, GateConfig, GateResult, SliceResult
from model.recognizer import SHIPPED_MODEL
from model.registry import register
from model.runtimes import Runtime, runtime_reason
from tests.support.paths import SHIPPED_VERSION
from tests.support.ports import free_port
from tests.support.servers import inkloop_process

runner = CliRunner()

REGRESSION = "test/reason/audit: may be worse by up to 0.0350 (> margin 0.005)"
CHAMPION, CANDIDATE = SHIPPED_VERSION, "m-0001"  # the shipped model's own version; the first run's name
_TRAINED = read_card(SHIPPED_MODEL).training
# The candidate is the shipped artifact: `models show` names the GPU its card says it trained on, if any.
GPU = f" ({_TRAINED.gpu})" if _TRAINED is not None and _TRAINED.gpu else ""
REASON = "the audit slice's labels are being redone; the new fonts matter more"


def _failed_gate() -> GateResult:
    audit = SliceResult(
        name="test/reason/audit",
        pages=34,
        characters=2100,
        champion_cer=0.04,
        candidate_cer=0.062,
        delta=0.022,
        low=0.009,
        high=0.035,
        decisive=True,
        passed=False,
        note="may be worse by up to 0.0350 (> margin 0.005)",
    )
    overall = audit.model_copy(
        update={"name": "test/all", "pages": 120, "candidate_cer": 0.031, "delta": -0.009, "passed": True, "note": ""}
    )
    return GateResult(
        candidate=CANDIDATE,
        champion=CHAMPION,
        dataset_version="ds-0001",
        passed=False,
        checks=[
            Check(name="memorization", passed=True, summary="loss 0.04 < 0.1 after 40 steps"),
            Check(name="regression", passed=False, summary=REGRESSION, details={"failed_slices": [audit.name]}),
        ],
        slices=[overall, audit],
        config=GateConfig(),
        created_at="2025-06-01T11:00:00+00:00",
    )


@dataclass(frozen=True)
class Registry:
    """The shipped model as the champion, and m-0001, trained on ds-0001 from it and rejected by its gate."""

    session: Session
    home: Path
    report: Path
    tracker: Path
    gate: GateResult


@pytest.fixture
def registry(
    session: Session, migrated_url: str, inkloop_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    monkeypatch.setenv("INKLOOP_STORE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("LOGNAME", "ada")  # getpass.getuser() reads it first
    store = ImageStore(str(tmp_path / "store"))
    champion, _ = register(session=session, store=store, path=SHIPPED_MODEL, version=CHAMPION)
    repo.promote_model(session=session, version=CHAMPION, actor="setup", reason="the first model")
    dataset = DatasetVersion(version="ds-0001", content_hash="d" * 64)
    session.add(dataset)
    session.flush()
    tracker = inkloop_home / "tensorboard" / CANDIDATE
    run = repo.start_training_run(
        session=session,
        run_key="k" * 64,
        dataset_version_id=dataset.id,
        parent_model_id=champion.id,
        config={"max_steps": 300},
        device="cuda",
        run_dir=str(inkloop_home / "runs" / CANDIDATE),
        tracker=str(tracker),
    )
    assert run.name == CANDIDATE  # a run is named after its id, and its candidate after it
    candidate, _ = register(
        session=session, store=store, path=SHIPPED_MODEL, version=run.name, dataset_version_id=dataset.id
    )
    repo.finish_training_run(
        session=session,
        run=run,
        status=RunStatus.succeeded,
        result_model_id=candidate.id,
        steps=300,
        wall_s=241.0,
        metrics={"val": {"cer": 0.0412, "pages": 40}},
    )
    report = inkloop_home / "reports" / "gate-m-0001X.html"
    report.parent.mkdir(parents=True)
    report.write_text("<h1>REJECTED</h1>")
    gate = _failed_gate()
    repo.add_gate_report(
        session=session,
        candidate_id=candidate.id,
        champion_id=champion.id,
        dataset_version_id=dataset.id,
        passed=False,
        checks=gate.model_dump(mode="json"),
        report_path=str(report),
    )
    repo.reject_model(session=session, version=CANDIDATE)
    session.commit()
    return Registry(session=session, home=inkloop_home, report=report, tracker=tracker, gate=gate)


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_show_leads_with_the_verdict_the_failed_check_and_the_training_run(registry: Registry) -> None:
    lines = _ok("models", "show", CANDIDATE).splitlines()
    assert lines.pop(1) == f"serves      onnx-int8 ({runtime_reason(read_card(SHIPPED_MODEL), Runtime.onnx_int8)})"
    assert lines[:6] == [
        f"model       {CANDIDATE} (rejected)",
        lines[1],  # created: now
        "promoted    never",
        f"parent      {CHAMPION}",
        "dataset     ds-0001",
        f"training    run {CANDIDATE}: succeeded, 300 steps, 4.0 min on cuda{GPU}, val CER 0.0412",
    ]
    assert lines[1].startswith("created     20") and lines[1].endswith(" UTC")
    assert lines[6] == f"curves      {registry.tracker} (browse every run: inkloop tensorboard)"
    assert lines[7].startswith("gate        REJECTED 20") and lines[7].endswith(f" UTC against {CHAMPION} on ds-0001")
    assert lines[8:] == [
        "  pass  memorization  loss 0.04 < 0.1 after 40 steps",
        f"  FAIL  regression    {REGRESSION}",
        "  failed slices:",
        "    test/reason/audit (34 pages): CER 0.0400 -> 0.0620, may be worse by up to 0.0350 (> margin 0.005)",
        f"  report: open {registry.report.resolve().as_uri()}",
        "promotions  none",
    ]


def test_show_json_holds_the_card_the_run_and_every_gate_report_whole(registry: Registry) -> None:
    record = json.loads(_ok("models", "show", CANDIDATE, "--json"))
    assert (record["version"], record["status"], record["dataset_version"]) == (CANDIDATE, "rejected", "ds-0001")
    assert record["parent"] == CHAMPION and record["card"]["version"] == SHIPPED_VERSION and record["card"]["charset"]
    run = record["training_run"]
    assert (run["name"], run["status"], run["steps"], run["wall_s"], run["device"]) == (
        CANDIDATE,
        "succeeded",
        300,
        241.0,
        "cuda",
    )
    assert run["tracker"] == str(registry.tracker) and run["dataset_version"] == "ds-0001"
    assert run["parent_model"] == CHAMPION and run["metrics"] == {"val": {"cer": 0.0412, "pages": 40}}
    [report] = record["gate_reports"]
    assert (report["passed"], report["champion"], report["report_path"]) == (False, CHAMPION, str(registry.report))
    assert report["checks"] == registry.gate.model_dump(mode="json")
    assert GateResult.model_validate(report["checks"]) == registry.gate
    assert record["promotions"] == []


def test_a_rejected_model_is_promoted_only_with_force_and_a_reason_on_record(registry: Registry) -> None:
    refused = runner.invoke(app, ["models", "promote", CANDIDATE])
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        f"inkloop: error: model version '{CANDIDATE}' was rejected by its gate (regression: {REGRESSION}); "
        'to promote it anyway add --force --reason "why it should serve regardless"'
    )
    no_reason = runner.invoke(app, ["models", "promote", CANDIDATE, "--force"])
    assert no_reason.exit_code == 1
    assert no_reason.output.startswith("inkloop: error: --force needs a reason on record: add --reason")
    champion = repo.get_champion(session=registry.session)
    assert champion is not None and champion.version == CHAMPION
    registry.session.commit()

    forced = _ok("models", "promote", CANDIDATE, "--force", "--reason", REASON)
    assert forced.strip() == f"champion: {CANDIDATE} (was {CHAMPION}) (forced over a failed gate: {REASON})"
    promotion = repo.promotions(session=registry.session)[-1]
    assert (promotion.kind, promotion.actor, promotion.reason) == (PromotionKind.forced, "ada", REASON)
    [overridden] = repo.gate_reports(session=registry.session, model_id=promotion.model_id)
    assert promotion.gate_report_id == overridden.id
    registry.session.commit()

    shown = _ok("models", "show", CANDIDATE).splitlines()
    assert shown[0] == f"model       {CANDIDATE} (champion)"
    assert shown[1].startswith("serves      onnx-int8 (its int8 graph")
    assert shown[3].startswith("promoted    20")
    history = shown[shown.index("promotions") + 1 :]
    assert len(history) == 1 and history[0].endswith(f" UTC  forced   by ada, replacing {CHAMPION}: {REASON}")
    retired = _ok("models", "show", CHAMPION).splitlines()
    assert retired[0] == f"model       {CHAMPION} (retired)"
    card = read_card(SHIPPED_MODEL)
    assert card.training is not None
    assert retired[6] == (
        "training    no training run recorded (registered by hand); its card says "
        f"{card.training.steps} steps on {card.training.device}{GPU}, val CER {card.metrics['val'].cer:.4f}"
    )
    history = retired[retired.index("promotions") + 1 :]
    assert len(history) == 2 and history[0].endswith(" UTC  manual   by setup: the first model")
    assert history[1].endswith(f" UTC  retired  when {CANDIDATE} became champion (forced by ada)")
    as_json = json.loads(_ok("models", "show", CANDIDATE, "--json"))
    assert [(p["kind"], p["actor"], p["reason"], p["previous"]) for p in as_json["promotions"]] == [
        ("forced", "ada", REASON, CHAMPION)
    ]

    assert _ok("models", "rollback").strip() == f"champion: {CHAMPION} (rolled back from {CANDIDATE})"
    rollback = repo.promotions(session=registry.session)[-1]
    assert (rollback.kind, rollback.actor, rollback.reason) == (PromotionKind.rollback, "ada", "rollback")
    registry.session.commit()

    listing = _ok("models", "list").splitlines()
    assert listing[0].split() == ["VERSION", "STATUS", "GATE", "CREATED", "(UTC)", "CER"]
    assert [line.split()[:3] for line in listing[1:]] == [
        [CHAMPION, "champion", "—"],
        [CANDIDATE, "retired", "rejected"],
    ]


def test_register_promote_records_the_user_or_unknown(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    promoted = _ok("models", "register", str(SHIPPED_MODEL), "--version", "m-0003", "--promote")
    assert promoted.startswith("registered m-0003") and "champion" in promoted
    promotion = repo.promotions(session=registry.session)[-1]
    assert (promotion.kind, promotion.actor) == (PromotionKind.manual, "unknown")
    assert _ok("models", "promote", "m-0003").strip() == "m-0003 is already the champion"


# --- inkloop tensorboard ------------------------------------------------------------------------------------------


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def test_tensorboard_serves_the_training_runs_until_terminated(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    home = tmp_path / "home"
    writer = SummaryWriter(log_dir=str(home / "tensorboard" / "m-0007"))
    writer.add_scalar("val/cer", 0.05, 1)
    writer.close()
    port = free_port()
    process = inkloop_process("tensorboard", "--port", str(port), home=home)
    try:

        def runs() -> list[str]:
            if process.poll() is not None:
                raise AssertionError(f"inkloop tensorboard exited with {process.returncode}")
            return list(json.loads(_get(f"http://127.0.0.1:{port}/data/runs")))

        found = wait_until(
            runs, timeout_s=60, interval_s=0.2, what="TensorBoard listing m-0007", retry_on=(urllib.error.URLError,)
        )
        assert found == ["m-0007"]
        assert b"<tb-webapp>" in _get(f"http://127.0.0.1:{port}/")
    finally:
        process.terminate()
        # The pipes close only once TensorBoard, the child holding them too, has exited.
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.splitlines()[:2] == [
        f"TensorBoard at http://127.0.0.1:{port}/ (Ctrl-C stops it)",
        f"1 training run in {home / 'tensorboard'}: m-0007",
    ]
    require_free_port("127.0.0.1", port)  # nothing listens there any more


def test_tensorboard_without_runs_says_so_and_a_taken_port_is_one_line(
    inkloop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import tensorboard

    started: list[list[str]] = []

    def run_nothing(command: list[str]) -> tuple[int, bool]:
        started.append(command)
        return 0, False

    monkeypatch.setattr(tensorboard, "foreground", run_nothing)
    port = free_port()
    output = _ok("tensorboard", "--port", str(port))
    logdir = inkloop_home.resolve() / "tensorboard"
    assert output.splitlines()[1].startswith(f"no training runs yet in {logdir}")
    assert logdir.is_dir()
    [command] = started
    assert command[1:] == [
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = runner.invoke(app, ["tensorboard", "--port", str(busy)])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"inkloop: error: port {busy} on 127.0.0.1 is already in use; choose another with --port"
    )
    assert len(started) == 1


def test_show_names_the_shipped_model_before_anything_is_registered(inkloop_home: Path) -> None:
    """A fresh home serves the shipped model with an empty registry: `models show` describes it, not "no model
    version"."""
    assert runner.invoke(app, ["init"]).exit_code == 0
    lines = _ok("models", "show", SHIPPED_VERSION).splitlines()
    assert lines[0] == f"model       {SHIPPED_VERSION} (shipped, not registered)"
    assert lines[1].startswith("serves      onnx-int8 (its int8 graph: int8 CER ")
    assert any(line.startswith("training    the shipped model (") for line in lines)
    assert json.loads(_ok("models", "show", SHIPPED_VERSION, "--json"))["serving"]["runtime"] == "onnx-int8"
    missing = runner.invoke(app, ["models", "show", "m-0042"])
    assert missing.exit_code == 1 and "no model version 'm-0042'" in missing.output


def test_a_run_stopped_by_its_time_cap_says_so() -> None:
    from cli.models import render_show

    training = {"steps": 92, "planned_steps": 120, "stopped_early": "the 8-minute time cap", "wall_s": 500.0}
    run = {
        "name": "m-0002", "status": "succeeded", "steps": 92, "wall_s": 500.0, "device": "cpu", "metrics": None,
        "error": None, "tracker": None,
    }  # fmt: skip
    record: dict[str, Any] = {
        "version": "m-0002", "status": "candidate", "created_at": None, "promoted_at": None, "parent": None,
        "parent_registered": False, "dataset_version": None, "serving": None, "gate_reports": [], "promotions": [],
        "card": {"training": {**training, "device": "cpu"}}, "training_run": run,
    }  # fmt: skip
    (line,) = [line for line in render_show(record) if line.startswith("training")]
    assert (
        line == "training    run m-0002: succeeded, 92 of 120 steps (stopped by the 8-minute time cap), 8.3 min on cpu"
    )
