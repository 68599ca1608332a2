"""Review: send imported pages to Label Studio to be checked, each pre-filled with its own lines (outlines and
texts), so an annotator corrects what the import got wrong; the sync flow brings the corrections back to the page.

Never the same page twice, as in the route flow and for the same reason (a run may die between Label Studio's
answer and our commit): every page's task is first recorded here as `queued` with a fresh uid (committed), the uid
travels inside the Label Studio task, and a later run asks Label Studio which queued uids it already has before
importing the rest. A page whose image has a task in the project is not chosen again.

Label Studio shows a task's pre-annotation only while the project's model_version equals the prediction's, and an
import of predictions of another version switches the project to it. A review's lines are no model's, so they
carry the version the project shows already (else the champion's, which the route flow's next tasks will carry):
sending a review hides no routed task's pre-fill. Label Studio shows one version at a time, though: once the route
flow imports tasks of a newer model, review tasks still open lose their pre-fill, as open routed tasks of the older
model do.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from annotation.client import LabelStudioClient
from annotation.labeling import image_url_for, local_files_root, task_payload
from annotation.review import review_lines, review_text
from db import repo
from db.models import AnnotationTask
from flows.common import FlowContext, FlowSummary
from flows.route import files_root, send
from inkloop.domain import TaskReason, TaskState
from inkloop.errors import InkloopError

# The version a review's pre-fill carries when the project has none yet and there is no champion.
NO_MODEL_VERSION = "imported"
# Sent by hand, a review comes first in the label stream, which hands out the lowest prediction score first.
REVIEW_SCORE = 0.0
REVIEW_PRIORITY = 1.0


class ReviewParams(BaseModel):
    """Parameters of a review: which collection, how many of its pages."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, description="The imported collection (inkloop datasets collections).")
    limit: int | None = Field(None, ge=1, description="At most this many pages (default: every page not yet sent).")
    chunk_size: int = Field(100, ge=1, le=1000, description="Tasks imported into Label Studio per request.")


class ReviewSummary(FlowSummary):
    """What a review run did."""

    collection: str = ""
    project: str = ""
    ls_project_id: int | None = None
    created: int = 0  # pages sent now
    already_sent: int = 0  # pages of the collection with a task in the project before this run
    recovered: int = 0  # queued by a run that died; found already in Label Studio
    resent: int = 0  # queued by a run that died before Label Studio had them
    lines: int = 0  # lines pre-filled on the pages sent now
    model_version: str = ""  # the version the pre-fill carries (see the module docstring)


# --- plain functions --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    uids: list[str]  # recorded as queued, by page name
    lines: int  # the lines they pre-fill
    already_sent: int  # pages of the collection that had a task in the project


def choose(context: FlowContext, *, project: str, params: ReviewParams) -> Chosen:
    """Record a `queued` review task for each page to send (committed). Safe to rerun: a page with a task is no
    longer chosen."""
    with context.transaction() as session:
        repo.require_collection(session=session, collection=params.collection)
        pages, sent = repo.pages_to_review(
            session=session, collection=params.collection, project=project, limit=params.limit
        )
        uids, lines = [], 0
        for page in pages:
            shown = review_lines(page)
            row = repo.create_task(
                session=session,
                uid=str(uuid.uuid4()),
                project=project,
                image_sha256=page.image_sha256,
                reason=TaskReason.review,
                priority=REVIEW_PRIORITY,
                prediction_text=review_text(shown),  # what the screen is pre-filled with: sync's labels compare to it
            )
            uids.append(row.uid)
            lines += len(shown)
    return Chosen(uids=uids, lines=lines, already_sent=sent)


def queued_reviews(context: FlowContext, *, project: str) -> list[AnnotationTask]:
    """Review tasks recorded but not yet confirmed in Label Studio (the route flow leaves them to this one)."""
    with context.transaction(write=False) as session:
        queued = repo.tasks_in_state(session=session, project=project, state=TaskState.queued)
    return [task for task in queued if task.reason is TaskReason.review]


def prefill_version(context: FlowContext, client: LabelStudioClient, ls_project_id: int) -> str:
    """The model_version a review's pre-fill carries: the project's, else the champion's (see the module docstring)."""
    shown = client.project(ls_project_id).get("model_version")
    if isinstance(shown, str) and shown:
        return shown
    with context.transaction(write=False) as session:
        champion = repo.get_champion(session=session)
    return champion.version if champion is not None else NO_MODEL_VERSION


def payloads_for(context: FlowContext, tasks: Sequence[AnnotationTask], *, model_version: str) -> list[dict[str, Any]]:
    """Label Studio task JSON for queued review tasks: the page image, and its lines as the prediction."""
    root = files_root(context.settings)
    with context.transaction(write=False) as session:
        by_image = repo.gt_pages_by_image(session=session, image_sha256s=[t.image_sha256 for t in tasks])
    payloads = []
    for row in tasks:
        pages = by_image.get(row.image_sha256)
        if not pages:
            raise InkloopError(f"review task {row.uid}: image {row.image_sha256} is no imported page any more")
        # The page it was chosen for (an image may be in two collections): the one pre-filling the same reading.
        shown = [(page, review_lines(page)) for page in pages]
        page, lines = next(((p, ls) for p, ls in shown if review_text(ls) == row.prediction_text), shown[0])
        payloads.append(
            task_payload(
                uid=row.uid,
                image_url=image_url_for(context.settings.store_url, row.image_sha256, document_root=root),
                text=review_text(lines),
                lines=lines,
                score=REVIEW_SCORE,
                model_version=model_version,
                priority=row.priority,
                reason=row.reason.value,
                meta={"image_sha256": row.image_sha256, "collection": page.collection, "page": page.name},
            )
        )
    return payloads


def review_pages(context: FlowContext, client: LabelStudioClient, params: ReviewParams) -> ReviewSummary:
    """Send up to `params.limit` pages of a collection not yet sent (and any a stopped run left queued) to the
    Label Studio project for review, each pre-filled with its lines."""
    settings = context.settings
    project = settings.label_studio_project
    summary = ReviewSummary(collection=params.collection, project=project)
    files_root(settings)  # a store Label Studio cannot serve fails here, before anything is recorded
    # Label Studio first: when it is down the run fails before choosing anything.
    ls_project_id = client.ensure_project(project, model_version=None, image_root=local_files_root(settings.store_url))
    summary.ls_project_id = ls_project_id
    leftovers = {t.uid for t in queued_reviews(context, project=project)}
    chosen = choose(context, project=project, params=params)
    summary.created, summary.lines, summary.already_sent = len(chosen.uids), chosen.lines, chosen.already_sent
    summary.model_version = version = prefill_version(context, client, ls_project_id)
    payloads = functools.partial(payloads_for, model_version=version)
    tasks = queued_reviews(context, project=project)
    for start in range(0, len(tasks), params.chunk_size):
        chunk = tasks[start : start + params.chunk_size]
        _, already = send(context, client, ls_project_id=ls_project_id, tasks=chunk, payloads=payloads)
        summary.recovered += already
        summary.resent += len([t for t in chunk if t.uid in leftovers]) - already
    return summary
