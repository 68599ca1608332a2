"""The API against its own OpenAPI schema: Schemathesis fuzzes a real `inkloop serve` (SQLite, 127.0.0.1 only)
from the schema, a bounded number of cases per operation with a fixed seed, and checks every answer: no 5xx,
each status and body documented, a 405 that names its allowed methods, nothing the schema calls valid refused.

The schema comes from the app object at collection time (building routes needs no database and no model); the
requests go to the live server. (`schemathesis.pytest.from_fixture` cannot be used: it breaks on pytest 9.)
"""

from __future__ import annotations

import io
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
from tests.support.servers import LiveServer

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = 20  # fuzzing-phase cases per operation; the coverage phase adds ~75 requests in all

SCHEMA: dict[str, Any] = create_app(Settings()).openapi()  # builds routes only: no database, no model
config = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "request-timeout": 10,
        "generation": {"max-examples": FUZZ_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                # The schema cannot say "an image": random bytes are schema-valid, and the server rightly refuses
                # them. 4xx codes the upload checks use are not failures of positive_data_acceptance here.
                "include-name": "POST /v1/predict",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "413", "415", "422", "503"]}},
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(SCHEMA, config=config)
KNOWN_REQUEST_IDS: list[str] = []  # filled by `request_id` before any case is drawn


def png(width: int, height: int, text: str = "hello") -> bytes:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((5, 5), text, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def pngs(draw: st.DrawFn) -> bytes:
    width, height = draw(st.integers(64, 400)), draw(st.integers(32, 200))
    return png(width, height, draw(st.text("abcdefgh ", min_size=1, max_size=12)))


# Body hooks, not case hooks: schemathesis labels a body positive or negative when it draws it; an edit made by a
# case hook (or in the test) is re-validated, and bytes always count as invalid there, turning the case negative.
# (Schemathesis types schema.hook() as a bare Callable; the apply_to filter it chains is attached at run time.)
@schema.hook("flatmap_body").apply_to(path="/v1/predict", method="POST")  # type: ignore[attr-defined]
def real_images_too(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Where the drawn `image` is schema-valid (non-empty), sometimes send a real PNG, so 200 is checked too."""
    image = body.get("image") if isinstance(body, dict) else None
    if isinstance(image, (str, bytes)) and len(image) > 0:
        return st.one_of(st.just(body), pngs().map(lambda data: {**body, "image": data}))
    return st.just(body)


@schema.hook("flatmap_body").apply_to(path="/v1/feedback", method="POST")  # type: ignore[attr-defined]
def known_request_ids_too(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Sometimes name a logged request, so 201 is checked too. Only a valid id is swapped: negatives stay negative."""
    rid = body.get("request_id") if isinstance(body, dict) else None
    if KNOWN_REQUEST_IDS and isinstance(rid, str) and 1 <= len(rid) <= 36:
        return st.one_of(st.just(body), st.sampled_from(KNOWN_REQUEST_IDS).map(lambda r: {**body, "request_id": r}))
    return st.just(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's cases."""
    tmp: Path = tmp_path_factory.mktemp("contract")
    live = LiveServer(home=tmp / "home", database_url=f"sqlite:///{tmp / 'inkloop.db'}")
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture(scope="module")
def request_id(server: LiveServer) -> str:
    files = {"image": ("p.png", png(200, 60), "image/png")}
    response = httpx.post(f"{server.url}/v1/predict", files=files, timeout=30)
    assert response.status_code == 200, response.text
    KNOWN_REQUEST_IDS.append(response.json()["request_id"])
    return KNOWN_REQUEST_IDS[-1]


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
