"""Calibrated confidence. The raw score (geometric mean of character probabilities) orders predictions well but
is not a probability; an isotonic map fitted on validation data turns it into the expected accuracy 1 - CER, so
`confidence = 0.9` means about 10% of characters are wrong on such pages. The map is a list of knots stored in the
model card, applied by linear interpolation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inkloop.card import CalibrationCurve, ConfidenceQuality


@dataclass(frozen=True)
class Calibration:
    knots_x: tuple[float, ...] = (0.0, 1.0)
    knots_y: tuple[float, ...] = (0.0, 1.0)

    def __call__(self, raw: float | np.ndarray) -> np.ndarray:
        return np.clip(np.interp(raw, self.knots_x, self.knots_y), 0.0, 1.0)

    def as_card(self) -> CalibrationCurve:
        return CalibrationCurve(knots_x=list(self.knots_x), knots_y=list(self.knots_y))

    @classmethod
    def from_card(cls, curve: CalibrationCurve) -> Calibration:
        return cls(tuple(curve.knots_x), tuple(curve.knots_y))


def _isotonic(y: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing sequence closest to `y` in squared error."""
    values: list[float] = []
    weights: list[float] = []
    for v in y.tolist():
        values.append(v)
        weights.append(1.0)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            values[-2:] = [merged]
            weights[-2:] = [w]
    return np.repeat(values, np.array(weights, dtype=int))


def fit(raw: np.ndarray, cer: np.ndarray, max_knots: int = 32) -> Calibration:
    """Fit raw scores to accuracy 1 - min(CER, 1). Needs at least a handful of validation pages."""
    if len(raw) < 5:
        return Calibration()
    order = np.argsort(raw, kind="stable")
    x = np.asarray(raw, dtype=np.float64)[order]
    y = _isotonic(1.0 - np.minimum(np.asarray(cer, dtype=np.float64)[order], 1.0))
    picks = np.unique(np.linspace(0, len(x) - 1, min(max_knots, len(x))).round().astype(int))
    knots_x = [0.0, *x[picks].tolist(), 1.0]
    knots_y = [float(y[0]), *y[picks].tolist(), float(y[-1])]
    keep = np.concatenate([[True], np.diff(knots_x) > 1e-9])  # np.interp needs increasing x
    return Calibration(tuple(np.array(knots_x)[keep]), tuple(np.array(knots_y)[keep]))


def expected_calibration_error(confidence: np.ndarray, cer: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size (accuracy = 1 - CER)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    accuracy = 1.0 - np.minimum(np.asarray(cer, dtype=np.float64), 1.0)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(confidence[members].mean() - accuracy[members].mean())
    return float(total)


def cer_coverage_auc(confidence: np.ndarray, cer: np.ndarray) -> float:
    """Area under the curve of mean CER of the pages kept vs. the share kept, keeping the most confident first.
    Lower is better: a confidence that finds the bad pages keeps CER low until they are reached. Compare with
    the mean CER (a random order) and with sorting by the true CER (the best possible)."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    kept = np.asarray(cer, dtype=np.float64)[order]
    return float(np.mean(np.cumsum(kept) / np.arange(1, len(kept) + 1))) if len(kept) else 0.0


def confidence_report(raw: np.ndarray, cer: np.ndarray, calibration: Calibration) -> ConfidenceQuality:
    calibrated = calibration(raw)
    cer = np.asarray(cer, dtype=np.float64)
    return ConfidenceQuality(
        ece=round(expected_calibration_error(calibrated, cer), 4),
        ece_raw=round(expected_calibration_error(np.asarray(raw), cer), 4),
        cer_coverage_auc=round(cer_coverage_auc(np.asarray(raw), cer), 4),  # raw: same order, no ties
        cer_coverage_auc_oracle=round(cer_coverage_auc(-cer, cer), 4),
        cer_coverage_auc_random=round(float(cer.mean()) if len(cer) else 0.0, 4),
        pages=len(cer),
    )
