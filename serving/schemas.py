"""The API's request and response bodies, and the error body every 4xx and 5xx answers with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from inkloop.domain import FeedbackFlag
from inkloop.untrusted import json_schema_pattern, text_problem


def _refused(*, one_line: bool) -> Callable[[str], str]:
    """A validator applying inkloop's rule for text from outside; its message is the 422's reason."""

    def check(value: str) -> str:
        problem = text_problem(value, one_line=one_line)
        if problem is not None:
            raise PydanticCustomError("refused_text", problem)
        return value

    return check


# The API's text fields: the rule is checked by the validator (whose message names the problem) and stated in the
# schema as a `pattern`, so a client, /docs and the fuzzer read the same rule the server applies.
OneLine = Annotated[
    str,
    Field(json_schema_extra={"pattern": json_schema_pattern(one_line=True)}),
    AfterValidator(_refused(one_line=True)),
]
Text = Annotated[
    str, Field(json_schema_extra={"pattern": json_schema_pattern()}), AfterValidator(_refused(one_line=False))
]

REQUEST_ID_MAX = 36
CORRECTION_MAX = 20_000
# A body over this cannot be a valid FeedbackRequest, so it is refused (413) as it arrives, never read whole. The
# longest valid one writes every character as the JSON escape of a surrogate pair (12 bytes, "\ud83d\ude00" for
# one emoji): 12 x (36 + 20,000) = 240,432 bytes, plus the keys and the flag (tests/serving/test_text_fields.py).
FEEDBACK_MAX_BYTES = 256 * 1024


class PredictResponse(BaseModel):
    request_id: str
    text: str = Field(description="The paragraph's text, lines separated by \\n.")
    confidence: float = Field(ge=0, le=1, description="Calibrated: about the share of characters read right.")
    line_confidences: list[float]
    model_version: str
    latency_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: OneLine = Field(
        min_length=1, max_length=REQUEST_ID_MAX, description="The `request_id` a prediction answered with."
    )
    flag: FeedbackFlag
    correction: Text | None = Field(
        None,
        max_length=CORRECTION_MAX,
        description="The right text, lines separated by \\n (tab and carriage return allowed, no other control "
        "character). Kept as a user's label, reviewed before any use.",
    )


class FeedbackResponse(BaseModel):
    feedback_id: int
    request_id: str
    flag: FeedbackFlag


class ErrorBody(BaseModel):
    code: str = Field(description="Stable: clients and the rejection log key on it.")
    message: str = Field(description="What was wrong, for a person.")


class ErrorResponse(BaseModel):
    error: ErrorBody


def _documented(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": text} for status, text in errors.items()}


# Room for the multipart framing around the image (boundaries, part headers, the `document` field).
FORM_FRAMING_BYTES = 65_536


# Every error a route answers, with the codes the body's `error.code` takes (the OpenAPI page lists them).
def predict_errors(*, max_bytes: int, max_pixels: int) -> dict[int | str, dict[str, Any]]:
    return _documented(
        {
            400: "No `image` form field, or an empty file (`missing_image`, `empty_image`).",
            413: f"An image over {max_bytes:,} bytes or {max_pixels:,} pixels (`too_many_bytes`, `too_many_pixels`); a "
            f"request body over {max_bytes + FORM_FRAMING_BYTES:,} bytes is refused before it is read.",
            415: "Not an image, or a format that is not accepted (`not_an_image`, `unsupported_format`).",
            422: "An image that cannot be read (`unreadable_image`, `truncated_image`, `zero_size`, `multi_frame`, "
            "`unsupported_mode`), or a malformed form (`invalid_request`: the message names the field and what is "
            "wrong, e.g. a control character in `document`).",
            503: "The model failed, or the request could not be recorded: nothing was kept, try again "
            "(`inference_failed`, `not_recorded`).",
        }
    )


FEEDBACK_ERRORS = _documented(
    {
        400: "The body is not JSON (`bad_request`).",
        404: "No logged request has this `request_id` (`unknown_request`).",
        413: f"The body is over {FEEDBACK_MAX_BYTES:,} bytes, refused as it arrives (`too_many_bytes`).",
        422: "The body does not match FeedbackRequest (`invalid_request`: the message names the field and what is "
        "wrong, e.g. a NUL or another control character in `request_id` or `correction`).",
    }
)
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database does not answer; the body says what is wrong."}
}
