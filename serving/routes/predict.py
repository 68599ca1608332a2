"""POST /v1/predict: read a paragraph image; a 200 means the image and its request-log row are stored."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from serving.errors import PREDICT_PATH, error
from serving.requestlog import Entry, NotRecorded
from serving.schemas import PREDICT_ERRORS, PredictResponse
from serving.state import AppState
from serving.uploads import RejectedUpload, check_upload

log = logging.getLogger(__name__)
router = APIRouter(tags=["predict"])


# minLength: an empty file is refused (400 empty_image), so the schema must not call it valid.
ImageField = Annotated[
    UploadFile, File(description="The page: PNG, JPEG, WEBP, TIFF, BMP or GIF.", json_schema_extra={"minLength": 1})
]

# Printable text only: PostgreSQL refuses NUL in text, and an id with control characters is a client's bug.
DocumentField = Annotated[
    str | None,
    Form(
        description="Optional: your id of the writer, form or document this page belongs to. Pages that share it "
        "are kept together when inkloop splits its training and test data.",
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]+$",
    ),
]


@router.post(PREDICT_PATH, response_model=PredictResponse, responses=PREDICT_ERRORS)
async def predict(state: AppState, image: ImageField, document: DocumentField = None) -> Any:
    """Read the paragraph in `image`. A 200 means the image and the request's row are stored."""
    started = time.perf_counter()
    data = await image.read(state.limits.max_bytes + 1)
    try:
        upload = await run_in_threadpool(check_upload, data, state.limits)
    except RejectedUpload as exc:
        await run_in_threadpool(state.count_rejection, exc.code, len(data))
        return error(exc.status, exc.code, str(exc))
    try:
        result = await state.batcher.predict(upload.image)
    except Exception as exc:
        log.exception("inference failed")
        return error(503, "inference_failed", f"the model could not read this image ({type(exc).__name__})")
    prediction = result.prediction
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    request_id = str(uuid.uuid4())
    if state.request_log is not None:
        entry = Entry(
            request_id=request_id,
            data=data,
            image_format=upload.format,
            image_width=upload.width,
            image_height=upload.height,
            model_version=result.model_version,
            text=prediction.text,
            confidence=prediction.confidence,
            line_confidences=prediction.line_confidences,
            line_boxes=prediction.line_boxes,
            latency_ms=latency_ms,
            created_at=datetime.now(UTC),
            document=document,
        )
        try:
            await run_in_threadpool(state.request_log.record, entry)
        except NotRecorded as exc:
            log.error("request %s not recorded: %s", request_id, exc)
            return error(503, "not_recorded", f"the request was not recorded, try again: {exc}")
    return PredictResponse(
        request_id=request_id,
        text=prediction.text,
        confidence=prediction.confidence,
        line_confidences=prediction.line_confidences,
        model_version=result.model_version,
        latency_ms=latency_ms,
    )
