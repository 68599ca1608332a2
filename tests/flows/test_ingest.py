"""The ingest flow: requests logged through the real endpoint are validated exactly once; bad images are
quarantined with their reasons; a crash in the middle and a rerun lose and duplicate nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client

from db import repo
from devtools.traffic import blank_page
from flows.ingest import WATERMARK, IngestParams, ingest
from inkloop.domain import ImageStatus
from tests.support.loop import Loop
from tests.support.paths import GOLDEN


def _watermark(loop: Loop) -> int:
    with loop.session() as session:
        return repo.get_watermark(session=session, name=WATERMARK)


async def _artifact(key: str) -> str:
    async with get_client() as client:
        artifact = await client.read_latest_artifacts()
        data = next(a.data for a in artifact if a.key == key)
        assert isinstance(data, str), f"artifact {key} holds {type(data).__name__}, not markdown"
        return data


def test_logged_requests_are_validated_and_bad_images_quarantined(loop: Loop) -> None:
    server = loop.serve()
    import httpx

    pages = [GOLDEN / "000000.png", GOLDEN / "000003.png", GOLDEN / "000004.png"]
    uploads = [p.read_bytes() for p in pages] + [pages[0].read_bytes(), blank_page(7)]
    for data in uploads:
        response = httpx.post(f"{server.url}/v1/predict", files={"image": ("page", data)}, timeout=60)
        assert response.status_code == 200, response.text
    keys = [loop.store.put(data) for data in uploads]  # the keys (the bytes are there already)
    # Bit rot: the third page's stored bytes no longer match their key.
    Path(loop.store.path_of(keys[2])).write_bytes(b"\x89PNG damaged")

    summary = ingest(IngestParams(batch_size=2))

    assert summary.requests == 5
    assert summary.new_images == 4  # the page sent twice is one image
    assert summary.valid == 2 and summary.quarantined == 2
    images = loop.images()
    assert set(images) == set(keys)
    assert images[keys[0]].status is ImageStatus.valid and images[keys[1]].status is ImageStatus.valid
    corrupt, blank = images[keys[2]], images[keys[4]]
    assert corrupt.status is ImageStatus.quarantined
    assert corrupt.quarantine_reasons is not None and corrupt.quarantine_reasons[0] == "image_corrupt"
    assert blank.status is ImageStatus.quarantined
    assert blank.quarantine_reasons is not None and "blank" in blank.quarantine_reasons
    good = images[keys[0]]
    assert good.width and good.height and good.phash and len(good.phash) == 16
    assert good.features is not None and {"ink_ratio", "contrast", "blur", "polarity"} <= set(good.features)
    assert _watermark(loop) == max(r.id for r in server.rows())
    assert summary.data_docs is not None
    docs = Path(summary.data_docs)
    assert docs.is_file() and docs.is_relative_to(loop.home / "reports")
    # The counts are published as a Prefect artifact.
    import asyncio

    markdown = asyncio.run(_artifact("ingest-summary"))
    assert "quarantined" in markdown and "image_corrupt" in markdown

    again = ingest(IngestParams(batch_size=2))
    assert again.requests == 0 and again.new_images == 0
    assert loop.images().keys() == images.keys()


def test_a_crash_between_batches_loses_and_duplicates_nothing(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = sorted(GOLDEN.glob("*.png"))
    for page in pages:
        loop.log(page.read_bytes(), confidence=0.5)
    loop.log(pages[0].read_bytes(), confidence=0.4)  # a repeat upload
    loop.log(blank_page(3), confidence=0.2)
    total = len(pages) + 2

    # The process dies inside the second batch's transaction, after its images were written.
    import flows.ingest as ingest_module

    real = ingest_module.repo.set_watermark
    calls = {"n": 0}

    def dies_on_second_commit(**kwargs):  # noqa: ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(**kwargs)

    monkeypatch.setattr(ingest_module.repo, "set_watermark", dies_on_second_commit)
    with pytest.raises(RuntimeError, match="killed"):
        ingest(IngestParams(batch_size=2))
    kept = loop.images()
    assert len(kept) == 2  # the first batch only: the second rolled back whole
    assert _watermark(loop) == 2

    monkeypatch.setattr(ingest_module.repo, "set_watermark", real)
    summary = ingest(IngestParams(batch_size=2))
    assert summary.requests == total - 2
    images = loop.images()
    assert len(images) == len(pages) + 1  # every distinct image once
    assert all(image.status is not ImageStatus.pending for image in images.values())
    assert _watermark(loop) == total
    assert ingest(IngestParams()).requests == 0


def test_a_refused_batch_keeps_nothing_and_its_data_docs_say_why(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = sorted(GOLDEN.glob("*.png"))[:4]
    for page in pages:
        loop.log(page.read_bytes(), confidence=0.5)

    # A bug upstream of the suite: the second batch's frame holds one image twice.
    import flows.ingest as ingest_module
    from monitoring.validation import BatchRefusedError

    real = ingest_module.validation_frame
    calls = {"n": 0}

    def duplicates_a_row_in_the_second_batch(images, features):  # noqa: ANN001, ANN202
        calls["n"] += 1
        frame = real(images, features)
        return pd.concat([frame, frame.iloc[:1]], ignore_index=True) if calls["n"] == 2 else frame

    monkeypatch.setattr(ingest_module, "validation_frame", duplicates_a_row_in_the_second_batch)
    with pytest.raises(BatchRefusedError, match="duplicate_image_sha256"):
        ingest(IngestParams(batch_size=2))
    assert len(loop.images()) == 2 and _watermark(loop) == 2  # the first batch only
    index = (loop.home / "reports" / "data_docs" / "index.html").read_text()
    assert index.count("refused") >= 1, "the refused run is listed in the Data Docs"

    monkeypatch.setattr(ingest_module, "validation_frame", real)
    assert ingest(IngestParams(batch_size=2)).new_images == 2
    assert len(loop.images()) == 4 and _watermark(loop) == 4


def _database_accepts_connections(server_url: str, database_url: str, accept: bool) -> None:
    """A real outage of one PostgreSQL database: refuse new connections and cut the open ones (or end that)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(accept).lower()}'))
            if not accept:
                connection.execute(
                    text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :name"),
                    {"name": name},
                )
    finally:
        admin.dispose()


@pytest.mark.parametrize("loop", ["postgresql"], indirect=True)
def test_a_database_outage_fails_the_run_after_its_retries_and_the_next_run_catches_up(
    loop: Loop, monkeypatch: pytest.MonkeyPatch, postgres_server_url: str
) -> None:
    pages = sorted(GOLDEN.glob("*.png"))[:4]
    for page in pages:
        loop.log(page.read_bytes(), confidence=0.5)

    from sqlalchemy.exc import OperationalError

    import flows.ingest as ingest_module

    monkeypatch.setattr(ingest_module._commit_batch, "retry_delay_seconds", [0, 0, 0])
    real_decide, real_commit = ingest_module.decide, ingest_module.commit_batch
    calls = {"decide": 0, "commit": 0}

    def decide_then_the_database_goes_down(*args):  # noqa: ANN002, ANN202
        calls["decide"] += 1
        if calls["decide"] == 2:  # the second batch is validated; then the database goes away
            _database_accepts_connections(postgres_server_url, loop.database_url, accept=False)
        return real_decide(*args)

    def counted_commit(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["commit"] += 1
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "decide", decide_then_the_database_goes_down)
    monkeypatch.setattr(ingest_module, "commit_batch", counted_commit)
    try:
        with pytest.raises(OperationalError, match="not currently accepting connections"):
            ingest(IngestParams(batch_size=2))
        assert calls["commit"] == 1 + 4, "the failed commit was tried once and retried three times"
    finally:
        _database_accepts_connections(postgres_server_url, loop.database_url, accept=True)
    assert len(loop.images()) == 2 and _watermark(loop) == 2  # the first batch, whole; nothing of the second

    monkeypatch.setattr(ingest_module, "decide", real_decide)
    assert ingest(IngestParams(batch_size=2)).new_images == 2
    assert len(loop.images()) == 4 and _watermark(loop) == 4


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        IngestParams(batch_size=0)
    with pytest.raises(ValueError, match="extra"):
        IngestParams.model_validate({"batchsize": 5})
