"""The API against its own OpenAPI schema: Schemathesis fuzzes a real `inkloop serve` (127.0.0.1 only), on SQLite
and on PostgreSQL, from the schema, a bounded number of cases per operation with a fixed seed, and runs every check
on every answer: no 5xx, each status and body documented, a 405 that names its allowed methods, nothing the schema
calls valid refused, nothing it calls invalid accepted.

The schema says what `image` accepts as the media types of its multipart encoding (PNG, JPEG, WEBP, TIFF, BMP, GIF);
Schemathesis draws a part of such a type from the strategy registered for it here, a real image of that format, so
positive_data_acceptance holds for POST /v1/predict with no check relaxed.

The schema comes from the app object at collection time (building routes needs no database and no model), built
with the limits the live server runs with; the requests go to the live server. (`schemathesis.pytest.from_fixture`
cannot be used: it breaks on pytest 9.)
"""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from inkloop.settings import Settings
from serving.app import create_app
from serving.uploads import MEDIA_TYPES
from tests.support.databases import BACKENDS, database_for, drop_postgres_database
from tests.support.servers import LiveServer

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = 20  # fuzzing-phase cases per operation; the coverage phase adds ~75 requests in all
LIMITS = {"INKLOOP_MAX_UPLOAD_BYTES": "2000000", "INKLOOP_MAX_IMAGE_PIXELS": "40000000"}  # the live server's

SCHEMA: dict[str, Any] = create_app(  # builds routes only: no database, no model
    Settings(
        max_upload_bytes=int(LIMITS["INKLOOP_MAX_UPLOAD_BYTES"]),
        max_image_pixels=int(LIMITS["INKLOOP_MAX_IMAGE_PIXELS"]),
    )
).openapi()
config = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "request-timeout": 10,
        "generation": {"max-examples": FUZZ_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": True},  # every check, none relaxed
    }
)
schema = schemathesis.openapi.from_dict(SCHEMA, config=config)
KNOWN_REQUEST_IDS: list[str] = []  # the current server's, filled by `request_id` before any case is drawn


def png(width: int, height: int, text: str = "hello") -> bytes:
    return encode(page(width, height, text), "PNG")


def page(width: int, height: int, text: str) -> Image.Image:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((5, 5), text, fill=0)
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# The pixel modes each format is written in by phones, scanners and browsers (the server reads every one).
MODES = {
    "PNG": ["L", "RGB", "RGBA", "P"],
    "JPEG": ["L", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["L", "RGB", "CMYK"],
    "BMP": ["L", "RGB"],
    "GIF": ["P", "L"],
}


def images(fmt: str) -> st.SearchStrategy[bytes]:
    """Real `fmt` files of a written line, of several sizes and pixel modes: what a client sends as that type."""

    @st.composite
    def draw(draw: st.DrawFn) -> bytes:
        width, height = draw(st.integers(48, 320)), draw(st.integers(24, 120))
        text = draw(st.text("abcdefgh ", min_size=1, max_size=12))
        return encode(page(width, height, text).convert(draw(st.sampled_from(MODES[fmt]))), fmt)

    return draw()


for _fmt, _media_type in MEDIA_TYPES.items():
    schemathesis.openapi.media_type(_media_type, images(_fmt))


@schema.hook("flatmap_body").apply_to(path="/v1/feedback", method="POST")  # type: ignore[attr-defined]
def known_request_ids_too(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Sometimes name a logged request, so 201 is checked too. Only a valid id is swapped: negatives stay negative.
    (A body hook, not a case hook: Schemathesis labels a body positive or negative when it draws it; an edit made
    by a case hook is re-validated. It types schema.hook() as a bare Callable; the apply_to filter it chains is
    attached at run time.)"""
    rid = body.get("request_id") if isinstance(body, dict) else None
    if KNOWN_REQUEST_IDS and isinstance(rid, str) and 1 <= len(rid) <= 36:
        return st.one_of(st.just(body), st.sampled_from(KNOWN_REQUEST_IDS).map(lambda r: {**body, "request_id": r}))
    return st.just(body)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's cases, on each database."""
    tmp: Path = tmp_path_factory.mktemp(f"contract-{request.param}")
    url, pg_server = database_for(request.param, tmp, request)
    live = LiveServer(home=tmp / "home", database_url=url, extra_env=LIMITS)
    try:
        yield live.start()
    finally:
        live.stop(signal.SIGKILL)
        if pg_server is not None:
            drop_postgres_database(pg_server, url)


@pytest.fixture(scope="module")
def request_id(server: LiveServer) -> str:
    files = {"image": ("p.png", png(200, 60), "image/png")}
    response = httpx.post(f"{server.url}/v1/predict", files=files, timeout=30)
    assert response.status_code == 200, response.text
    KNOWN_REQUEST_IDS[:] = [response.json()["request_id"]]
    return KNOWN_REQUEST_IDS[0]


def test_served_schema_is_the_tested_one(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/openapi.json", timeout=10).json() == SCHEMA


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_contract(case: schemathesis.Case, server: LiveServer, request_id: str) -> None:
    case.call_and_validate(base_url=server.url)


def test_a_wrong_method_names_the_allowed_ones(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/predict", timeout=10)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_schema_documents_each_error_and_refuses_an_empty_image() -> None:
    predict = SCHEMA["paths"]["/v1/predict"]["post"]
    assert {"400", "413", "415", "422", "503"} <= set(predict["responses"])
    assert all(predict["responses"][code]["description"] for code in ("400", "413", "415", "422", "503"))
    body = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert SCHEMA["components"]["schemas"][body]["properties"]["image"]["minLength"] == 1
