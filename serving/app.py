"""The HTTP API and web page: read a paragraph image, log the request, take feedback, serve the champion model.

`create_app()` builds everything from settings (INKLOOP_*), so `uvicorn --factory serving.app:create_app` and
`inkloop serve` run the same app, with any number of worker processes. The routes live in serving/routes, what
they share in serving/state.py, the error format in serving/errors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from inkloop import __version__
from inkloop.settings import Settings, load_settings
from serving import errors
from serving.routes import feedback, operations, predict
from serving.routes.operations import STATIC
from serving.state import State

log = logging.getLogger(__name__)


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
        if request.url.path == errors.PREDICT_PATH and size > settings.max_upload_bytes + 65536:
            message = f"the request body is {size:,} bytes; images are limited to {settings.max_upload_bytes:,}"
            return await errors.reject(request, "too_many_bytes", message, 413, byte_size=size)
        return await call_next(request)

    errors.install(app)
    for router in (predict.router, feedback.router, operations.router):
        app.include_router(router)
    return app
