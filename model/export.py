"""The model artifact: one TorchScript file with the model card embedded (`card.json`), so the charset, input
size and calibration can never be separated from the weights they belong to."""

from __future__ import annotations

import copy
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inkloop import __version__
from model.nets.lines import LineNet

CARD = "card.json"


class _Probabilities(nn.Module):
    """What the artifact computes: per-frame class probabilities of a batch of right-padded lines,
    ((B, 1, H, W), (B,) frames) -> (B, W/4, K)."""

    def __init__(self, net: LineNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return self.net(images, frames).softmax(-1)


def code_version() -> str:
    """inkloop's version and, in a git checkout, the commit (with +dirty for uncommitted changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def export(net: LineNet, card: dict[str, Any], path: Path) -> Path:
    """Compile `net` (in eval mode, on CPU) with TorchScript and write it with `card` to `path`; returns `path`.
    Scripted, not traced: line widths and batch sizes vary from call to call."""
    module = copy.deepcopy(net).cpu().eval()
    traced = torch.jit.script(_Probabilities(module))
    card = {
        **card,
        "format": "torchscript",
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": card.get("code_version") or code_version(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.jit.save(traced, str(tmp), _extra_files={CARD: json.dumps(card, indent=2)})
    tmp.replace(path)
    return path


def read_card(path: Path) -> dict[str, Any]:
    files = {CARD: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[CARD])


def update_card(path: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge `updates` into the card of the artifact at `path` (top-level keys; `metrics` is merged one level
    deeper) and rewrite the file atomically. Returns the new card."""
    files = {CARD: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    card = json.loads(files[CARD])
    for key, value in updates.items():
        if key == "metrics" and isinstance(value, dict):
            card.setdefault("metrics", {}).update(value)
        else:
            card[key] = value
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.jit.save(module, str(tmp), _extra_files={CARD: json.dumps(card, indent=2)})
    tmp.replace(path)
    return card
