"""`inkloop datasets ...`: build, list, show and export dataset versions (flows/dataset.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import choice, database, group, print_fields
from inkloop.domain import Split
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
        }
    )
    typer.echo("slices (train / val / test):")
    for key, by_split in record["slices"].items():
        typer.echo(f"  {key:<28} {by_split['train']:>6} {by_split['val']:>6} {by_split['test']:>6}")


@datasets_app.command("export")
def datasets_export(
    version: Annotated[str, typer.Argument(help="A dataset version (inkloop datasets list).")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder to write.")],
    split: Annotated[str | None, typer.Option("--split", help="Only this split: train, val or test.")] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Add the synthetic pages made for its train split.")
    ] = False,
) -> None:
    """Write PNG pages and labels.jsonl (with the annotated line boxes) that `inkloop train` reads."""
    from flows.dataset_export import export_version
    from inkloop.store import ImageStore

    wanted = choice(Split, split, "--split") if split is not None else None
    with database(write=False) as (settings, session):
        done = export_version(
            session, ImageStore(settings.store_url), version=version, out=out, split=wanted, synthetic=synthetic
        )
    extra = f" and {done.synthetic} synthetic" if done.synthetic else ""
    typer.echo(f"exported {done.pages} pages{extra} of {done.version} to {done.folder}")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
