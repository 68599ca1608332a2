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
