"""GET /healthz, GET /v1/model and the web page at /."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from db.session import ping
from serving.schemas import HEALTH_RESPONSES
from serving.state import AppState

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["operations"])


@router.get("/healthz", responses=HEALTH_RESPONSES)
async def healthz(state: AppState) -> JSONResponse:
    """200 when a model is loaded and the database answers; 503 otherwise."""

    def database_ok() -> str:
        try:
            ping(state.engine)
            return "ok"
        except Exception as exc:
            return f"unreachable ({type(exc).__name__})"

    database = await run_in_threadpool(database_ok)
    served = state.models.current()
    body = {
        "status": "ok" if database == "ok" else "unavailable",
        "model_version": served.version,
        "model_source": served.source,
        "model_runtime": served.recognizer.runtime.value,
        "model_refresh_error": state.models.last_error,
        "database": database,
        "request_log": state.request_log is not None,
        "rejections": dict(state.rejections),
    }
    return JSONResponse(body, status_code=200 if database == "ok" else 503)


@router.get("/v1/model")
async def model_card(state: AppState) -> dict[str, Any]:
    """The model card of the model answering now (the registry's champion, or the shipped model)."""
    served = state.models.current()
    return {"source": served.source, **served.recognizer.card.as_dict()}


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")
