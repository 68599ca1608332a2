"""Errors as JSON: `{"error": {"code": "...", "message": "..."}}`, 4xx for what the client sent, 503 when the
request could not be recorded or the server is not ready. Upload refusals are also counted (upload_rejections)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inkloop.errors import InvalidTextError

PREDICT_PATH = "/v1/predict"


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def reject(request: Request, code: str, message: str, status: int, byte_size: int | None = None) -> JSONResponse:
    """An upload refused before anything was stored: counted, then answered."""
    state = request.app.state.inkloop
    await run_in_threadpool(state.count_rejection, code, byte_size)
    return error(status, code, message)


def install(app: FastAPI) -> None:
    """The handlers that turn FastAPI's and Starlette's errors into inkloop's error body."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        missing = [p for p in problems if p.get("type") == "missing"]
        if request.url.path == PREDICT_PATH and missing:
            return await reject(request, "missing_image", "send the image as the multipart form field 'image'", 400)
        parts = []
        for p in problems:
            where = ".".join(str(x) for x in p.get("loc", ()) if x != "body")
            parts.append(f"{where}: {p.get('msg')}" if where else str(p.get("msg")))
        if request.url.path == PREDICT_PATH:
            return await reject(request, "invalid_request", "; ".join(parts), 422)
        return error(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(InvalidTextError)
    async def refused_text(request: Request, exc: InvalidTextError) -> JSONResponse:
        # The database guard's refusal (db/guard.py) of a text no entry check caught: the client's text, so a 422.
        return error(422, "invalid_request", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette puts the response's headers on the exception (a 405's `Allow`, which RFC 9110 requires).
        return error(exc.status_code, code, str(exc.detail), headers=exc.headers)
