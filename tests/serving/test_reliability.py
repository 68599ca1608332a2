"""What must hold when things go wrong: a model swap under load, a server killed mid-request, a database that
stops accepting rows. Each runs a real `inkloop serve` process on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import itertools
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import text

from db.session import make_engine
from inkloop.store import sha256_hex
from model.export import update_card
from model.recognizer import SHIPPED_MODEL
from tests.support.paths import GOLDEN
from tests.support.servers import LiveServer

pytestmark = pytest.mark.slow
_counter = itertools.count()
# One answered request: when (time.monotonic()), which client thread, the HTTP status and the JSON body.
Answer = tuple[float, int, int, Any]


def unique_page(name: str = "000000.png") -> bytes:
    """A golden page with a unique text chunk: new bytes (a new store object) every call, same pixels."""
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("n", f"{next(_counter)}-{time.monotonic_ns()}")
    buffer = io.BytesIO()
    Image.open(GOLDEN / name).save(buffer, "PNG", pnginfo=metadata)
    return buffer.getvalue()


def hammer(
    server: LiveServer,
    threads: int,
    stop: threading.Event,
    results: list[Answer],
    errors: list[httpx.TransportError],
) -> list[threading.Thread]:
    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                try:
                    response = http.post(f"{server.url}/v1/predict", files={"image": ("p.png", unique_page())})
                except httpx.TransportError as exc:
                    errors.append(exc)
                    return
                results.append((time.monotonic(), threading.get_ident(), response.status_code, response.json()))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def test_a_promoted_model_is_served_without_restart_or_failed_requests(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = server_factory().start()
    shipped_version = httpx.get(f"{server.url}/v1/model").json()["version"]
    artifact = tmp_path / "next.pt"
    shutil.copy(SHIPPED_MODEL, artifact)
    update_card(artifact, lambda card: card.model_copy(update={"version": "swap-test-2"}))
    assert "registered swap-test-2" in server.cli("models", "register", str(artifact)).stdout

    stop = threading.Event()
    results: list[Answer] = []
    errors: list[httpx.TransportError] = []
    workers = hammer(server, 4, stop, results, errors)
    time.sleep(2.0)
    promoted_at = time.monotonic()
    assert "champion: swap-test-2" in server.cli("models", "promote", "swap-test-2").stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(r[3].get("model_version") == "swap-test-2" for r in results):
        time.sleep(0.2)
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join()

    assert not errors and results
    assert all(status == 200 for _, _, status, _ in results), {s for _, _, s, _ in results}
    versions = [(at, thread, body["model_version"]) for at, thread, _, body in results]
    first_new = min(at for at, _, v in versions if v == "swap-test-2")
    assert first_new - promoted_at < 15, "the server did not pick up the new champion within 15 s"
    for thread in {t for _, t, _ in versions}:
        seen = [v for _, t, v in sorted(versions) if t == thread]
        assert seen == sorted(seen, key=lambda v: v == "swap-test-2"), "a thread got the old model after the new"
    assert {v for _, _, v in versions} == {shipped_version, "swap-test-2"}
    logged = {r.request_id: r.model_version for r in server.rows()}
    assert all(logged[body["request_id"]] == body["model_version"] for _, _, _, body in results)
    assert httpx.get(f"{server.url}/v1/model").json()["source"] == "registry"


def test_sigkill_under_load_loses_no_answered_request(server_factory: Callable[..., LiveServer]) -> None:
    server = server_factory().start()
    stop = threading.Event()
    results: list[Answer] = []
    errors: list[httpx.TransportError] = []
    workers = hammer(server, 8, stop, results, errors)
    deadline = time.monotonic() + 60
    while len(results) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(signal.SIGKILL)  # requests are in flight: 8 clients keep sending
    stop.set()
    for worker in workers:
        worker.join()

    answered = {body["request_id"] for _, _, status, body in results if status == 200}
    assert len(answered) >= 12 and errors, "the kill did not land while requests were in flight"
    rows = server.rows()
    assert answered <= {r.request_id for r in rows}, "a request that got a 200 has no row"
    store = server.store()
    for row in rows:
        assert sha256_hex(store.get(row.image_sha256)) == row.image_sha256, "a row lacks its image"

    server.start()  # the same database and store after the crash
    again = httpx.post(f"{server.url}/v1/predict", files={"image": ("p.png", unique_page())}, timeout=60)
    assert again.status_code == 200 and len(server.rows()) == len(rows) + 1


def test_a_database_refusing_rows_gets_503_not_recorded_and_keeps_no_image(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory().start()
    engine = make_engine(server.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE requests RENAME TO requests_offline"))
        keys = set(server.store().keys())
        data = unique_page()
        response = httpx.post(f"{server.url}/v1/predict", files={"image": ("p.png", data)}, timeout=60)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "not_recorded" and "not recorded" in error["message"]
        assert set(server.store().keys()) == keys, "the image of an unrecorded request was kept"
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE requests_offline RENAME TO requests"))
    finally:
        engine.dispose()
    response = httpx.post(f"{server.url}/v1/predict", files={"image": ("p.png", data)}, timeout=60)
    assert response.status_code == 200 and server.store().exists(sha256_hex(data))
