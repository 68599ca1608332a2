"""Recognizer speed, side by side in one run: inference seconds per 576x640 paragraph for ParagraphNet (as served:
the exported artifact, frozen, with preprocessing and decoding) and for the 2022 reference design (ResNet-18 +
4-layer Transformer decoder, greedy, 400 characters decoded), at batch 1 and batched; the ratio; and training
samples per second (CPU, and GPU with bf16 when there is one).

    .venv/bin/python bench/recognizer_bench.py [--model model/artifacts/base.pt] [--repeats 7] [--reference-repeats 3]

Speed does not depend on the weights (no early stop is allowed in the reference: it always writes 400 characters,
the length of a dense paragraph), so without --model a freshly initialised network of the shipped design is used.
"""

from __future__ import annotations

import argparse
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

from model.charset import Charset  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.export import export  # noqa: E402
from model.nets.paragraph import ParagraphNet  # noqa: E402
from model.nets.reference import ReferenceTransformer  # noqa: E402
from model.preprocess import prepare  # noqa: E402
from model.recognizer import Recognizer, open_image  # noqa: E402
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


def bench_inference(recognizer: Recognizer, images: list, repeats: int, reference_repeats: int) -> dict:
    charset_size = len(recognizer.charset)
    reference = ReferenceTransformer(charset_size).eval()
    pages = torch.from_numpy(np.stack([prepare(image, HEIGHT, WIDTH) for image in images]))[:, None]
    results: dict[str, dict[str, float]] = {}
    for batch in (1, 8):
        fast = _median_per_page(lambda b=batch: recognizer.predict_images(images[:b], batch_size=b), batch, repeats)
        ref = _median_per_page(
            lambda b=batch: reference.generate(pages[:b], REFERENCE_CHARS, stop_at_end=False),
            batch,
            reference_repeats if batch == 1 else 1,
        )
        results[f"batch_{batch}"] = {
            "paragraphnet_s_per_paragraph": round(fast, 4),
            "reference_2022_s_per_paragraph": round(ref, 3),
            "speedup": round(ref / fast, 1),
        }
    results["parameters"] = {
        "paragraphnet": sum(p.numel() for p in ParagraphNet(charset_size).parameters()),
        "reference_2022": sum(p.numel() for p in reference.parameters()),
    }
    return results


def bench_training(device: str, batch: int = 8, steps: int = 5) -> dict:
    net = ParagraphNet(len(Charset.default())).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    images = torch.rand(batch, 1, HEIGHT, WIDTH, device=device)
    targets = torch.randint(1, 97, (batch * 300,), device=device)
    lengths = torch.full((batch,), 300, dtype=torch.long)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    )
    times = []
    for step in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            logits = net(images)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        loss = ctc(log_probs, targets, torch.full((batch,), log_probs.shape[0], dtype=torch.long), lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    return {
        "device": device,
        "batch": batch,
        "samples_per_s": round(batch / statistics.median(times), 2),
        "precision": "bf16-mixed" if device == "cuda" else "32",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="artifact to time (default: a fresh network)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="inkloop-recognizer-bench-") as tmp:
        if args.model is None:
            config = TrainConfig()
            card = {
                "version": "bench-fresh",
                "charset": Charset.default().characters,
                "config": config.model_dump(mode="json"),
                "input": {"height": HEIGHT, "width": WIDTH, "channels": 1, "ink": "1 = ink"},
            }
            args.model = export(ParagraphNet(len(Charset.default()), config.net).eval(), card, Path(tmp) / "fresh.pt")
        recognizer = Recognizer.load(args.model)
        folder = generate(Path(tmp) / "pages", SynthOptions(count=8, seed=0), workers=1)
        images = [open_image(p) for p in sorted(folder.glob("*.png"))]
        report = {
            "benchmark": "recognizer",
            "machine": {
                **machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
            "input": [HEIGHT, WIDTH],
            "model": recognizer.version,
            "reference_chars_decoded": REFERENCE_CHARS,
            "inference_cpu": bench_inference(recognizer, images, args.repeats, args.reference_repeats),
            "training": [bench_training("cpu")]
            + ([bench_training("cuda", batch=32)] if torch.cuda.is_available() else []),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
