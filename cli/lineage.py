"""`inkloop lineage REQUEST_ID`: where one request's page went, from the request to the models that learnt from it.

request → image → annotation task(s) → annotation revisions → dataset versions (and split) → models trained on
them, and the model that served the request. Every arrow is a row (db/repo.py `lineage`); this module only
turns them into one record, printed as JSON or as a short tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import database
from inkloop.domain import Split

if TYPE_CHECKING:
    from db.models import ModelVersion
    from db.repo import Lineage

_SNIPPET = 32  # characters of a label shown in the tree
Node = tuple[str, list["Node"]]


def lineage(
    request_id: Annotated[str, typer.Argument(help="A request id, as the API answered it (X-Request-ID).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the tree.")] = False,
) -> None:
    """Where a request's page went: its image, annotation tasks and revisions, the dataset versions (and split) it
    entered, the models trained on them, and the model that served it."""
    from db import repo

    with database(write=False) as (_, session):
        record = lineage_record(repo.lineage(session=session, request_id=request_id))
    if as_json:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    typer.echo("\n".join(render_tree(record)))


# --- the record: every row of the lineage, JSON-ready ------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _model(row: ModelVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "registered": True,
        "status": row.status.value,
        "created_at": _iso(row.created_at),
        "promoted_at": _iso(row.promoted_at),
    }


def lineage_record(found: Lineage) -> dict[str, Any]:
    """The lineage as plain data (ids, versions, splits, statuses, ISO timestamps): what --json prints and what the
    tree is drawn from, so the two never disagree."""
    request, image = found.request, found.image
    by_row = {a.id: a for a in found.annotations}
    models_by_version: dict[int, list[dict[str, Any]]] = {}
    for model, version, split in found.trained:
        models_by_version.setdefault(version.id, []).append({**_model(model), "learnt_from_page": split is Split.train})
    learnt = {m.version for m, _, split in found.trained if split is Split.train}
    if found.served_by is not None:
        served: dict[str, Any] = {
            **_model(found.served_by),
            "learnt_from_page": found.served_by.version in learnt,
        }
    else:
        served = {"version": request.model_version, "registered": False, "status": None}
    return {
        "request": {
            "request_id": request.request_id,
            "created_at": _iso(request.created_at),
            "model_version": request.model_version,
            "confidence": request.confidence,
            "text": request.text,
            "source": request.source,
            "document": request.document,
        },
        "image": None
        if image is None
        else {
            "sha256": image.sha256,
            "status": image.status.value,
            "source": image.source.value,
            # The request logged the header's size before ingest decoded the page; either row will do.
            "width": image.width if image.width is not None else request.image_width,
            "height": image.height if image.height is not None else request.image_height,
            "polarity": (image.features or {}).get("polarity"),
            "quarantine_reasons": image.quarantine_reasons,
            "created_at": _iso(image.created_at),
            "validated_at": _iso(image.validated_at),
        },
        "tasks": [
            {
                "id": task.id,
                "project": task.project,
                "request_id": task.request_id,
                "reason": task.reason.value,
                "state": task.state.value,
                "prefilled_by": task.model_version,
                "created_at": _iso(task.created_at),
                "completed_at": _iso(task.completed_at),
                "annotations": [
                    {
                        "id": a.id,
                        "ls_annotation_id": a.ls_annotation_id,
                        "revision": a.revision,
                        "annotator": a.annotator,
                        "annotated_at": _iso(a.annotated_at),
                        "label_source": a.label_source.value if a.label_source is not None else None,
                        "text": a.text,
                        "unreadable": a.unreadable,
                        "skipped": a.skipped,
                    }
                    for a in found.annotations
                    if a.task_id == task.id
                ],
            }
            for task in found.tasks
        ],
        "datasets": [
            {
                "version": m.version.version,
                "created_at": _iso(m.version.created_at),
                "split": m.split.value,
                "text": m.text,
                "annotation_id": m.annotation_id,
                "ls_annotation_id": by_row[m.annotation_id].ls_annotation_id if m.annotation_id in by_row else None,
                "annotation_revision": m.annotation_revision,
                "models": models_by_version.get(m.version.id, []),
            }
            for m in found.memberships
        ],
        "served_by": served,
    }


# --- the tree ----------------------------------------------------------------------------------------------------


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "?"


def _snippet(text: str | None) -> str:
    flat = " / ".join((text or "").split("\n"))
    return json.dumps(flat if len(flat) <= _SNIPPET else flat[: _SNIPPET - 1] + "…", ensure_ascii=False)


def _annotation(a: dict[str, Any]) -> str:
    if a["skipped"]:
        what = "skipped"
    elif a["unreadable"]:
        what = "marked unreadable"
    else:
        what = (f"({a['label_source']}) " if a["label_source"] else "") + _snippet(a["text"])
    return (
        f"annotation {a['ls_annotation_id']} rev {a['revision']} by {a['annotator']} {_when(a['annotated_at'])} {what}"
    )


def _task(t: dict[str, Any], request_id: str) -> Node:
    facts = f"{t['reason']}, {t['state']}" + (f"; pre-filled by {t['prefilled_by']}" if t["prefilled_by"] else "")
    if t["request_id"] not in (None, request_id):
        facts += f"; routed from request {t['request_id']}"  # the same page, uploaded again
    children: list[Node] = [(_annotation(a), []) for a in t["annotations"]] or [("no annotation yet", [])]
    return f'task {t["id"]} in "{t["project"]}" ({facts})', children


def _dataset(d: dict[str, Any]) -> Node:
    label = f" (annotation {d['ls_annotation_id']} rev {d['annotation_revision']})" if d["ls_annotation_id"] else ""
    children: list[Node] = []
    for m in d["models"]:
        held_out = f"held out in {d['split']}: evaluated on this page, not learnt from it"
        use = "learnt from this page" if m["learnt_from_page"] else held_out
        children.append((f"model {m['version']} ({m['status']}) — {use}", []))
    return f"dataset {d['version']}: {d['split']}{label}", children


def _served(s: dict[str, Any]) -> str:
    if not s["registered"]:
        return f"served by: {s['version']} (the shipped model, not in the registry)"
    note = ", which had learnt from this page" if s["learnt_from_page"] else ""
    return f"served by: {s['version']} ({s['status']}{note})"


def _draw(nodes: list[Node], prefix: str = "") -> Iterator[str]:
    for index, (text, children) in enumerate(nodes):
        last = index == len(nodes) - 1
        yield f"{prefix}{'└' if last else '├'} {text}"
        yield from _draw(children, prefix + ("  " if last else "│ "))


def render_tree(record: dict[str, Any]) -> list[str]:
    """The record as a few lines: the request, then its page's path through annotation, datasets and training."""
    request, image = record["request"], record["image"]
    head = f"request {request['request_id']} ({_when(request['created_at'])}, confidence {request['confidence']:.2f})"
    if image is None:
        below: list[Node] = [("image not ingested yet: run inkloop flow run ingest", [])]
    else:
        facts = [image["status"]]
        if image["quarantine_reasons"]:
            facts = [f"quarantined ({', '.join(image['quarantine_reasons'])})"]
        if image["width"] and image["height"]:
            facts.append(f"{image['width']}x{image['height']}")
        if image["polarity"]:
            facts.append(image["polarity"])
        children = [_task(t, request["request_id"]) for t in record["tasks"]] or [("not routed to annotators", [])]
        children += [_dataset(d) for d in record["datasets"]] or [("in no dataset version yet", [])]
        below = [(f"image {image['sha256'][:12]}… {', '.join(facts)}", children)]
    return [head, *_draw(below), _served(record["served_by"])]


def register(app: typer.Typer) -> None:
    app.command()(lineage)
