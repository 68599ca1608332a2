"""The Great Expectations suite the ingest flow validates logged images with, kept in code, and its result
turned into inkloop's own record (`BatchValidation`) in one place.

Expectations come at two levels:
- ROW-level: a failing row is one bad image. It is quarantined with the expectation's short reason name
  (`blank`, `not_decodable`, ...) and the rest of the batch goes on.
- TABLE-level: a failure means the pipeline upstream is broken (a request without an id, the same image twice
  in one batch, an expectation GE could not evaluate). No single image is to blame, so the whole batch is
  refused (`validate_batch` raises BatchRefusedError, carrying the record) rather than quarantining rows.

Every run builds an ephemeral GE context (nothing persists between runs but the Data Docs folder), uses
result_format COMPLETE with `unexpected_index_column_names=["image_sha256"]` to learn which images failed, and
reads GE's result in `_translate` only, so a GE upgrade breaks one function. `write_data_docs` adds the run to
an HTML Data Docs site under INKLOOP_HOME, where a person sees every run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import html
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import great_expectations as gx
import pandas as pd
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from inkloop.errors import InkloopError

log = logging.getLogger(__name__)

Level = Literal["row", "table"]

SUITE_NAME = "inkloop_ingest"
ID_COLUMN = "image_sha256"
# One row per image to validate. The ingest flow builds these from the request log and compute_features.
REQUIRED_COLUMNS = (
    "request_id",
    "image_sha256",
    "source",
    "byte_size",
    "format",
    "width",
    "height",
    "decodable",
    "mean_brightness",
    "contrast",
    "ink_ratio",
    "blur",
    "confidence",
)

# The formats serving accepts (serving/uploads.py FORMATS; a test keeps the two equal). An image that reached
# the log in another format came in through a side door (an import), and the recognizer was not built for it.
FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "GIF")
# Smallest side: a one-line page can be short (the held-out production pages of flows/traffic.py include one 60
# pixels tall). Measured with the shipped model (base-2) on that page scaled down: CER 0.016 at 60 rows, 0.065 at
# 32, 0.081 at 24, 0.27 at 16 (its 12 shortest neighbours, scaled alike: median CER 0.05, 0.06, 0.17, 0.33). So
# 32 keeps every page the model reads and refuses thumbnails and icons. Largest side: no camera or scanner at
# 600 dpi produces more than 20,000 pixels on a side (an A3 scan at 1200 dpi is 14,000); beyond it an image is a
# panorama or a crafted file. (INKLOOP_MAX_IMAGE_PIXELS bounds the area too.)
MIN_SIDE = 32
MAX_SIDE = 20_000
# Blank pages. Measured with monitoring.features on 600 synthetic pages (`inkloop synth`: 200 of seed 5, 300 of
# seed 7 in all fonts with 30% block capitals and 30% light on dark, 100 held-out-font pages of seed 6, half
# light on dark; ruled paper, texture, lighting, blur, noise and JPEG as the generator draws them) against 412
# blank photos (paper 170-255 or 5-70, texture up to 18 grey levels, lighting gradients up to 50%, Gaussian
# noise sigma 0-12, JPEG quality 25-92 or PNG; 200 of them ruled, half with a margin line, rotated ~1.2 deg):
#   ink_ratio: real pages min 0.0096 (1st percentile 0.027, median 0.15); plain blanks max 0.0000; ruled blanks
#   max 0.0018 (99th percentile 0.0002). 0.004 sits 2.4x below the faintest real page (a hairline font on
#   heavily textured paper) and 2.2x above the worst ruled blank. Blurring pages until the shipped model cannot
#   read them also ends here: of 40 pages blurred with radius 0-6, every one under 0.004 read at CER >= 0.45.
#   contrast (std of the grayscale): real pages min 8.9; blanks 0.06-32 (a lighting gradient alone gives 30),
#   so contrast cannot tell a page from a blank; its floor only catches flat images (a uniform fill, a lens
#   cap), at half the lowest real page's value.
INK_RATIO_MIN = 0.004
CONTRAST_MIN = 4.0
# No blur floor, by measurement: 40 synthetic pages blurred with Gaussian radius 0, 1.5, 3, 4.5 and 6 and read
# by the shipped model (base-2): pages it read well (CER < 0.1) had blur (variance of the Laplacian) as low as
# 6.5, pages it could not read (CER > 0.3) as high as 114; a floor of 20 would quarantine 9 of 95 readable
# pages and pass 8 of 85 unreadable ones. Noise raises the figure too (noisy blank photos reach 160). Unreadable
# pages are caught by `blank` (their strokes smear below the ink threshold) and by their low confidence
# (routed to annotators). `blur` is still computed, for the drift report.

# How many failing ids each expectation keeps in the Data Docs page (the full lists are in BatchValidation).
DOCS_UNEXPECTED_ROWS = 50


class BatchRefusedError(InkloopError):
    """A batch that failed a table-level expectation: the pipeline that built it is broken, so none of it is
    used. `validation` is the run's record when the suite ran (None when the frame could not be validated at
    all), so the caller can still write its Data Docs."""

    def __init__(self, message: str, validation: BatchValidation | None = None) -> None:
        super().__init__(message)
        self.validation = validation


@dataclass(frozen=True)
class Check:
    """One expectation of the suite and what its failure means to inkloop."""

    name: str  # unique in the suite, e.g. "width_min"
    reason: str  # the quarantine reason (row level) or the name of the table failure
    level: Level
    expectation: gx.expectations.Expectation


@dataclass(frozen=True)
class Outcome:
    """What one expectation found in a batch."""

    name: str
    reason: str
    level: Level
    expectation_type: str  # GE's snake_case name, e.g. expect_column_values_to_be_between
    column: str | None
    success: bool
    element_count: int
    unexpected_count: int
    error: str | None = None  # GE could not evaluate the expectation (a wrong dtype, a missing column)


@dataclass(frozen=True)
class BatchValidation:
    """inkloop's record of one validation run. `reasons` names, for each failing image, the row-level reasons
    it fails (images not in it passed every row-level expectation); `table_failures` are the table-level
    expectations that failed (non-empty: the batch is refused)."""

    run_name: str
    started_at: datetime  # UTC
    seconds: float  # wall time of the run: GE context, validation and reading the result
    row_count: int
    success: bool  # GE's flag: every expectation met
    outcomes: tuple[Outcome, ...]
    reasons: Mapping[str, tuple[str, ...]]  # image_sha256 -> failing row-level reasons, in suite order
    table_failures: tuple[Outcome, ...]
    table_failure_ids: Mapping[str, tuple[str | None, ...]]  # table failure name -> ids of the rows involved
    ge_result: ExpectationSuiteValidationResult | None = field(default=None, repr=False, compare=False)
    ge_suite: gx.ExpectationSuite | None = field(default=None, repr=False, compare=False)

    @property
    def refused(self) -> bool:
        return bool(self.table_failures)

    def counts(self) -> dict[str, int]:
        """Failing rows per expectation name."""
        return {outcome.name: outcome.unexpected_count for outcome in self.outcomes}

    def reason_counts(self) -> dict[str, int]:
        """Quarantined images per row-level reason (an image failing two reasons counts in both)."""
        counts: dict[str, int] = {}
        for reasons in self.reasons.values():
            for reason in reasons:
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def reasons_for(self, image_sha256: str) -> tuple[str, ...]:
        """The row-level reasons this image fails; empty when it is valid."""
        return self.reasons.get(image_sha256, ())

    def raise_if_refused(self) -> None:
        if not self.table_failures:
            return
        problems = []
        for outcome in self.table_failures:
            if outcome.error:
                problems.append(f"{outcome.name}: GE could not evaluate it ({outcome.error})")
                continue
            ids = tuple(dict.fromkeys(self.table_failure_ids.get(outcome.name, ())))  # a duplicate shows twice
            shown = ", ".join(str(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            problems.append(f"{outcome.reason}: {outcome.unexpected_count} of {outcome.element_count} rows ({shown})")
        raise BatchRefusedError(
            f"validation run {self.run_name} refused the batch of {self.row_count} images; the pipeline that "
            f"built it is broken: {'; '.join(problems)}",
            self,
        )


def build_checks(
    *,
    max_bytes: int,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
    min_ink_ratio: float = INK_RATIO_MIN,
    min_contrast: float = CONTRAST_MIN,
) -> list[Check]:
    """The suite, in the order reasons are reported."""
    ex = gx.expectations

    def row(name: str, reason: str, expectation: gx.expectations.Expectation, note: str) -> Check:
        expectation.meta = {"inkloop": {"name": name, "reason": reason, "level": "row"}}
        expectation.notes = f"Row level: an image that fails is quarantined as `{reason}`. {note}"
        return Check(name=name, reason=reason, level="row", expectation=expectation)

    def table(name: str, reason: str, expectation: gx.expectations.Expectation, note: str) -> Check:
        expectation.meta = {"inkloop": {"name": name, "reason": reason, "level": "table"}}
        expectation.notes = f"Table level: any failure refuses the whole batch (`{reason}`). {note}"
        return Check(name=name, reason=reason, level="table", expectation=expectation)

    return [
        table(
            "request_id_present",
            "missing_request_id",
            ex.ExpectColumnValuesToNotBeNull(column="request_id"),
            "Every image comes from a logged request.",
        ),
        table(
            "image_sha256_present",
            "missing_image_sha256",
            ex.ExpectColumnValuesToNotBeNull(column=ID_COLUMN),
            "Every image has its store key.",
        ),
        table(
            "image_sha256_unique",
            "duplicate_image_sha256",
            ex.ExpectColumnValuesToBeUnique(column=ID_COLUMN),
            "The flow validates each stored image once; a repeat means deduplication upstream failed.",
        ),
        row(
            "decodable",
            "not_decodable",
            ex.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True]),
            "The bytes decode to pixels (not corrupt, not truncated).",
        ),
        row(
            "format_allowed",
            "format",
            ex.ExpectColumnValuesToBeInSet(column="format", value_set=list(FORMATS)),
            "A format serving accepts.",
        ),
        row(
            "byte_size_nonzero",
            "empty",
            ex.ExpectColumnValuesToBeBetween(column="byte_size", min_value=1),
            "At least one byte.",
        ),
        row(
            "byte_size_max",
            "too_many_bytes",
            ex.ExpectColumnValuesToBeBetween(column="byte_size", max_value=max_bytes),
            f"At most {max_bytes:,} bytes (INKLOOP_MAX_UPLOAD_BYTES).",
        ),
        row(
            "width_min",
            "too_small",
            ex.ExpectColumnValuesToBeBetween(column="width", min_value=min_side),
            f"At least {min_side} pixels wide: smaller is a thumbnail, not a page.",
        ),
        row(
            "height_min",
            "too_small",
            ex.ExpectColumnValuesToBeBetween(column="height", min_value=min_side),
            f"At least {min_side} pixels high.",
        ),
        row(
            "width_max",
            "too_large",
            ex.ExpectColumnValuesToBeBetween(column="width", max_value=max_side),
            f"At most {max_side:,} pixels wide: no camera or page scan is wider.",
        ),
        row(
            "height_max",
            "too_large",
            ex.ExpectColumnValuesToBeBetween(column="height", max_value=max_side),
            f"At most {max_side:,} pixels high.",
        ),
        row(
            "ink_ratio_min",
            "blank",
            ex.ExpectColumnValuesToBeBetween(column="ink_ratio", min_value=min_ink_ratio),
            f"At least {min_ink_ratio:.2%} of the pixels are pen strokes: the faintest real page measured had "
            "0.96%, noisy, textured, shaded and ruled blank pages at most 0.18%. Blank pages make the recognizer "
            "read spurious text.",
        ),
        row(
            "contrast_min",
            "blank",
            ex.ExpectColumnValuesToBeBetween(column="contrast", min_value=min_contrast),
            f"Grey-level standard deviation at least {min_contrast}: a flat image holds no writing.",
        ),
        row(
            "confidence_in_range",
            "confidence_out_of_range",
            ex.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
            "The model's confidence on the request that brought the image is a probability.",
        ),
    ]


def build_suite(checks: Sequence[Check]) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=[check.expectation for check in checks])


def _project_config() -> DataContextConfig:
    # In memory (nothing outlives the run), and no progress bars on the flow's stderr.
    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )


def validate_batch(
    frame: pd.DataFrame,
    *,
    max_bytes: int,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
    min_ink_ratio: float = INK_RATIO_MIN,
    min_contrast: float = CONTRAST_MIN,
    run_name: str | None = None,
) -> BatchValidation:
    """Validate one batch (one row per image, REQUIRED_COLUMNS at least) with the suite: the record says which
    images fail which row-level expectations. Raises BatchRefusedError when a table-level expectation fails
    (carrying the record, for Data Docs) or when the frame lacks a required column."""
    if frame.empty and len(frame.columns) == 0:
        frame = pd.DataFrame(columns=list(REQUIRED_COLUMNS))  # nothing to validate, but a valid (empty) batch
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise BatchRefusedError(
            f"the batch lacks columns {missing}; a batch needs {list(REQUIRED_COLUMNS)} (it has {list(frame.columns)})"
        )
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    started_at = datetime.now(UTC)
    name = run_name or f"ingest-{started_at:%Y%m%dT%H%M%S.%fZ}"
    clock = time.perf_counter()
    checks = build_checks(
        max_bytes=max_bytes,
        min_side=min_side,
        max_side=max_side,
        min_ink_ratio=min_ink_ratio,
        min_contrast=min_contrast,
    )
    suite = build_suite(checks)
    context = gx.get_context(mode="ephemeral", project_config=_project_config())
    batch = (
        context.data_sources.add_pandas("inkloop")
        .add_dataframe_asset("images")
        .add_batch_definition_whole_dataframe("batch")
        .get_batch(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    )
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ID_COLUMN]},
    )
    record = _translate(result.to_json_dict(), run_name=name, started_at=started_at, seconds=0.0, row_count=len(frame))
    seconds = time.perf_counter() - clock
    # GE's own objects ride along for the Data Docs writer; nothing else reads them.
    record = dataclasses.replace(record, seconds=seconds, ge_result=result, ge_suite=suite)
    log.info(
        "validation %s: %d images, %d quarantined, %d table failures, %.2f s",
        name,
        record.row_count,
        len(record.reasons),
        len(record.table_failures),
        seconds,
    )
    record.raise_if_refused()
    return record


def _translate(
    result: Mapping[str, Any], *, run_name: str, started_at: datetime, seconds: float, row_count: int
) -> BatchValidation:
    """GE's validation result (its JSON form) -> BatchValidation. The only code that knows GE's result shape:
    every name is checked before it is read, so a changed shape fails here, with a message that says what."""

    def need(mapping: object, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(mapping, Mapping) or key not in mapping:
            raise InkloopError(f"unexpected Great Expectations result: no {key!r} in {where}")
        value = mapping[key]
        if not isinstance(value, kind):
            raise InkloopError(
                f"unexpected Great Expectations result: {where}[{key!r}] is {type(value).__name__}, not {kind}"
            )
        return value

    success = bool(need(result, "success", bool, "the result"))
    outcomes: list[Outcome] = []
    reasons: dict[str, list[str]] = {}
    table_failure_ids: dict[str, tuple[str | None, ...]] = {}
    for position, item in enumerate(need(result, "results", list, "the result")):
        where = f"results[{position}]"
        config = need(item, "expectation_config", Mapping, where)
        meta = need(need(config, "meta", Mapping, f"{where}.expectation_config"), "inkloop", Mapping, where)
        name = str(need(meta, "name", str, f"{where} meta"))
        reason = str(need(meta, "reason", str, f"{where} meta"))
        level = need(meta, "level", str, f"{where} meta")
        if level not in ("row", "table"):
            raise InkloopError(f"unexpected level {level!r} in {where} meta")
        kwargs = config.get("kwargs") if isinstance(config.get("kwargs"), Mapping) else {}
        column = kwargs.get("column") if isinstance(kwargs.get("column"), str) else None
        details = item.get("result") if isinstance(item.get("result"), Mapping) else {}
        exception = item.get("exception_info") if isinstance(item.get("exception_info"), Mapping) else {}
        error = None
        if exception.get("raised_exception"):
            error = str(exception.get("exception_message") or "an exception inside Great Expectations")
        failing_ids = _failing_ids(details.get("unexpected_index_list"), where)
        outcome = Outcome(
            name=name,
            reason=reason,
            level=level,
            expectation_type=str(config.get("type", "")),
            column=column,
            success=bool(need(item, "success", bool, where)),
            element_count=_count(details.get("element_count", row_count)),
            unexpected_count=_count(details.get("unexpected_count", len(failing_ids))),
            error=error,
        )
        outcomes.append(outcome)
        if outcome.success:
            continue
        if level == "table" or error is not None:
            # An expectation GE could not evaluate says nothing about any one image: the batch is suspect.
            table_failure_ids[name] = tuple(failing_ids)
            continue
        for image_id in failing_ids:
            if image_id is None:
                continue  # a row without its id: the table-level image_sha256_present check refuses the batch
            listed = reasons.setdefault(image_id, [])
            if reason not in listed:
                listed.append(reason)
    table_failures = tuple(
        outcome
        for outcome in outcomes
        if not outcome.success and (outcome.level == "table" or outcome.error is not None)
    )
    return BatchValidation(
        run_name=run_name,
        started_at=started_at,
        seconds=seconds,
        row_count=row_count,
        success=success,
        outcomes=tuple(outcomes),
        reasons={image_id: tuple(listed) for image_id, listed in reasons.items()},
        table_failures=table_failures,
        table_failure_ids=table_failure_ids,
    )


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _failing_ids(entries: object, where: str) -> list[str | None]:
    """image_sha256 of each failing row, from `unexpected_index_list` (dicts of the index columns and the
    value, as COMPLETE with unexpected_index_column_names gives them)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InkloopError(f"unexpected Great Expectations result: {where} unexpected_index_list is not a list")
    ids: list[str | None] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or ID_COLUMN not in entry:
            raise InkloopError(
                f"unexpected Great Expectations result: {where} unexpected_index_list entry {entry!r} has no "
                f"{ID_COLUMN!r}"
            )
        value = entry[ID_COLUMN]
        ids.append(value if isinstance(value, str) else None)  # NaN/None: a row without its id
    return ids


def write_data_docs(validation: BatchValidation, folder: Path) -> Path:
    """Add this run to the Data Docs site in `folder` (the flow passes settings.reports_dir / "data_docs") and
    return the site's index.html. Runs accumulate: the index lists every run written to the folder, newest
    first, each linking to GE's page for the run (every expectation, its observed values, failing examples).

    GE keeps its JSON results in `folder/results` and rebuilds the index from them. GE's index draws its table
    with scripts from public CDNs, so the index also gets a plain table of the runs (`runs.jsonl`, inkloop's
    own history) that needs no network."""
    if validation.ge_result is None or validation.ge_suite is None:
        raise ValueError(f"validation run {validation.run_name} carries no Great Expectations result to render")
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = _project_config()
    config.stores["validation_results_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(folder / "results"),
    }
    config.data_docs_sites = {
        DOCS_SITE: {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False},
        }
    }
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.suites.add(copy.deepcopy(validation.ge_suite))
    run_id = RunIdentifier(run_name=validation.run_name, run_time=validation.started_at)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=SUITE_NAME),
        run_id=run_id,
        batch_identifier=DOCS_BATCH,
    )
    context.validation_results_store.set(key, _for_docs(validation.ge_result, run_id))
    # Only this run's page and the suite's (its thresholds may have changed) are rendered; the pages of earlier
    # runs are already on disk.
    context.build_data_docs(
        site_names=[DOCS_SITE], resource_identifiers=[key, ExpectationSuiteIdentifier(name=SUITE_NAME)]
    )
    index = folder / "index.html"
    if not index.is_file():
        raise InkloopError(f"Great Expectations wrote no Data Docs index at {index}")
    page = _page_path(context.get_docs_sites_urls(resource_identifier=key, site_name=DOCS_SITE), folder)
    history = _record_run(folder / "runs.jsonl", validation, page)
    _add_static_run_table(index, history)
    return index


DOCS_SITE = "inkloop"
DOCS_BATCH = "images"


def _for_docs(result: ExpectationSuiteValidationResult, run_id: RunIdentifier) -> ExpectationSuiteValidationResult:
    """A copy named after the run, whose failing-row lists are cut to DOCS_UNEXPECTED_ROWS: a page lists
    examples; a 10,000-row batch must not make a 10,000-row page (or a JSON file that size for every run)."""
    trimmed = copy.deepcopy(result)
    trimmed.meta["run_id"] = run_id
    if isinstance(trimmed.meta.get("batch_spec"), dict):
        trimmed.meta["batch_spec"]["data_asset_name"] = DOCS_BATCH
    for item in trimmed.results:
        details = item.result
        for name in ("unexpected_list", "unexpected_index_list", "partial_unexpected_list"):
            if isinstance(details.get(name), list):
                details[name] = details[name][:DOCS_UNEXPECTED_ROWS]
        details.pop("unexpected_index_query", None)  # a pandas expression naming every failing row
    return trimmed


def _page_path(urls: Sequence[Mapping[str, object]], folder: Path) -> str | None:
    """The run's page relative to the site folder, from GE's file:// URL (None when GE names none)."""
    for entry in urls:
        url = entry.get("site_url") if isinstance(entry, Mapping) else None
        if isinstance(url, str) and url.startswith("file://"):
            path = Path(unquote(url.removeprefix("file://")))
            if path.is_relative_to(folder):
                return path.relative_to(folder).as_posix()
    return None


def _record_run(history: Path, validation: BatchValidation, page: str | None) -> list[dict[str, Any]]:
    """Append the run to the folder's history (once, however often it is written) and return all of it."""
    runs: list[dict[str, Any]] = []
    if history.is_file():
        for line in history.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                runs.append(json.loads(line))
    if not any(run.get("run_name") == validation.run_name for run in runs):
        entry = {
            "run_name": validation.run_name,
            "started_at": validation.started_at.isoformat(),
            "rows": validation.row_count,
            "success": validation.success,
            "refused": validation.refused,
            "quarantined": len(validation.reasons),
            "reasons": validation.reason_counts(),
            "table_failures": [outcome.reason for outcome in validation.table_failures],
            "page": page,
        }
        with history.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        runs.append(entry)
    return runs


def _add_static_run_table(index: Path, runs: Sequence[Mapping[str, Any]]) -> None:
    """Put a plain HTML table of every run into GE's index page, so it lists the runs offline too."""
    rows = []
    for run in sorted(runs, key=lambda r: str(r.get("started_at", "")), reverse=True):
        name = html.escape(str(run.get("run_name", "")))
        page = run.get("page")
        link = f'<a href="{html.escape(str(page))}">{name}</a>' if page else name
        if run.get("refused"):
            verdict = "refused: " + ", ".join(html.escape(str(r)) for r in run.get("table_failures", []))
        else:
            verdict = "passed" if run.get("success") else "rows quarantined"
        reasons = run.get("reasons") if isinstance(run.get("reasons"), Mapping) else {}
        detail = ", ".join(f"{html.escape(str(k))} {int(v)}" for k, v in reasons.items())
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(str(run.get('started_at', '')))}</td>"
            f"<td>{int(run.get('rows', 0))}</td><td>{int(run.get('quarantined', 0))}</td>"
            f"<td>{verdict}</td><td>{detail}</td></tr>"
        )
    table = (
        f'<section id="{_STATIC_TABLE_ID}" class="container-fluid px-4 py-3"><h4>inkloop validation runs</h4>'
        '<table class="table table-sm"><thead><tr><th>run</th><th>started (UTC)</th><th>images</th>'
        "<th>quarantined</th><th>verdict</th><th>reasons</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )
    text = index.read_text(encoding="utf-8")
    if _STATIC_TABLE_ID in text:  # GE rebuilt the page from scratch each time; never add a second table
        return
    at = text.rfind("</body>")
    index.write_text(text[:at] + table + text[at:] if at >= 0 else text + table, encoding="utf-8")


_STATIC_TABLE_ID = "inkloop-runs"
