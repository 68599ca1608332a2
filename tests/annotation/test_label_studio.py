"""The client against a real Label Studio (the session's `label_studio` fixture): projects, imports with
pre-annotations, the annotators' queue, annotations and their edits, a second annotator, served images, and the
errors a user sees when Label Studio is down or refuses the token."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from annotation.client import SAMPLING, LabelStudioClient
from annotation.labeling import (
    annotation_result,
    image_url_for,
    label_config,
    local_files_root,
    parse_annotation,
    task_payload,
)
from devtools.annotators import SimulatedAnnotator, create_account
from inkloop.errors import LabelStudioAuthError, LabelStudioError, LabelStudioUnavailableError, TransientError
from inkloop.store import ImageStore
from tests.support.labelstudio import LabelStudioHandle
from tests.support.ports import free_port

LINES = [{"text": "dear Sam,", "box": (4.0, 8.0, 60.0, 10.0)}, {"text": "see you soon", "box": (4.0, 22.0, 70.0, 10.0)}]


@pytest.fixture
def client(label_studio: LabelStudioHandle) -> Iterator[LabelStudioClient]:
    with label_studio.client() as admin:
        yield admin


@pytest.fixture
def project(client: LabelStudioClient) -> int:
    """A new project of the session's Label Studio, showing predictions of model m1."""
    return client.ensure_project(f"test {uuid.uuid4().hex[:8]}", model_version="m1")


def payload(uid: str, *, score: float, model_version: str = "m1", lines: list[Any] | None = None) -> dict[str, Any]:
    return task_payload(
        uid=uid,
        image_url=f"/data/local-files/?d=objects/{uid}.png",
        text="dear Sam,\nsee you soon",
        lines=LINES if lines is None else lines,
        score=score,
        model_version=model_version,
        priority=1 - score,
        reason="low_confidence",
        meta={"request_id": f"req-{uid}"},
    )


def test_ensure_project_is_idempotent_and_sets_the_queue(client: LabelStudioClient) -> None:
    title = f"idempotent {uuid.uuid4().hex[:8]}"
    first = client.ensure_project(title, model_version="m1")
    assert client.ensure_project(title, model_version="m1") == first
    assert client.find_project(title) == first
    settings = client.project(first)
    assert settings["label_config"] == label_config().xml.strip()
    assert (settings["model_version"], settings["sampling"], settings["show_skip_button"]) == ("m1", SAMPLING, True)
    # Label Studio takes a new model_version only once the project holds predictions of it
    with pytest.raises(LabelStudioError, match="HTTP 400.*Model version doesn't exist"):
        client.set_model_version(first, "m2")
    assert client.ensure_project(title, model_version="m2") == first
    assert client.project(first)["model_version"] == "m1"
    # importing tasks predicted by m2 switches the project to m2; model_version=None then leaves it alone
    client.import_tasks(first, [payload("x", score=0.5, model_version="m2")])
    assert client.model_versions(first) == {"m2": 1}
    assert client.project(first)["model_version"] == "m2"
    assert client.ensure_project(title, model_version=None) == first
    assert client.project(first)["model_version"] == "m2"
    assert client.check() == "1.23.2"
    assert abs(client.server_time() - datetime.now(UTC)) < timedelta(minutes=1)


def test_queue_is_least_confident_first_and_shows_only_current_predictions(
    client: LabelStudioClient, project: int
) -> None:
    ids = client.import_tasks(
        project,
        [
            payload("sure", score=0.9),
            payload("unsure", score=0.2),
            payload("middling", score=0.5),
            payload("old-model", score=0.05, model_version="m0"),
        ],
    )
    assert set(ids) == {"sure", "unsure", "middling", "old-model"}

    seen = []
    annotator = SimulatedAnnotator(client)
    while (task := annotator.next_task(project)) is not None:
        uid = task["data"]["inkloop_uid"]
        seen.append((uid, [(p["model_version"], p["score"]) for p in task["predictions"]]))
        if uid == "middling":
            # the annotator sees the model's transcription pre-filled, once: in the line texts
            texts = [r["value"]["text"] for r in task["predictions"][0]["result"] if r["type"] == "textarea"]
            assert texts == [["dear Sam,"], ["see you soon"]]
        annotator.submit(task["id"], result=annotation_result(paragraph="ok"))
    # least confident first among m1 predictions; the m0 task comes last, its prediction hidden from the annotator
    assert seen == [
        ("unsure", [("m1", 0.2)]),
        ("middling", [("m1", 0.5)]),
        ("sure", [("m1", 0.9)]),
        ("old-model", []),
    ]
    assert [p["model_version"] for p in client.task(ids["old-model"])["predictions"]] == ["m0"]


def test_prediction_shows_once_the_project_has_its_model_version(client: LabelStudioClient, project: int) -> None:
    client.import_tasks(project, [payload("a", score=0.3, model_version="m2")], show_predictions=False)
    annotator = SimulatedAnnotator(client)
    assert annotator.next_task(project)["predictions"] == []  # type: ignore[index]
    client.set_model_version(project, "m2")
    (prediction,) = annotator.next_task(project)["predictions"]  # type: ignore[index]
    assert (prediction["model_version"], prediction["score"]) == ("m2", 0.3)


def test_task_ids_by_uid_finds_what_was_imported(client: LabelStudioClient, project: int) -> None:
    uids = [f"uid-{i:04d}-{uuid.uuid4().hex}" for i in range(600)]  # more than one lookup request (500 a request)
    created = client.import_tasks(project, [payload(u, score=0.5, lines=[]) for u in uids], chunk_size=250)
    assert len(created) == 600 and len(set(created.values())) == 600
    assert client.task_ids_by_uid(project, [*uids, "never-imported"]) == created
    assert client.task_ids_by_uid(project, []) == {}


def test_annotate_skip_edit_and_read_back(
    client: LabelStudioClient, project: int, label_studio: LabelStudioHandle
) -> None:
    ids = client.import_tasks(
        project, [payload("kept", score=0.3), payload("skipped", score=0.4), payload("open", score=0.5)]
    )
    annotator = SimulatedAnnotator(client)
    kept = annotator.submit(
        ids["kept"], result=annotation_result(paragraph="", lines=LINES, unreadable=False), lead_time=8.5
    )
    annotator.skip(ids["skipped"])

    tasks = {t["data"]["inkloop_uid"]: t for t in client.annotated_tasks(project, page_size=1)}
    assert set(tasks) == {"kept", "skipped"}  # a skip counts; an untouched task does not
    parsed = parse_annotation(tasks["kept"]["annotations"][0], tasks["kept"])
    assert (parsed.uid, parsed.ls_task_id, parsed.ls_annotation_id) == ("kept", ids["kept"], kept["id"])
    assert parsed.annotator == label_studio.username
    assert parsed.text == "dear Sam,\nsee you soon" and [line["text"] for line in parsed.lines] == [
        "dear Sam,",
        "see you soon",
    ]
    assert parsed.lead_time_s == 8.5 and not parsed.skipped
    skipped = parse_annotation(tasks["skipped"]["annotations"][0], tasks["skipped"])
    assert skipped.skipped and skipped.text == ""

    # an edit changes updated_at, and only the edited task is "updated after" the first read
    before_edit = max(datetime.fromisoformat(t["updated_at"]) for t in tasks.values())
    annotator.edit(kept["id"], result=annotation_result(paragraph="Dear Sam,\nsee you soon!", unreadable=True))
    changed = list(client.annotated_tasks(project, updated_after=before_edit))
    assert [t["data"]["inkloop_uid"] for t in changed] == ["kept"]
    edited = parse_annotation(changed[0]["annotations"][0], changed[0])
    assert edited.ls_annotation_id == parsed.ls_annotation_id
    assert edited.updated_at > parsed.updated_at and edited.created_at == parsed.created_at
    assert edited.text == "Dear Sam,\nsee you soon!" and edited.unreadable
    assert list(client.annotated_tasks(project, updated_after=edited.updated_at + timedelta(seconds=1))) == []
    # the same annotation read from the single-task endpoint (completed_by is a user object there)
    single = client.task(ids["kept"])
    assert parse_annotation(single["annotations"][0], single) == edited


def test_a_second_annotator_is_recorded_as_another_user(
    client: LabelStudioClient, project: int, label_studio: LabelStudioHandle
) -> None:
    email = f"second-{uuid.uuid4().hex[:6]}@inkloop.local"
    token = create_account(client, email, password="second-annotator-pw")
    assert create_account(client, email, password="second-annotator-pw") == token  # repeatable: logs in
    ids = client.import_tasks(project, [payload("shared", score=0.3), payload("unreadable", score=0.1)])
    first = SimulatedAnnotator(client)
    first.submit(ids["shared"], result=annotation_result(paragraph="dear Sam, see you soon"))
    first.skip(ids["unreadable"])
    with SimulatedAnnotator(client.as_user(token)) as second:
        assert second.client.whoami()["email"] == email
        # the queue gives them neither the answered task nor the skipped one (a skip goes to no one else) ...
        assert second.next_task(project) is None
        # ... but an audit may still ask them to transcribe a task again, differently
        second.submit(ids["shared"], result=annotation_result(paragraph="dear Sam, see you later"))
    shared = next(t for t in client.annotated_tasks(project) if t["id"] == ids["shared"])
    answers = {parse_annotation(a, shared).annotator: parse_annotation(a, shared).text for a in shared["annotations"]}
    assert answers == {label_studio.username: "dear Sam, see you soon", email: "dear Sam, see you later"}


def test_a_local_store_image_is_served(
    client: LabelStudioClient, label_studio: LabelStudioHandle, tmp_path: Path
) -> None:
    store = ImageStore(str(tmp_path / "store"))
    buffer = io.BytesIO()
    Image.new("L", (64, 32), 200).save(buffer, format="PNG")
    key = store.put(buffer.getvalue())
    project = client.ensure_project(
        f"images {uuid.uuid4().hex[:8]}", model_version="m1", image_root=local_files_root(store.url)
    )
    # the storage is made once
    client.ensure_project(f"images {project}", model_version="m1", image_root=local_files_root(store.url))
    url = image_url_for(store.url, key, document_root=label_studio.document_root)
    ids = client.import_tasks(
        project,
        [
            task_payload(
                uid="img", image_url=url, text="", lines=[], score=0.1, model_version="m1", priority=0.9, reason="audit"
            )
        ],
    )
    task = client.task(ids["img"])
    assert client.get_file(task["data"]["image"]) == buffer.getvalue()
    with pytest.raises(LabelStudioError, match="HTTP 404"):
        client.get_file(image_url_for(store.url, "0" * 64, document_root=label_studio.document_root))


def test_unreachable_label_studio_is_a_clear_transient_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        LabelStudioClient(url, "any-token", timeout_s=5) as nobody,
        pytest.raises(LabelStudioUnavailableError) as error,
    ):
        nobody.check()
    assert str(error.value).startswith(f"Label Studio at {url} is not reachable: ")
    assert isinstance(error.value, TransientError)  # the flows retry these


def test_a_wrong_token_is_refused_clearly(label_studio: LabelStudioHandle) -> None:
    with label_studio.client("not-the-token") as stranger, pytest.raises(LabelStudioAuthError) as error:
        stranger.ensure_project("never", model_version="m1")
    assert f"Label Studio at {label_studio.url} refused the token (HTTP 401" in str(error.value)
    assert "INKLOOP_LABEL_STUDIO_TOKEN" in str(error.value)
