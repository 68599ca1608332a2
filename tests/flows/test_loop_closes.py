"""The whole loop on CPU, on SQLite and PostgreSQL, with a real Label Studio and a live endpoint: pages the shipped
model reads poorly are served and logged, ingested, routed, corrected by the simulated annotator through Label
Studio's API, synced, frozen into a dataset version, retrained on (short config), gated and promoted; the running
server then answers with the new model, and the lineage of a request leads to it."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from annotation.labeling import annotation_result
from flows.dataset import DatasetParams, dataset
from flows.ingest import IngestParams, ingest
from flows.retrain import RetrainParams, retrain
from flows.route import RouteParams, route
from flows.sync import sync
from inkloop.cli.app import app
from model.gates import GateConfig
from tests.support.datasets import Page, shifted_pages
from tests.support.loop import Loop, prefilled

pytestmark = pytest.mark.slow


def _answer(loop: Loop, pages: dict[str, Page]) -> int:
    """Answer every open task as an annotator does: correct each line in its box where the boxes match the text's
    lines, else retype the paragraph. Returns how many were answered."""
    project = loop.tasks()[0].ls_project_id
    assert project is not None
    answered = 0
    with loop.label_studio.annotator() as annotator:
        while (task := annotator.next_task(project)) is not None:
            page = pages[task["data"]["image_sha256"]]
            paragraph, boxes = prefilled(task)
            rows = page.text.split("\n")
            if len(boxes) == len(rows):
                lines = [{"text": row, "box": box} for row, box in zip(rows, boxes, strict=True)]
                result = annotation_result(paragraph=paragraph, lines=lines)
            else:
                result = annotation_result(paragraph=page.text, lines=[{"text": "", "box": b} for b in boxes])
            annotator.submit(task["id"], result=result, lead_time=4.0)
            answered += 1
    return answered


def test_production_pages_make_a_better_champion_that_the_server_then_answers_with(
    loop: Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = loop.serve()
    pages: dict[str, Page] = {}
    requests: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for page in shifted_pages(24, seed=77):
            response = client.post("/v1/predict", files={"image": ("page.png", page.data, "image/png")})
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "base-2"
            key = hashlib.sha256(page.data).hexdigest()
            pages[key], requests[key] = page, response.json()["request_id"]

    assert ingest(IngestParams()).valid == 24
    routed = route(RouteParams(budget=50, threshold=1.0, audit_rate=0.3))
    # Everything below full confidence, and an audit sample of the rest: nearly every page.
    assert routed.created >= 20 and routed.created_by_reason.get("audit", 0) > 0
    assert _answer(loop, pages) == routed.created
    assert sync().completed == routed.created
    built = dataset(DatasetParams(val_share=0.25, test_share=0.3))
    assert built.created and built.members == routed.created

    config = tmp_path / "short.json"
    config.write_text(json.dumps({"batch_size": 8, "lr": 0.0005, "warmup_fraction": 0.2, "val_every_steps": 40}))
    monkeypatch.setenv("INKLOOP_MIN_NEW_LABELS", "5")
    summary = retrain(
        RetrainParams(
            config=config,
            max_steps=40,
            replay_pages=8,
            replay_val_pages=4,
            stitched=4,
            rendered=4,
            gate_config=GateConfig(heldout_pages=8, memorization_steps=10, speed_rounds=3, speed_tolerance=1.0),
        )
    )
    assert summary.new_labels == built.splits["train"] and summary.candidate == "m-0001"
    assert summary.gate_passed and summary.promoted, summary.gate_failures

    with httpx.Client(base_url=server.url, timeout=60) as client:
        deadline = time.monotonic() + 60
        while client.get("/v1/model").json().get("version") != "m-0001":
            assert time.monotonic() < deadline, "the server did not swap to the new champion"
            time.sleep(0.5)
        page = next(iter(pages.values()))
        answer = client.post("/v1/predict", files={"image": ("again.png", page.data, "image/png")}).json()
        assert answer["model_version"] == "m-0001"

    routed_keys = {task.image_sha256 for task in loop.tasks()}
    first = next(requests[key] for key in requests if key in routed_keys)
    shown = CliRunner().invoke(app, ["lineage", first, "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["tasks"] and record["tasks"][0]["annotations"]
    (membership,) = record["datasets"]
    assert membership["version"] == built.version
    assert any(model["version"] == "m-0001" for model in membership["models"])
