"""The runtimes an artifact can be served by (model/export.py): TorchScript, frozen; ONNX Runtime on the same
network converted at load time; and ONNX Runtime on the int8 graph the artifact carries. The faster ones serve only
because they read as the others do: held here on held-out pages in both polarities with the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inkloop.labels import read_labels
from inkloop.text import corpus_cer
from model.export import eager_net, export, load_artifact
from model.recognizer import SHIPPED_MODEL, ModelLoadError, Recognizer
from model.runtimes import INT8_MAX_CER, Runtime, has_int8
from synth.fonts import FontSet
from synth.generate import SynthOptions, generate


def test_the_fastest_runtime_serves_on_cpu_by_default() -> None:
    assert has_int8(SHIPPED_MODEL)  # make base-model's training embedded it
    assert Recognizer.load().runtime is Runtime.onnx_int8
    for runtime in Runtime:
        assert Recognizer.load(runtime=runtime).runtime is runtime
    for runtime in (Runtime.onnx, Runtime.onnx_int8):
        with pytest.raises(ModelLoadError, match=f"the {runtime} runtime runs on the CPU"):
            Recognizer.load(device="cuda", runtime=runtime)


def test_an_artifact_without_int8_serves_its_float_graph(tmp_path: Path) -> None:
    module, card = load_artifact(SHIPPED_MODEL)
    plain = export(eager_net(module, card), card, tmp_path / "plain.pt")
    assert not has_int8(plain)
    assert Recognizer.load(plain).runtime is Runtime.onnx
    with pytest.raises(ModelLoadError, match="has no int8 graph: run `inkloop quantize --model"):
        Recognizer.load(plain, runtime=Runtime.onnx_int8)


@pytest.mark.slow
def test_every_runtime_reads_held_out_pages_as_well(tmp_path: Path) -> None:
    folder = generate(tmp_path / "pages", SynthOptions(count=24, seed=77, font_set=FontSet.heldout, dark_share=0.5))
    images, truths = zip(*read_labels(folder), strict=True)
    readings = {r: Recognizer.load(runtime=r).predict_paths(list(images)) for r in Runtime}
    onnx, script, int8 = (readings[r] for r in (Runtime.onnx, Runtime.torchscript, Runtime.onnx_int8))
    # Float differences between the two float graphs may flip a near tie, never more: their readings agree to
    # within the export-parity bound, and so do their confidences.
    assert corpus_cer([p.text for p in onnx], [p.text for p in script]) <= 0.002
    assert np.allclose([p.confidence for p in onnx], [p.confidence for p in script], atol=2e-3)
    # int8 reads differently by design, and no worse than the bound it was kept under.
    errors = {r: corpus_cer([p.text for p in readings[r]], list(truths)) for r in Runtime}
    assert abs(errors[Runtime.onnx] - errors[Runtime.torchscript]) <= 0.002
    assert errors[Runtime.onnx_int8] - errors[Runtime.onnx] <= INT8_MAX_CER
    assert np.corrcoef([p.confidence for p in int8], [p.confidence for p in onnx])[0, 1] > 0.9


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


def test_loading_in_onnx_prints_none_of_the_exporters_notes_and_keeps_other_lines(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The float ONNX graph is exported at every load; torch's C++ exporter prints six shape-inference notes on
    file descriptor 2 each time (18 lines in a gate run). They are filtered out; anything else printed there in
    the meantime is written back."""
    import os

    from model.export import _without_export_notes

    capfd.readouterr()
    Recognizer.load(SHIPPED_MODEL, runtime=Runtime.onnx)
    assert "shape inference" not in capfd.readouterr().err
    with _without_export_notes():
        os.write(2, b"[W] Warning: The shape inference of prim::PackPadded type is missing, so ...\n")
        os.write(2, b"a line another thread wrote\n")
    assert capfd.readouterr().err == "a line another thread wrote\n"
