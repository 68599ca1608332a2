"""What the handlers share, built once per worker process by the app's lifespan, and the dependency that hands it
to them."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from db import repo
from db.ready import open_ready_engine
from db.session import session_factory, session_scope
from inkloop.settings import Settings
from inkloop.store import ImageStore
from model.recognizer import Runtime
from serving.batching import Batcher
from serving.models import ModelHolder
from serving.requestlog import RequestLog
from serving.uploads import Limits

log = logging.getLogger(__name__)


class State:
    """The database, the store, the model being served, the inference batcher and the request log."""

    def __init__(self, settings: Settings, model_path: Path | None) -> None:
        self.settings = settings
        self.engine = open_ready_engine(settings)
        self.sessions = session_factory(self.engine)
        self.store = ImageStore(settings.store_url)
        self.store.ensure()
        runtime = None if settings.inference_runtime == "auto" else Runtime(settings.inference_runtime)
        self.models = ModelHolder(self.sessions, self.store, settings.paths.models, model_path, runtime)
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


def get_state(request: Request) -> State:
    state: State = request.app.state.inkloop
    return state


AppState = Annotated[State, Depends(get_state)]
