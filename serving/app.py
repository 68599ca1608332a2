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

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from inkloop import __version__
from inkloop.settings import Settings, load_settings
from serving import errors
from serving.bodylimit import BodyLimit, Bound
from serving.routes import feedback, operations, predict
from serving.routes.operations import STATIC
from serving.schemas import FEEDBACK_MAX_BYTES, FORM_FRAMING_BYTES
from serving.state import State
from serving.uploads import Limits

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

    # Bodies are bounded before any route reads them: an upload before the multipart parser spools it to disk
    # (FORM_FRAMING_BYTES covers the form's own framing), a feedback body before it is read whole.
    upload_bound = Bound(
        settings.max_upload_bytes + FORM_FRAMING_BYTES,
        f"images are limited to {settings.max_upload_bytes:,}",
        counted=True,
    )
    feedback_bound = Bound(FEEDBACK_MAX_BYTES, f"a feedback body is limited to {FEEDBACK_MAX_BYTES:,}")
    app.add_middleware(BodyLimit, bounds={errors.PREDICT_PATH: upload_bound, feedback.PATH: feedback_bound})

    errors.install(app)
    limits = Limits(settings.max_upload_bytes, settings.max_image_pixels)
    for router in (predict.router(limits), feedback.router, operations.router):
        app.include_router(router)
    return app
