"""The test that proves the training code can learn: the real network, trained by the real LightningModule,
overfits one small batch to a low loss within a fixed number of CPU steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl

from model.charset import Charset
from model.config import TrainConfig
from model.data import FolderDataModule
from model.lit import LitRecognizer, seed_everything

pytestmark = pytest.mark.slow

MAX_STEPS = 300
LOSS_BOUND = 0.3  # per-sample CTC loss; an untrained network starts above 10


def test_overfits_one_batch(line_folder: Path) -> None:
    seed_everything(0)
    config = TrainConfig(
        line_height=32,
        batch_size=4,
        max_steps=MAX_STEPS,
        lr=3e-3,
        augment_enabled=False,
        num_workers=0,
        val_fraction=0.0,
        warmup_fraction=0.1,
    )
    data = FolderDataModule([line_folder], [line_folder], Charset.default(), config)
    lit = LitRecognizer(config.model_dump(mode="json"), Charset.default().characters)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=MAX_STEPS,
        overfit_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(lit, datamodule=data)
    loss = float(trainer.callback_metrics["train/loss"])
    assert loss < LOSS_BOUND, f"loss {loss:.3f} after {MAX_STEPS} steps; the network failed to memorise one batch"
