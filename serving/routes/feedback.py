"""POST /v1/feedback: a user flags a prediction (and may send the right text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from db import repo
from db.session import session_scope
from inkloop.errors import NotFoundError
from serving.errors import error
from serving.schemas import FEEDBACK_ERRORS, FeedbackRequest, FeedbackResponse
from serving.state import AppState

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", status_code=201, response_model=FeedbackResponse, responses=FEEDBACK_ERRORS)
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
