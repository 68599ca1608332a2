"""The 2022 reference design, for side-by-side comparison: a ResNet-18 encoder and a 4-layer Transformer decoder
that writes the paragraph one token at a time (greedy), re-running the decoder over the whole prefix at every
step as the original did. About 15M parameters. It is not used in production; bench/ times it against
ParagraphNet at the same input size."""

from __future__ import annotations

import math

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18Encoder(nn.Module):
    """ResNet-18 without its pooling and classifier: (B, 1, H, W) -> (B, 512, H/32, W/32)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        stages = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table


class ReferenceTransformer(nn.Module):
    positions: torch.Tensor  # a buffer (register_buffer), which nn.Module's attribute typing cannot see

    def __init__(
        self, num_classes: int, dim: int = 256, layers: int = 4, heads: int = 4, ff: int = 1024, max_length: int = 700
    ) -> None:
        super().__init__()
        self.start, self.end = num_classes, num_classes + 1  # two extra tokens
        self.encoder = ResNet18Encoder()
        self.project = nn.Conv2d(512, dim, 1)
        self.embed = nn.Embedding(num_classes + 2, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, ff, dropout=0.1, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.classify = nn.Linear(dim, num_classes + 2)
        self.register_buffer("positions", _sinusoid(max_length + 1, dim), persistent=False)
        self.dim = dim

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.project(self.encoder(images))  # (B, D, h, w)
        b, d, h, w = features.shape
        memory = features.flatten(2).transpose(1, 2)  # (B, h*w, D)
        return memory + _sinusoid(h * w, d).to(memory)

    def decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.embed(tokens) * math.sqrt(self.dim) + self.positions[:length]
        mask = torch.triu(torch.full((length, length), float("-inf"), device=tokens.device), diagonal=1)
        return self.classify(self.decoder(x, memory, tgt_mask=mask))  # (B, L, K)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for training."""
        return self.decode(self.encode(images), tokens)

    @torch.inference_mode()
    def generate(self, images: torch.Tensor, steps: int, stop_at_end: bool = True) -> torch.Tensor:
        """Greedy decoding; like the original, every step re-decodes the whole prefix."""
        memory = self.encode(images)
        tokens = torch.full((images.shape[0], 1), self.start, dtype=torch.long, device=images.device)
        for _ in range(steps):
            next_token = self.decode(memory, tokens)[:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
            if stop_at_end and bool((next_token == self.end).all()):
                break
        return tokens[:, 1:]
