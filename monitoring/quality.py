"""The Great Expectations suite that decides whether a logged image may be used: kept in code, run per batch.

Two kinds of expectation. Row-level ones judge one image (decodable, a format the recognizer reads, sane
dimensions and size, not blank, a confidence in [0, 1]); a failing image is quarantined with the expectation's
short name as its reason. Table-level ones judge the batch (ids present, one row per image); a failure there means
the pipeline upstream is broken, so the batch is refused whole (`BatchRefusedError`) instead of quarantining rows.

Great Expectations' result is turned into inkloop's own record in one function (`_outcome`), which checks names
before indexing, so a library upgrade breaks that function and not the flows.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inkloop.errors import InkloopError

# Formats the endpoint accepts (serving/uploads.py) and the recognizer reads.
ALLOWED_FORMATS = ["PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "GIF"]
# A paragraph photo or scan smaller than this on a side holds no readable line (a line is ~40 px tall when read).
MIN_SIDE = 64
MAX_SIDE = 20_000
# Blank or near-blank: less ink than this share of the page. Measured on the synthetic pages (monitoring.features
# ink_ratio: 1-line pages >= 0.004) and on blank paper photos with texture, gradients, JPEG and sensor noise up to
# sigma 8 (<= 0.0005); the boundary sits between them.
MIN_INK_RATIO = 0.0015

ID_COLUMNS = ("request_id", "image_sha256")
REQUIRED_COLUMNS = (
    *ID_COLUMNS,
    "decodable",
    "format",
    "width",
    "height",
    "byte_size",
    "ink_ratio",
    "confidence",
)


class BatchRefusedError(InkloopError):
    """A table-level expectation failed: the batch as a whole is wrong, so none of it is used."""


@dataclass(frozen=True)
class Check:
    """One expectation of the suite, by its short name (the quarantine reason) and level."""

    name: str
    level: str  # "row" | "table"
    expectation: Any = field(repr=False)


@dataclass
class BatchValidation:
    """What the suite said about a batch, in inkloop's own terms."""

    rows: int
    success: bool
    reasons: dict[str, list[str]]  # image_sha256 -> names of the row-level expectations it failed
    table_failures: list[str]
    failures_by_check: Counter[str]
    seconds: float
    result: Any = field(default=None, repr=False)  # Great Expectations' own result, for Data Docs


def _suite_checks(max_bytes: int) -> list[Check]:
    import great_expectations as gx

    e = gx.expectations
    return [
        Check("missing_id", "table", e.ExpectColumnValuesToNotBeNull(column="request_id")),
        Check("missing_id", "table", e.ExpectColumnValuesToNotBeNull(column="image_sha256")),
        Check("duplicate_image", "table", e.ExpectColumnValuesToBeUnique(column="image_sha256")),
        Check("not_decodable", "row", e.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True])),
        Check("format", "row", e.ExpectColumnValuesToBeInSet(column="format", value_set=ALLOWED_FORMATS)),
        Check("too_small", "row", e.ExpectColumnValuesToBeBetween(column="width", min_value=MIN_SIDE)),
        Check("too_small", "row", e.ExpectColumnValuesToBeBetween(column="height", min_value=MIN_SIDE)),
        Check("too_large", "row", e.ExpectColumnValuesToBeBetween(column="width", max_value=MAX_SIDE)),
        Check("too_large", "row", e.ExpectColumnValuesToBeBetween(column="height", max_value=MAX_SIDE)),
        Check(
            "byte_size", "row", e.ExpectColumnValuesToBeBetween(column="byte_size", min_value=1, max_value=max_bytes)
        ),
        Check("blank", "row", e.ExpectColumnValuesToBeBetween(column="ink_ratio", min_value=MIN_INK_RATIO)),
        Check(
            "confidence_out_of_range",
            "row",
            e.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
        ),
    ]


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing and len(frame):
        raise BatchRefusedError(f"the validation frame lacks columns {', '.join(missing)}")
    frame = frame.copy()
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    # An undecodable image has no measurements: it fails `not_decodable`, and only that.
    undecodable = frame["decodable"] != True  # noqa: E712 (element-wise)
    for column, fill in (("format", "PNG"), ("width", MIN_SIDE), ("height", MIN_SIDE), ("ink_ratio", 1.0)):
        frame.loc[undecodable, column] = frame.loc[undecodable, column].where(
            frame.loc[undecodable, column].notna() & (column == "format"), fill
        )
    frame.loc[frame["format"].isna(), "format"] = "unknown"
    frame["decodable"] = frame["decodable"].fillna(False).astype(bool)
    return frame


def validate_batch(frame: pd.DataFrame, *, max_bytes: int) -> BatchValidation:
    """Run the suite on one row per image; raise BatchRefusedError when a table-level expectation fails."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    started = time.perf_counter()
    frame = _prepare(frame)
    checks = _suite_checks(max_bytes)
    context = gx.get_context(mode="ephemeral")
    # Progress bars of a sub-second validation would only clutter the flow's log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("inkloop")
    batch = source.add_dataframe_asset("images").add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name="inkloop_images"))
    for index, check in enumerate(checks):
        check.expectation.meta = {"inkloop_check": index, "name": check.name, "level": check.level}
        suite.add_expectation(check.expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="ingest", data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["image_sha256"]},
    )
    outcome = _outcome(result, checks, rows=len(frame))
    outcome.seconds = time.perf_counter() - started
    outcome.result = (context, result)
    if outcome.table_failures:
        raise BatchRefusedError(
            f"the batch failed table-level expectations ({', '.join(outcome.table_failures)}): nothing of it was used"
        )
    return outcome


def _outcome(result: Any, checks: list[Check], *, rows: int) -> BatchValidation:
    """Great Expectations' validation result -> BatchValidation. The one place that knows its shape."""
    reasons: dict[str, list[str]] = {}
    table_failures: list[str] = []
    failures: Counter[str] = Counter()
    for item in getattr(result, "results", None) or []:
        meta = getattr(getattr(item, "expectation_config", None), "meta", None) or {}
        if "inkloop_check" not in meta:
            raise InkloopError(f"a Great Expectations result without inkloop's check id: {meta!r}")
        check = checks[int(meta["inkloop_check"])]
        if getattr(item, "success", False):
            continue
        details = getattr(item, "result", None) or {}
        if check.level == "table":
            table_failures.append(check.name)
            continue
        failing = details.get("unexpected_index_list") or []
        for entry in failing:
            key = entry.get("image_sha256") if isinstance(entry, dict) else None
            if key is None:
                raise InkloopError(f"a failing row without its image_sha256 in check {check.name}: {entry!r}")
            names = reasons.setdefault(str(key), [])
            if check.name not in names:
                names.append(check.name)
                failures[check.name] += 1
    return BatchValidation(
        rows=rows,
        success=bool(getattr(result, "success", False)),
        reasons=reasons,
        table_failures=sorted(set(table_failures)),
        failures_by_check=failures,
        seconds=0.0,
    )


def write_data_docs(validation: BatchValidation, folder: Path) -> Path:
    """Great Expectations' HTML Data Docs for this validation, in `folder`; the index page's path."""
    if validation.result is None:
        raise InkloopError("this validation holds no Great Expectations result to render")
    context, _ = validation.result
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    site = "inkloop"
    if site not in (context.get_config().data_docs_sites or {}):
        context.add_data_docs_site(
            site_name=site,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    context.build_data_docs(site_names=[site])
    return folder / "index.html"
