"""`inkloop lineage` on SQLite and PostgreSQL: a labelled page followed from its request through two annotation
revisions and two dataset versions to the models trained on them; a page held out in val or test; a request
never routed; a page uploaded again and served by a model that learnt from it; an unknown id."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.app import app
from db import repo
from db.models import Annotation, AnnotationTask, Request
from devtools.pages import Page, handwritten_pages
from devtools.records import labelled
from flows.dataset import DatasetParams, build_version
from inkloop.domain import Split
from inkloop.labels import LabelSource
from inkloop.store import ImageStore
from tests.support.paths import SHIPPED_VERSION

PROJECT = "inkloop"
runner = CliRunner()


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return handwritten_pages(6, seed=5)


@pytest.fixture
def cli_env(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    monkeypatch.setenv("INKLOOP_STORE_URL", str(tmp_path / "store"))


def _lineage(*args: str) -> tuple[list[str], dict[str, Any]]:
    tree = runner.invoke(app, ["lineage", *args])
    assert tree.exit_code == 0, tree.output
    as_json = runner.invoke(app, ["lineage", *args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    return tree.output.splitlines(), json.loads(as_json.output)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _snippet(text: str | None) -> str:
    """A label as the tree quotes it: lines joined by " / ", at most 32 characters."""
    flat = " / ".join((text or "").split("\n"))
    return json.dumps(flat if len(flat) <= 32 else flat[:31] + "…", ensure_ascii=False)


@dataclass(frozen=True)
class Loop:
    """The rows of one small loop: which page ended in train and which was held out."""

    request_ids: dict[str, str]  # image key -> its request id
    splits: dict[str, Split]  # image key -> split in ds-0001 (kept in ds-0002)
    revisions: list[Annotation]  # the train page's revisions, oldest first
    task: AnnotationTask  # the train page's task


def _loop(session: Session, store: ImageStore, pages: list[Page]) -> Loop:
    """Label every page, freeze ds-0001, relabel one train page (revision 2), freeze ds-0002, train a model on
    each version and make the first the champion."""
    keys = [labelled(session, store, page, project=PROJECT) for page in pages]
    session.commit()
    params = DatasetParams(val_share=0.3, test_share=0.3)
    assert build_version(session, project=PROJECT, params=params).version == "ds-0001"
    first = repo.get_dataset(session=session, version="ds-0001")
    splits = {m.image_sha256: m.split for m in repo.dataset_members(session=session, version_id=first.id)}
    assert set(splits) == set(keys) and {Split.train} < set(splits.values()), splits
    train_key = next(key for key in keys if splits[key] is Split.train)
    task = session.scalars(select(AnnotationTask).where(AnnotationTask.image_sha256 == train_key)).one()
    old = task.annotations[0]
    repo.add_annotation_revision(
        session=session,
        task_id=task.id,
        ls_annotation_id=old.ls_annotation_id,
        annotator="reviewer@example.com",
        annotated_at=old.annotated_at + timedelta(minutes=11),
        text="A corrected reading\nof the whole page",
        label_source=LabelSource.paragraph,
        raw={"paragraph": "A corrected reading\nof the whole page", "lines": []},
    )
    session.commit()
    summary = build_version(session, project=PROJECT, params=params)
    assert summary.version == "ds-0002" and summary.relabelled == 1
    for name, dataset in (("m-0001", "ds-0001"), ("m-0002", "ds-0002")):
        version_id = repo.get_dataset(session=session, version=dataset).id
        repo.register_model(session=session, version=name, artifact_key=f"models/{name}", dataset_version_id=version_id)
    repo.promote_model(session=session, version="m-0001")
    session.commit()
    request_ids = {r.image_sha256: r.request_id for r in session.scalars(select(Request))}
    revisions = list(session.scalars(select(Annotation).where(Annotation.task_id == task.id).order_by(Annotation.id)))
    return Loop(request_ids, splits, revisions, task)


def test_a_labelled_page_is_followed_to_the_models_that_learnt_from_it(
    session: Session, cli_env: None, tmp_path: Path, pages: list[Page]
) -> None:
    loop = _loop(session, ImageStore(str(tmp_path / "store")), pages)
    key = loop.task.image_sha256
    request = session.scalars(select(Request).where(Request.request_id == loop.request_ids[key])).one()
    first, second = loop.revisions
    lines, record = _lineage(request.request_id)

    def annotation(row: Annotation, text: str) -> str:
        return (
            f"annotation {row.ls_annotation_id} rev {row.revision} by {row.annotator} {_when(row.annotated_at)} "
            f"({row.label_source}) {text}"
        )

    assert lines == [
        f"request {request.request_id} ({_when(request.created_at)}, confidence 0.40)",
        f"└ image {key[:12]}… valid, {request.image_width}x{request.image_height}, dark_on_light"
        if request.image_width
        else f"└ image {key[:12]}… valid, dark_on_light",
        f'  ├ task {loop.task.id} in "inkloop" (low_confidence, completed; pre-filled by {SHIPPED_VERSION})',
        "  │ ├ " + annotation(first, _snippet(first.text)),
        "  │ └ " + annotation(second, '"A corrected reading / of the wh…"'),
        f"  ├ dataset ds-0001: train (annotation {first.ls_annotation_id} rev 1)",
        "  │ └ model m-0001 (champion) — learnt from this page",
        f"  └ dataset ds-0002: train (annotation {first.ls_annotation_id} rev 2)",
        "    └ model m-0002 (candidate) — learnt from this page",
        f"served by: {SHIPPED_VERSION} (the shipped model, not in the registry)",
    ]

    assert (
        record["request"]["request_id"] == request.request_id and record["request"]["model_version"] == SHIPPED_VERSION
    )
    assert record["image"]["sha256"] == key and record["image"]["status"] == "valid"
    [task] = record["tasks"]
    assert (task["id"], task["state"], task["reason"]) == (loop.task.id, "completed", "low_confidence")
    assert [(a["revision"], a["annotator"], a["label_source"]) for a in task["annotations"]] == [
        (1, "annotator@example.com", first.label_source),
        (2, "reviewer@example.com", "paragraph"),
    ]
    assert [(d["version"], d["split"], d["annotation_revision"], d["text"]) for d in record["datasets"]] == [
        ("ds-0001", "train", 1, first.text),
        ("ds-0002", "train", 2, "A corrected reading\nof the whole page"),
    ]
    assert [[(m["version"], m["status"], m["learnt_from_page"]) for m in d["models"]] for d in record["datasets"]] == [
        [("m-0001", "champion", True)],
        [("m-0002", "candidate", True)],
    ]
    assert record["served_by"] == {"version": SHIPPED_VERSION, "registered": False, "status": None}
    stamps = [
        record["request"]["created_at"],
        task["annotations"][1]["annotated_at"],
        record["datasets"][0]["created_at"],
    ]
    assert all(datetime.fromisoformat(s).utcoffset() == timedelta(0) for s in stamps)

    # A page held out in val or test: the models were evaluated on it, never trained on it.
    held = next(k for k, split in loop.splits.items() if split is not Split.train)
    split = loop.splits[held].value
    lines, record = _lineage(loop.request_ids[held])
    assert f"  ├ dataset ds-0001: {split} (annotation " in "\n".join(lines)
    assert f"  │ └ model m-0001 (champion) — held out in {split}: evaluated on this page, not learnt from it" in lines
    assert [m["learnt_from_page"] for d in record["datasets"] for m in d["models"]] == [False, False]


def test_the_same_page_uploaded_again_names_the_model_that_had_learnt_it(
    session: Session, cli_env: None, tmp_path: Path, pages: list[Page]
) -> None:
    loop = _loop(session, ImageStore(str(tmp_path / "store")), pages)
    key = loop.task.image_sha256
    again = str(uuid.uuid4())
    repo.log_request(
        session=session,
        request_id=again,
        image_sha256=key,
        image_bytes=1,
        model_version="m-0001",
        text="a reading",
        confidence=0.93,
        latency_ms=1.0,
    )
    session.commit()
    lines, record = _lineage(again)
    assert lines[0].startswith(f"request {again} (") and lines[0].endswith(", confidence 0.93)")
    assert f"; routed from request {loop.request_ids[key]})" in lines[2]
    assert lines[-1] == "served by: m-0001 (champion, which had learnt from this page)"
    assert record["served_by"]["registered"] is True and record["served_by"]["learnt_from_page"] is True
    assert record["tasks"][0]["request_id"] == loop.request_ids[key] != again


def test_a_request_never_routed_says_where_its_chain_stops(session: Session, cli_env: None) -> None:
    repo.register_model(session=session, version="m-0001", artifact_key="models/m-0001")
    repo.promote_model(session=session, version="m-0001")
    ingested, waiting = "a" * 64, "b" * 64
    for request_id, key in (("req-ingested", ingested), ("req-waiting", waiting)):
        repo.log_request(
            session=session,
            request_id=request_id,
            image_sha256=key,
            image_bytes=10,
            model_version="m-0001",
            text="fine",
            confidence=0.97,
            latency_ms=1.0,
            image_width=640,
            image_height=480,
        )
    repo.upsert_image(session=session, sha256=ingested, source="production", byte_size=10)
    repo.set_image_validation(session=session, sha256=ingested, status="valid")
    session.commit()

    lines, record = _lineage("req-ingested")
    assert lines[1:] == [
        f"└ image {ingested[:12]}… valid, 640x480",
        "  ├ not routed to annotators",
        "  └ in no dataset version yet",
        "served by: m-0001 (champion)",
    ]
    assert record["tasks"] == [] and record["datasets"] == []
    assert record["served_by"]["version"] == "m-0001" and record["served_by"]["status"] == "champion"

    lines, record = _lineage("req-waiting")
    assert lines[1:] == ["└ image not ingested yet: run inkloop flow run ingest", "served by: m-0001 (champion)"]
    assert record["image"] is None


def test_an_unknown_request_is_one_line_naming_it(migrated_url: str, cli_env: None) -> None:
    for args in (["lineage", "no-such-request"], ["lineage", "no-such-request", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert result.output == "inkloop: error: no logged request with id 'no-such-request'\n"
