"""Evaluate a model artifact on a labelled folder: CER overall (total edits / total characters), by polarity, by
font family and, on an exported dataset version, by routing reason and stream (audit vs routed) when the labels
say, and how good its confidence is (ECE, CER-vs-coverage area)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from inkloop.card import ConfidenceQuality, Metrics
from inkloop.labels import read_records
from inkloop.text import cer, edit_distance
from model.confidence import cer_coverage_auc, expected_calibration_error
from model.recognizer import Recognizer, open_image


class PageResult(BaseModel):
    """One page of an evaluation, kept as an example."""

    model_config = ConfigDict(extra="forbid")

    file: str
    text: str
    prediction: str
    cer: float
    confidence: float


class Evaluation(BaseModel):
    """A model's CER on a labelled folder, overall and per slice, and how good its confidence is there."""

    model_config = ConfigDict(extra="forbid")

    model: str
    data: str
    pages: int
    cer: float
    cer_by: dict[str, float]
    confidence: ConfidenceQuality
    examples: list[PageResult]

    def metrics(self) -> Metrics:
        """What a model card records of this evaluation (the examples stay out)."""
        return Metrics(cer=self.cer, pages=self.pages, data=self.data, cer_by=self.cer_by, confidence=self.confidence)


def evaluate(recognizer: Recognizer, folder: Path, batch_size: int = 8, keep_pages: int = 0) -> Evaluation:
    records = read_records(folder)
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"edits": [], "chars": []})
    confidences: list[float] = []
    page_cers: list[float] = []
    pages: list[PageResult] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        predictions = recognizer.predict_images([open_image(r["path"]) for r in chunk])
        for record, prediction in zip(chunk, predictions, strict=True):
            edits, chars = edit_distance(prediction.text, record["text"]), len(record["text"])
            keys = ["all"]
            if "dark_background" in record:
                keys.append("polarity/" + ("light_on_dark" if record["dark_background"] else "dark_on_light"))
            if isinstance(record.get("polarity"), str):  # an exported dataset version's slice facts
                keys.append(f"polarity/{record['polarity']}")
            if "font_family" in record:
                keys.append(f"font/{record['font_family']}")
            if isinstance(record.get("reason"), str):
                # Audit pages are a random sample of traffic (an honest estimate of production); routed ones
                # (low confidence, flagged) lean toward hard pages. The two are never mixed in one figure.
                keys.append(f"reason/{record['reason']}")
                keys.append("stream/" + ("audit" if record["reason"] == "audit" else "routed"))
            for key in keys:
                groups[key]["edits"].append(edits)
                groups[key]["chars"].append(chars)
            confidences.append(prediction.confidence)
            page_cers.append(cer(prediction.text, record["text"]))
            if len(pages) < keep_pages:
                pages.append(
                    PageResult(
                        file=record["file"],
                        text=record["text"],
                        prediction=prediction.text,
                        cer=round(page_cers[-1], 4),
                        confidence=prediction.confidence,
                    )
                )
    cer_by = {key: round(sum(g["edits"]) / max(sum(g["chars"]), 1), 4) for key, g in sorted(groups.items())}
    conf, errors = np.array(confidences), np.array(page_cers)
    return Evaluation(
        model=recognizer.version,
        data=str(folder),
        pages=len(records),
        cer=cer_by.pop("all"),
        cer_by=cer_by,
        confidence=ConfidenceQuality(
            mean=round(float(conf.mean()), 4),
            ece=round(expected_calibration_error(conf, errors), 4),
            cer_coverage_auc=round(cer_coverage_auc(conf, errors), 4),
            cer_coverage_auc_random=round(float(errors.mean()), 4),
        ),
        examples=pages,
    )


class LineEvaluation(BaseModel):
    """A model's CER on the ground-truth lines of a labelled folder (each line cut along its polygon, else its box):
    what it reads when segmentation is not in the way."""

    model_config = ConfigDict(extra="forbid")

    model: str
    data: str
    pages: int
    lines: int
    cer: float  # total edits / total characters over the lines
    interval: tuple[float, float]  # 95% bootstrap over pages
    skipped_pages: int  # pages whose records give no line outlines or boxes

    def metrics(self) -> Metrics:
        return Metrics(
            cer=self.cer,
            pages=self.pages,
            lines=self.lines,
            data=self.data,
            cer_by={"interval_low": self.interval[0], "interval_high": self.interval[1]},
        )


def evaluate_lines(recognizer: Recognizer, folder: Path, *, seed: int = 0) -> LineEvaluation:
    """Line-level CER on a folder whose records carry their lines (an exported dataset version: imported pages give
    polygons, annotated pages boxes)."""
    from model.data import read_pages
    from model.preprocess import line_input, to_grayscale
    from model.segment import POLYGON_GROW, box_lines, polygon_line

    per_page: list[tuple[int, int]] = []
    skipped = 0
    for page in read_pages(folder):
        if page.outlines is None and page.boxes is None:
            skipped += 1
            continue
        gray = to_grayscale(open_image(page.path))
        if page.outlines is not None:
            crops = [polygon_line(gray, polygon, baseline, grow=POLYGON_GROW) for polygon, baseline in page.outlines]
        else:
            crops = box_lines(gray, page.boxes or ())
        texts = page.text.split("\n")
        kept = [(crop, text) for crop, text in zip(crops, texts, strict=True) if crop.size]
        inputs = [line_input(crop, recognizer.line_height, recognizer.max_line_width) for crop, _ in kept]
        decoded = recognizer.read_lines(inputs) if inputs else []
        edits = sum(edit_distance(d.text, t) for d, (_, t) in zip(decoded, kept, strict=True))
        chars = sum(len(t) for t in texts)
        edits += sum(
            len(t) for crop, t in zip(crops, texts, strict=True) if not crop.size
        )  # an empty crop reads nothing
        per_page.append((edits, chars))
    if not per_page:
        raise ValueError(f"{folder}: no page with ground-truth lines (export a dataset version with line outlines)")
    edits_by_page, chars_by_page = np.array(per_page, dtype=float).T
    draws = np.random.default_rng(seed).integers(0, len(per_page), size=(2000, len(per_page)))
    resampled = edits_by_page[draws].sum(axis=1) / np.maximum(chars_by_page[draws].sum(axis=1), 1)
    return LineEvaluation(
        model=recognizer.version,
        data=str(folder),
        pages=len(per_page),
        lines=sum(len(p.text.split("\n")) for p in read_pages(folder) if p.outlines is not None or p.boxes is not None),
        cer=round(float(edits_by_page.sum() / max(chars_by_page.sum(), 1)), 4),
        interval=(round(float(np.percentile(resampled, 2.5)), 4), round(float(np.percentile(resampled, 97.5)), 4)),
        skipped_pages=skipped,
    )
