"""The HTTP API against a real `inkloop serve` process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from inkloop.store import sha256_hex
from serving.schemas import FEEDBACK_MAX_BYTES, FORM_FRAMING_BYTES
from tests.support.paths import GOLDEN
from tests.support.servers import LiveServer
from tests.support.uploads import BAD

pytestmark = pytest.mark.slow


def golden(name: str = "000000.png") -> bytes:
    return (GOLDEN / name).read_bytes()


def expected_text(name: str) -> str:
    for line in (GOLDEN / "labels.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["file"] == name:
            return record["text"]
    raise KeyError(name)


def test_predict_answers_and_logs_image_and_row(live: LiveServer) -> None:
    data = golden("000004.png")
    response = httpx.post(f"{live.url}/v1/predict", files={"image": ("page.png", data, "image/png")}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "text", "confidence", "line_confidences", "model_version", "latency_ms"}
    assert body["text"].count("\n") == expected_text("000004.png").count("\n")
    assert 0 <= body["confidence"] <= 1 and len(body["line_confidences"]) == body["text"].count("\n") + 1
    card = httpx.get(f"{live.url}/v1/model").json()
    assert body["model_version"] == card["version"] and card["source"] == "shipped"

    row = next(r for r in live.rows() if r.request_id == body["request_id"])
    assert row.image_sha256 == sha256_hex(data) and row.image_bytes == len(data)
    assert (row.text, row.model_version, row.image_format) == (body["text"], body["model_version"], "PNG")
    assert row.confidence == pytest.approx(body["confidence"]) and row.latency_ms == pytest.approx(body["latency_ms"])
    assert live.store().get(row.image_sha256) == data
    # Where each line is, for the annotators' pre-filled line regions: one box per line, top to bottom, on the page.
    assert row.line_boxes is not None and len(row.line_boxes) == len(body["line_confidences"])
    assert all(0 <= x < 100 and 0 <= y < 100 and 0 < w <= 100 and 0 < h <= 100 for x, y, w, h in row.line_boxes)
    assert [box[1] for box in row.line_boxes] == sorted(box[1] for box in row.line_boxes)
    # And each line's outline, which routing pre-fills as a polygon: inside its box (to the box's rounding).
    assert row.line_outlines is not None and len(row.line_outlines) == len(row.line_boxes)
    for outline, (x, y, w, h) in zip(row.line_outlines, row.line_boxes, strict=True):
        assert len(outline) >= 3
        assert all(x - 0.5 <= px <= x + w + 0.5 and y - 0.5 <= py <= y + h + 0.5 for px, py in outline)


def test_the_same_image_twice_is_two_requests_and_one_object(live: LiveServer) -> None:
    data = golden("000002.png")
    ids = [
        httpx.post(f"{live.url}/v1/predict", files={"image": ("a.png", data)}, timeout=60).json()["request_id"]
        for _ in range(2)
    ]
    rows = [r for r in live.rows() if r.request_id in ids]
    assert len(rows) == 2 and rows[0].image_sha256 == rows[1].image_sha256
    assert live.store().exists(rows[0].image_sha256)


@pytest.mark.parametrize(
    ("name", "request_kwargs", "status", "code"),
    [
        ("no body", {}, 400, "missing_image"),
        ("json instead of a form", {"json": {"image": "x"}}, 400, "missing_image"),
        ("the wrong field", {"files": {"picture": ("a.png", golden())}}, 400, "missing_image"),
        ("a text field", {"data": {"image": "not a file"}}, 422, "invalid_request"),
        (
            "over the byte limit before reading",
            {"files": {"image": ("a.png", bytes(3_000_000))}},
            413,
            "too_many_bytes",
        ),
    ]
    + [(name, {"files": {"image": ("upload", data)}}, status, code) for name, (data, status, code, _) in BAD.items()],
)
def test_bad_input_is_a_4xx_naming_the_problem_and_leaves_nothing(
    live: LiveServer, name: str, request_kwargs: dict, status: int, code: str
) -> None:
    rows, keys, rejections = len(live.rows()), set(live.store().keys()), live.rejections()
    response = httpx.post(f"{live.url}/v1/predict", timeout=60, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert len(live.rows()) == rows, "a rejected upload created a request row"
    assert set(live.store().keys()) == keys, "a rejected upload stored an object"
    assert live.rejections() == rejections + 1
    assert httpx.get(f"{live.url}/healthz").json()["rejections"][code] >= 1


def test_a_document_id_is_logged_with_the_request_and_a_bad_one_is_refused(live: LiveServer) -> None:
    # The client's writer/document id keeps a document's pages in one dataset split (flows/dataset.py).
    data = golden("000003.png")
    sent = httpx.post(
        f"{live.url}/v1/predict", files={"image": ("p.png", data)}, data={"document": "form 7 / page 2"}, timeout=60
    )
    assert sent.status_code == 200, sent.text
    row = next(r for r in live.rows() if r.request_id == sent.json()["request_id"])
    assert row.document == "form 7 / page 2"
    rows = len(live.rows())
    for bad in ("x" * 129, "tab\there", "nul\x00"):
        refused = httpx.post(f"{live.url}/v1/predict", files={"image": ("p.png", data)}, data={"document": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["code"] == "invalid_request" and "document" in refused.json()["error"]["message"]
    assert len(live.rows()) == rows


def test_feedback_is_stored_and_unknown_requests_are_404(live: LiveServer) -> None:
    request_id = httpx.post(f"{live.url}/v1/predict", files={"image": ("a.png", golden())}, timeout=60).json()[
        "request_id"
    ]
    ok = httpx.post(
        f"{live.url}/v1/feedback", json={"request_id": request_id, "flag": "incorrect", "correction": "the text"}
    )
    assert ok.status_code == 201 and ok.json()["request_id"] == request_id and ok.json()["feedback_id"] > 0
    row = next(r for r in live.rows() if r.request_id == request_id)
    assert [(f.flag.value, f.correction) for f in row.feedback] == [("incorrect", "the text")]

    unknown = httpx.post(f"{live.url}/v1/feedback", json={"request_id": "no-such-request", "flag": "other"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_request"
    bad_flag = httpx.post(f"{live.url}/v1/feedback", json={"request_id": request_id, "flag": "meh"})
    assert bad_flag.status_code == 422 and "flag" in bad_flag.json()["error"]["message"]
    extra = httpx.post(f"{live.url}/v1/feedback", json={"request_id": request_id, "flag": "other", "score": 3})
    assert extra.status_code == 422 and "score" in extra.json()["error"]["message"]
    not_json = httpx.post(f"{live.url}/v1/feedback", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422


def test_health_model_card_docs_and_page(live: LiveServer) -> None:
    health = httpx.get(f"{live.url}/healthz")
    assert health.status_code == 200
    assert health.json()["database"] == "ok" and health.json()["model_source"] == "shipped"
    assert health.json()["model_runtime"] == "onnx-int8"  # the fastest CPU path serves by default
    card = httpx.get(f"{live.url}/v1/model").json()
    assert "\n" in card["charset"] and card["input"]["line_height"] > 0
    assert "/v1/predict" in httpx.get(f"{live.url}/openapi.json").json()["paths"]
    assert "swagger" in httpx.get(f"{live.url}/docs").text.lower()
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and 'id="drop"' in page.text
    assert httpx.get(f"{live.url}/static/app.js").status_code == 200
    missing = httpx.get(f"{live.url}/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_every_image_mode_a_phone_or_scanner_sends_is_read(live: LiveServer) -> None:
    page = Image.open(GOLDEN / "000000.png")
    variants = {
        "JPEG": page.convert("RGB"),
        "PNG": page.convert("RGBA"),
        "TIFF": page.convert("CMYK"),
        "WEBP": page.convert("RGB"),
    }
    for fmt, image in variants.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        response = httpx.post(f"{live.url}/v1/predict", files={"image": ("x", buffer.getvalue())}, timeout=60)
        assert response.status_code == 200, (fmt, response.text)
        assert response.json()["text"], fmt
        row = next(r for r in live.rows() if r.request_id == response.json()["request_id"])
        assert row.image_format == fmt and row.image_sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()


def test_a_nul_or_control_character_in_feedback_is_a_422_naming_the_field_and_stores_nothing(live: LiveServer) -> None:
    # Issue 30: PostgreSQL answered this body with a plain-text 500 (psycopg.DataError), SQLite stored it.
    request_id = httpx.post(f"{live.url}/v1/predict", files={"image": ("a.png", golden())}, timeout=60).json()[
        "request_id"
    ]
    feedback = sum(len(r.feedback) for r in live.rows())
    bodies = {
        '{"request_id":"a\\u0000b","flag":"other"}': "request_id: contains a NUL character (U+0000) at character 2",
        json.dumps({"request_id": request_id, "flag": "incorrect", "correction": "the\x00text"}): (
            "correction: contains a NUL character (U+0000) at character 4"
        ),
        json.dumps({"request_id": request_id, "flag": "other", "correction": "red \x1b[31m"}): (
            "correction: contains the control character U+001B at character 5"
        ),
        json.dumps({"request_id": "ab\ncd", "flag": "other"}): "request_id: must be one line",
        '{"request_id":"r","flag":"other","correction":"\\ud800"}': "correction: is not valid Unicode",
    }
    for body, message in bodies.items():
        response = httpx.post(
            f"{live.url}/v1/feedback", content=body.encode(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["message"].startswith(message), (body, error)
    assert sum(len(r.feedback) for r in live.rows()) == feedback
    kept = httpx.post(
        f"{live.url}/v1/feedback", json={"request_id": request_id, "flag": "incorrect", "correction": "a\tb\r\nc"}
    )
    assert kept.status_code == 201, kept.text
    row = next(r for r in live.rows() if r.request_id == request_id)
    assert [f.correction for f in row.feedback] == ["a\tb\r\nc"]


def test_a_nul_in_the_document_field_is_a_422_naming_the_field_and_the_reason(live: LiveServer) -> None:
    rows, rejections = len(live.rows()), live.rejections()
    refusals = {"form\x007": "contains a NUL character (U+0000) at character 5", "a\tb": "must be one line"}
    for bad, reason in refusals.items():
        response = httpx.post(
            f"{live.url}/v1/predict", files={"image": ("p.png", golden())}, data={"document": bad}, timeout=60
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == {"code": "invalid_request", "message": response.json()["error"]["message"]}
        assert response.json()["error"]["message"].startswith(f"document: {reason}"), response.text
    assert len(live.rows()) == rows and live.rejections() == rejections + 2


def _exchange(url: str, head: str, body: Iterable[bytes] = (), timeout: float = 20.0) -> tuple[int, dict, Any]:
    """Send `head` then the `body` chunks on a raw connection, stopping early if the server closes it; read the
    answer to its end. (status, headers, JSON body)."""
    parsed = httpx.URL(url)
    with socket.create_connection((parsed.host, parsed.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for chunk in body:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: what matters is what it said
                break
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    raw_headers, _, content = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in raw_headers.split(b"\r\n") if line)
    return int(status_line.split()[1]), headers, json.loads(content)


def _chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    # No terminating chunk: the client never finishes, so an answer proves the server did not wait for the end.


def test_a_feedback_body_over_the_bound_is_refused_before_it_is_read(live: LiveServer) -> None:
    port = httpx.URL(live.url).port
    # Declared: 100 MB announced, nothing sent. The answer comes at once, before any byte of the body.
    status, headers, body = _exchange(
        live.url,
        f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100_000_000}\r\n\r\n",
    )
    assert status == 413 and headers["connection"] == "close"
    assert body["error"]["code"] == "too_many_bytes"
    assert body["error"]["message"] == (
        f"the request body is 100,000,000 bytes; a feedback body is limited to {FEEDBACK_MAX_BYTES:,}"
    )
    # Streamed, no length: refused once the bytes received pass the bound, while the client is still sending.
    piece = b'{"request_id": "' + b" " * 65_536
    status, _, body = _exchange(
        live.url,
        f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        _chunked(iter([piece] * (FEEDBACK_MAX_BYTES // len(piece) + 1))),
    )
    assert status == 413, body
    assert body["error"] == {
        "code": "too_many_bytes",
        "message": f"the request body is over {FEEDBACK_MAX_BYTES:,} bytes; a feedback body is limited to "
        f"{FEEDBACK_MAX_BYTES:,}",
    }
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_a_streamed_upload_over_the_bound_is_refused_as_it_arrives_and_counted(live: LiveServer) -> None:
    rows, rejections = len(live.rows()), live.rejections()
    port = httpx.URL(live.url).port
    bound = int(live.env["INKLOOP_MAX_UPLOAD_BYTES"]) + FORM_FRAMING_BYTES
    start = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + golden()
    )
    pieces = [start] + [bytes(65_536)] * (bound // 65_536 + 1)
    status, _, body = _exchange(
        live.url,
        f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
        _chunked(iter(pieces)),
    )
    assert status == 413 and body["error"]["code"] == "too_many_bytes", body
    assert body["error"]["message"].startswith(f"the request body is over {bound:,} bytes; images are limited to")
    assert len(live.rows()) == rows and live.rejections() == rejections + 1
