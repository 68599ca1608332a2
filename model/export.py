"""The model artifact: one TorchScript file with the model card embedded (`card.json`), so the charset, input
size and calibration can never be separated from the weights they belong to.

How an artifact runs is a `Runtime`: TorchScript (the file itself, frozen), or ONNX Runtime (the same network
converted to ONNX when it is loaded; about twice as fast on CPU). Both are `Session`s: batch of right-padded lines
and their frame counts in, per-frame class probabilities out. Nothing outside this module knows either format."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
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
from model.runtimes import Runtime

CARD = "card.json"
INT8 = "int8.onnx"  # the network quantized to int8 (ONNX), when `embed_int8` accepted it


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


def _save(module: torch.jit.ScriptModule, card: ModelCard, path: Path, int8: bytes | None = None) -> None:
    files: dict[str, str | bytes] = {CARD: card.to_json()}
    if int8:
        files[INT8] = int8
    with atomic_write(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files=files)


def _load(path: Path, device: str = "cpu") -> tuple[torch.jit.ScriptModule, ModelCard, bytes | None]:
    files: dict[str, str | bytes] = {CARD: "", INT8: ""}
    module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    if not files[CARD]:
        raise CardError(f"{path} is a TorchScript file without a model card; export it with inkloop")
    int8 = files[INT8]  # torch fills extra files in as bytes
    return module, ModelCard.parse(files[CARD], source=str(path)), int8 if isinstance(int8, bytes) and int8 else None


def load_artifact(path: Path) -> tuple[torch.jit.ScriptModule, ModelCard]:
    module, card, _ = _load(path)
    return module, card


def read_card(path: Path) -> ModelCard:
    return load_artifact(path)[1]


def update_card(path: Path, change: Callable[[ModelCard], ModelCard]) -> ModelCard:
    """Rewrite the card of the artifact at `path` as `change(card)`, atomically. Returns the new card."""
    module, card, int8 = _load(path)
    card = ModelCard.parse(change(card).model_dump(), source=f"the new card of {path}")  # validate the change
    _save(module, card, path, int8)
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
    def __init__(self, model: bytes, runtime: Runtime = Runtime.onnx, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.runtime = runtime
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": images, "frames": frames.astype(np.int64)})[0]


def onnx_model(net: LineNet, line_height: int) -> bytes:
    """`net` (as the artifact computes it: probabilities) as an ONNX graph with dynamic batch and width. The LSTM
    keeps reading each line only up to its own end: ONNX's LSTM takes the lengths."""
    module = _Probabilities(copy.deepcopy(net).cpu().eval())
    images = torch.zeros(2, 1, line_height, 64)
    frames = torch.tensor([16, 9])
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(), _without_export_notes():
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
            opset_version=20,  # the first with a Gelu operator (17 spells it out in Erf, Mul, Add, Div)
        )
        return path.read_bytes()


def open_session(path: Path, runtime: Runtime | None = None, device: str = "cpu") -> tuple[Session, ModelCard]:
    """The artifact at `path` ready to run in `runtime`, and its card. ONNX Runtime runs on CPU only; onnx-int8
    needs an artifact with an int8 graph (`has_int8`). No runtime: the fastest for the device (onnx-int8 when the
    artifact has it, else onnx, on CPU; torchscript elsewhere)."""
    module, card, int8 = _load(path, device)
    if runtime is None:
        runtime = Runtime.torchscript if device != "cpu" else Runtime.onnx_int8 if int8 else Runtime.onnx
    if runtime is Runtime.torchscript:
        return TorchScriptSession(module, device), card
    if device != "cpu":
        raise ValueError(f"the {runtime} runtime runs on CPU; use torchscript on {device}")
    if runtime is Runtime.onnx_int8:
        if int8 is None:
            raise CardError(f"{path} has no int8 graph: run `inkloop quantize --model {path}` to add one")
        return OnnxSession(int8, Runtime.onnx_int8), card
    return OnnxSession(onnx_model(eager_net(module, card), card.input.line_height)), card


# int8: the convolutions quantized statically (per-channel int8 weights, uint8 activations with ranges calibrated
# on real line batches; the CPU's VNNI instructions run them), the LSTMs dynamically. About 1.8x faster than the
# float graph on a 2-core CPU. model/train.py `add_int8` embeds it only where its CER on labelled pages is within
# INT8_MAX_CER (model/runtimes.py) of the float graph's.


def quantize_int8(
    net: LineNet,
    line_height: int,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    float_convs: Sequence[int] = (),
) -> bytes:
    """`net`'s ONNX graph quantized to int8, its activation ranges calibrated on `batches` ((images, frames) as
    sessions take them); the convolutions at positions `float_convs` (0: the first, -1: the last) stay float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"images": images, "frames": frames.astype(np.int64)} for images, frames in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(), _quiet("root"):
        warnings.simplefilter("ignore")
        work = Path(folder)
        (work / "float.onnx").write_bytes(onnx_model(net, line_height))
        quant_pre_process(work / "float.onnx", work / "prepared.onnx", skip_symbolic_shape=True)
        convs = [node.name for node in onnx.load(str(work / "prepared.onnx")).graph.node if node.op_type == "Conv"]
        quantize_static(
            work / "prepared.onnx",
            work / "convs.onnx",
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=[convs[i] for i in float_convs],
        )
        quantize_dynamic(work / "convs.onnx", work / "int8.onnx", op_types_to_quantize=["LSTM"])
        return (work / "int8.onnx").read_bytes()


def int8_graph(path: Path, batches: Sequence[tuple[np.ndarray, np.ndarray]], float_convs: Sequence[int] = ()) -> bytes:
    """The artifact's network quantized to int8, calibrated on `batches` (`float_convs`: see quantize_int8)."""
    module, card, _ = _load(path)
    return quantize_int8(eager_net(module, card), card.input.line_height, batches, float_convs)


def embed_int8(
    path: Path, int8: bytes | None, change: Callable[[ModelCard], ModelCard] = lambda card: card
) -> ModelCard:
    """Write `int8` into the artifact at `path` (replacing any it had; None: remove it), its card changed by
    `change`."""
    module, card, _ = _load(path)
    card = ModelCard.parse(change(card).model_dump(), source=f"the new card of {path}")
    _save(module, card, path, int8)
    return card


# What torch's C++ ONNX exporter prints on file descriptor 2 for this network, at every export (every load in an
# ONNX runtime): "Warning: The shape inference of prim::PackPadded type is missing, so it may result in wrong shape
# inference for the exported graph...", six times, for the LSTM's packed sequences. The graph is right (the parity
# tests hold it to TorchScript); the note is noise a user can do nothing about.
_EXPORT_NOTE = re.compile(rb"shape inference of prim::(PackPadded|PadPacked) type is missing|function UpdateReliable")


@contextlib.contextmanager
def _without_export_notes() -> Iterator[None]:
    """Run the block with file descriptor 2 going to a temporary file, then write back to it every line that is
    not one of the exporter's notes: C++ prints those below Python's warnings, and another thread's stderr lines
    in the meantime are kept (only delayed)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not _EXPORT_NOTE.search(line)]
            if kept:
                os.write(2, b"".join(kept))


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence a logger (onnxruntime's quantizer logs its progress at INFO and WARNING on the root logger)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
