"""POST /v1/predict: read a paragraph image; a 200 means the image and its request-log row are stored."""

# No `from __future__ import annotations`: the route's annotations are evaluated when `router` builds it, as they
# hold this server's limits (a string annotation would be resolved later, where those names do not exist).
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from serving.errors import PREDICT_PATH, error
from serving.requestlog import Entry, NotRecorded
from serving.schemas import OneLine, PredictResponse, predict_errors
from serving.state import AppState, State
from serving.uploads import ACCEPTED_FORMATS, MEDIA_TYPES, Limits, RejectedUpload, check_upload

log = logging.getLogger(__name__)


def router(limits: Limits) -> APIRouter:
    """The route, its schema stating `limits` (a server's INKLOOP_MAX_UPLOAD_BYTES and INKLOOP_MAX_IMAGE_PIXELS)."""
    routes = APIRouter(tags=["predict"])
    # minLength: an empty file is refused (400 empty_image); maxLength counts the file's bytes, as for every binary
    # string. The form's encoding names the accepted formats' media types (the server reads the bytes, whatever the
    # part's Content-Type says), and the fuzzer draws real images of those types (tests/serving/test_openapi.py).
    image_file = File(
        description=f"The page: an image file in one of the accepted formats ({ACCEPTED_FORMATS}), one frame, at "
        f"most {limits.max_bytes:,} bytes and {limits.max_pixels:,} pixels. The bytes decide the format, not the "
        "file name or the part's Content-Type; anything else is refused (415 `not_an_image`, `unsupported_format`).",
        json_schema_extra={"minLength": 1, "maxLength": limits.max_bytes},
    )
    # One line, by the rule for text from outside (inkloop/untrusted.py): an id with a control character is a bug.
    document_form = Form(
        description="Optional: your id of the writer, form or document this page belongs to, one line of at most "
        "128 characters. Pages that share it are kept together when inkloop splits its training and test data.",
        min_length=1,
        max_length=128,
    )
    encoding = {"image": {"contentType": ", ".join(MEDIA_TYPES.values())}}

    @routes.post(
        PREDICT_PATH,
        response_model=PredictResponse,
        responses=predict_errors(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels),
        openapi_extra={"requestBody": {"content": {"multipart/form-data": {"encoding": encoding}}}},
    )
    async def predict(
        state: AppState,
        image: Annotated[UploadFile, image_file],
        document: Annotated[OneLine | None, document_form] = None,
    ) -> Any:
        """Read the paragraph in `image`. A 200 means the image and the request's row are stored."""
        return await _predict(state, image, document)

    return routes


async def _predict(state: State, image: UploadFile, document: str | None) -> Any:
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
            line_outlines=prediction.line_outlines,
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
