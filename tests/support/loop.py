"""The flows under Prefect's test harness, against real databases, a real store and the session's Label Studio.

`loop` is one installation of inkloop for a test (home, database, store, its own Label Studio project) with the
INKLOOP_* variables of this process pointing at it, so flows run in-process exactly as `inkloop flow run` runs
them. Requests reach the log either through a real `inkloop serve` process (`loop.serve()`) or, where a test only
needs rows, by the documented contract other stacks use: image into the store, then a `requests` row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import repo
from db.migrate import upgrade
from db.models import AnnotationTask, Image
from db.session import make_engine, session_factory, session_scope
from devtools.annotators import correction
from devtools.pages import Page
from flows.retrain import RetrainParams
from inkloop.store import ImageStore
from model.gates import GateConfig
from tests.support.databases import BACKENDS, create_postgres_database, drop_postgres_database
from tests.support.labelstudio import LabelStudioHandle
from tests.support.paths import SHIPPED_VERSION
from tests.support.servers import LiveServer

if TYPE_CHECKING:
    from flows.loop import LoopParams


@dataclass
class Loop:
    """A private inkloop installation for one test."""

    home: Path
    database_url: str
    label_studio: LabelStudioHandle
    project: str
    servers: list[LiveServer] = field(default_factory=list)

    @property
    def store(self) -> ImageStore:
        return ImageStore(str(self.home / "store"))

    def env(self) -> dict[str, str]:
        return {
            "INKLOOP_HOME": str(self.home),
            "INKLOOP_DATABASE_URL": self.database_url,
            "INKLOOP_LABEL_STUDIO_PROJECT": self.project,
            "INKLOOP_LABEL_STUDIO_FILES_ROOT": str(self.label_studio.document_root),
            **self.label_studio.env(),
        }

    def serve(self) -> LiveServer:
        """A real `inkloop serve` process on this installation."""
        server = LiveServer(home=self.home, database_url=self.database_url, extra_env=self.env())
        self.servers.append(server)
        return server.start()

    def session(self) -> Any:
        engine = make_engine(self.database_url)
        return _EngineSession(engine)

    def log(
        self,
        data: bytes,
        *,
        confidence: float,
        text: str = "a line",
        model_version: str = SHIPPED_VERSION,
        line_boxes: list[tuple[float, float, float, float]] | None = None,
        line_outlines: list[list[tuple[float, float]]] | None = None,
    ) -> str:
        """A request row as another serving stack would write it: the image first, then the row."""
        key = self.store.put(data)
        request_id = str(uuid.uuid4())
        with self.session() as session:
            repo.log_request(
                session=session,
                request_id=request_id,
                image_sha256=key,
                image_bytes=len(data),
                model_version=model_version,
                text=text,
                confidence=confidence,
                line_boxes=line_boxes,
                line_outlines=line_outlines,
                latency_ms=1.0,
                created_at=datetime.now(UTC),
            )
        return request_id

    def images(self) -> dict[str, Image]:
        with self.session() as session:
            return {row.sha256: row for row in session.scalars(select(Image))}

    def tasks(self) -> list[AnnotationTask]:
        with self.session() as session:
            return list(session.scalars(select(AnnotationTask).order_by(AnnotationTask.id)))


class _EngineSession:
    """`with loop.session() as s:` a committed transaction on a short-lived engine."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._scope: Any = None

    def __enter__(self) -> Session:
        self._scope = session_scope(session_factory(self._engine))
        return self._scope.__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            self._scope.__exit__(*exc)
        finally:
            self._engine.dispose()


@pytest.fixture(params=BACKENDS)
def loop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    label_studio: LabelStudioHandle,
    prefect_harness: None,
) -> Iterator[Loop]:
    pg_server = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inkloop.db'}"
    else:
        pg_server = request.getfixturevalue("postgres_server_url")
        url = create_postgres_database(pg_server)
    home = tmp_path / "home"
    (home / "store").mkdir(parents=True)
    upgrade(url)
    installation = Loop(home=home, database_url=url, label_studio=label_studio, project=f"test {uuid.uuid4().hex[:8]}")
    for name, value in installation.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield installation
    finally:
        for server in installation.servers:
            server.stop()
        if pg_server is not None:
            drop_postgres_database(pg_server, url)


def valid_image(
    loop: Loop,
    data: bytes,
    *,
    confidence: float,
    text: str = "a line",
    flagged: bool = False,
    line_boxes: list[tuple[float, float, float, float]] | None = None,
    line_outlines: list[list[tuple[float, float]]] | None = None,
) -> str:
    """A logged request whose image ingest already found valid (features and perceptual hash stored); its key."""
    from monitoring.features import compute_features

    request_id = loop.log(data, confidence=confidence, text=text, line_boxes=line_boxes, line_outlines=line_outlines)
    features = compute_features(data)
    key = loop.store.put(data)
    with loop.session() as session:
        repo.upsert_image(session=session, sha256=key, source="production", byte_size=len(data))
        repo.set_image_validation(
            session=session, sha256=key, status="valid", features=features.as_dict(), phash=features.phash
        )
        if flagged:
            repo.add_feedback(session=session, request_id=request_id, flag="incorrect")
    return key


def answer_all(loop: Loop, pages: dict[str, Page]) -> int:
    """Answer every open task as an annotator does: correct each line in its box where the boxes match the text's
    lines, else retype the paragraph. Returns how many were answered."""
    project = loop.tasks()[0].ls_project_id
    assert project is not None
    answered = 0
    with loop.label_studio.annotator() as annotator:
        while (task := annotator.next_task(project)) is not None:
            page = pages[task["data"]["image_sha256"]]
            annotator.submit(task["id"], result=correction(task, page.text), lead_time=4.0)
            answered += 1
    return answered


def short_retrain(folder: Path) -> RetrainParams:
    """A real but short fine-tune of the shipped network (40 steps of 8 lines, little replay) and lenient timing in
    its gate, for tests that run the whole loop on 2 shared cores."""
    config = folder / "short.json"
    config.write_text(json.dumps({"batch_size": 8, "lr": 0.0005, "warmup_fraction": 0.2, "val_every_steps": 40}))
    return RetrainParams(
        config=config,
        max_steps=40,
        replay_pages=8,
        replay_val_pages=4,
        stitched=4,
        rendered=4,
        gate_config=GateConfig(heldout_pages=8, speed_rounds=3, speed_tolerance=1.0),
    )


def loop_params(folder: Path) -> LoopParams:
    """The loop flow's parameters for a test's small traffic: every page routed (a third as audit), a real short
    retrain, drift from 5 rows."""
    from flows.dataset import DatasetParams
    from flows.drift import DriftParams
    from flows.loop import LoopParams
    from flows.route import RouteParams

    return LoopParams(
        route=RouteParams(budget=50, threshold=1.0, audit_rate=0.3),
        dataset=DatasetParams(val_share=0.25, test_share=0.3),
        retrain=short_retrain(folder),
        drift=DriftParams(min_rows=5),
    )
