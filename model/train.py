"""Train a recognizer end to end: data, optional warm start, Lightning fit with checkpoints and resume,
confidence calibration on validation pages, export of the artifact with its model card."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from inkloop.card import InputSpec, Metrics, ModelCard, Parent, TrainingData, TrainingRun
from inkloop.errors import InkloopError
from inkloop.labels import folder_licences
from inkloop.text import cer, corpus_cer
from model.charset import Charset
from model.confidence import confidence_report, fit
from model.config import TrainConfig
from model.data import FolderDataModule
from model.export import (
    OnnxSession,
    Runtime,
    embed_int8,
    export,
    int8_graph,
    load_artifact,
)
from model.lit import LitRecognizer, seed_everything, transfer_weights
from model.nets.lines import LineNet, LineNetConfig
from model.recognizer import Recognizer, open_image
from model.runtimes import INT8_MAX_CER
from model.segment import VERSION as SEGMENTER_VERSION

log = logging.getLogger(__name__)


class TrainingError(InkloopError):
    """Training could not start or produced no model."""


@dataclass
class TrainResult:
    artifact: Path
    card: ModelCard


def _warm_start(init: Path, data: FolderDataModule, config: TrainConfig, grow: bool) -> tuple[Charset, LineNet, Parent]:
    """The charset and network of an existing artifact (and its card's lineage entry); the charset grows by the
    data's new characters if asked."""
    scripted, card = load_artifact(init)
    old = Charset(card.charset)
    if card.input.line_height != config.line_height:
        # The network is fully convolutional up to a max over rows, so other heights run; they just read worse.
        log.warning("warm start from %s-row to %d-row lines", card.input.line_height, config.line_height)
    if card.config is None or "net" not in card.config:
        raise TrainingError(f"{init} has no training config in its model card, so its network is unknown")
    net_config = LineNetConfig.model_validate(card.config["net"])
    if net_config != config.net:
        raise TrainingError(f"{init} has network {net_config}, the config asks for {config.net}")
    charset, added = old.grow(data.texts()) if grow else (old, [])
    if added:
        log.warning("charset grows by %d characters from the training data: %s", len(added), "".join(added))
    source = LineNet(len(old), net_config)
    source.load_state_dict(scripted.net.state_dict())
    target = LineNet(len(charset), net_config)
    transfer_weights(source, target, len(old))
    return charset, target, Parent(version=card.version, artifact=str(init))


@dataclass(frozen=True)
class Tracking:
    """Where a run's curves go besides OUT/logs: a TensorBoard run folder (`inkloop tensorboard` shows them all),
    with what a reader needs to tell runs apart logged as its hyperparameters."""

    root: Path  # INKLOOP_HOME/tensorboard
    run: str  # the run's folder name under root
    tags: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.root / self.run


def _input_card(config: TrainConfig) -> InputSpec:
    return InputSpec(
        line_height=config.line_height,
        max_line_width=config.max_line_width,
        channels=1,
        ink="1 = ink",
        segmenter=SEGMENTER_VERSION,
    )


def train(
    train_dirs: list[Path],
    val_dirs: list[Path],
    out: Path,
    config: TrainConfig,
    *,
    init: Path | None = None,
    grow_charset: bool = False,
    resume: bool = False,
    version: str | None = None,
    cache_dir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    tracking: Tracking | None = None,
    dataset_version: str | None = None,
) -> TrainResult:
    """Train (or, with `init`, fine-tune) and export OUT/model.pt. `cache_dir` keeps segmented line crops
    between runs on the same folders; `callbacks` join Lightning's (progress reports); `tracking` adds a
    TensorBoard run; `dataset_version` is written into the card's training data."""
    seed_everything(config.seed)
    started = time.monotonic()
    data = FolderDataModule(train_dirs, val_dirs, Charset.default(), config, cache_dir=cache_dir)
    charset = Charset.default()
    lit = None
    parent = None
    if init is not None:
        charset, net, parent = _warm_start(init, data, config, grow_charset)
        lit = LitRecognizer(config.model_dump(mode="json"), charset.characters)
        lit.net.load_state_dict(net.state_dict())
    data.charset = charset
    lit = lit or LitRecognizer(config.model_dump(mode="json"), charset.characters)

    cuda = torch.cuda.is_available()
    precision = ("bf16-mixed" if cuda else "32-true") if config.precision == "auto" else config.precision
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        monitor="val/cer",
        mode="min",
        save_last=True,
        filename="step{step}-cer{val/cer:.4f}",
        auto_insert_metric_name=False,
    )
    interactive = sys.stderr.isatty()
    name = version or out.name
    loggers: list[Logger] = [CSVLogger(out, name="logs")]
    if tracking is not None:
        board = TensorBoardLogger(tracking.root, name=tracking.run, version="", default_hp_metric=False)
        board.log_hyperparams({**tracking.tags, "config": config.model_dump(mode="json")})
        loggers.append(board)
    trainer = pl.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision=precision,
        max_steps=config.max_steps,
        max_time=timedelta(minutes=config.max_minutes) if config.max_minutes else None,
        val_check_interval=config.val_every_steps,
        check_val_every_n_epoch=None,
        callbacks=[
            checkpoints,
            LearningRateMonitor(logging_interval="step"),
            RichProgressBar() if interactive else ProgressLines(name, config.max_steps),
            *callbacks,
        ],
        enable_progress_bar=interactive,
        logger=loggers,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        default_root_dir=out,
    )
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise TrainingError(f"nothing to resume: {last} does not exist")
    trainer.fit(lit, datamodule=data, ckpt_path=str(last) if resume else None)
    fit_seconds = lit.fit_seconds()
    if not checkpoints.best_model_path and not last.is_file():
        # Stopped (steps or wall time) before its first validation: the weights it has are the result.
        trainer.save_checkpoint(last)

    best_path = checkpoints.best_model_path or str(last)
    best = LitRecognizer.load_from_checkpoint(best_path, map_location="cpu")
    trainer_eval = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer_eval.validate(best, datamodule=data, verbose=False)
    line_errors = np.array([cer(p, t) for _, p, t in best.val_outputs])
    # Confidence is calibrated where it is used: on whole validation pages, read as served (segmentation
    # included), so a page the segmenter gets wrong counts with the CER it really has.
    card = ModelCard(version="calibrating", charset=charset.characters, input=_input_card(config))
    recognizer = Recognizer.load(export(best.net, card, out / "model.pt"))
    pages = recognizer.predict_paths([page.path for page in data.val_pages])
    raw = np.array([p.raw_confidence for p in pages])
    errors = np.array([cer(p.text, page.text) for p, page in zip(pages, data.val_pages, strict=True)])
    calibration = fit(raw, errors)
    elapsed = time.monotonic() - started
    licences, attributions = folder_licences([*map(str, train_dirs), *map(str, val_dirs)])
    card = ModelCard(
        version=version or f"model-{time.strftime('%Y%m%d-%H%M%S')}",
        charset=charset.characters,
        input=_input_card(config),
        parent=parent,
        training_data=TrainingData(
            train=[str(d) for d in train_dirs],
            val=[str(d) for d in val_dirs],
            train_lines=len(data.train_set),
            val_pages=len(data.val_pages),
            dataset_version=dataset_version,
            licences=licences,
            attributions=attributions,
        ),
        metrics={
            "val": Metrics(
                cer=round(float(errors.mean()) if len(errors) else 0.0, 4),
                pages=int(len(errors)),
                confidence=confidence_report(raw, errors, calibration),
            ),
            "val_lines": Metrics(cer=round(float(line_errors.mean()), 4), lines=int(len(line_errors))),
        },
        calibration=calibration.as_card(),
        config=config.model_dump(mode="json"),
        training=TrainingRun(
            steps=int(trainer.global_step),
            planned_steps=config.max_steps,
            stopped_early=stopped_early(int(trainer.global_step), fit_seconds, config),
            wall_s=round(elapsed, 1),
            fit_s=round(fit_seconds, 1),
            device="cuda" if cuda else "cpu",
            gpu=torch.cuda.get_device_name(0) if cuda else None,
            precision=str(precision),
            best_checkpoint=Path(best_path).name,
        ),
        parameters=sum(p.numel() for p in best.net.parameters()),
    )
    artifact = export(best.net, card, out / "model.pt")
    card = add_int8(artifact, [(page.path, page.text) for page in data.val_pages])
    (out / "card.json").write_text(card.to_json() + "\n")
    return TrainResult(artifact=artifact, card=card)


def stopped_early(steps: int, fit_seconds: float, config: TrainConfig) -> str | None:
    """Why a run ended before the steps its config planned, in words for a person ("the 8-minute time cap"), or
    None when it ran them all."""
    if steps >= config.max_steps:
        return None
    if config.max_minutes and fit_seconds >= 0.95 * 60 * config.max_minutes:
        return f"the {config.max_minutes:g}-minute time cap"
    return "interrupted"


class ProgressLines(pl.Callback):
    """Training progress as plain lines on stderr when it is not a terminal (a log file, a CI job, `make demo`
    piped), where a progress bar would sit at 0/N until it ends: a line every ~10% of the steps (at most one a
    second), with the loss and the time left, and one per validation with its CER."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.every = max(1, total // 10)
        self.started = time.monotonic()
        self.last = 0.0

    def _say(self, text: str) -> None:
        print(f"training {self.name}: {text}", file=sys.stderr, flush=True)

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.started = time.monotonic()
        self._say(f"{self.total} steps from step {trainer.global_step}")

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: object, *_: object) -> None:
        step, now = trainer.global_step, time.monotonic()
        if step % self.every and step != self.total or now - self.last < 1.0:
            return
        self.last = now
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        elapsed = now - self.started
        left = elapsed / max(step, 1) * (self.total - step)
        shown = f", loss {float(loss):.4f}" if loss is not None else ""
        self._say(f"step {step}/{self.total}{shown}, {elapsed:.0f} s (about {left:.0f} s left)")

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/cer")
        if value is not None and not trainer.sanity_checking:
            self._say(f"step {trainer.global_step}/{self.total}, val CER {float(value):.4f}")


INT8_PAGES = 96  # validation pages the int8 graph is checked on: 0.002 of their characters is a few dozen edits
INT8_CALIBRATION_PAGES = 48  # ... and the first of them, whose lines calibrate its activation ranges
# Which convolutions stay float, tried in this order until one reads within INT8_MAX_CER of the float graph. The
# first convolution reads raw pixels into 24 channels: leaving it float costs nothing measurable (m-0001 and a
# fine-tune like it: 3.71 and 3.28 s for 32 pages against 3.89 and 3.45 s with it quantized, float 4.67 and 4.43 s)
# and it is where a fine-tuned network's int8 graph lost most (int8 CER +0.0005 -> -0.0001 and +0.0001 on 96
# validation pages); the last feeds the LSTM. On base-4 the first variant is the better one (+0.0000 against
# +0.0009), so each is tried, not one chosen for all.
INT8_VARIANTS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("every conv int8", ()),
    ("first conv float", (0,)),
    ("first and last conv float", (0, -1)),
)


def _with_int8(card: ModelCard, metric: Metrics) -> ModelCard:
    return card.with_metrics("int8", metric)


def add_int8(
    artifact: Path, pages: Sequence[tuple[Path, str]], limit: int = INT8_PAGES, data: str = "validation pages"
) -> ModelCard:
    """Quantize `artifact` to int8 (model/export.py), calibrated on the lines of the first labelled `pages`, and
    embed the first of INT8_VARIANTS whose CER on up to `limit` pages is within INT8_MAX_CER of the float graph's.
    Either way the card records what was measured (`metrics.int8`: the kept variant's CER, or the best one tried;
    under cer_by, "float" and every variant tried in order, the kept one last), so the registry and the gate can
    say why a model serves with or without it; a graph left out replaces any the artifact had. Returns the card."""
    chosen = list(pages)[:limit]
    float_reader = Recognizer.load(artifact, runtime=Runtime.onnx)
    images = [open_image(path) for path, _ in chosen]
    batches = float_reader.line_batches(images[:INT8_CALIBRATION_PAGES])
    if not batches:
        log.warning("no lines to calibrate an int8 graph on: %s keeps only its float graph", artifact)
        return float_reader.card
    truths = [text for _, text in chosen]
    float_cer = corpus_cer([p.text for p in float_reader.predict_images(images)], truths)
    measured = {"float": round(float_cer, 4)}
    best: tuple[float, str, bytes] | None = None
    for name, float_convs in INT8_VARIANTS:
        int8 = int8_graph(artifact, batches, float_convs)
        int8_reader = Recognizer(OnnxSession(int8, Runtime.onnx_int8), float_reader.card, artifact)
        int8_cer = corpus_cer([p.text for p in int8_reader.predict_images(images)], truths)
        measured[name] = round(int8_cer, 4)
        if best is None or int8_cer < best[0]:
            best = (int8_cer, name, int8)
        if int8_cer - float_cer <= INT8_MAX_CER:
            metric = Metrics(cer=round(int8_cer, 4), pages=len(chosen), data=data, cer_by=measured)
            return embed_int8(artifact, int8, partial(_with_int8, metric=metric))
    assert best is not None
    log.warning(
        "int8 reads at CER %.4f at best (%s), float at %.4f (bound +%s): left out", best[0], best[1], float_cer,
        INT8_MAX_CER,
    )  # fmt: skip
    metric = Metrics(cer=round(best[0], 4), pages=len(chosen), data=data, cer_by=measured)
    return embed_int8(artifact, None, partial(_with_int8, metric=metric))  # and drop an int8 graph it had
