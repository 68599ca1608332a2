"""Training hyperparameters: one typed config, unknown keys rejected, saved inside every checkpoint and artifact."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model.nets.lines import LineNetConfig


class AugmentConfig(BaseModel):
    """On-the-fly variation of the line crops (the pages they come from are already varied by synth/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stretch: tuple[float, float] = (0.8, 1.2)  # horizontal scale factor
    margin: float = 0.12  # rows added or cut at the top and bottom, as a share of the crop height
    contrast: tuple[float, float] = (0.6, 1.2)  # ink intensity factor
    blur: float = 0.3  # probability of a light blur
    noise: float = 0.05  # max std of added noise (ink units)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line_height: int = Field(40, ge=16, multiple_of=8)  # line crops are scaled to this many rows
    max_line_width: int = Field(2048, ge=64, multiple_of=4)  # longer lines are squeezed to fit
    net: LineNetConfig = LineNetConfig()
    augment: AugmentConfig = AugmentConfig()
    augment_enabled: bool = True
    batch_size: int = Field(32, ge=1)  # lines per batch
    max_steps: int = Field(20_000, ge=1)
    max_minutes: float | None = Field(None, gt=0)  # wall-time bound of training itself; None: steps only
    # 0 is allowed, and learns nothing: the memorization gate (model/gates.py) is what rejects such a config.
    lr: float = Field(2e-3, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    val_fraction: float = Field(0.05, ge=0, lt=1)  # pages taken from --data when no --val is given
    val_every_steps: int = Field(500, ge=1)
    num_workers: int = Field(2, ge=0)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"  # auto: bf16-mixed on GPU, 32 on CPU
    seed: int = 0
    charset_policy: Literal["fold", "drop", "error"] = "fold"
