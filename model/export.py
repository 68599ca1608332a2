"""The model artifact: one TorchScript file with the model card embedded (`card.json`), so the charset, input
size and calibration can never be separated from the weights they belong to.

How an artifact runs is a `Runtime`: TorchScript (the file itself, frozen), or ONNX Runtime (the same network
converted to ONNX when it is loaded; about twice as fast on CPU). Both are `Session`s: batch of right-padded lines
and their frame counts in, per-frame class probabilities out. Nothing outside this module knows either format."""

from __future__ import annotations

import copy
import enum
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from inkloop import __version__
from inkloop.card import CardError, ModelCard
from inkloop.files import atomic_write
from model.charset import Charset
from model.nets.lines import LineNet, LineNetConfig

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


def eager_net(scripted: Any, card: ModelCard) -> LineNet:
    """The artifact's network as a plain (eager) LineNet with its weights. Its shape is read off the weights, so
    this works for any artifact, with or without a training config in its card."""
    weights = scripted.net.state_dict()
    widths = tuple(int(weights[f"encoder.{i}.0.weight"].shape[0]) for i in (0, 1, 3, 5))
    config = LineNetConfig(
        widths=widths,  # type: ignore[arg-type]
        lstm_hidden=int(weights["rnn.weight_hh_l0"].shape[1]),
        lstm_layers=sum(1 for key in weights if key.startswith("rnn.weight_hh_l") and not key.endswith("_reverse")),
    )
    net = LineNet(len(Charset(card.charset)), config)
    net.load_state_dict(weights)
    return net.eval()


class Runtime(enum.StrEnum):
    torchscript = "torchscript"  # the artifact itself, frozen (batch norm folded into the convolutions)
    onnx = "onnx"  # the artifact's network converted to ONNX at load time, run by ONNX Runtime (CPU)


class Session(Protocol):
    """((B, 1, H, W) float32 lines, right-padded; (B,) int64 frames) -> (B, W/4, K) float32 probabilities."""

    runtime: Runtime

    def __call__(self, images: np.ndarray, frames: np.ndarray) -> np.ndarray: ...


class TorchScriptSession:
    runtime = Runtime.torchscript

    def __init__(self, module: nn.Module, device: str = "cpu", freeze: bool = True) -> None:
        module.eval()
        # Freezing folds batch norm into the convolutions and inlines the weights: about 2x faster at batch 1 on
        # CPU. The file itself stays unfrozen, so warm starts can read its weights.
        self.module = torch.jit.freeze(module) if freeze and isinstance(module, torch.jit.ScriptModule) else module
        self.device = torch.device(device)

    def __call__(self, images: np.ndarray, frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            probs = self.module(torch.from_numpy(images).to(self.device), torch.from_numpy(frames).to(self.device))
        return probs.float().cpu().numpy()


class OnnxSession:
    runtime = Runtime.onnx

    def __init__(self, net: LineNet, line_height: int, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            onnx_model(net, line_height), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, images: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": images, "frames": frames.astype(np.int64)})[0]


def onnx_model(net: LineNet, line_height: int) -> bytes:
    """`net` (as the artifact computes it: probabilities) as an ONNX graph with dynamic batch and width. The LSTM
    keeps reading each line only up to its own end: ONNX's LSTM takes the lengths."""
    module = _Probabilities(copy.deepcopy(net).cpu().eval())
    images = torch.zeros(2, 1, line_height, 64)
    frames = torch.tensor([16, 9])
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is deprecated and that LSTMs with batch_first are exported
        # with transposes; both are fine for this graph, which parity tests hold to the TorchScript artifact.
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        torch.onnx.export(
            module,
            (images, frames),
            path,
            dynamo=False,
            input_names=["images", "frames"],
            output_names=["probs"],
            dynamic_axes={"images": {0: "batch", 3: "width"}, "frames": {0: "batch"}, "probs": {0: "batch", 1: "t"}},
            opset_version=17,
        )
        return path.read_bytes()


def open_session(path: Path, runtime: Runtime = Runtime.torchscript, device: str = "cpu") -> tuple[Session, ModelCard]:
    """The artifact at `path` ready to run in `runtime`, and its card. ONNX Runtime runs on CPU only."""
    files = {CARD: ""}
    module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    if not files[CARD]:
        raise CardError(f"{path} is a TorchScript file without a model card; export it with inkloop")
    card = ModelCard.parse(files[CARD], source=str(path))
    if runtime is Runtime.onnx:
        if device != "cpu":
            raise ValueError(f"the onnx runtime runs on CPU; use torchscript on {device}")
        return OnnxSession(eager_net(module, card), card.input.line_height), card
    return TorchScriptSession(module, device), card
