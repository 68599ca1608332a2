"""The production line reader: a small CNN that collapses a text line to one feature column every 4 pixels, a
bidirectional LSTM for context along the line, and a CTC classifier. model/segment.py cuts paragraphs into the
lines it reads; a whole paragraph is one batch of lines, read in a single forward pass (no autoregressive loop,
which is what makes it fast: compare nets/reference.py).

Input: (B, 1, H, W) line crops scaled to height H (ink = 1, padded with 0 on the right); output: (B, W/4, K)
logits, one frame per 4 input columns.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class LineNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    widths: tuple[int, int, int, int] = (24, 48, 96, 128)
    lstm_hidden: int = 128
    lstm_layers: int = 2
    dropout: float = 0.15


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.norm(self.body(x)))


class LineNet(nn.Module):
    STRIDE = 4  # input columns per output frame

    def __init__(self, num_classes: int, config: LineNetConfig | None = None) -> None:
        super().__init__()
        c = config or LineNetConfig()
        w0, w1, w2, w3 = c.widths
        self.encoder = nn.Sequential(
            _conv(1, w0, stride=2),  # H/2, W/2
            _conv(w0, w1),
            nn.MaxPool2d(2),  # H/4, W/4
            _conv(w1, w2),
            nn.MaxPool2d((2, 1)),  # H/8
            _conv(w2, w3),
            _Residual(w3),
        )
        self.dropout = nn.Dropout(c.dropout)
        self.rnn = nn.LSTM(
            w3,
            c.lstm_hidden,
            num_layers=c.lstm_layers,
            bidirectional=True,
            batch_first=True,
            dropout=c.dropout if c.lstm_layers > 1 else 0.0,
        )
        self.classifier = nn.Linear(2 * c.lstm_hidden, num_classes)

    def forward(self, images: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) lines, right-padded, and (B,) frames each really has -> (B, W/4, classes) logits. The LSTM
        reads each line up to its own end, so a line's output does not depend on what it was batched with."""
        features = self.encoder(images)  # (B, C, H/8, W/4)
        column = self.dropout(features.amax(dim=2).transpose(1, 2))  # (B, W/4, C): strongest response per column
        packed = nn.utils.rnn.pack_padded_sequence(column, frames.cpu(), batch_first=True, enforce_sorted=False)
        context, _ = self.rnn(packed)
        padded, _ = nn.utils.rnn.pad_packed_sequence(context, batch_first=True, total_length=column.shape[1])
        return self.classifier(self.dropout(padded))

    @staticmethod
    def frames(width: int) -> int:
        """Output frames for an input this wide."""
        return ((width + 1) // 2) // 2  # a stride-2 convolution (padding 1) rounds up, max pooling rounds down
