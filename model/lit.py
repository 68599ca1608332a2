"""Training logic: CTC loss, greedy decoding for validation CER (torchmetrics), optimiser and schedule. The
network itself lives in model/nets and knows nothing of this."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.text import CharErrorRate

from model.charset import BLANK, Charset
from model.config import TrainConfig
from model.decode import greedy
from model.nets.lines import LineNet


class LitRecognizer(pl.LightningModule):
    def __init__(self, config: dict[str, Any], charset: list[str]) -> None:
        super().__init__()
        # Plain types in hparams: the typed config and charset are rebuilt from them when a checkpoint loads.
        self.save_hyperparameters({"config": config, "charset": charset})
        self.config = TrainConfig.model_validate(config)
        self.charset = Charset(charset)
        self.net = LineNet(len(self.charset), self.config.net)
        self.ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
        self.val_cer = CharErrorRate()
        self.val_outputs: list[tuple[float, str, str]] = []
        # Training wall time, carried in checkpoints so a resumed run reports the time of all its parts.
        self.fit_seconds_before = 0.0
        self.fit_started = time.monotonic()

    def forward(self, images: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return self.net(images, frames)

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(batch["images"], batch["frames"])  # (B, T, K)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, K) as CTCLoss wants
        return self.ctc(log_probs, batch["targets"], batch["frames"], batch["target_lengths"]), logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["texts"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, logits = self._loss(batch)
        probs = logits.float().softmax(-1).cpu().numpy()
        predictions = [greedy(p[:n], self.charset) for p, n in zip(probs, batch["frames"].tolist(), strict=True)]
        self.val_cer.update([d.text for d in predictions], batch["texts"])
        self.val_outputs.extend((d.raw_confidence, d.text, t) for d, t in zip(predictions, batch["texts"], strict=True))
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch["texts"]))

    def on_validation_epoch_start(self) -> None:
        self.val_outputs = []

    def on_validation_epoch_end(self) -> None:
        self.log("val/cer", self.val_cer.compute(), prog_bar=True)
        self.val_cer.reset()

    def on_fit_start(self) -> None:
        self.fit_started = time.monotonic()

    def fit_seconds(self) -> float:
        return self.fit_seconds_before + time.monotonic() - self.fit_started

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["inkloop_fit_seconds"] = self.fit_seconds()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.fit_seconds_before = float(checkpoint.get("inkloop_fit_seconds", 0.0))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def lr_factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to zero at max_steps. A function of the step and the *current*
        config, so resuming with a larger --max-steps stretches the schedule instead of failing. With a wall-time
        bound (max_minutes) the decay follows whichever runs out first, steps or time, so a run sized by the
        clock (a lent GPU) still ends at a learning rate near zero instead of being cut off at its peak."""
        total = self.config.max_steps
        warmup = max(int(total * self.config.warmup_fraction), 1)
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        if self.config.max_minutes:
            progress = max(progress, self.fit_seconds() / (60 * self.config.max_minutes))
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def transfer_weights(source: LineNet, target: LineNet, old_classes: int) -> None:
    """Warm start: copy every weight; the classifier keeps the old classes' rows (new characters are appended at
    the end of the charset, so ids match) and new rows start near zero."""
    target_state = target.state_dict()
    for name, value in source.state_dict().items():
        if name.startswith("classifier.") and value.shape != target_state[name].shape:
            target_state[name][:old_classes] = value
        elif value.shape == target_state[name].shape:
            target_state[name] = value
    target.load_state_dict(target_state)


def seed_everything(seed: int) -> None:
    pl.seed_everything(seed, workers=True, verbose=False)
    np.random.seed(seed)
