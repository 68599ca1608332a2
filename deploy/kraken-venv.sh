#!/usr/bin/env bash
# Builds a separate virtualenv holding kraken 7.1.1 (Apache-2.0), whose wheel ships
# the default baseline segmentation model kraken/blla.mlmodel, for
# bench/kraken_lines.py.
#
# Why kraken has its own virtualenv: its wheel pins lightning==2.6.1, click<8.3,
# rich<14.1, scipy~=1.15.3, coremltools~=9.0 (and more), which conflict with
# inkloop's own dependencies, so it must never be installed into inkloop's .venv.
#
# CPU only: torch==2.13.0+cpu is the local CPU wheel this machine's pip finds
# (any other torch spec resolves to a multi-GB CUDA build from PyPI), and
# torchvision==0.28.0 is the release that pins torch==2.13.0. The PyTorch CPU
# wheel index is not reachable here, so torchvision comes from PyPI, and PyPI's
# linux x86_64 torchvision is a CUDA build (0.28.0+cu130): its compiled ops
# (torchvision/_C.so: nms, roi_align, ...) need libtorch_cuda.so, do not load
# against the CPU torch, and `import torchvision` then fails while registering
# fake/autograd kernels for those missing ops. kraken uses only torchvision's
# pure-Python transforms, so when that happens this script adds a one-line .pth
# shim to the venv that replaces those two registration modules with empty
# ones. Calling a compiled torchvision op (nms, ...) still raises; kraken's
# segmenter and recognizer call none.
#
# Usage: bash deploy/kraken-venv.sh [VENV]   (VENV defaults to .venv-kraken)
# Idempotent: does nothing when VENV's python already imports kraken.blla.
# Override the interpreter with PYTHON=/path/to/python3.11.
set -euo pipefail

VENV="${1:-.venv-kraken}"
PYTHON="${PYTHON:-python3.11}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import kraken.blla' >/dev/null 2>&1; then
    echo "kraken-venv: $VENV already imports kraken.blla; nothing to do"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
# keep the whole venv out of git without touching the project's .gitignore
# (what `python3.13 -m venv` does on its own)
printf '*\n' > "$VENV/.gitignore"

"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "torch==2.13.0+cpu" "torchvision==0.28.0" "kraken==7.1.1"

if ! "$VENV/bin/python" -c 'import torchvision' >/dev/null 2>&1; then
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "kraken-venv: torchvision's CUDA ops do not load on CPU torch; adding $site/torchvision-cpu-shim.pth"
    cat > "$site/torchvision-cpu-shim.pth" <<'PTH'
import sys, types; sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")); sys.modules.setdefault("torchvision._autograd_registrations", types.ModuleType("torchvision._autograd_registrations"))
PTH
fi

"$VENV/bin/python" - <<'PY'
import importlib.resources

import torch
import kraken.blla  # noqa: F401  (imports torchvision)

model = importlib.resources.files("kraken") / "blla.mlmodel"
assert model.is_file(), f"missing {model}"
assert not torch.version.cuda, f"expected a CPU torch, got CUDA {torch.version.cuda}"
print(f"kraken-venv: torch {torch.__version__}, default model {model}")
PY
