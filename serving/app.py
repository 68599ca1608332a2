"""The HTTP API and web page: read a paragraph image, log the request, take feedback, serve the champion model.

`create_app()` builds everything from settings (INKLOOP_*), so `uvicorn --factory serving.app:create_app` and
`inkloop serve` run the same app, with any number of worker processes. Errors are JSON:
`{"error": {"code": "...", "message": "..."}}`, 4xx for what the client sent, 503 when the request could not be
recorded or the server is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from db import repo
from db.migrate import current_revision, head_revision
from db.models import FeedbackFlag
from db.session import make_engine, session_factory, session_scope, sqlite_path
from inkloop import __version__
from inkloop.errors import NotFoundError, SchemaNotReadyError
from inkloop.settings import Settings, load_settings
from inkloop.store import ImageStore
from serving.batching import Batcher
from serving.models import ModelHolder
from serving.requestlog import Entry, NotRecorded, RequestLog
from serving.uploads import Limits, RejectedUpload, check_upload

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


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
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 413, 415, 422, 503)
}


class State:
    """What the handlers share; built in the lifespan, one per worker process."""

    def __init__(self, settings: Settings, model_path: Path | None) -> None:
        self.settings = settings
        path = sqlite_path(settings.database_url)
        if path is not None and not path.exists():
            raise SchemaNotReadyError(f"no database at {path}; run `inkloop init` first")
        self.engine = make_engine(settings.database_url)
        revision, head = current_revision(self.engine), head_revision()
        if revision != head:
            raise SchemaNotReadyError(
                f"database {settings.masked_database_url()} is at schema {revision or 'none'}, this server needs "
                f"{head}; run `inkloop init`"
            )
        self.sessions = session_factory(self.engine)
        self.store = ImageStore(settings.store_url)
        self.store.ensure()
        self.models = ModelHolder(self.sessions, self.store, settings.home / "models", model_path)
        self.batcher = Batcher(self.models, settings.serve_max_batch)
        self.request_log = RequestLog(self.sessions, self.store) if settings.request_log else None
        self.limits = Limits(settings.max_upload_bytes, settings.max_image_pixels)
        self.rejections: Counter[str] = Counter()

    def count_rejection(self, code: str, byte_size: int | None) -> None:
        self.rejections[code] += 1
        try:
            with session_scope(self.sessions) as session:
                repo.log_rejection(session=session, code=code, byte_size=byte_size)
        except Exception:  # counting must never turn a 4xx into a 5xx
            log.warning("could not count a %s rejection", code, exc_info=True)


def create_app(settings: Settings | None = None, model_path: Path | None = None) -> FastAPI:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(State, settings, model_path)
        await run_in_threadpool(state.models.refresh)
        state.batcher.start()
        app.state.inkloop = state

        async def watch_champion() -> None:
            while True:
                await asyncio.sleep(settings.model_refresh_seconds)
                await run_in_threadpool(state.models.refresh)

        watcher = asyncio.get_running_loop().create_task(watch_champion(), name="champion-watcher")
        log.info("serving %s (%s)", state.models.current().version, state.models.current().source)
        try:
            yield
        finally:
            watcher.cancel()
            await state.batcher.stop()
            state.engine.dispose()

    app = FastAPI(
        title="inkloop",
        version=__version__,
        summary="Reads handwritten paragraphs; every answered request is logged for the improvement loop.",
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def refuse_oversized_bodies(request: Request, call_next: Any) -> Any:
        # Refuse before the multipart parser spools a huge body to disk. 64 KiB covers the form's own framing.
        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else 0
        if request.url.path == "/v1/predict" and size > settings.max_upload_bytes + 65536:
            message = f"the request body is {size:,} bytes; images are limited to {settings.max_upload_bytes:,}"
            state: State = request.app.state.inkloop
            await run_in_threadpool(state.count_rejection, "too_many_bytes", size)
            return error(413, "too_many_bytes", message)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        missing = [p for p in problems if p.get("type") == "missing"]
        if request.url.path == "/v1/predict" and missing:
            return await _reject(request, "missing_image", "send the image as the multipart form field 'image'", 400)
        parts = []
        for p in problems:
            where = ".".join(str(x) for x in p.get("loc", ()) if x != "body")
            parts.append(f"{where}: {p.get('msg')}" if where else str(p.get("msg")))
        if request.url.path == "/v1/predict":
            return await _reject(request, "invalid_request", "; ".join(parts), 422)
        return error(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    async def _reject(request: Request, code: str, message: str, status: int) -> JSONResponse:
        state: State = request.app.state.inkloop
        await run_in_threadpool(state.count_rejection, code, None)
        return error(status, code, message)

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["predict"])
    async def predict(request: Request, image: Annotated[UploadFile, File(description="PNG, JPEG...")]) -> Any:
        """Read the paragraph in `image`. A 200 means the image and the request's row are stored."""
        state: State = request.app.state.inkloop
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

    @app.post("/v1/feedback", status_code=201, response_model=FeedbackResponse, responses=ERRORS, tags=["feedback"])
    async def feedback(request: Request, body: FeedbackRequest) -> Any:
        """Flag a prediction; a correction is stored as a user-supplied label that annotators review."""
        state: State = request.app.state.inkloop

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

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """200 when a model is loaded and the database answers; 503 otherwise."""
        state: State = request.app.state.inkloop

        def database_ok() -> str:
            try:
                with state.engine.connect() as connection:
                    connection.execute(text("select 1"))
                return "ok"
            except Exception as exc:
                return f"unreachable ({type(exc).__name__})"

        database = await run_in_threadpool(database_ok)
        served = state.models.current()
        body = {
            "status": "ok" if database == "ok" else "unavailable",
            "model_version": served.version,
            "model_source": served.source,
            "model_refresh_error": state.models.last_error,
            "database": database,
            "request_log": state.request_log is not None,
            "rejections": dict(state.rejections),
        }
        return JSONResponse(body, status_code=200 if database == "ok" else 503)

    @app.get("/v1/model", tags=["operations"])
    async def model_card(request: Request) -> dict[str, Any]:
        """The model card of the model answering now (the registry's champion, or the shipped model)."""
        served = request.app.state.inkloop.models.current()
        return {"source": served.source, **served.recognizer.card}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
