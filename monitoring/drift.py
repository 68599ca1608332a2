"""Drift: does production still look like what the model knows, and is its confidence still telling the truth?

A drift report compares a current window of production traffic with a reference window, column by column, with
Evidently (a `Report` with `DataDriftPreset`, tests included), and checks the label-free CER estimate against the
audit stream:

- **Columns** (COLUMNS): the image features the ingest flow computed (monitoring/features.py) for valid images,
  the model's answer to them, and the endpoint's outcome for every request (answered, quarantined by validation,
  or refused with a code). A column is missing (NaN) on rows it says nothing about: a refused upload has no
  brightness. Evidently drops missing values per column, so a rise in refusals moves `outcome` only.
- **Methods** (`methods`), chosen for the data rather than left to Evidently's defaults: numerical columns get the
  Kolmogorov-Smirnov test while either window is small (a p-value: its false-alarm rate is the same at 50 rows as
  at 900, where a distance is mostly sampling noise), and the normed Wasserstein distance once both windows are
  large (at 10,000 rows KS calls a shift of a hundredth of a standard deviation significant; a distance in
  reference standard deviations says how far the column moved). Categorical columns (polarity, outcome) get the
  Jensen-Shannon distance at every size: it is bounded, needs no category present in both windows (a refusal
  code the reference never saw is no division by zero), and its threshold reads as "how much of the traffic
  moved between categories".
- **Verdict**: `drifted` when at least `drift_share` of the columns drifted (Evidently's own test on its
  DriftedColumnsCount), `stable` otherwise, and `not_enough_data` when either window has fewer than `min_rows`
  valid images: a verdict from a handful of rows would be a coin toss, and a false alarm costs trust.
- **Production CER without labels**: the confidence is calibrated to mean expected accuracy (model/confidence.py),
  so the mean of 1 - confidence over the window estimates its CER. The pages of the window sent to annotation
  as the random `audit` sample are an unbiased sample with true labels: their mean CER, with a bootstrap
  interval, is the check. An estimate outside that interval means the calibration has drifted too.

`read_snapshot` is the one function that reads Evidently's result format (it changes between versions); the rest
of inkloop sees only DriftSummary.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from db.repo import WindowRequest
from inkloop.domain import DriftVerdict, ImageStatus, ReferenceKind
from inkloop.text import cer

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

Kind = Literal["numerical", "categorical"]
Group = Literal["image", "prediction", "endpoint"]


@dataclass(frozen=True)
class DriftColumn:
    name: str
    kind: Kind
    group: Group
    what: str


COLUMNS: tuple[DriftColumn, ...] = (
    DriftColumn("mean_brightness", "numerical", "image", "mean grey level, 0-255"),
    DriftColumn("contrast", "numerical", "image", "standard deviation of the grey levels"),
    DriftColumn("ink_ratio", "numerical", "image", "share of the page that is pen strokes"),
    DriftColumn("blur_log10", "numerical", "image", "log10(1 + variance of the Laplacian): low is blurred"),
    DriftColumn("pixels_log10", "numerical", "image", "log10 of width x height: scans, phone photos, crops"),
    DriftColumn("aspect", "numerical", "image", "height / width"),
    DriftColumn("polarity", "categorical", "image", "dark ink on light paper, or light on dark"),
    DriftColumn("confidence", "numerical", "prediction", "calibrated confidence (expected accuracy)"),
    DriftColumn("line_count", "numerical", "prediction", "lines read on the page"),
    DriftColumn("chars_per_line", "numerical", "prediction", "mean characters per line read"),
    DriftColumn("text_length", "numerical", "prediction", "characters read on the page"),
    DriftColumn("rare_char_share", "numerical", "prediction", "share of characters the model rarely emits"),
    DriftColumn("outcome", "categorical", "endpoint", "answered, quarantined, or refused with a code"),
)
# Columns in the frame that are not compared: what the dashboard plots over time (MeanValue of each).
EXPECTED_CER = "expected_cer"  # 1 - confidence of an answered page
AUDITED_CER = "audited_cer"  # CER of the served text against the audit label; NaN on pages without one
REJECTED = "rejected"  # 1 for an upload the endpoint refused, 0 for an answered request


class DriftConfig(BaseModel):
    """How strict a drift report is. The defaults were measured: see tests/monitoring/test_drift.py (no false alarm
    in 20 windows of 50 pages drawn like the reference; a shift in polarity or focus always caught)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: int = Field(30, ge=2, description="Fewer valid images than this in a window: not enough data.")
    large_window: int = Field(
        1000, ge=2, description="Both windows at least this big: distances instead of p-values for numbers."
    )
    p_value: float = Field(0.01, gt=0, lt=1, description="KS p-value under which a numerical column drifted.")
    distance: float = Field(0.1, gt=0, description="Normed Wasserstein distance over which a column drifted.")
    category_distance: float = Field(
        0.1, gt=0, le=1, description="Jensen-Shannon distance over which a categorical column drifted."
    )
    drift_share: float = Field(
        0.15, gt=0, le=1, description="Share of drifted columns that makes the window drifted (2 of 13)."
    )
    rare_share: float = Field(
        0.001, ge=0, lt=1, description="A character is rare when it is under this share of the reference's."
    )
    min_audit_pages: int = Field(10, ge=2, description="Fewer audited pages than this: no check of the estimate.")
    replicates: int = Field(2000, ge=100, description="Bootstrap replicates for the audited CER's interval.")
    level: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the audited CER's interval.")
    seed: int = 0


class Window(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"


class WindowFacts(BaseModel):
    """What a window held."""

    start: datetime
    end: datetime
    rows: int  # valid images answered: what the image and prediction columns compare
    quarantined: int = 0
    pending: int = 0  # logged but not validated yet (the ingest flow has not reached them)
    refused: dict[str, int] = Field(default_factory=dict)  # by code
    requests: int = 0
    models: dict[str, int] = Field(default_factory=dict)  # served model version -> requests

    @property
    def refusal_rate(self) -> float:
        total = self.requests + sum(self.refused.values())
        return sum(self.refused.values()) / total if total else 0.0


class ColumnDrift(BaseModel):
    name: str
    group: Group
    kind: Kind
    method: str
    threshold: float
    score: float | None  # the method's statistic: a p-value for ks (drift below), a distance otherwise (above)
    drifted: bool
    reference: str  # a one-glance summary of the column in each window: the median, or the top category
    current: str


class CerCheck(BaseModel):
    """The label-free CER estimate beside the CER measured on the window's audited pages."""

    estimated: float | None  # mean of 1 - confidence over the window's answered pages
    pages: int
    audited: float | None  # mean CER of the served text on the audited pages
    audited_pages: int
    low: float | None = None  # the audited CER's bootstrap interval
    high: float | None = None
    agrees: bool | None = None  # None: too few audited pages to tell
    note: str


class DriftSummary(BaseModel):
    """inkloop's record of one drift report: stored as the `drift_reports` row's summary."""

    verdict: DriftVerdict
    reason: str
    reference_kind: ReferenceKind
    current: WindowFacts
    reference: WindowFacts | None
    columns: list[ColumnDrift] = Field(default_factory=list)
    drifted_columns: list[str] = Field(default_factory=list)
    share_drifted: float | None = None
    drift_share: float
    cer: CerCheck
    config: DriftConfig
    snapshot_id: str | None = None  # of the Evidently snapshot in the workspace
    seconds: dict[str, float] = Field(default_factory=dict)


# --- the frame ----------------------------------------------------------------------------------------------------


def rare_characters(texts: Iterable[str], share: float) -> frozenset[str]:
    """The characters that make up less than `share` of all characters in `texts` each (whitespace aside)."""
    counts = Counter(ch for text in texts for ch in text if not ch.isspace())
    total = sum(counts.values())
    return frozenset(ch for ch, n in counts.items() if total and n / total < share)


def _prediction(text: str, common: frozenset[str] | None, rare: frozenset[str]) -> dict[str, float]:
    lines = [line for line in text.split("\n") if line.strip()]
    chars = [ch for ch in text if not ch.isspace()]
    # In the reference itself, unusual is what it rarely has; in the current window also what it never had.
    unusual = sum(ch in rare or (common is not None and ch not in common) for ch in chars)
    return {
        "line_count": float(len(lines)),
        "chars_per_line": float(np.mean([len(line.strip()) for line in lines])) if lines else 0.0,
        "text_length": float(len(chars)),
        "rare_char_share": unusual / len(chars) if chars else 0.0,
    }


def _image(features: dict[str, Any]) -> dict[str, Any]:
    width, height = features.get("width"), features.get("height")
    blur = features.get("blur")
    return {
        "mean_brightness": features.get("mean_brightness"),
        "contrast": features.get("contrast"),
        "ink_ratio": features.get("ink_ratio"),
        "blur_log10": math.log10(1.0 + blur) if blur is not None and blur >= 0 else None,
        "pixels_log10": math.log10(width * height) if width and height else None,
        "aspect": height / width if width and height else None,
        "polarity": features.get("polarity"),
    }


def frame(
    requests: Sequence[WindowRequest],
    refusals: Sequence[tuple[datetime, str]],
    *,
    rare: frozenset[str],
    common: frozenset[str] | None,
) -> pd.DataFrame:
    """One row per request and per refused upload of a window. Requests whose image is not validated yet are left
    out (their features do not exist); quarantined images count only in `outcome`. `rare`/`common` come from the
    reference window's answers (pass common=None when framing the reference itself)."""
    rows: list[dict[str, Any]] = []
    for request in requests:
        if request.image_status is ImageStatus.valid and request.features is not None:
            row: dict[str, Any] = {
                **_image(request.features),
                "confidence": request.confidence,
                **_prediction(request.text, common, rare),
                "outcome": "answered",
                EXPECTED_CER: 1.0 - request.confidence,
                AUDITED_CER: min(cer(request.text, request.audit_label), 1.0)
                if request.audit_label is not None
                else None,
                REJECTED: 0.0,
            }
        elif request.image_status is ImageStatus.quarantined:
            row = {"outcome": "quarantined", REJECTED: 0.0}
        else:
            continue
        rows.append(row)
    rows += [{"outcome": f"refused:{code}", REJECTED: 1.0} for _, code in refusals]
    names = [c.name for c in COLUMNS] + [EXPECTED_CER, AUDITED_CER, REJECTED]
    table = pd.DataFrame(rows, columns=names)
    for column in COLUMNS:
        if column.kind == "numerical":
            table[column.name] = pd.to_numeric(table[column.name], errors="coerce").astype(float)
    for name in (EXPECTED_CER, AUDITED_CER, REJECTED):
        table[name] = pd.to_numeric(table[name], errors="coerce").astype(float)
    return table


def facts(window: Window, requests: Sequence[WindowRequest], refusals: Sequence[tuple[datetime, str]]) -> WindowFacts:
    statuses = Counter(r.image_status for r in requests)
    return WindowFacts(
        start=window.start,
        end=window.end,
        rows=sum(1 for r in requests if r.image_status is ImageStatus.valid and r.features is not None),
        quarantined=statuses[ImageStatus.quarantined],
        pending=len(requests) - statuses[ImageStatus.valid] - statuses[ImageStatus.quarantined],
        refused=dict(Counter(code for _, code in refusals).most_common()),
        requests=len(requests),
        models=dict(Counter(r.model_version for r in requests).most_common()),
    )


# --- the label-free CER estimate and its check ------------------------------------------------------------------


def cer_check(current: pd.DataFrame, config: DriftConfig) -> CerCheck:
    expected = current[EXPECTED_CER].dropna().to_numpy()
    audited = current[AUDITED_CER].dropna().to_numpy()
    estimated = float(expected.mean()) if expected.size else None
    if estimated is None:
        return CerCheck(estimated=None, pages=0, audited=None, audited_pages=0, note="no answered pages")
    if audited.size < config.min_audit_pages:
        return CerCheck(
            estimated=estimated,
            pages=int(expected.size),
            audited=float(audited.mean()) if audited.size else None,
            audited_pages=int(audited.size),
            note=f"too few audited pages to check the estimate (n < {config.min_audit_pages})",
        )
    rng = np.random.default_rng(config.seed)
    means = audited[rng.integers(0, audited.size, size=(config.replicates, audited.size))].mean(axis=1)
    tail = (1 - config.level) / 2
    low, high = (float(v) for v in np.quantile(means, [tail, 1 - tail]))
    agrees = low <= estimated <= high
    return CerCheck(
        estimated=estimated,
        pages=int(expected.size),
        audited=float(audited.mean()),
        audited_pages=int(audited.size),
        low=low,
        high=high,
        agrees=agrees,
        note=(
            "the estimate is inside the audited CER's interval"
            if agrees
            else "the estimate is outside the audited CER's interval: the confidence calibration has drifted, "
            "do not trust the estimate until the model is recalibrated (retrained)"
        ),
    )


# --- Evidently ----------------------------------------------------------------------------------------------------


def methods(reference_rows: int, current_rows: int, config: DriftConfig) -> dict[str, tuple[str, float]]:
    """column -> (Evidently method, threshold), from the windows' sizes (see the module docstring)."""
    large = min(reference_rows, current_rows) >= config.large_window
    chosen: dict[str, tuple[str, float]] = {}
    for column in COLUMNS:
        if column.kind == "categorical":
            chosen[column.name] = ("jensenshannon", config.category_distance)
        elif large:
            chosen[column.name] = ("wasserstein", config.distance)
        else:
            chosen[column.name] = ("ks", config.p_value)
    return chosen


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    chosen: dict[str, tuple[str, float]],
    config: DriftConfig,
    *,
    timestamp: datetime,
    tags: list[str],
) -> Snapshot:
    """Evidently's Report on the two frames: the drift preset with its tests, and the means the dashboard plots."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c.name for c in COLUMNS if c.kind == "numerical"] + [EXPECTED_CER, AUDITED_CER, REJECTED],
        categorical_columns=[c.name for c in COLUMNS if c.kind == "categorical"],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=[c.name for c in COLUMNS],
                per_column_method={name: method for name, (method, _) in chosen.items()},
                per_column_threshold={name: threshold for name, (_, threshold) in chosen.items()},
                drift_share=config.drift_share,
            ),
            MeanValue(column="confidence"),
            MeanValue(column=EXPECTED_CER),
            MeanValue(column=AUDITED_CER),
            MeanValue(column=REJECTED),
        ],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
        timestamp=timestamp,
        tags=tags,
    )


@dataclass(frozen=True)
class EvidentlyResult:
    """What inkloop reads from an Evidently snapshot."""

    scores: dict[str, float | None]  # column -> the method's statistic
    drifted: dict[str, bool]  # column -> its drift test failed
    share_drifted: float
    dataset_drifted: bool  # the drifted-columns-share test failed


def read_snapshot(result: dict[str, Any]) -> EvidentlyResult:
    """Evidently 0.7's `Snapshot.dict()` -> EvidentlyResult. The only reader of Evidently's result format: the drift
    flags come from its tests (a failed ValueDrift test is a drifted column; a failed test on DriftedColumnsCount a
    drifted dataset), the scores and the share from its metrics."""
    scores: dict[str, float | None] = {}
    share: float | None = None
    for metric in result.get("metrics", []):
        kind = metric.get("config", {}).get("type", "")
        if kind.endswith(":ValueDrift"):
            value = metric.get("value")
            scores[metric["config"]["column"]] = None if value is None else float(value)
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    drifted: dict[str, bool] = {}
    dataset_drifted: bool | None = None
    for test in result.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        failed = test.get("status") == "FAIL"
        if params.get("type", "").endswith(":ValueDrift"):
            drifted[params["column"]] = failed
        elif params.get("type", "").endswith(":DriftedColumnsCount"):
            dataset_drifted = failed
    if share is None or dataset_drifted is None or set(drifted) != set(scores):
        raise ValueError(
            "Evidently's result lacks the drift metrics or tests inkloop reads "
            "(DriftedColumnsCount and a ValueDrift test per column): has its format changed?"
        )
    return EvidentlyResult(scores=scores, drifted=drifted, share_drifted=share, dataset_drifted=dataset_drifted)


def _glance(values: pd.Series, kind: Kind) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    if kind == "categorical":
        counts = values.value_counts(normalize=True)
        return f"{counts.index[0]} {counts.iloc[0]:.0%}"
    return f"{float(values.median()):.4g}"


# --- the report -------------------------------------------------------------------------------------------------


@dataclass
class DriftResult:
    summary: DriftSummary
    snapshot: Snapshot | None  # None when there was not enough data to compare


def compare(
    reference_requests: Sequence[WindowRequest],
    reference_refusals: Sequence[tuple[datetime, str]],
    current_requests: Sequence[WindowRequest],
    current_refusals: Sequence[tuple[datetime, str]],
    *,
    reference: Window | None,
    current: Window,
    reference_kind: ReferenceKind,
    config: DriftConfig,
    tags: Sequence[str] = (),
) -> DriftResult:
    """The drift report of two windows: the verdict, the per-column drift and the CER check."""
    started = time.perf_counter()
    current_facts = facts(current, current_requests, current_refusals)
    reference_facts = facts(reference, reference_requests, reference_refusals) if reference else None
    reference_texts = [
        r.text for r in reference_requests if r.image_status is ImageStatus.valid and r.features is not None
    ]
    rare = rare_characters(reference_texts, config.rare_share)
    common = frozenset(ch for text in reference_texts for ch in text)
    current_frame = frame(current_requests, current_refusals, rare=rare, common=common)
    check = cer_check(current_frame, config)
    seconds = {"frame": round(time.perf_counter() - started, 3)}
    base: dict[str, Any] = {
        "reference_kind": reference_kind,
        "current": current_facts,
        "reference": reference_facts,
        "drift_share": config.drift_share,
        "cer": check,
        "config": config,
    }
    short = _shortage(reference_facts, current_facts, config)
    if short is not None:
        return DriftResult(
            DriftSummary(verdict=DriftVerdict.not_enough_data, reason=short, seconds=seconds, **base), None
        )
    assert reference is not None and reference_facts is not None
    reference_frame = frame(reference_requests, reference_refusals, rare=rare, common=None)
    chosen = methods(reference_facts.rows, current_facts.rows, config)
    started = time.perf_counter()
    snapshot = run_report(
        reference_frame, current_frame, chosen, config, timestamp=current.end.replace(tzinfo=None), tags=list(tags)
    )
    read = read_snapshot(snapshot.dict())
    seconds["evidently"] = round(time.perf_counter() - started, 3)
    columns = [
        ColumnDrift(
            name=c.name,
            group=c.group,
            kind=c.kind,
            method=chosen[c.name][0],
            threshold=chosen[c.name][1],
            score=read.scores.get(c.name),
            drifted=read.drifted.get(c.name, False),
            reference=_glance(reference_frame[c.name], c.kind),
            current=_glance(current_frame[c.name], c.kind),
        )
        for c in COLUMNS
    ]
    moved = [c.name for c in columns if c.drifted]
    verdict = DriftVerdict.drifted if read.dataset_drifted else DriftVerdict.stable
    reason = (
        f"{len(moved)} of {len(columns)} columns drifted ({', '.join(moved)}): at least "
        f"{config.drift_share:.0%} make the window drifted"
        if verdict is DriftVerdict.drifted
        else f"{len(moved)} of {len(columns)} columns drifted"
        + (f" ({', '.join(moved)})" if moved else "")
        + f", under the {config.drift_share:.0%} that make the window drifted"
    )
    summary = DriftSummary(
        verdict=verdict,
        reason=reason,
        columns=columns,
        drifted_columns=moved,
        share_drifted=read.share_drifted,
        seconds=seconds,
        **base,
    )
    return DriftResult(summary, snapshot)


def _shortage(reference: WindowFacts | None, current: WindowFacts, config: DriftConfig) -> str | None:
    """Why the windows cannot be compared, or None."""
    if reference is None:
        return "not enough data: no reference window (no traffic before the current window)"
    for name, window in (("current", current), ("reference", reference)):
        if window.rows < config.min_rows:
            pending = f"; {window.pending} more await validation (run ingest)" if window.pending else ""
            return (
                f"not enough data (n < {config.min_rows}): the {name} window has {window.rows} valid "
                f"image{'s' * (window.rows != 1)}{pending}"
            )
    return None
