"""`inkloop datasets ...`: build, list, show and export dataset versions (flows/dataset.py); import pages with
line-level ground truth from PAGE XML or ALTO and list the imported collections (flows/groundtruth.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import choice, database, group, print_fields
from inkloop.domain import Split
from inkloop.errors import InkloopError
from inkloop.untrusted import checked_text

datasets_app = group("Dataset versions: frozen, leakage-free train/val/test sets built from the annotations.")


def _splits(counts: dict[str, Any] | None) -> str:
    counts = counts or {}
    return ", ".join(f"{split.value} {counts.get(split.value, 0)}" for split in Split)


@datasets_app.command("build")
def datasets_build(
    as_json: Annotated[bool, typer.Option("--json", help="Print the build's summary as JSON.")] = False,
    val_share: Annotated[float, typer.Option("--val-share", help="Share of new page groups for validation.")] = 0.1,
    test_share: Annotated[float, typer.Option("--test-share", help="Share of new page groups for test.")] = 0.1,
    description: Annotated[str | None, typer.Option("--description", help="A note kept with the version.")] = None,
) -> None:
    """Freeze the completed annotations into a new version (nothing new: nothing is created)."""
    if description is not None:
        checked_text(description, what="--description")
    import time

    from flows.dataset import DatasetParams, build_version

    params = DatasetParams(val_share=val_share, test_share=test_share, description=description)
    started = time.perf_counter()
    with database() as (settings, session):
        summary = build_version(session, project=settings.label_studio_project, params=params)
    summary.seconds = round(time.perf_counter() - started, 2)
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    if not summary.created:
        typer.echo(f"no change: the annotations give dataset version {summary.version} ({_splits(summary.splits)})")
    else:
        typer.echo(f"built dataset version {summary.version} ({_splits(summary.splits)})")
        typer.echo(
            f"  from {summary.parent or 'nothing'}: {summary.added} added, {summary.relabelled} relabelled, "
            f"{summary.removed} removed"
        )
    if summary.left_out:
        typer.echo("  left out: " + ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in summary.left_out.items()))


@datasets_app.command("list")
def datasets_list(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False) -> None:
    """Every dataset version, newest first."""
    from db import repo

    with database(write=False) as (_, session):
        rows = repo.list_datasets(session=session)
        parents = {row.id: row.version for row in rows}
        records: list[dict[str, Any]] = [
            {
                "version": row.version,
                "created_at": row.created_at.isoformat(timespec="seconds"),
                "parent": parents.get(row.parent_id) if row.parent_id else None,
                "counts": row.counts,
            }
            for row in rows
        ]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    if not records:
        typer.echo("no dataset versions yet: run inkloop datasets build")
        return
    for r in records:
        typer.echo(f"{r['version']:<10} {r['created_at'][:16].replace('T', ' ')}  {_splits(r['counts'])}")


@datasets_app.command("show")
def datasets_show(
    version: Annotated[str, typer.Argument(help="A dataset version (inkloop datasets list).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Counts per split and slice, what changed from the parent, what was left out, the guards passed."""
    from db import repo
    from flows.dataset import slice_counts

    with database(write=False) as (_, session):
        row = repo.get_dataset(session=session, version=version)
        parent = repo.ancestors(session=session, version=row)[:1]
        counts = slice_counts(session, row)
        details = dict(row.details or {})
        record = {
            "version": row.version,
            "created_at": row.created_at.isoformat(timespec="seconds"),
            "content_hash": row.content_hash,
            "parent": parent[0].version if parent else None,
            "description": row.description,
            "splits": counts.by_split,
            "slices": counts.by_slice,
            "changes": details.get("changes", {}),
            "left_out": details.get("left_out", {}),
            "guards": details.get("guards", []),
            "split_rule": details.get("split_rule"),
            "imported": details.get("imported") or {},
        }
    if as_json:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    changes = record["changes"]
    print_fields(
        {
            "version": f"{record['version']} ({record['created_at'][:16].replace('T', ' ')}, "
            f"content {record['content_hash'][:12]})",
            "splits": _splits(record["splits"]),
            "parent": record["parent"] or "none",
            "changes": ", ".join(f"{len(changes.get(k, []))} {k}" for k in ("added", "relabelled", "removed")),
            "left out": ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in record["left_out"].items()) or "none",
            "guards passed": ", ".join(record["guards"]) or "none recorded",
            "licences": ", ".join(
                f"{n} imported pages {name}" for name, n in record["imported"].get("licences", {}).items()
            )
            or "annotations only",
        }
    )
    for collection, who in record["imported"].get("attributions", {}).items():
        typer.echo(f"  {collection}: {who}")
    typer.echo("slices (train / val / test):")
    for key, by_split in record["slices"].items():
        typer.echo(f"  {key:<28} {by_split['train']:>6} {by_split['val']:>6} {by_split['test']:>6}")


@datasets_app.command("export")
def datasets_export(
    version: Annotated[str, typer.Argument(help="A dataset version (inkloop datasets list).")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder to write.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="folder: PNG pages and labels.jsonl for inkloop train; page or alto: the page images with PAGE "
            "XML (2019) or ALTO v4 ground truth that eScriptorium and Transkribus import.",
        ),
    ] = "folder",
    split: Annotated[str | None, typer.Option("--split", help="Only this split: train, val or test.")] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Add the synthetic pages made for its train split.")
    ] = False,
) -> None:
    """Write a version's pages and labels: for `inkloop train` (folder), or as PAGE XML or ALTO ground truth."""
    from inkloop.groundtruth import Format
    from inkloop.store import ImageStore

    if format not in ("folder", "page", "alto"):
        raise InkloopError(f"--format {format!r}: choose folder, page or alto")
    wanted = choice(Split, split, "--split") if split is not None else None
    if format != "folder":
        if split is not None or synthetic:
            raise InkloopError(f"--split and --synthetic go with --format folder, not {format}")
        from flows.groundtruth import export_version as export_xml

        with database(write=False) as (settings, session):
            xml = export_xml(session, ImageStore(settings.store_url), version=version, out=out, format=Format(format))
        licences = ", ".join(f"{n} {name}" for name, n in xml.licences.items())
        typer.echo(
            f"exported {xml.pages} pages ({xml.lines} lines) of {xml.version} as {format.upper()} to {xml.folder}"
        )
        typer.echo(f"  licences: {licences}")
        return
    from flows.dataset_export import export_version

    with database(write=False) as (settings, session):
        done = export_version(
            session, ImageStore(settings.store_url), version=version, out=out, split=wanted, synthetic=synthetic
        )
    extra = f" and {done.synthetic} synthetic" if done.synthetic else ""
    typer.echo(f"exported {done.pages} pages{extra} of {done.version} to {done.folder}")


@datasets_app.command("import")
def datasets_import(
    path: Annotated[Path, typer.Argument(help="A PAGE XML or ALTO file, or a folder of them with their images.")],
    format: Annotated[str, typer.Option("--format", help="page, alto or auto (tells them apart).")] = "auto",
    collection: Annotated[
        str | None, typer.Option("--collection", help="The collection's name (default: the folder's).")
    ] = None,
    licence: Annotated[
        str | None, typer.Option("--licence", help="SPDX id, e.g. CC-BY-4.0 (default: a CITATION.cff beside them).")
    ] = None,
    attribution: Annotated[
        str | None, typer.Option("--attribution", help="Who to credit (default: from a CITATION.cff).")
    ] = None,
    line_types: Annotated[
        list[str] | None,
        typer.Option(
            "--line-types",
            help="Import only lines whose type contains this (repeat for more; 'untyped' for lines without one), "
            "e.g. Handwritten.",
        ),
    ] = None,
    document_pattern: Annotated[
        str | None,
        typer.Option(
            "--document-pattern",
            help="A regular expression on the file name whose first group names the page's document (a letter): "
            "its pages stay in one split.",
        ),
    ] = None,
    skip_bad_lines: Annotated[
        bool, typer.Option("--skip-bad-lines", help="Leave out lines that cannot be read instead of their file.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import pages with line-level ground truth (PAGE XML 2013/2019, ALTO v2-v4): images into the store, line
    polygons, baselines, types and texts into the database. A second import of the same files creates nothing."""
    for text, what in ((collection, "--collection"), (licence, "--licence"), (attribution, "--attribution")):
        if text is not None:
            checked_text(text, what=what)
    if format not in ("auto", "page", "alto"):
        raise InkloopError(f"--format {format!r}: choose page, alto or auto")
    import sys
    import time

    from flows.common import flow_context
    from flows.groundtruth import ImportParams, import_pages

    params = ImportParams(
        path=str(path),
        format=format,  # type: ignore[arg-type]
        collection=collection,
        licence=licence,
        attribution=attribution,
        line_types=line_types or None,
        document_pattern=document_pattern,
        skip_bad_lines=skip_bad_lines,
    )
    started = time.perf_counter()
    with flow_context() as context:
        summary = import_pages(context, params, progress=lambda line: print(line, file=sys.stderr, flush=True))
    summary.seconds = round(time.perf_counter() - started, 2)
    if as_json:
        typer.echo(summary.model_dump_json())
    else:
        typer.echo(
            f"imported {summary.collection}: {summary.created} pages new, {summary.updated} updated, "
            f"{summary.unchanged} unchanged, {summary.failed} failed, of {summary.files} files "
            f"({summary.lines} lines, {summary.seconds:.0f} s)"
        )
        typer.echo(f"  licence: {summary.licence or 'none given: pass --licence'}")
        if summary.lines_left_out:
            typer.echo("  lines left out: " + ", ".join(f"{n} {why}" for why, n in summary.lines_left_out.items()))
        if summary.clamped_lines:
            lines = "1 line" if summary.clamped_lines == 1 else f"{summary.clamped_lines} lines"
            typer.echo(f"  {lines} had points past the page's edge, moved onto it")
        for error in summary.errors:
            typer.echo(f"  error: {error}")
    if summary.failed:
        raise typer.Exit(1)


@datasets_app.command("collections")
def datasets_collections(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The imported collections: pages, lines by type, licences."""
    from dataclasses import asdict

    from db import repo

    with database(write=False) as (_, session):
        rows = repo.gt_collections(session=session)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(asdict(row), ensure_ascii=False))
        return
    if not rows:
        typer.echo("no imported pages yet: inkloop datasets import PATH")
        return
    for row in rows:
        types = ", ".join(f"{n} {name}" for name, n in row.line_types.items())
        typer.echo(
            f"{row.name}: {row.pages} pages, {row.lines} lines ({row.transcribed} transcribed), "
            f"licence {', '.join(row.licences)}"
        )
        typer.echo(f"  lines by type: {types}")


@datasets_app.command("review")
def datasets_review(
    collection: Annotated[str, typer.Argument(help="An imported collection (inkloop datasets collections).")],
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many pages (default: every page not yet sent).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send imported pages to Label Studio to be checked, each pre-filled with its line outlines and texts; sync
    brings the corrected lines back to the pages. A page is sent once: a second run sends only pages not yet sent."""
    checked_text(collection, what="COLLECTION")
    import time

    from flows.common import flow_context
    from flows.review import ReviewParams, review_pages
    from flows.route import label_studio
    from flows.runner import LABEL_STUDIO
    from inkloop.errors import LabelStudioUnavailableError
    from inkloop.settings import load_settings

    settings = load_settings()
    try:  # before anything is queued: a review with Label Studio down is one line, as route's is
        LABEL_STUDIO.check(settings)
    except LabelStudioUnavailableError as exc:
        raise InkloopError(f"{exc}: review cannot run without it; {LABEL_STUDIO.how_to_start(settings)}") from None
    params = ReviewParams(collection=collection, limit=limit)
    started = time.perf_counter()
    with flow_context(settings) as context, label_studio(context.settings) as client:
        summary = review_pages(context, client, params)
    summary.seconds = round(time.perf_counter() - started, 2)
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    typer.echo(
        f"sent {summary.created} pages of {summary.collection} for review ({summary.lines} lines) to Label Studio "
        f"project {summary.project!r}; {summary.already_sent} sent before"
    )
    if summary.recovered or summary.resent:
        typer.echo(f"  queued by a run that stopped: {summary.recovered} found there, {summary.resent} sent now")
    typer.echo(f"  pre-filled as model version {summary.model_version}; sync brings the corrections back")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
