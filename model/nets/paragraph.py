"""The production recognizer: a fully convolutional paragraph reader trained with CTC, read row by row.

The encoder maps a (1, H, W) page to a (classes, H/16, W/8) grid. Concatenating the grid's rows top to bottom
gives one sequence of (H/16)*(W/8) frames; CTC aligns the paragraph text, newlines included, to it, so the network
learns to write each text line along one row and end it with a newline token. Inference is one forward pass and
an argmax: no autoregressive loop, which is what makes it fast (compare nets/reference.py).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class ParagraphNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    widths: tuple[int, int, int, int] = (32, 64, 128, 192)
    blocks: tuple[int, int, int] = (1, 2, 3)  # residual blocks after each downsampling stage
    context_blocks: int = 3  # vertically dilated blocks: each row sees the rows above and below
    dropout: float = 0.1


class ConvBNAct(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        dilation: int | tuple[int, int] = 1,
        act: bool = True,
    ) -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        d = (dilation, dilation) if isinstance(dilation, int) else dilation
        padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, padding, dilation=d, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.GELU())
        super().__init__(*layers)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise expansion and projection (MobileNetV2-style), residual when shapes allow."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 1,
        expand: int = 2,
    ) -> None:
        super().__init__()
        hidden = cin * expand
        self.body = nn.Sequential(
            ConvBNAct(cin, cin, 3, stride, groups=cin, dilation=dilation),
            ConvBNAct(cin, hidden, 1),
            ConvBNAct(hidden, cout, 1, act=False),
        )
        self.residual = stride in (1, (1, 1)) and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ParagraphNet(nn.Module):
    def __init__(self, num_classes: int, config: ParagraphNetConfig | None = None) -> None:
        super().__init__()
        c = config or ParagraphNetConfig()
        w0, w1, w2, w3 = c.widths
        layers: list[nn.Module] = [ConvBNAct(1, w0, 3, 2)]  # H/2, W/2
        for cin, cout, stride, repeats in (
            (w0, w1, 2, c.blocks[0]),
            (w1, w2, 2, c.blocks[1]),
            (w2, w3, (2, 1), c.blocks[2]),
        ):
            layers.append(SeparableBlock(cin, cout, stride))
            layers.extend(SeparableBlock(cout, cout) for _ in range(repeats))
        layers.append(ConvBNAct(w3, w3, (3, 1), 1))  # H/16, W/8 after the last stage
        for i in range(c.context_blocks):
            layers.append(SeparableBlock(w3, w3, dilation=(2 ** (i + 1), 1)))
        self.encoder = nn.Sequential(*layers)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Conv2d(w3, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) pages, ink = 1 -> (B, T, classes) logits, T = (H/16)*(W/8) frames in row-major order."""
        features = self.dropout(self.encoder(images))  # (B, C, H/16, W/8)
        logits = self.classifier(features)  # (B, K, R, S)
        return logits.flatten(2).transpose(1, 2)  # (B, R*S, K)

    @staticmethod
    def grid(height: int, width: int) -> tuple[int, int]:
        """(rows, frames per row) of the output for an input of this size."""

        def down(n: int, times: int) -> int:
            for _ in range(times):
                n = (n + 1) // 2
            return n

        return down(height, 4), down(width, 3)
