"""POST /v1/feedback: a user flags a prediction (and may send the right text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from db import repo
from db.session import session_scope
from inkloop.errors import NotFoundError
from serving.errors import error
from serving.schemas import FEEDBACK_ERRORS, FEEDBACK_MAX_BYTES, FeedbackRequest, FeedbackResponse
from serving.state import AppState

PATH = "/v1/feedback"
router = APIRouter(tags=["feedback"])
BODY = {"description": f"At most {FEEDBACK_MAX_BYTES:,} bytes; a larger body is refused (413) as it arrives."}


@router.post(
    PATH,
    status_code=201,
    response_model=FeedbackResponse,
    responses=FEEDBACK_ERRORS,
    openapi_extra={"requestBody": BODY},
)
async def feedback(state: AppState, body: FeedbackRequest) -> Any:
    """Flag a prediction; a correction is stored as a user-supplied label that annotators review."""

    def add() -> int:
        with session_scope(state.sessions) as session:
            row = repo.add_feedback(
                session=session, request_id=body.request_id, flag=body.flag, correction=body.correction
            )
            return row.id

    try:
        feedback_id = await run_in_threadpool(add)
    except NotFoundError:
        return error(404, "unknown_request", f"no logged request with id {body.request_id!r}")
    return FeedbackResponse(feedback_id=feedback_id, request_id=body.request_id, flag=body.flag)
