"""Retrain and gate on SQLite and PostgreSQL, against the shipped model, with real (short) training on CPU.

The production traffic is a shift the shipped model reads poorly: paragraphs written in block capitals in the
held-out handwriting families (the planning measurement of this feature: CER 0.045 before, 0.005-0.011 after
fine-tuning). Annotations are written as sync stores them (devtools.records.labelled); the same loop through
Label Studio itself and a live server is tests/flows/test_loop_closes.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import repo
from db.locks import exclusive
from db.models import GateReport, Image, ModelVersion, Promotion, SyntheticSample, TrainingRun
from db.session import make_engine
from devtools.pages import Page, shifted_pages
from devtools.records import labelled
from flows.dataset import DatasetParams, dataset
from flows.gate import GateParams, gate
from flows.retrain import RetrainParams, retrain
from inkloop.domain import ModelStatus, PromotionKind, RunStatus, TaskReason
from inkloop.errors import BusyError
from inkloop.store import ImageStore
from model.gates import GateConfig
from model.registry import read_card
from tests.support.databases import BACKENDS, session_on
from tests.support.paths import REPO, SHIPPED_VERSION

pytestmark = pytest.mark.slow

PROJECT = "inkloop"
# Short on purpose, and still a real fine-tune of the shipped network: 40 steps of 8 lines from the shipped model.
SHORT = {"batch_size": 8, "lr": 0.0005, "warmup_fraction": 0.2, "val_every_steps": 40}
# Speed is measured side by side on a handful of pages while other tests share the 2 cores: the tolerance is wide
# here so that timing noise never decides these tests (the speed rule has its own test in tests/model).
STRICTNESS = GateConfig(heldout_pages=8, speed_rounds=3, speed_tolerance=1.0, replicates=1000)


@dataclass
class Installation:
    url: str
    home: Path
    config: Path

    @property
    def store(self) -> ImageStore:
        return ImageStore(str(self.home / "store"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_on(self.url) as session:
            yield session

    def params(self, **changes: object) -> RetrainParams:
        fields: dict[str, object] = {
            "config": self.config,
            "max_steps": 40,
            "replay_pages": 8,
            "replay_val_pages": 4,
            "stitched": 4,
            "rendered": 4,
            "gate_config": STRICTNESS,
        }
        return RetrainParams.model_validate({**fields, **changes})

    def label(self, pages: list[Page], answers: list[str] | None = None) -> None:
        with self.session() as session:
            for i, page in enumerate(pages):
                labelled(
                    session,
                    self.store,
                    page,
                    project=PROJECT,
                    answer=answers[i] if answers else None,
                    reason=TaskReason.audit if i % 3 == 0 else TaskReason.low_confidence,
                )

    def count(self, model: type) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture(params=BACKENDS)
def installation(
    request: pytest.FixtureRequest,
    inkloop_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
    tmp_path: Path,
) -> Installation:
    url = str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))
    from db.migrate import upgrade

    upgrade(url)
    monkeypatch.setenv("INKLOOP_DATABASE_URL", url)
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_PROJECT", PROJECT)
    monkeypatch.setenv("INKLOOP_MIN_NEW_LABELS", "5")
    config = tmp_path / "short.json"
    config.write_text(json.dumps(SHORT))
    return Installation(url=url, home=inkloop_home, config=config)


@pytest.fixture(scope="module")
def traffic() -> list[Page]:
    return shifted_pages(24, seed=77)


SPLITS = DatasetParams(val_share=0.25, test_share=0.3)


def test_new_labels_retrain_the_champion_and_a_better_candidate_is_promoted(
    installation: Installation, traffic: list[Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.label(traffic)
    built = dataset(SPLITS)
    assert built.created

    monkeypatch.setenv("INKLOOP_MIN_NEW_LABELS", "100")
    waiting = retrain(installation.params())
    assert waiting.candidate is None and waiting.nothing_to_do is not None
    assert "fewer than INKLOOP_MIN_NEW_LABELS=100" in waiting.nothing_to_do
    assert installation.count(TrainingRun) == 0

    summary = retrain(installation.params(force=True))
    assert summary.candidate == "m-0001" and summary.champion == SHIPPED_VERSION and summary.dataset == built.version
    assert summary.gate_passed and summary.promoted, summary.gate_failures
    assert summary.steps == 40 and summary.device == "cpu"
    assert installation.count(SyntheticSample) >= 4  # the synth flow had not run: retrain made the version's pages

    with installation.session() as session:
        run = session.scalars(select(TrainingRun)).one()
        candidate = repo.get_model(session=session, version="m-0001")
        base = repo.get_model(session=session, version=SHIPPED_VERSION)
        assert run.status is RunStatus.succeeded and run.result_model_id == candidate.id
        assert run.parent_model_id == base.id and run.steps == 40 and run.wall_s and run.wall_s > 0
        assert run.config and run.config["max_steps"] == 40 and run.config["net"] == (base.card or {})["config"]["net"]
        assert run.dataset_version_id == candidate.dataset_version_id
        assert candidate.status is ModelStatus.champion and base.status is ModelStatus.retired
        report = session.scalars(select(GateReport)).one()
        assert report.passed and report.candidate_id == candidate.id and report.champion_id == base.id
        checks = {c["name"]: c for c in report.checks["checks"]}
        assert set(checks) == {"memorization", "regression", "export_parity", "calibration", "speed"}
        test_all = next(s for s in report.checks["slices"] if s["name"] == "test/all")
        assert test_all["candidate_cer"] < test_all["champion_cer"]
        promotions = {p.kind: p for p in session.scalars(select(Promotion))}
        assert promotions[PromotionKind.gate].model_id == candidate.id
        assert promotions[PromotionKind.gate].gate_report_id == report.id
        report_path = Path(report.report_path or "")
        tracker = Path(run.tracker or "")
        card = candidate.card or {}
    assert report_path.is_file() and "m-0001" in report_path.read_text()
    assert any(tracker.glob("events.out.tfevents.*")), f"no TensorBoard events in {tracker}"
    assert card["training_data"]["dataset_version"] == built.version and card["parent"]["version"] == SHIPPED_VERSION

    # Nothing new since the new champion trained: nothing to do.
    again = retrain(installation.params())
    assert again.candidate is None and again.new_labels == 0
    assert installation.count(TrainingRun) == 1


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_a_candidate_trained_on_shuffled_labels_is_rejected_naming_the_slice(
    installation: Installation, traffic: list[Page]
) -> None:
    # Every page gets the text of another page with the same number of lines: well-formed, wrong labels.
    by_lines: dict[int, list[int]] = {}
    for i, page in enumerate(traffic):
        by_lines.setdefault(page.text.count("\n"), []).append(i)
    answers = [page.text for page in traffic]
    for group in by_lines.values():
        for a, b in zip(group, group[1:] + group[:1], strict=True):
            answers[a] = traffic[b].text
    installation.label(traffic, answers)
    dataset(SPLITS)
    strict = STRICTNESS.model_copy(update={"min_slice_pages": 5})
    summary = retrain(installation.params(force=True, gate_config=strict, config=None, max_steps=30))
    assert summary.candidate == "m-0001" and summary.gate_passed is False and not summary.promoted
    regression = next(f for f in summary.gate_failures if f.startswith("regression:"))
    with installation.session() as session:
        report = session.scalars(select(GateReport)).one()
        failed = next(c for c in report.checks["checks"] if c["name"] == "regression")["details"]["failed_slices"]
    # Which test slices fall depends on the draw (learning "write in capitals" from the wrong texts can even help the
    # capitals traffic); the golden pages, ordinary handwriting, always do. Every failed slice is named.
    assert "golden/all" in failed and all(name in regression for name in failed)
    with installation.session() as session:
        assert repo.get_model(session=session, version="m-0001").status is ModelStatus.rejected
        assert repo.get_champion(session=session).version == SHIPPED_VERSION  # type: ignore[union-attr]


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_a_config_that_cannot_learn_fails_memorization_and_an_empty_slice_fails(
    installation: Installation, traffic: list[Page], tmp_path: Path
) -> None:
    installation.label(traffic)
    dataset(SPLITS)
    frozen = tmp_path / "lr0.json"
    frozen.write_text(json.dumps({**SHORT, "lr": 0.0}))
    required = ("test/all", "golden/all", "test/reason/flagged")  # nothing was flagged
    strict = STRICTNESS.model_copy(update={"required": required})
    summary = retrain(installation.params(force=True, config=frozen, max_steps=2, gate_config=strict))
    assert summary.gate_passed is False
    failures = {f.split(":", 1)[0]: f for f in summary.gate_failures}
    assert "memorization" in failures and "at most half its start" in failures["memorization"]
    assert "test/reason/flagged: configured slice with no pages" in failures["regression"]

    # Re-gating reads the same candidate again and rejects it again; it is never promoted.
    regated = gate(GateParams(model="m-0001", required=required, heldout_pages=8, memorization_steps=10))
    assert regated.passed is False and not regated.promoted
    assert installation.count(GateReport) == 2


def test_two_retrains_never_run_at_once(installation: Installation, traffic: list[Page]) -> None:
    installation.label(traffic[:8])
    dataset(SPLITS)
    engine = make_engine(installation.url)
    try:
        with exclusive(engine, "retrain", wait=False), pytest.raises(BusyError, match="another retrain is running"):
            retrain(installation.params(force=True))
    finally:
        engine.dispose()
    assert installation.count(TrainingRun) == 0


def test_a_retrain_killed_mid_run_resumes_to_one_candidate(installation: Installation, traffic: list[Page]) -> None:
    from prefect.settings import PREFECT_API_URL

    installation.label(traffic)
    dataset(SPLITS)
    often = installation.config.parent / "often.json"
    often.write_text(json.dumps({**SHORT, "val_every_steps": 10}))  # a checkpoint every 10 steps
    args = ["-p", "force=true", "-p", f"config={often}", "-p", "max_steps=40", "-p", "gate=false"]
    args += ["-p", "replay_pages=8", "-p", "replay_val_pages=4", "-p", "stitched=4", "-p", "rendered=4"]
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "inkloop"), "flow", "run", "retrain", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = installation.home / "runs" / "m-0001" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.is_file():
            assert process.poll() is None, "the retrain ended before it was killed"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    with installation.session() as session:
        killed = session.scalars(select(TrainingRun)).one()
        assert killed.status is RunStatus.running and killed.result_model_id is None
    assert installation.count(ModelVersion) == 1  # the shipped model, the champion it started from

    params = installation.params(force=True, config=often, gate=False)
    resumed = retrain(params)
    assert resumed.resumed and resumed.candidate == "m-0001" and resumed.steps == 40
    again = retrain(params)
    assert again.already_trained and again.candidate == "m-0001"

    with installation.session() as session:
        run = session.scalars(select(TrainingRun)).one()
        assert run.status is RunStatus.succeeded and run.name == "m-0001"
        models = {m.version: m for m in repo.list_models(session=session)}
        assert set(models) == {SHIPPED_VERSION, "m-0001"}
        artifacts = {m.artifact_key for m in models.values()}
        images = set(session.scalars(select(Image.sha256)))
    stored = set(installation.store.keys())
    assert stored <= images | artifacts, "an object in the store that no row refers to"
    assert read_card(installation.home / "runs" / "m-0001" / "model.pt").version == "m-0001"


@pytest.mark.parametrize("installation", ["sqlite"], indirect=True)
def test_a_version_of_paragraph_answers_only_retrains_without_stitched_pages_and_says_so(
    installation: Installation, traffic: list[Page]
) -> None:
    # Every annotator retyped the whole paragraph, as the labeling screen allows: no line boxes. And each typed it
    # on one row, so the segmenter's lines (two or three a page) cannot be paired with the text either: there is
    # no line to stitch. The nightly retrain must still train (on the rendered and replay pages) and say why.
    pages = [replace(page, boxes=None) for page in traffic if "\n" in page.text][:9]
    installation.label(pages, [page.text.replace("\n", " ") for page in pages])
    built = dataset(SPLITS)
    assert built.created

    summary = retrain(installation.params(force=True, gate=False, max_steps=4))
    assert summary.candidate == "m-0001" and summary.steps == 4
    assert summary.stitched is not None and summary.stitched.startswith(
        "0: no annotated lines (paragraph answers only)"
    )
    assert f"train pages of {built.version}" in summary.stitched
    assert summary.rendered == 4
    shown = dict(summary.rows())  # what `inkloop flow run retrain` prints
    assert shown["stitched"] == summary.stitched and shown["rendered"] == "4"
    with installation.session() as session:
        generators = sorted(session.scalars(select(SyntheticSample.generator)))
        run = session.scalars(select(TrainingRun)).one()
    assert generators == ["font"] * 4
    assert run.status is RunStatus.succeeded
