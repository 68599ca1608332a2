"""Recognizer speed, side by side in one run: inference seconds per paragraph for inkloop's recognizer (as served:
the exported artifact in its default runtime, with image preprocessing, line segmentation and decoding; the
segmenter's share is reported too, beside the same segmenter on the library kernels it had before its fast ones;
and the whole reading in every runtime the artifact can be served by: TorchScript, ONNX Runtime float and int8)
and for the 2022 reference design (ResNet-18 + 4-layer Transformer decoder at 576x640, greedy, 400 characters
decoded, network and decoding only), at batch 1 and batched; the ratio; and training throughput in lines and
paragraphs per second (CPU, and GPU with bf16 when there is one).

    .venv/bin/python bench/recognizer_bench.py [--model PATH | --fresh] [--repeats 7] [--reference-repeats 3]

The pages are 8 synthetic paragraphs (seed 0, 1-12 lines). Without --model the shipped model is timed; --fresh
times a freshly initialised network of the same design (its speed does not depend on the weights except through
how many characters it emits, which greedy CTC decoding barely feels).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import machine  # noqa: E402

from devtools.segment_reference import library_kernels  # noqa: E402
from inkloop.card import InputSpec, ModelCard  # noqa: E402
from model.charset import Charset  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.export import export  # noqa: E402
from model.nets.lines import LineNet  # noqa: E402
from model.nets.reference import ReferenceTransformer  # noqa: E402
from model.preprocess import prepare, to_grayscale  # noqa: E402
from model.recognizer import SHIPPED_MODEL, Recognizer, open_image  # noqa: E402
from model.runtimes import Runtime, has_int8  # noqa: E402
from model.segment import VERSION as SEGMENTER_VERSION  # noqa: E402
from model.segment import segment  # noqa: E402
from synth.generate import SynthOptions, generate  # noqa: E402

HEIGHT, WIDTH, REFERENCE_CHARS = 576, 640, 400


def _median_per_page(run: Callable[[], object], pages: int, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / pages)
    return statistics.median(times)


def bench_runtimes(path: Path, images: list, repeats: int) -> dict:
    """Seconds per paragraph, whole reading (segmentation included), for each runtime the artifact can be served
    by, at batch 1 and 8, in interleaved rounds (a virtual machine's speed drifts within a run)."""
    runtimes = [r for r in Runtime if r is not Runtime.onnx_int8 or has_int8(path)]
    readers = {r.value: Recognizer.load(path, runtime=r) for r in runtimes}
    results: dict[str, dict[str, float]] = {name: {} for name in readers}
    for batch in (1, 8):
        rounds: dict[str, list[float]] = {name: [] for name in readers}
        for round_ in range(repeats + 1):
            for name, reader in readers.items():
                start = time.perf_counter()
                for first in range(0, len(images), batch):
                    reader.predict_images(images[first : first + batch])
                if round_:  # the first round warms up
                    rounds[name].append((time.perf_counter() - start) / len(images))
        for name in readers:
            results[name][f"batch_{batch}_s_per_paragraph"] = round(statistics.median(rounds[name]), 4)
    base = results[Runtime.torchscript.value]["batch_1_s_per_paragraph"]
    for row in results.values():
        row["speedup_batch_1_vs_torchscript"] = round(base / row["batch_1_s_per_paragraph"], 2)
    return results


def bench_inference(recognizer: Recognizer, images: list, repeats: int, reference_repeats: int) -> dict:
    charset_size = len(recognizer.charset)
    reference = ReferenceTransformer(charset_size).eval()
    pages = torch.from_numpy(np.stack([prepare(image, HEIGHT, WIDTH) for image in images]))[:, None]
    results: dict[str, object] = {}
    for batch in (1, 8):

        def ours(b: int = batch) -> object:
            return recognizer.predict_images(images[:b])

        def theirs(b: int = batch) -> object:
            return reference.generate(pages[:b], REFERENCE_CHARS, stop_at_end=False)

        fast = _median_per_page(ours, batch, repeats)
        ref = _median_per_page(theirs, batch, reference_repeats if batch == 1 else 1)
        results[f"batch_{batch}"] = {
            "inkloop_s_per_paragraph": round(fast, 4),
            "reference_2022_s_per_paragraph": round(ref, 3),
            "speedup": round(ref / fast, 1),
        }
    grays = [to_grayscale(image) for image in images]
    # Interleaved rounds, so both see the same machine (a virtual machine's speed drifts within a run).
    rounds: dict[str, list[float]] = {"fast": [], "library": []}
    for round_ in range(repeats + 1):
        for name in rounds:
            with library_kernels() if name == "library" else contextlib.nullcontext():
                start = time.perf_counter()
                for g in grays:
                    segment(g)
                if round_:  # the first round warms up
                    rounds[name].append((time.perf_counter() - start) / len(grays))
    fast, slow = statistics.median(rounds["fast"]), statistics.median(rounds["library"])
    results["segmentation_s_per_paragraph"] = round(fast, 4)
    results["segmentation_library_kernels_s_per_paragraph"] = round(slow, 4)
    results["segmentation_speedup"] = round(slow / fast, 2)
    results["lines_per_paragraph"] = round(float(np.mean([len(segment(g)) for g in grays])), 2)
    results["parameters"] = {
        "inkloop": sum(p.numel() for p in LineNet(charset_size).parameters()),
        "reference_2022": sum(p.numel() for p in reference.parameters()),
    }
    return results


def bench_training(device: str, lines_per_paragraph: float, batch: int = 32, width: int = 560, steps: int = 5) -> dict:
    """Training steps on lines of the median synthetic width (560 columns at 40 rows)."""
    net = LineNet(len(Charset.default())).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    images = torch.rand(batch, 1, 40, width, device=device)
    frames = torch.full((batch,), LineNet.frames(width), dtype=torch.long)
    targets = torch.randint(1, 97, (batch * 50,), device=device)
    lengths = torch.full((batch,), 50, dtype=torch.long)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    )
    times = []
    for step in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            logits = net(images, frames)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        loss = ctc(log_probs, targets, frames, lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    lines_per_s = batch / statistics.median(times)
    return {
        "device": device,
        "batch_lines": batch,
        "lines_per_s": round(lines_per_s, 1),
        "paragraphs_per_s": round(lines_per_s / lines_per_paragraph, 2),
        "precision": "bf16-mixed" if device == "cuda" else "32",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="artifact to time (default: shipped)")
    parser.add_argument("--fresh", action="store_true", help="time a freshly initialised network instead")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="inkloop-recognizer-bench-") as tmp:
        if args.fresh:
            config = TrainConfig()
            card = ModelCard(
                version="bench-fresh",
                charset=Charset.default().characters,
                config=config.model_dump(mode="json"),
                input=InputSpec(
                    line_height=config.line_height,
                    max_line_width=config.max_line_width,
                    segmenter=SEGMENTER_VERSION,
                ),
            )
            args.model = export(LineNet(len(Charset.default()), config.net).eval(), card, Path(tmp) / "fresh.pt")
        recognizer = Recognizer.load(args.model)
        folder = generate(Path(tmp) / "pages", SynthOptions(count=8, seed=0), workers=1)
        images = [open_image(p) for p in sorted(folder.glob("*.png"))]
        inference = bench_inference(recognizer, images, args.repeats, args.reference_repeats)
        inference["runtime"] = recognizer.runtime.value
        inference["runtimes"] = bench_runtimes(args.model, images, args.repeats)
        per_page = float(inference["lines_per_paragraph"])
        report = {
            "benchmark": "recognizer",
            "machine": {
                **machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
            "reference_input": [HEIGHT, WIDTH],
            "model": recognizer.version,
            "reference_chars_decoded": REFERENCE_CHARS,
            "inference_cpu": inference,
            "training": [bench_training("cpu", per_page)]
            + ([bench_training("cuda", per_page, batch=128)] if torch.cuda.is_available() else []),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
