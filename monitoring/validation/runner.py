"""Running the suite on one batch: an ephemeral Great Expectations context per run (nothing persists between
runs but the Data Docs folder), result_format COMPLETE with `unexpected_index_column_names=["image_sha256"]` so
the result names the failing images, then `translate` into inkloop's own record."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from monitoring.validation.result import BatchRefusedError, BatchValidation, translate
from monitoring.validation.suite import (
    CONTRAST_MIN,
    ID_COLUMN,
    INK_RATIO_MIN,
    MAX_SIDE,
    MIN_SIDE,
    REQUIRED_COLUMNS,
    build_checks,
    build_suite,
)

log = logging.getLogger(__name__)


def project_config() -> DataContextConfig:
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
    context = gx.get_context(mode="ephemeral", project_config=project_config())
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
    record = translate(result.to_json_dict(), run_name=name, started_at=started_at, seconds=0.0, row_count=len(frame))
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
