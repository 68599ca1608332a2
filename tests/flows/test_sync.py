"""The sync flow: annotations made in Label Studio, as annotators make them, arrive as revisions, exactly once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import flows.sync as sync_module
from annotation.labeling import annotation_result
from db.models import Annotation
from devtools.annotators import SimulatedAnnotator
from flows.route import RouteParams, route
from flows.sync import SyncParams, agreement, sync
from inkloop.domain import TaskState
from tests.support.loop import Loop, valid_image
from tests.support.paths import GOLDEN

PAGES = sorted(GOLDEN.glob("*.png"))
LINES = [
    {"text": "first line", "box": (5.0, 10.0, 80.0, 12.0)},
    {"text": "second line", "box": (5.0, 30.0, 70.0, 12.0)},
]


def _annotations(loop: Loop) -> list[Annotation]:
    with loop.session() as session:
        return list(session.scalars(select(Annotation).order_by(Annotation.id)))


def _routed(loop: Loop, count: int) -> tuple[int, dict[str, int]]:
    for page, confidence in zip(PAGES[:count], [0.1, 0.2, 0.3, 0.4], strict=False):
        valid_image(loop, page.read_bytes(), confidence=confidence)
    summary = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    assert summary.created == count
    assert summary.ls_project_id is not None
    ls_tasks: dict[str, int] = {}
    for task in loop.tasks():
        assert task.ls_task_id is not None, f"task {task.uid} is not in Label Studio"
        ls_tasks[task.image_sha256] = task.ls_task_id
    return summary.ls_project_id, ls_tasks


def test_submitted_skipped_and_edited_annotations_arrive_as_revisions(loop: Loop) -> None:
    _, ls_tasks = _routed(loop, 2)
    first, second = sorted(ls_tasks.values())
    with loop.label_studio.annotator() as annotator:
        submitted = annotator.submit(
            first, result=annotation_result(paragraph="first line\nsecond line", lines=LINES), lead_time=12.5
        )
        annotator.skip(second)

        summary = sync()
        assert summary.new_annotations == 2 and summary.completed == 1 and summary.skipped == 1
        stored = _annotations(loop)
        done = next(a for a in stored if not a.skipped)
        assert done.text == "first line\nsecond line" and done.revision == 1
        assert done.lines is not None
        assert [line["text"] for line in done.lines] == ["first line", "second line"]
        assert done.lines[0]["box"] == [5.0, 10.0, 80.0, 12.0]
        assert done.lead_time_s == pytest.approx(12.5)
        assert done.annotator == loop.label_studio.username
        states = {t.ls_task_id: t.state for t in loop.tasks()}
        assert states == {first: TaskState.completed, second: TaskState.skipped}

        # Nothing changed: nothing stored.
        assert sync(SyncParams(full=True)).new_annotations == 0
        assert len(_annotations(loop)) == 2

        # The annotator corrects their answer: a second revision of the same annotation.
        annotator.edit(submitted["id"], result=annotation_result(paragraph="first line\nsecond line!", lines=LINES))
    summary = sync()
    assert summary.new_revisions == 1
    revisions = [a for a in _annotations(loop) if a.ls_annotation_id == submitted["id"]]
    assert [(a.revision, a.text) for a in revisions] == [
        (1, "first line\nsecond line"),
        (2, "first line\nsecond line!"),
    ]


def test_two_annotators_who_disagree_mark_the_task_for_review(loop: Loop) -> None:
    _, ls_tasks = _routed(loop, 1)
    (task_id,) = ls_tasks.values()
    with loop.label_studio.annotator() as first:
        email = f"second-{loop.project.split()[-1]}@inkloop.local"
        first.submit(task_id, result=annotation_result(paragraph="meet me at noon"))
        with SimulatedAnnotator.sign_up(first.client, email, password="second-pass-123") as other:
            other.submit(task_id, result=annotation_result(paragraph="meat me at moon, or later"))
    summary = sync()
    assert summary.new_annotations == 2 and summary.needs_review == 1
    (task,) = loop.tasks()
    assert task.state is TaskState.needs_review
    assert task.agreement_cer == pytest.approx(agreement(["meet me at noon", "meat me at moon, or later"]))
    assert len({a.annotator for a in _annotations(loop)}) == 2


def test_a_crash_in_the_middle_of_a_sync_loses_and_duplicates_nothing(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ls_tasks = _routed(loop, 3)
    with loop.label_studio.annotator() as annotator:
        for n, task_id in enumerate(sorted(ls_tasks.values())):
            annotator.submit(task_id, result=annotation_result(paragraph=f"page {n}"))
    real = sync_module.store_page
    calls = {"n": 0}

    def dies_on_second_page(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_module, "store_page", dies_on_second_page)
    with pytest.raises(RuntimeError, match="killed"):
        sync(SyncParams(page_size=1))
    assert len(_annotations(loop)) == 1  # the first page committed, the second rolled back

    monkeypatch.setattr(sync_module, "store_page", real)
    summary = sync(SyncParams(page_size=1))
    assert summary.new_annotations == 2 and summary.unchanged == 1
    assert sorted(a.text or "" for a in _annotations(loop)) == ["page 0", "page 1", "page 2"]
    assert all(t.state is TaskState.completed for t in loop.tasks())


def test_an_answer_with_nul_characters_is_stored_without_them_on_either_database(loop: Loop) -> None:
    # PostgreSQL refuses NUL in text, SQLite keeps it: sync drops them on both, and says so (flows/sync.py).
    _, ls_tasks = _routed(loop, 2)
    lined, typed = sorted(ls_tasks.values())
    lines = [{"text": "first\x00 line", "box": LINES[0]["box"]}, LINES[1]]
    with loop.label_studio.annotator() as annotator:
        annotator.submit(lined, result=annotation_result(paragraph="", lines=lines))
        annotator.submit(typed, result=annotation_result(paragraph="\x00meet me\x00 at noon"))
    summary = sync()
    assert (summary.new_annotations, summary.completed, summary.nul_dropped) == (2, 2, 2)
    stored = {a.text: a for a in _annotations(loop)}
    assert set(stored) == {"first line\nsecond line", "meet me at noon"}
    assert [line["text"] for line in stored["first line\nsecond line"].lines or []] == ["first line", "second line"]
    assert stored["meet me at noon"].raw == {"paragraph": "meet me at noon", "lines": []}
    assert all(t.state is TaskState.completed for t in loop.tasks())
    assert ("nul dropped", "2") in summary.rows()  # what `inkloop flow run sync` prints

    # Read again: the answers are the ones already held, NUL dropped the same way, so nothing is stored twice.
    again = sync(SyncParams(full=True))
    assert (again.new_annotations, again.new_revisions, again.unchanged, again.nul_dropped) == (0, 0, 2, 0)


def test_agreement_is_the_largest_pairwise_cer() -> None:
    assert agreement(["abc"]) is None
    assert agreement(["abc", "abc"]) == 0.0
    assert agreement(["abcd", "abcd", "abxd"]) == pytest.approx(0.25)
