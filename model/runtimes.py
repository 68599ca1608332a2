"""The runtimes an artifact is served by, and which one serves: what the registry, the gate, the CLI and serving
ask without loading a network (this module imports no torch: it reads the artifact's zip).

- `torchscript`: the artifact itself (frozen), on CPU or GPU;
- `onnx`: its network converted to ONNX at load time, in ONNX Runtime (CPU);
- `onnx-int8`: the int8 graph training embedded in it, in ONNX Runtime (CPU): about 1.5x faster than `onnx` on
  whole pages, segmentation included (2 cores).

A CPU server picks the fastest the artifact has (INKLOOP_INFERENCE_RUNTIME=auto). Training embeds the int8 graph
only when it reads the validation pages nearly as well as the float one (INT8_MAX_CER), so a model can serve
without it; `runtime_reason` says why, in the gate's report and `inkloop models show`.
"""

from __future__ import annotations

import enum
import zipfile
from collections.abc import Sequence
from pathlib import Path

from inkloop.card import ModelCard

# The int8 graph serves only when its CER on the validation pages is at most this much above the float graph's
# (model/train.py `add_int8`).
INT8_MAX_CER = 0.002
INT8_MEMBER = "extra/int8.onnx"  # where model/export.py embeds the int8 graph in the TorchScript zip


class Runtime(enum.StrEnum):
    torchscript = "torchscript"  # the artifact itself, frozen (batch norm folded into the convolutions)
    onnx = "onnx"  # the artifact's network converted to ONNX at load time, run by ONNX Runtime (CPU)
    onnx_int8 = "onnx-int8"  # the int8 graph embedded in the artifact (`embed_int8`), run by ONNX Runtime (CPU)


# Fastest first on a CPU (bench/recognizer_bench.py; docs/benchmarks.md).
CPU_SPEED_ORDER = (Runtime.onnx_int8, Runtime.onnx, Runtime.torchscript)


def has_int8(path: Path) -> bool:
    """Whether the artifact carries an int8 graph."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(f"/{INT8_MEMBER}") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def runtimes_of(path: Path) -> list[Runtime]:
    """The runtimes the artifact can be served by on a CPU, fastest first."""
    return [r for r in CPU_SPEED_ORDER if r is not Runtime.onnx_int8 or has_int8(path)]


def cpu_runtime(path: Path) -> Runtime:
    """The runtime a CPU server picks for the artifact by default: the fastest it has."""
    return runtimes_of(path)[0]


def shared_runtime(first: Sequence[Runtime], second: Sequence[Runtime]) -> Runtime:
    """The fastest runtime both can run in: the speed gate times two models in it, so it compares networks, not
    runtimes (an int8 champion against a float candidate measures the runtime, not the training)."""
    return next(r for r in CPU_SPEED_ORDER if r in first and r in second)


def runtime_reason(card: ModelCard, runtime: Runtime) -> str:
    """Why a model serves with `runtime`, from what training measured (`metrics.int8`), as a phrase without
    parentheses ("its int8 graph: int8 CER 0.0192, float 0.0196 on 51 validation pages"), for callers to wrap."""
    measured = card.metrics.get("int8")
    if measured is None:
        return "its int8 graph" if runtime is Runtime.onnx_int8 else "no int8 graph was made for it"
    float_cer = measured.cer_by.get("float")
    figures = f"int8 CER {measured.cer:.4f}"
    if float_cer is not None:
        figures += f", float {float_cer:.4f}"
    if measured.pages:
        figures += f" on {measured.pages} {measured.data or 'pages'}"
    variants = [name for name in measured.cer_by if name != "float"]
    if runtime is Runtime.onnx_int8:
        kept = f", {variants[-1]}" if len(variants) > 1 else ""  # training stopped at the first within the bound
        return f"its int8 graph{kept}: {figures}"
    if runtime is Runtime.onnx:
        return f"int8 left out, more than {INT8_MAX_CER} worse than float: {figures}"
    return f"chosen by INKLOOP_INFERENCE_RUNTIME or the device: {figures}"
