"""The runtimes an artifact can be served by (model/export.py): TorchScript, frozen, and ONNX Runtime on the same
network converted at load time. The faster one serves only because it reads as the other does: held here on
held-out pages in both polarities with the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inkloop.labels import read_labels
from inkloop.text import cer, corpus_cer
from model.export import Runtime
from model.recognizer import ModelLoadError, Recognizer
from synth.fonts import FontSet
from synth.generate import SynthOptions, generate


def test_onnx_serves_on_cpu_by_default_and_only_on_cpu() -> None:
    assert Recognizer.load().runtime is Runtime.onnx
    assert Recognizer.load(runtime=Runtime.torchscript).runtime is Runtime.torchscript
    with pytest.raises(ModelLoadError, match="the onnx runtime runs on the CPU"):
        Recognizer.load(device="cuda", runtime=Runtime.onnx)


@pytest.mark.slow
def test_both_runtimes_read_held_out_pages_alike(tmp_path: Path) -> None:
    folder = generate(tmp_path / "pages", SynthOptions(count=24, seed=77, font_set=FontSet.heldout, dark_share=0.5))
    images = sorted(folder.glob("*.png"))
    readings = {runtime: Recognizer.load(runtime=runtime).predict_paths(images) for runtime in Runtime}
    onnx, script = readings[Runtime.onnx], readings[Runtime.torchscript]
    # Float differences between the graphs may flip a near tie, never more: the readings agree to within the
    # export-parity bound, and so do their confidences.
    assert corpus_cer([p.text for p in onnx], [p.text for p in script]) <= 0.002
    assert np.allclose([p.confidence for p in onnx], [p.confidence for p in script], atol=2e-3)
    truth = dict(read_labels(folder))
    errors = {r: np.mean([cer(p.text, truth[i]) for p, i in zip(readings[r], images, strict=True)]) for r in Runtime}
    assert abs(errors[Runtime.onnx] - errors[Runtime.torchscript]) <= 0.002


def test_any_batch_shape_matches_torchscript() -> None:
    rng = np.random.default_rng(0)
    onnx, script = (Recognizer.load(runtime=r).session for r in (Runtime.onnx, Runtime.torchscript))
    for batch, width in ((1, 8), (1, 1200), (5, 404), (32, 96)):
        images = (rng.random((batch, 1, 40, width)) > 0.8).astype(np.float32)
        frames = rng.integers(1, width // 4 + 1, size=batch).astype(np.int64)
        frames[0] = width // 4  # one line fills the batch's width
        a, b = onnx(images, frames), script(images, frames)
        assert a.shape == b.shape == (batch, width // 4, b.shape[2])
        for row, n in enumerate(frames.tolist()):
            assert np.abs(a[row, :n] - b[row, :n]).max() < 1e-4
