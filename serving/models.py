"""The model a server answers with, swapped while it runs.

`ModelHolder.current()` is what a batch reads once at its start, so a batch finishes on the model it began with
even when the champion changes under it. `refresh()` (called every INKLOOP_MODEL_REFRESH_SECONDS) loads a new
champion from the registry first and swaps the reference only once it is ready; a champion that fails to load is
reported by /healthz and the current model keeps serving."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db import repo
from inkloop.store import ImageStore
from model.recognizer import Recognizer, Runtime
from model.registry import materialize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    recognizer: Recognizer
    source: str  # "registry" (the champion), "shipped" (none registered) or "file" (--model)

    @property
    def version(self) -> str:
        return self.recognizer.version


class ModelHolder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ImageStore,
        cache_dir: Path,
        fixed_model: Path | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self._sessions, self._store, self._cache_dir, self._fixed = sessions, store, cache_dir, fixed_model
        self._runtime = runtime  # None: the recognizer's default for the device
        self._served: Served | None = None
        self._lock = threading.Lock()  # one refresh at a time; readers never wait for it
        self.last_error: str | None = None

    def current(self) -> Served:
        served = self._served
        if served is None:
            raise RuntimeError("no model loaded: call refresh() first")
        return served

    def refresh(self) -> bool:
        """Serve the registry's champion (or the shipped model when there is none). True when the model changed."""
        with self._lock:
            try:
                changed = self._refresh()
            except Exception as exc:  # keep serving what works; /healthz shows the failure
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("model refresh failed, still serving %s: %s", self._version(), self.last_error)
                if self._served is None:
                    raise
                return False
            self.last_error = None
            return changed

    def _version(self) -> str | None:
        return self._served.version if self._served else None

    def _refresh(self) -> bool:
        if self._fixed is not None:
            if self._served is None:
                self._served = Served(Recognizer.load(self._fixed, runtime=self._runtime), "file")
                return True
            return False
        with self._sessions() as session:
            champion = repo.get_champion(session=session)
            wanted = (champion.version, champion.artifact_key) if champion else None
        if wanted is None:
            if self._served is not None and self._served.source == "shipped":
                return False
            self._served = Served(Recognizer.load(runtime=self._runtime), "shipped")
            log.info("serving the shipped model %s (no champion registered)", self._served.version)
            return True
        version, key = wanted
        if self._served is not None and self._served.source == "registry" and self._served.version == version:
            return False
        recognizer = Recognizer.load(materialize(self._store, key, self._cache_dir), runtime=self._runtime)
        if recognizer.version != version:
            log.warning("champion %s's artifact calls itself %s", version, recognizer.version)
            recognizer.version = version
        previous = self._version()
        self._served = Served(recognizer, "registry")
        log.info("now serving champion %s (was %s)", version, previous)
        return True
