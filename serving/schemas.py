"""The API's request and response bodies, and the error body every 4xx and 5xx answers with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inkloop.domain import FeedbackFlag


class PredictResponse(BaseModel):
    request_id: str
    text: str = Field(description="The paragraph's text, lines separated by \\n.")
    confidence: float = Field(ge=0, le=1, description="Calibrated: about the share of characters read right.")
    line_confidences: list[float]
    model_version: str
    latency_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=36)
    flag: FeedbackFlag
    correction: str | None = Field(
        None, max_length=20_000, description="The right text. Kept as a user's label, reviewed before any use."
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


# Every error a route answers, with the codes the body's `error.code` takes (the OpenAPI page lists them).
PREDICT_ERRORS = _documented(
    {
        400: "No `image` form field, or an empty file (`missing_image`, `empty_image`).",
        413: "Over the byte or pixel limit (`too_many_bytes`, `too_many_pixels`).",
        415: "Not an image, or a format that is not accepted (`not_an_image`, `unsupported_format`).",
        422: "An image that cannot be read (`unreadable_image`, `truncated_image`, `zero_size`, `multi_frame`, "
        "`unsupported_mode`), or a malformed form (`invalid_request`).",
        503: "The model failed, or the request could not be recorded: nothing was kept, try again "
        "(`inference_failed`, `not_recorded`).",
    }
)
FEEDBACK_ERRORS = _documented(
    {
        400: "The body is not JSON (`bad_request`).",
        404: "No logged request has this `request_id` (`unknown_request`).",
        422: "The body does not match FeedbackRequest (`invalid_request`).",
    }
)
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database does not answer; the body says what is wrong."}
}
