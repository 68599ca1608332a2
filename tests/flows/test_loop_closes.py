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

from cli.app import app
from devtools.pages import Page, shifted_pages
from flows.dataset import DatasetParams, dataset
from flows.ingest import IngestParams, ingest
from flows.retrain import retrain
from flows.route import RouteParams, route
from flows.sync import sync
from tests.support.loop import Loop, answer_all, short_retrain
from tests.support.paths import SHIPPED_VERSION

pytestmark = pytest.mark.slow


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
            assert response.json()["model_version"] == SHIPPED_VERSION
            key = hashlib.sha256(page.data).hexdigest()
            pages[key], requests[key] = page, response.json()["request_id"]

    assert ingest(IngestParams()).valid == 24
    routed = route(RouteParams(budget=50, threshold=1.0, audit_rate=0.3))
    # Everything below full confidence, and an audit sample of the rest: nearly every page.
    assert routed.created >= 20 and routed.created_by_reason.get("audit", 0) > 0
    assert answer_all(loop, pages) == routed.created
    assert sync().completed == routed.created
    built = dataset(DatasetParams(val_share=0.25, test_share=0.3))
    assert built.created and built.members == routed.created

    monkeypatch.setenv("INKLOOP_MIN_NEW_LABELS", "5")
    summary = retrain(short_retrain(tmp_path))
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
