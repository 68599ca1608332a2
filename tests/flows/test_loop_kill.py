"""Killing the loop anywhere and rerunning it ends where an uninterrupted run ends.

The same traffic and parameters as tests/flows/test_loop_flow.py's uninterrupted run (24 pages of block capitals,
every one routed, answered, frozen into ds-0001 and trained into m-0001, promoted), but each `inkloop flow run
loop` is a real process killed with SIGKILL: during ingest, during route (tasks recorded, Label Studio maybe not
told yet), during sync, and in the middle of training. Each time the next run picks up. At the end the database
and Label Studio hold exactly what the uninterrupted run leaves: every request once, every image once (and the
retrain's eight synthetic pages once), one task per image (in Label Studio too), one annotation per task, one
dataset version with every page, one candidate from one training run, promoted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation.client import LabelStudioClient
from db.models import (
    Annotation,
    AnnotationTask,
    DatasetMember,
    DatasetVersion,
    Image,
    ModelVersion,
    Request,
    SyntheticSample,
    TrainingRun,
)
from devtools.pages import Page, shifted_pages
from inkloop.domain import ImageSource, ModelStatus, TaskState
from tests.support.loop import Loop, answer_all, loop_params
from tests.support.paths import SHIPPED_VERSION

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _loop_process(loop: Loop, params: dict[str, Any], skip: list[str]) -> subprocess.Popen[bytes]:
    from prefect.settings import PREFECT_API_URL

    args = [f"{name}={json.dumps(value)}" for name, value in params.items()] + [f"skip={json.dumps(skip)}"]
    env = {
        **os.environ,
        **loop.env(),
        "INKLOOP_MIN_NEW_LABELS": "5",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PYTHONPATH": str(REPO),
    }
    with (loop.home / "loop-runs.log").open("ab") as log:
        log.write(f"\n=== inkloop flow run loop, skip {skip}\n".encode())
        log.flush()
        return subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "inkloop"), "flow", "run", "loop", "--verbose"]
            + [a for p in args for a in ("-p", p)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _count(loop: Loop, query: Any) -> int:
    with loop.session() as session:
        return int(session.scalar(query) or 0)


def rows(loop: Loop, model: Any) -> Callable[[], bool]:
    """True once the table of `model` has a row."""
    return lambda: _count(loop, select(func.count()).select_from(model)) > 0


def kill_when(loop: Loop, process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float = 300) -> bool:
    """SIGKILL the run (and its children) as soon as `ready()`; False if it ended first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def finish(loop: Loop, params: dict[str, Any], skip: list[str]) -> None:
    process = _loop_process(loop, params, skip)
    try:
        code = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = None
    log = (loop.home / "loop-runs.log").read_text(errors="replace")
    assert code == 0, f"the run with skip {skip} ended {code}:\n{log[-6000:]}"


def state(loop: Loop) -> dict[str, Any]:
    """What the loop leaves, by identity (Label Studio's ids differ between installations; images do not)."""
    with loop.session() as session:
        assert isinstance(session, Session)
        tasks = list(session.scalars(select(AnnotationTask)))
        by_task = {t.id: t.image_sha256 for t in tasks}
        annotations = list(session.scalars(select(Annotation)))
        versions = list(session.scalars(select(DatasetVersion)))
        members = {
            v.version: sorted(
                session.scalars(select(DatasetMember.image_sha256).where(DatasetMember.dataset_version_id == v.id))
            )
            for v in versions
        }
        models = {m.version: m.status for m in session.scalars(select(ModelVersion))}
        return {
            "requests": sorted(session.scalars(select(Request.request_id))),
            "images": sorted(session.scalars(select(Image.sha256).where(Image.source == ImageSource.production))),
            # The retrain's synthetic pages for ds-0001 (short_retrain: 4 stitched, 4 font-rendered), one row each.
            "synthetic": sorted(
                session.execute(
                    select(SyntheticSample.generator, func.count())
                    .join(Image, Image.sha256 == SyntheticSample.image_sha256)
                    .group_by(SyntheticSample.generator)
                ).tuples()
            ),
            "synthetic_images": session.scalar(
                select(func.count()).select_from(Image).where(Image.source == ImageSource.synthetic)
            ),
            "tasks": sorted((t.image_sha256, t.state) for t in tasks),
            "annotations": sorted((by_task[a.task_id], a.revision, a.text) for a in annotations),
            "datasets": members,
            "models": models,
            "training_runs": session.scalar(select(func.count()).select_from(TrainingRun)),
            "ls_task_ids": len({t.ls_task_id for t in tasks if t.ls_task_id is not None}),
        }


def expected(request_ids: list[str], pages: dict[str, Page]) -> dict[str, Any]:
    """Where the uninterrupted run of test_loop_flow ends with this traffic and these parameters."""
    images = sorted(pages)
    return {
        "requests": sorted(request_ids),
        "images": images,
        "synthetic": [("font", 4), ("stitch", 4)],
        "synthetic_images": 8,
        "tasks": [(sha, TaskState.completed) for sha in images],
        "annotations": sorted((sha, 1, pages[sha].text) for sha in images),
        "datasets": {"ds-0001": images},
        "models": {SHIPPED_VERSION: ModelStatus.retired, "m-0001": ModelStatus.champion},
        "training_runs": 1,
        "ls_task_ids": len(images),
    }


def test_killing_the_loop_anywhere_and_rerunning_ends_as_an_uninterrupted_run(loop: Loop, tmp_path: Path) -> None:
    pages: dict[str, Page] = {}
    request_ids = []
    for page in shifted_pages(24, seed=77):
        request_ids.append(loop.log(page.data, confidence=0.4, text=page.reading, line_boxes=page.boxes))
        pages[hashlib.sha256(page.data).hexdigest()] = page
    params = {
        name: value
        for name, value in loop_params(tmp_path).model_dump(mode="json").items()
        if name in ("ingest", "route", "sync", "dataset", "retrain", "drift")
    }
    params["ingest"] = {**params["ingest"], "batch_size": 2}  # twelve commits: a kill can land between them
    params["sync"] = {**params["sync"], "page_size": 2}
    kills = []

    # Run 1, killed once the first images are in (ingest) and again once tasks are recorded (route).
    first = ["sync", "dataset", "retrain", "drift"]
    kills.append(kill_when(loop, _loop_process(loop, params, first), rows(loop, Image)))
    kills.append(kill_when(loop, _loop_process(loop, params, first), rows(loop, AnnotationTask)))
    finish(loop, params, first)
    assert answer_all(loop, pages) == 24

    # Run 2, killed once sync stored an annotation, and again in the middle of training.
    second = ["ingest", "route", "drift"]
    kills.append(kill_when(loop, _loop_process(loop, params, second), rows(loop, Annotation)))
    curves = loop.home / "tensorboard" / "m-0001"  # written once Lightning starts its steps
    started: list[float] = []

    def training_a_while() -> bool:
        if not started and curves.exists():
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] > 5

    training = kill_when(loop, _loop_process(loop, params, second), training_a_while)
    assert training, "the run ended before training could be killed"
    kills.append(training)
    finish(loop, params, second)
    finish(loop, params, [])  # a further run of every step changes nothing

    assert sum(kills) >= 3, f"most kill points were missed: {kills}"
    assert state(loop) == expected(request_ids, pages)
    from inkloop.settings import load_settings

    with LabelStudioClient.from_settings(load_settings()) as client:  # no task twice in Label Studio either
        project = client.find_project(loop.project)
        assert project is not None
        assert client.project(project)["task_number"] == 24
