"""Validating logged images with Great Expectations: the suite (suite.py), running it on a batch (runner.py),
inkloop's record of the result (result.py) and the HTML Data Docs (docs.py)."""

from monitoring.validation.docs import write_data_docs
from monitoring.validation.result import BatchRefusedError, BatchValidation, Outcome
from monitoring.validation.runner import validate_batch
from monitoring.validation.suite import REQUIRED_COLUMNS, Check, build_checks, build_suite

__all__ = [
    "REQUIRED_COLUMNS",
    "BatchRefusedError",
    "BatchValidation",
    "Check",
    "Outcome",
    "build_checks",
    "build_suite",
    "validate_batch",
    "write_data_docs",
]
