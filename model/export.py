"""The model artifact: one TorchScript file with the model card embedded (`card.json`), so the charset, input
size and calibration can never be separated from the weights they belong to."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from inkloop import __version__
from inkloop.card import CardError, ModelCard
from inkloop.files import atomic_write
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


def export(net: LineNet, card: ModelCard, path: Path) -> Path:
    """Compile `net` (in eval mode, on CPU) with TorchScript and write it with `card` to `path`; returns `path`.
    Scripted, not traced: line widths and batch sizes vary from call to call."""
    module = copy.deepcopy(net).cpu().eval()
    scripted = torch.jit.script(_Probabilities(module))
    card = card.model_copy(
        update={
            "format": "torchscript",
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_version": card.code_version or code_version(),
        }
    )
    _save(scripted, card, path)
    return path


def _save(module: torch.jit.ScriptModule, card: ModelCard, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files={CARD: card.to_json()})


def load_artifact(path: Path) -> tuple[torch.jit.ScriptModule, ModelCard]:
    files = {CARD: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[CARD]:
        raise CardError(f"{path} is a TorchScript file without a model card; export it with inkloop")
    return module, ModelCard.parse(files[CARD], source=str(path))


def read_card(path: Path) -> ModelCard:
    return load_artifact(path)[1]


def update_card(path: Path, change: Callable[[ModelCard], ModelCard]) -> ModelCard:
    """Rewrite the card of the artifact at `path` as `change(card)`, atomically. Returns the new card."""
    module, card = load_artifact(path)
    card = ModelCard.parse(change(card).model_dump(), source=f"the new card of {path}")  # validate the change
    _save(module, card, path)
    return card
