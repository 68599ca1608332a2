"""The API's text fields and limits, without a server: each refusal names the field and the reason, the schema's
`pattern` is read by a JSON Schema validator exactly as the server's rule, and the stated limits hold."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from pydantic import ValidationError

from inkloop.images import FORMATS
from inkloop.settings import Settings
from inkloop.untrusted import text_problem
from serving.app import create_app
from serving.schemas import CORRECTION_MAX, FEEDBACK_MAX_BYTES, REQUEST_ID_MAX, FeedbackRequest
from serving.uploads import MEDIA_TYPES

SCHEMA = create_app(Settings(max_upload_bytes=1_234_567, max_image_pixels=7_654_321)).openapi()


def _component(name: str) -> dict:
    return SCHEMA["components"]["schemas"][name]


def _predict_form() -> dict:
    body = SCHEMA["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    return _component(body["schema"]["$ref"].rsplit("/", 1)[-1])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"request_id": "a\x00b"}, "contains a NUL character (U+0000) at character 2"),
        ({"request_id": "a\nb"}, "must be one line: it contains '\\n' (U+000A) at character 2"),
        ({"correction": "the\x00text"}, "contains a NUL character (U+0000) at character 4"),
        ({"correction": "red \x1b[31m"}, "contains the control character U+001B at character 5"),
        ({"correction": "lone \ud800"}, "is not valid Unicode: a lone surrogate (U+D800) at character 6"),
        ({"request_id": "r\udcff"}, "Input should be a valid string"),  # pydantic's own check comes first here
    ],
)
def test_a_refused_text_names_the_field_and_the_reason(body: dict, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FeedbackRequest.model_validate({"request_id": "r-1", "flag": "other", **body})
    (problem,) = raised.value.errors()
    assert problem["loc"] == (next(iter(body)),) and problem["msg"].startswith(message)


def test_a_correction_keeps_its_lines_and_tabs() -> None:
    body = FeedbackRequest.model_validate({"request_id": "r-1", "flag": "other", "correction": "a\tb\r\nc"})
    assert body.correction == "a\tb\r\nc"


@pytest.mark.parametrize(
    ("schema", "field", "one_line"),
    [
        (_component("FeedbackRequest")["properties"]["request_id"], "request_id", True),
        (_component("FeedbackRequest")["properties"]["correction"]["anyOf"][0], "correction", False),
        (_predict_form()["properties"]["document"]["anyOf"][0], "document", True),
    ],
)
def test_the_schema_states_the_servers_rule(schema: dict, field: str, one_line: bool) -> None:
    # jsonschema_rs is the validator Schemathesis judges "schema-valid" with: what it accepts, the server accepts.
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": schema["pattern"]})
    for code in [*range(0x300), 0x2028, 0xFEFF, 0x1F600]:
        text = f"a{chr(code)}b"
        assert validator.is_valid(text) == (text_problem(text, one_line=one_line) is None), (field, hex(code))
    if one_line:
        assert not validator.is_valid("ab\n")  # `$` is the end of the text, not before a final newline


def test_the_image_is_documented_as_an_image_with_the_servers_limits() -> None:
    image = _predict_form()["properties"]["image"]
    assert image["contentMediaType"] == "application/octet-stream"  # a file part (OpenAPI 3.1's format: binary)
    assert (image["minLength"], image["maxLength"]) == (1, 1_234_567)
    assert "1,234,567 bytes and 7,654,321 pixels" in image["description"]
    encoding = SCHEMA["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["encoding"]
    assert [t.strip() for t in encoding["image"]["contentType"].split(",")] == list(MEDIA_TYPES.values())
    assert set(MEDIA_TYPES) | {"MPO"} == FORMATS  # every accepted format has its type (an MPO is sent as a JPEG)
    too_big = SCHEMA["paths"]["/v1/predict"]["post"]["responses"]["413"]["description"]
    assert "1,234,567 bytes" in too_big and "7,654,321 pixels" in too_big


def test_the_feedback_bound_is_documented_and_admits_the_longest_valid_body() -> None:
    feedback = SCHEMA["paths"]["/v1/feedback"]["post"]
    assert f"{FEEDBACK_MAX_BYTES:,} bytes" in feedback["requestBody"]["description"]
    assert f"{FEEDBACK_MAX_BYTES:,} bytes" in feedback["responses"]["413"]["description"]
    emoji = "\U0001f600"  # one character, 12 bytes as the escaped surrogate pair json.dumps writes
    longest = {"request_id": emoji * REQUEST_ID_MAX, "flag": "incorrect", "correction": emoji * CORRECTION_MAX}
    FeedbackRequest.model_validate(longest)
    assert len(json.dumps(longest, indent=4).encode()) <= FEEDBACK_MAX_BYTES
