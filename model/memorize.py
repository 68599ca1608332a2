"""Two gates that need the training code and the eager network rather than the exported artifact.

**Memorization** (can this training path learn this data?): the candidate's own config (network, learning rate,
schedule) and LightningModule, started from the parent's weights as the retrain starts, train on one fixed batch
of the new lines for a fixed number of steps. It passes when the loss on that batch ends below a bound and at most
half of where it began. From scratch would be the textbook version, but a full-size CTC network spends its first
few hundred steps emitting blanks (measured: loss 12.6 -> 2.5 after 300 steps on 4 lines, 112 s on 2 cores), too
slow and too noisy for a gate; from the parent it learns or it does not within 40 steps (measured on 4
handwritten lines: 0.051 -> 0.001 at lr 1e-3; at lr 0 it stays at 0.05 +- dropout noise). The batch is the lines
the parent reads worst, so the starting loss is as far from zero as the new data allows.

**Export parity**: the eager network, rebuilt from the artifact's weights, reads pages as the TorchScript artifact
does; any page read differently is a failure of the export, not of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from model.charset import Charset
from model.config import TrainConfig
from model.data import LineDataset, LineItem, collate
from model.export import TorchScriptSession, _Probabilities, eager_net, load_artifact
from model.lit import LitRecognizer, seed_everything, transfer_weights
from model.recognizer import Recognizer


@dataclass(frozen=True)
class Memorized:
    start_loss: float  # mean of the first steps
    end_loss: float  # mean of the last steps
    losses: list[float]
    lines: int
    steps: int
    seconds: float


def line_losses(artifact: Path, lines: list[LineItem]) -> list[float]:
    """Per-line CTC loss of a model on line crops (eval mode): how badly it reads each."""
    scripted, card = load_artifact(artifact)
    net = eager_net(scripted, card).eval()
    config = TrainConfig.model_validate({**(card.config or {}), "augment_enabled": False, "num_workers": 0})
    dataset = LineDataset(lines, Charset(card.charset), config, train=False)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True, reduction="none")
    losses: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(dataset), 16):
            batch = collate([dataset[i] for i in range(start, min(start + 16, len(dataset)))])
            images, frames, targets, lengths = (batch[k] for k in ("images", "frames", "targets", "target_lengths"))
            assert isinstance(lengths, torch.Tensor)
            logits = net(images, frames)
            log_probs = logits.float().log_softmax(-1).transpose(0, 1)
            loss = ctc(log_probs, targets, frames, lengths)
            losses.extend((loss / lengths.clamp(min=1)).tolist())
    return losses


def memorize(*, candidate: Path, parent: Path, lines: list[LineItem], steps: int, seed: int = 0) -> Memorized:
    """Train the candidate's config from the parent's weights on one fixed batch of `lines` for `steps` steps."""
    import time

    _, card = load_artifact(candidate)
    parent_scripted, parent_card = load_artifact(parent)
    seed_everything(seed)
    config = TrainConfig.model_validate(
        {
            **(card.config or {}),
            "batch_size": len(lines),
            "max_steps": steps,
            "max_minutes": None,
            "augment_enabled": False,
            "num_workers": 0,
            "warmup_fraction": 0.1,
        }
    )
    charset = Charset(card.charset)
    lit = LitRecognizer(config.model_dump(mode="json"), charset.characters)
    transfer_weights(eager_net(parent_scripted, parent_card), lit.net, len(parent_card.charset) + 1)
    dataset = LineDataset(lines, charset, config, train=False)
    if not len(dataset):
        raise ValueError("no usable lines to memorize (each is too narrow for its text)")
    loader = DataLoader(dataset, batch_sampler=[list(range(len(dataset)))] * steps, collate_fn=collate)
    losses: list[float] = []

    class _Record(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, *_: Any) -> None:
            losses.append(float(outputs["loss"]))

    started = time.monotonic()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[_Record()],
    )
    trainer.fit(lit, train_dataloaders=loader)
    window = max(1, min(5, len(losses) // 4))
    return Memorized(
        start_loss=float(np.mean(losses[:window])),
        end_loss=float(np.mean(losses[-window:])),
        losses=[round(x, 5) for x in losses],
        lines=len(dataset),
        steps=len(losses),
        seconds=round(time.monotonic() - started, 2),
    )


def eager_recognizer(artifact: Path) -> Recognizer:
    """The artifact's network run eagerly (not TorchScript), behind the same reading code as serving."""
    scripted, card = load_artifact(artifact)
    module = _Probabilities(eager_net(scripted, card)).eval()
    return Recognizer(TorchScriptSession(module, freeze=False), card, artifact)
