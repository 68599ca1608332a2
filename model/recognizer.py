"""Inference for serving, the CLI and the flows: load an artifact, read any reasonable image, cut it into lines,
read the lines of many pages in width-sorted batches, return each page's text with calibrated confidence overall
and per line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inkloop.card import CardError, ModelCard
from inkloop.errors import InkloopError
from model import SHIPPED_MODEL
from model.charset import Charset
from model.confidence import Calibration
from model.decode import Decoded, geometric_mean, greedy
from model.export import Session, open_session
from model.nets.lines import LineNet
from model.preprocess import ImageInputError, line_input, page_lines
from model.runtimes import Runtime


class ModelLoadError(InkloopError):
    """The model artifact is missing or is not an inkloop model."""


@dataclass
class Prediction:
    text: str
    confidence: float
    line_confidences: list[float] = field(default_factory=list)
    raw_confidence: float = 0.0
    # Where each line of `text` is: x, y, width, height in percent of the page (Line.percent_box), one per line.
    line_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    # Each line's region as the segmenter cut it, [[x, y], ...] in percent of the page (Line.percent_region).
    line_outlines: list[list[tuple[float, float]]] = field(default_factory=list)


class Recognizer:
    def __init__(self, session: Session, card: ModelCard, path: Path) -> None:
        self.session, self.card, self.path = session, card, path
        self.charset = Charset(card.charset)
        self.line_height = card.input.line_height
        self.max_line_width = card.input.max_line_width
        self.calibration = Calibration.from_card(card.calibration) if card.calibration else Calibration()
        self.version: str = card.version

    @property
    def runtime(self) -> Runtime:
        return self.session.runtime

    @classmethod
    def load(cls, path: Path | None = None, device: str = "cpu", runtime: Runtime | None = None) -> Recognizer:
        """The artifact at `path` (default: the shipped model), run by ONNX Runtime on CPU (its int8 graph when it
        has one) and by TorchScript on other devices unless `runtime` says otherwise."""
        path = Path(path) if path is not None else SHIPPED_MODEL
        if not path.is_file():
            hint = " (the shipped model is built by `make base-model`)" if path == SHIPPED_MODEL else ""
            raise ModelLoadError(f"no model file at {path}{hint}")
        if runtime not in (None, Runtime.torchscript) and device != "cpu":
            raise ModelLoadError(f"the {runtime} runtime runs on the CPU; read on {device} with torchscript")
        try:
            session, card = open_session(path, runtime, device)
        except CardError as exc:
            raise ModelLoadError(str(exc)) from None
        except (RuntimeError, ValueError) as exc:
            detail = str(exc).splitlines()[0].split(". ")[0]
            raise ModelLoadError(f"{path} is not an inkloop model artifact: {detail}") from None
        return cls(session, card, path)

    def read_lines(self, lines: list[np.ndarray], batch_size: int = 32) -> list[Decoded]:
        """Greedy decodes of line inputs (float (H, W), ink = 1), batched by similar width."""
        decoded: list[Decoded | None] = [None] * len(lines)
        for chunk, batch, frames in _batches(lines, batch_size, self.line_height):
            probs = self.session(batch, frames)
            for row, i in enumerate(chunk):
                decoded[i] = greedy(probs[row, : int(frames[row])], self.charset)
        return [d for d in decoded if d is not None]

    def line_batches(self, images: list[Image.Image], batch_size: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (lines, frames) batches the network reads for `images`, as sessions take them (to calibrate and
        compare runtimes on)."""
        flat = [line_input(line.crop, self.line_height, self.max_line_width) for i in images for line in page_lines(i)]
        return [(batch, frames) for _, batch, frames in _batches(flat, batch_size, self.line_height)]

    def predict_images(self, images: list[Image.Image], batch_size: int = 32) -> list[Prediction]:
        """One prediction per image. `batch_size` counts lines, which may come from several images."""
        pages = [page_lines(image) for image in images]
        flat = [line_input(line.crop, self.line_height, self.max_line_width) for page in pages for line in page]
        decoded = iter(self.read_lines(flat, batch_size))
        results: list[Prediction] = []
        for page in pages:
            lines = [next(decoded) for _ in page]
            texts = [d.text.replace("\n", " ").strip() for d in lines]
            kept = [(t, d, line) for t, d, line in zip(texts, lines, page, strict=True) if t]
            probs = np.array([p for _, d, _ in kept for p in d.char_probs])
            # A page with no text found gets no confidence: it is exactly what annotators should look at.
            raw = geometric_mean(probs) if probs.size else 0.0
            results.append(
                Prediction(
                    text="\n".join(t for t, _, _ in kept),
                    confidence=round(float(self.calibration(raw)), 4) if probs.size else 0.0,
                    line_confidences=[round(float(self.calibration(d.raw_confidence)), 4) for _, d, _ in kept],
                    raw_confidence=round(raw, 4),
                    line_boxes=[line.percent_box() for _, _, line in kept],
                    line_outlines=[line.percent_region() for _, _, line in kept],
                )
            )
        return results

    def predict_paths(self, paths: list[Path], batch_size: int = 32) -> list[Prediction]:
        return self.predict_images([open_image(p) for p in paths], batch_size)


def _batches(
    lines: list[np.ndarray], batch_size: int, height: int
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Lines in batches of similar width: (their indices, (B, 1, H, W) right-padded, (B,) frames)."""
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(-(-lines[i].shape[1] // LineNet.STRIDE) * LineNet.STRIDE for i in chunk)
        batch = np.zeros((len(chunk), 1, height, width), dtype=np.float32)
        for row, i in enumerate(chunk):
            batch[row, 0, :, : lines[i].shape[1]] = lines[i]
        yield chunk, batch, np.array([LineNet.frames(lines[i].shape[1]) for i in chunk], dtype=np.int64)


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file, or raise ImageInputError saying why not."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy() if image.mode != "P" else image.convert("RGBA")
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageInputError(
            f"{path}: not an image file inkloop can read (it reads PNG, JPEG, WEBP, TIFF, BMP and GIF); "
            "check that the file is a picture, or convert it"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInputError(f"{path}: unreadable image ({exc})") from None
