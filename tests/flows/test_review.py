"""Imported pages reviewed in a real Label Studio, on SQLite and PostgreSQL: `inkloop datasets review` sends two
real Hooker pages, pre-filled with their line outlines and texts (shown: the project's model_version is the
prediction's); an annotator corrects one line of one page and accepts the other page as it is; sync gives the
corrected line, and only it, to the stored page, with who corrected it and when. Reruns create and change nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from cli.app import app
from db.models import DatasetMember, GroundTruthLine, GroundTruthPage
from devtools.annotators import correction, prefill
from flows.sync import SyncParams, sync
from inkloop.domain import TaskReason, TaskState
from tests.support.loop import Loop
from tests.support.real_pages import HOOKER, copy_pages

# Two short pages of the Hooker letters (6 and 5 lines; one of the 5 drawn but not transcribed).
FIRST_PAGE = 33
CORRECTED_PAGE = "JDH_2_16_168_003.xml"
runner = CliRunner()


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def imported_lines(loop: Loop) -> dict[str, list[tuple[Any, ...]]]:
    """Every imported page's lines: (position, text, polygon, baseline, type, line id), by file name."""
    with loop.session() as session:
        query = (
            select(GroundTruthPage.name, GroundTruthLine).join(GroundTruthLine.page).order_by(GroundTruthLine.position)
        )
        found: dict[str, list[tuple[Any, ...]]] = {}
        for name, line in session.execute(query):
            found.setdefault(name, []).append(
                (line.position, line.text, line.polygon, line.baseline, line.line_type, line.line_id)
            )
    return found


def imported_pages(loop: Loop) -> dict[str, GroundTruthPage]:
    with loop.session() as session:
        pages = list(session.scalars(select(GroundTruthPage)))
        session.expunge_all()
    return {page.name: page for page in pages}


def test_imported_pages_are_reviewed_and_a_corrected_line_reaches_its_page(loop: Loop, tmp_path: Path) -> None:
    copy_pages(HOOKER, tmp_path / "hooker", 2, first=FIRST_PAGE)
    invoke("datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0")
    before = imported_lines(loop)
    assert CORRECTED_PAGE in before and len(before) == 2

    sent = json.loads(invoke("datasets", "review", "hooker", "--json").output)
    assert (sent["created"], sent["already_sent"], sent["lines"]) == (2, 0, 10)  # the untranscribed line is not shown
    tasks = loop.tasks()
    assert {(t.reason, t.state) for t in tasks} == {(TaskReason.review, TaskState.open)}
    project = sent["ls_project_id"]

    corrected: dict[str, str] = {}
    with loop.label_studio.annotator() as annotator:
        while (task := annotator.next_task(project)) is not None:
            # The screen opens pre-filled: the page's lines as outlines, each with its text.
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == sent["model_version"]
            assert {r["type"] for r in prediction["result"]} == {"polygonlabels", "textarea"}
            shown = prefill(task)
            assert all("polygon" in line for line in shown.lines) and shown.paragraph == ""
            rows = shown.reading.split("\n")
            assert len(rows) == len([line for line in before[task["data"]["page"]] if line[1].strip()])
            if task["data"]["page"] == CORRECTED_PAGE:
                assert rows[1] == "Frances"
                rows[1] = corrected["text"] = "Frances Hooker"
            annotator.submit(task["id"], result=correction(task, "\n".join(rows)), lead_time=9.0)
    assert corrected, "the page to correct never reached the annotator"

    summary = sync()
    assert (summary.new_annotations, summary.completed, summary.pages_corrected) == (2, 2, 1)
    after = imported_lines(loop)
    other = next(name for name in before if name != CORRECTED_PAGE)
    assert after[other] == before[other]  # accepted as it was: unchanged, to the pixel
    changed = [(old, new) for old, new in zip(before[CORRECTED_PAGE], after[CORRECTED_PAGE], strict=True) if old != new]
    ((old, new),) = changed  # one line, in place
    assert (old[1], new[1]) == ("Frances", "Frances Hooker")
    assert old[:1] + old[2:] == new[:1] + new[2:]  # its position, outline, baseline, type and id kept
    pages = imported_pages(loop)
    fixed = pages[CORRECTED_PAGE]
    assert fixed.corrected_by == loop.label_studio.username
    assert fixed.updated_at is not None and fixed.updated_at > fixed.imported_at
    assert (pages[other].corrected_by, pages[other].updated_at) == (None, None)

    # Reruns: no page is sent twice, and an answer already applied changes nothing.
    again = json.loads(invoke("datasets", "review", "hooker", "--json").output)
    assert (again["created"], again["already_sent"], again["recovered"], again["resent"]) == (0, 2, 0, 0)
    assert len(loop.tasks()) == 2
    assert sync(SyncParams(full=True)).pages_corrected == 0
    assert imported_lines(loop) == after

    # A dataset build takes the reviewed pages as annotated (reason review) with the corrected lines' outlines.
    built = invoke("datasets", "build", "--val-share", "0", "--test-share", "0")
    assert built.exit_code == 0, built.output
    with loop.session() as session:
        members = {m.gt_page_id: m for m in session.scalars(select(DatasetMember))}
    assert set(members) == {p.id for p in pages.values()}
    member = members[fixed.id]
    assert member.reason is TaskReason.review and member.annotation_id is not None
    assert "Frances Hooker" in member.text.split("\n")
    assert all(len(line["polygon"]) >= 3 for line in member.lines or [])
