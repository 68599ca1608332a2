"""inkloop's record of a validation run (`BatchValidation`), and the one function that reads Great Expectations'
result shape (`translate`): every name is checked before it is read, so a GE upgrade breaks one function, with a
message that says what changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import great_expectations as gx
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

from inkloop.errors import InkloopError
from monitoring.validation.suite import ID_COLUMN, Level


class BatchRefusedError(InkloopError):
    """A batch that failed a table-level expectation: the pipeline that built it is broken, so none of it is
    used. `validation` is the run's record when the suite ran (None when the frame could not be validated at
    all), so the caller can still write its Data Docs."""

    def __init__(self, message: str, validation: BatchValidation | None = None) -> None:
        super().__init__(message)
        self.validation = validation


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


def translate(
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
