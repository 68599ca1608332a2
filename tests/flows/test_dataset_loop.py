"""Annotations made in a real Label Studio, as annotators make them, become dataset versions through sync and the
dataset flow; synthetic pages are stitched from the train split only; an exported version trains as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from annotation.labeling import annotation_result
from cli.app import app
from db import repo
from db.models import SyntheticSample
from devtools.annotators import correction, prefilled
from devtools.pages import Page, handwritten_pages, rephotographed
from flows.dataset import DatasetParams, dataset
from flows.route import RouteParams, route
from flows.sync import sync
from flows.synth import SynthParams, synth
from inkloop.domain import Split
from inkloop.labels import read_records
from inkloop.phash import NEAR_DUPLICATE_DISTANCE, hamming
from monitoring.features import compute_features
from tests.support.loop import Loop, valid_image
from tests.support.paths import SHIPPED_VERSION

pytestmark = pytest.mark.slow

TINY_CONFIG = {
    "batch_size": 4,
    "num_workers": 0,
    "val_fraction": 0.25,
    "net": {"widths": [8, 16, 24, 32], "lstm_hidden": 16, "lstm_layers": 1},
}


def _annotate(loop: Loop, pages: dict[str, Page], skip: set[str]) -> dict[str, int]:
    """Answer every open task as an annotator does: fix the wrong line in its box (the paragraph box left as it
    was), or retype the paragraph where the page has no line boxes; skip the pages in `skip`. Annotation ids."""
    project = loop.tasks()[0].ls_project_id
    assert project is not None
    answered: dict[str, int] = {}
    with loop.label_studio.annotator() as annotator:
        while (task := annotator.next_task(project)) is not None:
            key = task["data"]["image_sha256"]
            if key in skip:
                annotator.skip(task["id"])
                continue
            page = pages[key]
            assert prefilled(task)[0] == page.reading
            answered[key] = annotator.submit(task["id"], result=correction(task, page.text), lead_time=5.0)["id"]
    return answered


def _members(loop: Loop, version: str) -> dict[str, Any]:
    with loop.session() as session:
        row = repo.get_dataset(session=session, version=version)
        return {m.image_sha256: m for m in repo.dataset_members(session=session, version_id=row.id)}


def test_label_studio_answers_become_versions_synthetic_pages_and_training_data(loop: Loop, tmp_path: Path) -> None:
    pages: dict[str, Page] = {}
    for page in handwritten_pages(8, seed=31):
        pages[valid_image(loop, page.data, confidence=0.3, text=page.reading, line_boxes=page.boxes)] = page
    assert route(RouteParams(budget=20, threshold=0.9, audit_rate=0.0)).created == 8
    skipped = next(iter(pages))
    answered = _annotate(loop, pages, skip={skipped})
    assert sync().completed == 7

    first = dataset(DatasetParams(val_share=0.3, test_share=0.3))
    assert first.created and first.members == 7 and first.left_out == {"skipped": 1}
    members = _members(loop, first.version or "")
    assert set(members) == set(answered)
    for key, member in members.items():
        assert member.text == pages[key].text  # the corrected line reached the paragraph
        assert member.reason.value == "low_confidence" and member.served_model == SHIPPED_VERSION
    assert not dataset(DatasetParams(val_share=0.3, test_share=0.3)).created

    # A second wave: new pages, and another photo of a held-out page (routed too: near-duplicate routing is off).
    held_out = next(k for k, m in members.items() if m.split is not Split.train)
    original = compute_features(pages[held_out].data).phash or ""
    # A photo whose hash differs from the original's by at least one bit: distance 0 still drops identical hashes.
    for degrees in (0.3, 0.6, 1.0, 1.5):
        copy = rephotographed(pages[held_out], degrees=degrees)
        distance = hamming(compute_features(copy).phash or "", original)
        if distance:
            break
    assert 1 <= distance <= NEAR_DUPLICATE_DISTANCE, f"the copy is {distance} bits from its original"
    copy_key = valid_image(loop, copy, confidence=0.3, text=pages[held_out].reading)
    pages[copy_key] = pages[held_out]
    for page in handwritten_pages(12, seed=31)[8:]:
        pages[valid_image(loop, page.data, confidence=0.3, text=page.reading, line_boxes=page.boxes)] = page
    assert route(RouteParams(budget=20, threshold=0.9, audit_rate=0.0, near_duplicate_distance=0)).created == 5
    answered.update(_annotate(loop, pages, skip=set()))
    assert sync().new_annotations == 5
    grown = dataset(DatasetParams(val_share=0.3, test_share=0.3))
    assert grown.created and grown.parent == first.version and grown.added == 5
    now = _members(loop, grown.version or "")
    assert all(now[k].split is m.split for k, m in members.items())  # no old member moved
    assert now[copy_key].split is members[held_out].split  # the copy joined its original, never train
    splits = {s: {k for k, m in now.items() if m.split is s} for s in Split}
    assert not (splits[Split.train] & splits[Split.val]) and not (splits[Split.train] & splits[Split.test])

    # An annotator changes their mind about one page: a new version; its parent keeps the old label.
    key, annotation_id = next(iter(answered.items()))
    with loop.label_studio.annotator() as annotator:
        annotator.edit(annotation_id, result=annotation_result(paragraph="a different reading"))
    assert sync().new_revisions == 1
    second = dataset(DatasetParams(val_share=0.3, test_share=0.3))
    assert second.created and second.parent == grown.version and second.relabelled == 1
    assert _members(loop, grown.version or "")[key].text == pages[key].text
    assert _members(loop, second.version or "")[key].text == "a different reading"
    assert _members(loop, second.version or "")[key].split is members[key].split

    # Synthetic pages: stitched from the train split's annotated lines only, recorded once however often run.
    made = synth(SynthParams(stitched=4, rendered=2, max_lines=3))
    assert made.version == second.version and made.stitched == 4 and made.rendered == 2
    train = {k for k, m in _members(loop, second.version or "").items() if m.split is Split.train}
    with loop.session() as session:
        samples = list(session.scalars(select(SyntheticSample)))
    assert len(samples) == 6
    for sample in samples:
        if sample.generator == "stitch":
            sources = {sha for sha, _ in (sample.params or {})["source_lines"]}
            assert sources and sources <= train
    again = synth(SynthParams(stitched=4, rendered=2, max_lines=3))
    assert again.stitched == again.rendered == 0 and again.already_there == 6

    # The exported train split (with its synthetic pages) trains as it is.
    out = tmp_path / "train-data"
    runner = CliRunner()
    exported = runner.invoke(
        app, ["datasets", "export", second.version or "", "--out", str(out), "--split", "train", "--synthetic"]
    )
    assert exported.exit_code == 0, exported.output
    records = read_records(out)
    assert {r["split"] for r in records} == {"train"} and sum(1 for r in records if "generator" in r) == 6
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    trained = runner.invoke(
        app, ["train", "--data", str(out), "--out", str(tmp_path / "run"), "--config", str(config), "--max-steps", "2"]
    )
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "run" / "model.pt").is_file()


@pytest.mark.parametrize("loop", ["sqlite"], indirect=True)
def test_the_flow_with_nothing_annotated_says_so_and_succeeds(loop: Loop) -> None:
    summary = dataset()
    assert summary.version is None and not summary.created
    assert summary.nothing_to_build == "no completed annotations yet: run inkloop flow run sync"
