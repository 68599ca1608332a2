"""The model card: what a model artifact says about itself, typed.

Every artifact (model/export.py) carries one, and everything that reads a model's facts reads them here: the
recognizer (charset, input size, calibration), training (the parent's network and charset), the registry (the
version and lineage it records), the CLI (figures it prints), and, next, the gates (metrics per split and slice).
A card that does not parse is an error naming the field, never a KeyError three modules away.

Metrics are keyed by what was measured: `val` (the validation pages training calibrated on, with the quality of
its confidence), `val_lines`, and any named evaluation (`inkloop evaluate --into-card heldout_fonts`). Each has a
CER over pages and, where the data said, CER per slice (`cer_by`, keys such as `font/Andika` or
`polarity/light_on_dark`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inkloop.errors import InkloopError


class CardError(InkloopError):
    """A model card that is missing, malformed or lacks a field inkloop needs."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """What the network reads: line crops scaled to `line_height` rows, at most `max_line_width` wide."""

    line_height: int = Field(gt=0)
    max_line_width: int = Field(gt=0)
    channels: int = 1
    ink: str = "1 = ink"
    segmenter: str = Field(description="Version of the line segmenter the model was trained behind.")


class CalibrationCurve(_Strict):
    """Raw confidence -> expected accuracy (1 - CER), linear between knots (model/confidence.py fits it)."""

    knots_x: list[float]
    knots_y: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> CalibrationCurve:
        if len(self.knots_x) != len(self.knots_y) or len(self.knots_x) < 2:
            raise ValueError("knots_x and knots_y must be equally long, with at least two knots")
        return self


class ConfidenceQuality(_Strict):
    """How well a model's confidence tracks its errors on some pages (lower is better for all but `mean`)."""

    ece: float
    cer_coverage_auc: float
    cer_coverage_auc_random: float
    mean: float | None = None
    ece_raw: float | None = None
    cer_coverage_auc_oracle: float | None = None
    pages: int | None = None


class Metrics(_Strict):
    """One measurement of a model: CER overall (total edits / total characters, or the mean over pages where
    training says so), on how many pages or lines, per slice, and the quality of its confidence there."""

    cer: float = Field(ge=0)
    pages: int | None = None
    lines: int | None = None
    data: str | None = Field(None, description="Where the measured pages came from (a folder, a dataset version).")
    cer_by: dict[str, float] = Field(default_factory=dict, description="CER per slice, e.g. font/Andika.")
    confidence: ConfidenceQuality | None = None


class Parent(_Strict):
    """The model a warm start began from."""

    version: str
    artifact: str | None = None


class TrainingData(_Strict):
    train: list[str] = Field(default_factory=list)
    val: list[str] = Field(default_factory=list)
    train_lines: int | None = None
    val_pages: int | None = None
    dataset_version: str | None = None
    licences: dict[str, int] = Field(
        default_factory=dict,
        description="Pages trained and validated on, by licence ('inkloop annotations': the loop's own).",
    )
    attributions: dict[str, str] = Field(default_factory=dict, description="Whom to credit, by imported collection.")


class TrainingRun(_Strict):
    steps: int
    planned_steps: int | None = Field(None, description="The steps the config asked for (max_steps).")
    stopped_early: str | None = Field(
        None, description="Why training ended before its planned steps, e.g. 'the 8-minute time cap'; None: it did not."
    )
    wall_s: float = Field(description="This invocation: data loading, training, calibration, export.")
    fit_s: float | None = Field(None, description="Training itself, all resumed parts together.")
    device: str
    gpu: str | None = None
    precision: str | None = None
    best_checkpoint: str | None = None

    def steps_text(self) -> str:
        """ "120 steps", or "92 of 120 steps (stopped by the 8-minute time cap)" when training ended early."""
        if self.stopped_early and self.planned_steps:
            return f"{self.steps} of {self.planned_steps} steps (stopped by {self.stopped_early})"
        return f"{self.steps} steps"


class ModelCard(_Strict):
    """The card of one model artifact."""

    version: str = Field(min_length=1, max_length=64)
    charset: list[str] = Field(min_length=1)
    input: InputSpec
    calibration: CalibrationCurve | None = None
    parent: Parent | None = None
    training_data: TrainingData | None = None
    metrics: dict[str, Metrics] = Field(default_factory=dict)
    config: dict[str, Any] | None = Field(None, description="The training config (model/config.py TrainConfig).")
    training: TrainingRun | None = None
    parameters: int | None = None
    gate_report: str | None = Field(None, description="The gate report that accepted or rejected this model.")
    format: str | None = None
    exported_at: str | None = None
    code_version: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_confidence(cls, data: Any) -> Any:
        # Cards written before the card was typed (the shipped base-2 among them) kept the validation pages'
        # confidence quality beside the metrics, as metrics.confidence; it belongs to metrics.val.
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            metrics = dict(data["metrics"])
            legacy = metrics.get("confidence")
            if isinstance(legacy, dict) and "cer" not in legacy and isinstance(metrics.get("val"), dict):
                metrics.pop("confidence")
                metrics["val"] = {**metrics["val"], "confidence": legacy}
                data = {**data, "metrics": metrics}
        return data

    @classmethod
    def parse(cls, data: Any, *, source: str) -> ModelCard:
        """A card from its JSON object (or text), or CardError naming what is wrong and where it came from."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'card'}: {error['msg']}" for error in exc.errors()
            )
            raise CardError(f"{source} has an invalid model card: {problems}") from None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)

    def as_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (what the registry stores and /v1/model answers)."""
        return self.model_dump(mode="json", exclude_none=True)

    def with_metrics(self, name: str, metrics: Metrics) -> ModelCard:
        """This card with `metrics` recorded under `name` (replacing an earlier measurement of that name)."""
        return self.model_copy(update={"metrics": {**self.metrics, name: metrics}})

    def cer(self, name: str) -> float | None:
        """The CER measured under `name` (such as "val" or "heldout_fonts"), or None when not measured."""
        found = self.metrics.get(name)
        return found.cer if found is not None else None
