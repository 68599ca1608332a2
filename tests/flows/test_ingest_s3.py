"""The request log and ingest with the image store on S3 (moto on 127.0.0.1): a real `inkloop serve` process
configured by environment variables only logs uploads into the bucket, and the ingest flow reads them back,
catching an object that rotted in the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db.models import Image
from db.session import make_engine, session_factory
from devtools.traffic import blank_page
from flows.ingest import IngestParams, ingest
from inkloop.domain import ImageStatus
from inkloop.store import ImageStore, sha256_hex
from tests.support.paths import GOLDEN
from tests.support.servers import LiveServer

pytestmark = pytest.mark.slow


def test_serve_logs_into_s3_and_ingest_validates_from_it(
    tmp_path: Path,
    s3_url: str,
    s3_env: dict[str, str],
    s3_client: Any,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, database = tmp_path / "home", f"sqlite:///{tmp_path / 'inkloop.db'}"
    server = LiveServer(home=home, database_url=database, extra_env={"INKLOOP_STORE_URL": s3_url, **s3_env})
    server.start()
    try:
        uploads = [(GOLDEN / "000000.png").read_bytes(), (GOLDEN / "000003.png").read_bytes(), blank_page(7)]
        for data in uploads:
            response = httpx.post(f"{server.url}/v1/predict", files={"image": ("page", data)}, timeout=60)
            assert response.status_code == 200, response.text
    finally:
        server.stop()
    keys = [sha256_hex(data) for data in uploads]
    assert sorted(ImageStore(s3_url).keys()) == sorted(keys)
    assert not list((home / "store").rglob("*.png")), "the images went to the bucket, not the local default"
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    rotten = keys[1]
    s3_client.put_object(Bucket=bucket, Key=f"{prefix}/objects/{rotten[:2]}/{rotten[2:4]}/{rotten}", Body=b"rot")

    for name, value in {
        "INKLOOP_HOME": str(home),
        "INKLOOP_DATABASE_URL": database,
        "INKLOOP_STORE_URL": s3_url,
    }.items():
        monkeypatch.setenv(name, value)
    summary = ingest(IngestParams(batch_size=2))

    assert summary.requests == 3 and summary.new_images == 3
    assert summary.valid == 1 and summary.quarantined == 2
    engine = make_engine(database)
    try:
        with session_factory(engine)() as session:
            images = {row.sha256: row for row in session.scalars(select(Image))}
    finally:
        engine.dispose()
    assert images[keys[0]].status is ImageStatus.valid
    assert (images[rotten].quarantine_reasons or [""])[0] == "image_corrupt"
    assert "blank" in (images[keys[2]].quarantine_reasons or [])
