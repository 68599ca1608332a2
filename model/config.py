"""Training hyperparameters: one typed config, unknown keys rejected, saved inside every checkpoint and artifact."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model.nets.paragraph import ParagraphNetConfig


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: tuple[float, float] = (0.7, 1.0)  # page size within the canvas
    rotation: float = 1.5  # degrees, uniform +-
    invert: float = 0.2  # probability of flipping polarity before normalisation
    contrast: tuple[float, float] = (0.6, 1.2)  # ink intensity factor
    noise: float = 0.04  # max std of added noise (ink units)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_height: int = Field(576, ge=32, multiple_of=16)
    input_width: int = Field(640, ge=32, multiple_of=8)
    net: ParagraphNetConfig = ParagraphNetConfig()
    augment: AugmentConfig = AugmentConfig()
    augment_enabled: bool = True
    batch_size: int = Field(16, ge=1)
    max_steps: int = Field(20_000, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    val_fraction: float = Field(0.05, ge=0, lt=1)  # taken from --data when no --val is given
    val_every_steps: int = Field(500, ge=1)
    num_workers: int = Field(2, ge=0)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"  # auto: bf16-mixed on GPU, 32 on CPU
    seed: int = 0
    charset_policy: Literal["fold", "drop", "error"] = "fold"
