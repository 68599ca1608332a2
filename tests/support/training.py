"""A tiny training config: real training on CPU in seconds, for tests that need a trained model or a card."""

from __future__ import annotations

from model.config import LineNetConfig, TrainConfig

TINY_NET = LineNetConfig(widths=(8, 16, 24, 32), lstm_hidden=16, lstm_layers=1)


def tiny_config(**overrides: object) -> TrainConfig:
    fields: dict[str, object] = {
        "line_height": 16, "batch_size": 4, "max_steps": 4, "val_every_steps": 2,
        "num_workers": 0, "net": TINY_NET, "val_fraction": 0.25,
    }  # fmt: skip
    fields.update(overrides)
    return TrainConfig.model_validate(fields)
