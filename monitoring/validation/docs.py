"""Data Docs: every validation run as an HTML page a person opens, under INKLOOP_HOME/reports/data_docs.

GE renders each run's page (every expectation, its observed values, failing examples); its index draws its table
with scripts from public CDNs, so inkloop adds a plain table of every run (from its own history, `runs.jsonl`)
that works offline.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import great_expectations as gx
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from inkloop.errors import InkloopError
from monitoring.validation.result import BatchValidation
from monitoring.validation.runner import project_config
from monitoring.validation.suite import SUITE_NAME

# How many failing ids each expectation keeps in the Data Docs page (the full lists are in BatchValidation).
DOCS_UNEXPECTED_ROWS = 50


def write_data_docs(validation: BatchValidation, folder: Path) -> Path:
    """Add this run to the Data Docs site in `folder` (the flow passes settings.paths.data_docs) and
    return the site's index.html. Runs accumulate: the index lists every run written to the folder, newest
    first, each linking to GE's page for the run (every expectation, its observed values, failing examples).

    GE keeps its JSON results in `folder/results` and rebuilds the index from them. GE's index draws its table
    with scripts from public CDNs, so the index also gets a plain table of the runs (`runs.jsonl`, inkloop's
    own history) that needs no network."""
    if validation.ge_result is None or validation.ge_suite is None:
        raise ValueError(f"validation run {validation.run_name} carries no Great Expectations result to render")
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = project_config()
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
    # runs are already on disk. (GE types resource_identifiers as a list of one kind of key; its docstring and
    # its site builder take suite and result keys mixed.)
    context.build_data_docs(
        site_names=[DOCS_SITE],
        resource_identifiers=[key, ExpectationSuiteIdentifier(name=SUITE_NAME)],  # type: ignore[arg-type]
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
        found = run.get("reasons")
        reasons: Mapping[Any, Any] = found if isinstance(found, Mapping) else {}
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
