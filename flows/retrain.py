"""The retrain flow: when the newest dataset version holds enough labels the champion never trained on, fine-tune
the champion on them with replay, register the candidate, and hand it to the gate flow.

What it trains on: the version's train split, the synthetic pages made for it (stitched from its annotated lines
and font-rendered, made here when the synth flow has not run; a version whose answers are all whole paragraphs,
with no line the segmenter can cut to match, trains without stitched pages and the summary's `stitched` says so
rather than failing the run), and pages of the base recipe's kind (rendered in
the training fonts, 30% in block capitals, cached under INKLOOP_HOME/cache/replay/). Measured while planning: 300
steps on 200 pages of one new style alone made the model unusable on mixed case (CER 0.11 -> 0.60); the same
steps with 400 replay pages kept it (0.110 -> 0.103) and still learnt the style (0.045 -> 0.011). It validates on
the version's val split plus replay validation pages, so the best checkpoint is the one that learnt without
forgetting, and the calibration is fitted on both.

The recipe (model/configs/retrain.json) loads data in the training process (`num_workers: 0`): DataLoader workers
forked from inside a Prefect flow run inherit its signal handlers and die at shutdown (exit code 1, seen here), and
on 2 cores the augmentation is a few milliseconds against a step of about two seconds.

Invariants:
- Two retrains never run at once: a database-held lock (db/locks.py); the second refuses, or waits with
  `-p wait=true`. The lock dies with its holder.
- One dataset version + parent + config gives at most one candidate: the training run's `run_key`. A run that died
  keeps its row and folder; the next run with the same key resumes from its last checkpoint (or from its exported
  artifact, when it died while registering), under the same name.
- The candidate and the run's `succeeded` status are written in one transaction with the artifact already in the
  store (content-addressed: a rerun stores the same bytes under the same key, never a second copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytorch_lightning as pl
import torch
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from pydantic import BaseModel, ConfigDict, Field

from db import repo
from db.locks import exclusive
from db.models import TrainingRun
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from flows.dataset_export import export_version
from flows.gate import GateParams, gate
from flows.synth import SynthParams, synthesize
from inkloop.domain import ModelStatus, RunStatus, Split
from inkloop.errors import BusyError, InkloopError, first_line
from model.config import TrainConfig
from model.gates import GateConfig
from model.recognizer import SHIPPED_MODEL
from model.registry import ensure_champion, materialize, register
from model.train import Tracking, train
from synth.generate import SynthOptions, generate

RETRAIN_CONFIG = Path(__file__).resolve().parents[1] / "model" / "configs" / "retrain.json"
LOCK = "retrain"


class RetrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(False, description="Train even with fewer than INKLOOP_MIN_NEW_LABELS new labels.")
    dataset: str | None = Field(None, description="Dataset version to train on (default: the newest).")
    config: Path | None = Field(None, description="JSON file of TrainConfig fields over model/configs/retrain.json.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps (overrides the config).")
    max_minutes: float | None = Field(None, gt=0, description="Wall-time bound of training (overrides the config).")
    stitched: int = Field(
        100,
        ge=0,
        description=(
            "Pages stitched from the version's lines, when synth has not run (none where it has no lines to stitch: "
            "the summary says so)."
        ),
    )
    rendered: int = Field(100, ge=0, description="Font-rendered pages for the version, when synth has not run.")
    replay_pages: int = Field(400, ge=0, description="Base-recipe pages trained on beside the new labels.")
    replay_val_pages: int = Field(60, ge=0, description="Base-recipe pages validated on beside the val split.")
    replay_seed: int = Field(21, ge=0, description="Seed of the replay pages (same seed, same pages).")
    wait: bool = Field(False, description="If another retrain is running, wait for it instead of stopping.")
    gate: bool = Field(True, description="Gate (and promote) the candidate when training ends.")
    gate_config: GateConfig | None = Field(None, description="The gate's strictness (default: GateParams').")


class RetrainSummary(FlowSummary):
    dataset: str | None = None
    champion: str | None = None
    new_labels: int = 0
    nothing_to_do: str | None = None
    candidate: str | None = None
    resumed: bool | None = None
    already_trained: bool | None = None
    train_pages: int | None = None  # the version's train split and its synthetic pages
    stitched: str | None = None  # how many stitched pages it trained on, from which lines, or why none
    rendered: int | None = None  # font-rendered pages it trained on
    replay_pages: int | None = None
    charset_added: str | None = None
    steps: int | None = None
    stopped_early: str | None = None  # "at step 92 of 120: the 8-minute time cap", when a cap ended training
    device: str | None = None
    train_seconds: float | None = None
    val_cer: float | None = None
    tracker: str | None = None
    gate_passed: bool | None = None
    promoted: bool | None = None
    gate_failures: list[str] = Field(default_factory=list)
    gate_report: str | None = None


def resolve_config(champion_config: dict[str, Any] | None, params: RetrainParams) -> TrainConfig:
    """The champion's network and input (a warm start needs them unchanged), the retrain recipe over them, then
    the user's file and the step and time bounds."""
    base = {
        k: v for k, v in (champion_config or {}).items() if k in ("net", "line_height", "max_line_width", "augment")
    }
    fields: dict[str, Any] = {**base, **json.loads(RETRAIN_CONFIG.read_text())}
    if params.config is not None:
        try:
            extra = json.loads(Path(params.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InkloopError(f"cannot read config {params.config}: {exc}") from None
        if not isinstance(extra, dict):
            raise InkloopError(f"config {params.config} must hold a JSON object of TrainConfig fields")
        fields.update(extra)
    if params.max_steps is not None:
        fields["max_steps"] = params.max_steps
    if params.max_minutes is not None:
        fields["max_minutes"] = params.max_minutes
    try:
        return TrainConfig.model_validate(fields)
    except ValueError as exc:
        raise InkloopError(f"invalid training config: {first_line(exc)}") from None


def replay_folder(replay: Path, count: int, seed: int) -> Path:
    """Pages of the base recipe's kind (training fonts, 30% block capitals, 20% light on dark), cached."""
    folder = replay / f"base-{count}-seed{seed}"
    if not (folder / "labels.jsonl").is_file():
        generate(folder, SynthOptions(count=count, seed=seed, caps_share=0.3), workers=os.cpu_count() or 1)
    return folder


class PrefectProgress(pl.Callback):
    """Training progress where Prefect shows it: a progress artifact (percent of steps) and log lines with the
    step, the loss and each validation's CER."""

    def __init__(self, name: str, total: int, every: int = 25) -> None:
        self.name, self.total, self.every = name, total, every
        self.logger = get_run_logger()
        created = create_progress_artifact(0.0, key=f"retrain-{name}", description=f"training {name}")
        assert isinstance(created, UUID)  # called from sync code, so not a coroutine
        self.artifact = created

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, *_: Any) -> None:
        step = trainer.global_step
        if step % self.every == 0 or step == self.total:
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float("nan")
            self.logger.info("%s step %d/%d loss %.4f", self.name, step, self.total, loss)
            update_progress_artifact(self.artifact, min(100.0, 100.0 * step / max(self.total, 1)))

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/cer")
        if value is not None:
            self.logger.info("%s step %d val CER %.4f", self.name, trainer.global_step, float(value))


def _export(context: FlowContext, version: str, out: Path, split: Split, synthetic: bool) -> Path:
    """The split as a training folder (kept: an export is renamed into place only when complete)."""
    if not (out / "labels.jsonl").is_file():
        shutil.rmtree(out, ignore_errors=True)
        with context.transaction(write=False) as session:
            export_version(session, context.store, version=version, out=out, split=split, synthetic=synthetic)
    return out


def _synthetic_pages(context: FlowContext, version: str, params: RetrainParams, summary: RetrainSummary) -> None:
    """The version's stitched and rendered pages: the synth flow's, or made now when it has not run for it. A
    version with no lines to stitch (every answer a whole paragraph, as the labeling screen allows) trains without
    stitched pages: a nightly run must not fail on what annotators may do; `summary.stitched` says why."""
    with context.transaction(write=False) as session:
        row = repo.get_dataset(session=session, version=version)
        made = repo.synthetic_samples(session=session, version_id=row.id)
    if made:
        stitched = sum(1 for sample in made if sample.generator == "stitch")
        summary.stitched, summary.rendered = f"{stitched} (made by the synth flow)", len(made) - stitched
        return
    if not (params.stitched or params.rendered):
        summary.stitched, summary.rendered = "0", 0
        return
    done = synthesize(
        context,
        SynthParams(version=version, stitched=params.stitched, rendered=params.rendered),
        require_lines=False,
    )
    summary.stitched, summary.rendered = done.stitched_line() if params.stitched else "0", done.rendered
    get_run_logger().info("made %d stitched and %d rendered pages for %s", done.stitched, done.rendered, version)
    if done.not_stitched:
        get_run_logger().warning("no stitched pages for %s: %s", version, done.not_stitched)


def _device() -> str:
    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain trains on and from: the dataset version, the champion it fine-tunes (its artifact, network
    config and charset), and how many of the version's train labels the champion never learnt from."""

    dataset: str
    dataset_id: int
    content_hash: str
    counts: dict[str, int]  # pages per split
    champion: str
    champion_id: int
    champion_key: str
    champion_config: dict[str, Any] | None
    champion_charset: list[str] | None
    train_members: int
    new: int


@dataclass(frozen=True)
class NothingToRetrain:
    reason: str


@task(name="retrain-plan", **IO_TASK)
def plan(params: RetrainParams) -> RetrainPlan | NothingToRetrain:
    """What to train: the dataset, the champion, the count of new labels; or why nothing."""
    with flow_context() as context, context.transaction() as session:
        dataset = (
            repo.get_dataset(session=session, version=params.dataset)
            if params.dataset
            else repo.newest_dataset(session=session)
        )
        if dataset is None:
            return NothingToRetrain("no dataset version yet: run inkloop flow run dataset")
        champion = ensure_champion(session=session, store=context.store, shipped=SHIPPED_MODEL)
        seen = (
            repo.trained_labels(session=session, version_id=champion.dataset_version_id)
            if champion.dataset_version_id
            else set()
        )
        members = repo.dataset_members(session=session, version_id=dataset.id, split=Split.train)
        new = sum(1 for m in members if (m.image_sha256, m.text) not in seen)
        return RetrainPlan(
            dataset=dataset.version,
            dataset_id=dataset.id,
            content_hash=dataset.content_hash,
            counts=dict(dataset.counts or {}),
            champion=champion.version,
            champion_id=champion.id,
            champion_key=champion.artifact_key,
            champion_config=(champion.card or {}).get("config"),
            champion_charset=(champion.card or {}).get("charset"),
            train_members=len(members),
            new=new,
        )


def _claim(context: FlowContext, key: str, plan_: RetrainPlan, config: TrainConfig) -> tuple[TrainingRun, bool]:
    """The run row for `key`: a new one, or the one a dead run left (resumed). Returns it and whether it is new.
    Other runs still marked running died (the lock is ours): they are marked failed."""
    paths = context.settings.paths
    with context.transaction() as session:
        for stale in repo.training_runs(session=session, status=RunStatus.running):
            if stale.run_key != key:
                repo.finish_training_run(
                    session=session, run=stale, status=RunStatus.failed, error="interrupted: its process stopped"
                )
        existing = repo.training_run_by_key(session=session, run_key=key)
        if existing is not None:
            if existing.status is RunStatus.failed:
                repo.restart_training_run(session=session, run=existing)
                shutil.rmtree(existing.run_dir or "", ignore_errors=True)  # start clean
            session.expunge(existing)
            return existing, False
        run = repo.start_training_run(
            session=session,
            run_key=key,
            dataset_version_id=plan_.dataset_id,
            parent_model_id=plan_.champion_id,
            config=config.model_dump(mode="json"),
            device=_device(),
            run_dir="",
            tracker=None,
        )
        name = run.name or key[:12]
        repo.place_training_run(
            session=session, run=run, run_dir=str(paths.runs / name), tracker=str(paths.tensorboard / name)
        )
        session.expunge(run)
        return run, True


def train_candidate(context: FlowContext, params: RetrainParams, plan_: RetrainPlan, summary: RetrainSummary) -> str:
    """Train (or resume, or find) the candidate of this dataset, champion and config; its version."""
    log = get_run_logger()
    config = resolve_config(plan_.champion_config, params)
    key = run_key_from(plan_, config, params)
    with context.transaction(write=False) as session:
        done = repo.training_run_by_key(session=session, run_key=key)
        if done is not None and done.status is RunStatus.succeeded and done.result_model_id is not None:
            model = repo.models_by_id(session=session, ids=[done.result_model_id])[done.result_model_id]
            summary.already_trained, summary.candidate = True, model.version
            log.info("this dataset, champion and config already gave %s; not training again", model.version)
            return model.version
    run, new = _claim(context, key, plan_, config)
    name = run.name or key[:12]
    paths = context.settings.paths
    run_dir = Path(run.run_dir or paths.runs / name)
    summary.candidate, summary.tracker, summary.device = name, run.tracker, _device()
    started = time.monotonic()
    try:
        data = run_dir / "data"
        counts = plan_.counts
        if not counts.get("train"):
            raise InkloopError(f"dataset version {plan_.dataset} has no train pages")
        _synthetic_pages(context, plan_.dataset, params, summary)
        train_dir = _export(context, plan_.dataset, data / "train", Split.train, synthetic=True)
        train_dirs = [train_dir]
        val_dirs = (
            [_export(context, plan_.dataset, data / "val", Split.val, synthetic=False)] if counts.get("val") else []
        )
        if params.replay_pages:
            train_dirs.append(replay_folder(paths.replay, params.replay_pages, params.replay_seed))
        if params.replay_val_pages:
            val_dirs.append(replay_folder(paths.replay, params.replay_val_pages, params.replay_seed + 1))
        summary.train_pages = sum(1 for _ in (train_dir / "labels.jsonl").open())
        summary.replay_pages = params.replay_pages
        artifact = run_dir / "model.pt"
        last = run_dir / "checkpoints" / "last.ckpt"
        summary.resumed = not new and (last.is_file() or artifact.is_file())
        if not artifact.is_file() or not _card_of(artifact, name):
            with context.transaction(write=False) as session:
                parent = repo.get_model(session=session, version=plan_.champion)
            init = materialize(context.store, parent.artifact_key, paths.models)
            log.info(
                "%s %s on %s (+%d replay pages) from %s, %d steps on %s",
                "resuming" if last.is_file() else "training",
                name,
                plan_.dataset,
                params.replay_pages,
                plan_.champion,
                config.max_steps,
                summary.device,
            )
            train(
                train_dirs,
                val_dirs,
                run_dir,
                config,
                init=init,
                grow_charset=True,
                resume=last.is_file(),
                version=name,
                cache_dir=paths.line_cache,
                callbacks=[PrefectProgress(name, config.max_steps)],
                tracking=Tracking(
                    root=paths.tensorboard,
                    run=name,
                    tags={"dataset_version": plan_.dataset, "parent": plan_.champion, "run_key": key[:12]},
                ),
                dataset_version=plan_.dataset,
            )
        from model.registry import read_card

        card = read_card(artifact)
        added = [c for c in card.charset if c not in set(plan_.champion_charset or card.charset)]
        summary.charset_added = "".join(added) or None
        with context.transaction() as session:
            row, _ = register(
                session=session,
                store=context.store,
                path=artifact,
                version=name,
                dataset_version_id=plan_.dataset_id,
            )
            run_row = repo.training_run_by_key(session=session, run_key=key)
            assert run_row is not None
            val = card.metrics.get("val")
            repo.finish_training_run(
                session=session,
                run=run_row,
                status=RunStatus.succeeded,
                result_model_id=row.id,
                steps=card.training.steps if card.training else None,
                wall_s=card.training.fit_s if card.training else None,
                metrics={name: m.model_dump(mode="json", exclude_none=True) for name, m in card.metrics.items()},
            )
        summary.steps = card.training.steps if card.training else None
        if card.training and card.training.stopped_early:
            summary.stopped_early = (
                f"at step {card.training.steps} of {card.training.planned_steps}: {card.training.stopped_early}"
            )
        summary.train_seconds = round(time.monotonic() - started, 1)
        summary.val_cer = val.cer if val else None
        return name
    except BaseException as exc:
        if isinstance(exc, Exception):
            with context.transaction() as session:
                run_row = repo.training_run_by_key(session=session, run_key=key)
                if run_row is not None:
                    repo.finish_training_run(
                        session=session, run=run_row, status=RunStatus.failed, error=first_line(exc)
                    )
        raise


def _card_of(artifact: Path, name: str) -> bool:
    """Whether `artifact` is this run's finished export (a run killed while registering left it)."""
    from model.registry import RegistryError, read_card

    try:
        return read_card(artifact).version == name
    except RegistryError:
        return False


def run_key_from(plan_: RetrainPlan, config: TrainConfig, params: RetrainParams) -> str:
    identity = {
        "dataset": plan_.content_hash,
        "parent": [plan_.champion, plan_.champion_key],
        "config": config.model_dump(mode="json"),
        "replay": [params.replay_pages, params.replay_val_pages, params.replay_seed],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@contextmanager
def _only_one(context: FlowContext, wait: bool) -> Iterator[None]:
    """The retrain lock, or BusyError naming the run that holds it."""
    try:
        lock = exclusive(context.engine, LOCK, wait=wait)
        lock.__enter__()
    except BusyError:
        with context.transaction(write=False) as session:
            running = repo.training_runs(session=session, status=RunStatus.running)
        who = f" ({running[-1].name}, started {running[-1].started_at:%Y-%m-%d %H:%M} UTC)" if running else ""
        raise BusyError(
            f"another retrain is running{who}; this one stops (rerun with -p wait=true to queue behind it)"
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


@flow(name="retrain", log_prints=True)
def retrain(params: RetrainParams | None = None) -> RetrainSummary:
    """Fine-tune the champion on new labels with replay, then gate the candidate (promoted only if it passes)."""
    params = params or RetrainParams()
    started = time.perf_counter()
    summary = RetrainSummary()
    with flow_context() as context, _only_one(context, params.wait):
        plan_ = plan(params)
        if isinstance(plan_, NothingToRetrain):
            summary.nothing_to_do = plan_.reason
            return finish(summary, started=started, name="retrain", title="Retrain")
        summary.dataset, summary.champion, summary.new_labels = plan_.dataset, plan_.champion, plan_.new
        minimum = context.settings.min_new_labels
        if plan_.new < minimum and not params.force:
            summary.nothing_to_do = (
                f"{plan_.new} new labels in {plan_.dataset} since {plan_.champion}, fewer than "
                f"INKLOOP_MIN_NEW_LABELS={minimum} (-p force=true trains anyway)"
            )
            return finish(summary, started=started, name="retrain", title="Retrain")
        candidate = train_candidate(context, params, plan_, summary)
        with context.transaction(write=False) as session:
            status = repo.get_model(session=session, version=candidate).status
    if params.gate and status is ModelStatus.candidate:
        strictness = params.gate_config.model_dump() if params.gate_config else {}
        gated = gate(GateParams(**strictness, model=candidate))
        summary.gate_passed, summary.promoted = gated.passed, gated.promoted
        summary.gate_failures, summary.gate_report = gated.failures, gated.report
    return finish(summary, started=started, name="retrain", title="Retrain")
