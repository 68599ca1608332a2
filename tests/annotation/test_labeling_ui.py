"""The labeling screen in headless Chromium (Debian's package, `make browser`) against the session's real Label
Studio: every line's text is shown whole, in its own box beside the image, and an annotator corrects a line there,
without selecting its box on the image first, the way a person does (click, select all, type, Submit). The sync
flow then brings the corrected line, and the paragraph it gives, into inkloop's database.

One truth: the model's reading is on the screen once. Under pre-filled lines the paragraph box is empty, so the
completed task holds the corrected lines and nothing else; a page whose lines came without texts has the reading in
the paragraph box, where the annotator corrects it.

The screenshots of the screens with the correction typed in are kept under the test's folder (and copied to
TEST_SCREENSHOTS_DIR when that is set), for a person to look at.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from annotation.labeling import label_config
from db.models import Annotation
from devtools.annotators import SimulatedAnnotator
from flows.route import RouteParams, route
from flows.sync import sync
from inkloop.labels import LabelSource
from inkloop.wait import wait_until
from tests.support.labelstudio import answer_texts
from tests.support.loop import Loop, valid_image
from tests.support.pages import FONT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Three lines of about 70 characters: the old region list cut each one at about 30.
LINES = [
    "The quick brown fox jumps over the lazy dog while the farmer watches it",
    "Handwriting recognition models read whole paragraphs one line at a time",
    "Every corrected line becomes training data for the next model version",
]
CORRECTED = "The quick brown fox jumped over the lazy dog while the farmer watched it"
HEIGHT = 130  # pixels of the page image
BOXES = [(0.5, (6 + 40 * i) / HEIGHT * 100, 99.0, 36 / HEIGHT * 100) for i in range(3)]
# The same lines as the endpoint logs them since migration 0008: outlines (a slanted top edge, a straight bottom).
OUTLINES = [[(x, y + 2), (x + w / 2, y), (x + w, y + 2), (x + w, y + h), (x, y + h)] for x, y, w, h in BOXES]
PASSWORD = "labeling-ui-pass-123"
# The per-region text boxes Label Studio draws in its Regions panel (displayMode="region-list", rows above 1).
LINE_FIELD = "[data-testid=textarea-region-textarea]"
SELECTED_REGION = ".lsf-tree-treenode-selected"  # a selected region's row in that panel
# A text box shows all of its text when the text needs no more room than the box has (no scrolling either way).
SIZES = "el => [el.scrollWidth, el.clientWidth, el.scrollHeight, el.clientHeight]"
# The paragraph box: its empty input (to type a paragraph in), and the text it holds once one is there.
PARAGRAPH_INPUT = f"textarea[name={label_config().paragraph}]"
PARAGRAPH_TEXT = "[data-testid=textarea-regions] [data-testid=htx-textbox-content]"


def _page_image() -> bytes:
    """The three lines, each inside its box of BOXES."""
    image = Image.new("L", (1400, HEIGHT), 235)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 24)
    for line, (_, y, _, _) in zip(LINES, BOXES, strict=True):
        draw.text((14, y * HEIGHT / 100 + 4), line, font=font, fill=15)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _log_in(page: Page, url: str, email: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda current: "/user/login" not in current, timeout=30_000)


def _line_texts(result: list[dict[str, Any]]) -> dict[str, list[str]]:
    name = label_config().line_text
    return {str(item["id"]): item["value"]["text"] for item in result if item["from_name"] == name}


def _screenshot(page: Page, tmp_path: Path, name: str = "labeling.png") -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.shape == (1000, 1400) and pixels.std() > 20, "the screenshot is blank"
    shown = os.environ.get("TEST_SCREENSHOTS_DIR")
    if shown:
        Path(shown).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(shown) / name)
    return path


def _open_task(loop: Loop, browser: Browser, summary: Any, email: str) -> tuple[Page, int, list[str]]:
    """A new annotator logged in, the only task of the project open on the labeling screen; its page, the task's
    Label Studio id and the page's JavaScript errors."""
    assert summary.created == 1 and summary.ls_project_id is not None
    (task,) = loop.tasks()
    assert task.ls_task_id is not None
    ls = loop.label_studio
    with ls.client() as admin:
        SimulatedAnnotator.sign_up(admin, email, password=PASSWORD).close()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _log_in(page, ls.url, email)
    page.goto(f"{ls.url}/projects/{summary.ls_project_id}/data?task={task.ls_task_id}")
    # The data manager renders the labeling screen once more after it loads: wait until it is settled.
    page.wait_for_load_state("networkidle")
    return page, task.ls_task_id, errors


def _submit(page: Page, loop: Loop, task_id: int, tmp_path: Path, name: str = "labeling.png") -> list[dict[str, Any]]:
    """Screenshot the screen as the annotator leaves it (checked not blank), submit, and wait for the answer."""
    _screenshot(page, tmp_path, name)
    page.get_by_role("button", name="Submit").click()
    return _submitted(loop, task_id)


def _submitted(loop: Loop, task_id: int) -> list[dict[str, Any]]:
    with loop.label_studio.client() as admin:
        return wait_until(
            lambda: [a for a in admin.task(task_id)["annotations"] if not a.get("was_cancelled")],
            timeout_s=30,
            what="the annotator's submission reaching Label Studio",
        )


def _newest(loop: Loop) -> Annotation:
    with loop.session() as session:
        newest = session.scalars(select(Annotation).order_by(Annotation.revision.desc(), Annotation.id.desc())).first()
        assert newest is not None
        session.expunge(newest)
        return newest


# The screen and the sync flow are the same on either database; tests/flows/test_sync.py runs the flow on both.
# A routed page's lines come as outlines (polygons) since the endpoint logs them, as boxes for requests logged before.
@pytest.mark.parametrize("loop", ["sqlite"], indirect=True)
@pytest.mark.parametrize("shape", ["outline", "box"])
def test_an_annotator_corrects_a_whole_line_beside_the_image_and_sync_stores_it(
    loop: Loop, browser: Browser, tmp_path: Path, shape: str
) -> None:
    outlines = OUTLINES if shape == "outline" else None
    valid_image(loop, _page_image(), confidence=0.1, text="\n".join(LINES), line_boxes=BOXES, line_outlines=outlines)
    summary = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    page, task_id, errors = _open_task(loop, browser, summary, f"ui-{uuid.uuid4().hex[:8]}@inkloop.local")
    try:
        fields = page.locator(LINE_FIELD)
        expect(fields).to_have_count(len(LINES), timeout=60_000)

        # Every line's whole text is there at once, each in its own box, with no region selected.
        for i, line in enumerate(LINES):
            expect(fields.nth(i)).to_have_value(line)
            expect(fields.nth(i)).to_be_editable()
            width, shown_width, height, shown_height = fields.nth(i).evaluate(SIZES)
            assert (width, height) == (shown_width, shown_height), f"line {i + 1} is cut: {width}x{height} of text"
        assert page.locator(SELECTED_REGION).count() == 0
        # ... and only there: the paragraph box under the image is empty, for retyping the whole paragraph.
        expect(page.locator(PARAGRAPH_INPUT)).to_have_value("")
        expect(page.locator(PARAGRAPH_TEXT)).to_have_count(0)

        # The annotator corrects line 1 in place: click into it, select all, type the line anew.
        fields.first.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(CORRECTED)
        assert fields.first.input_value() == CORRECTED
        assert page.locator(SELECTED_REGION).count() == 1  # clicking into a line's text selects its box
        assert [fields.nth(i).input_value() for i in (1, 2)] == LINES[1:]
        submitted = _submit(page, loop, task_id, tmp_path, f"labeling-{shape}.png")
    finally:
        page.close()
    assert not errors, errors

    (answer,) = submitted
    assert _line_texts(answer["result"]) == {"line-1": [CORRECTED], "line-2": [LINES[1]], "line-3": [LINES[2]]}
    # The lines were drawn and came back in their shape: polygons with the logged points, or boxes.
    kind = "polygonlabels" if shape == "outline" else "rectanglelabels"
    assert sorted(r["id"] for r in answer["result"] if r["type"] == kind) == ["line-1", "line-2", "line-3"]
    # One truth on the completed task: the corrected lines, and no paragraph beside them.
    assert set(answer_texts(answer["result"])) == {label_config().line_text}

    assert sync().new_annotations == 1
    newest = _newest(loop)
    assert newest.lines is not None
    assert [line["text"] for line in newest.lines] == [CORRECTED, *LINES[1:]]
    assert newest.text == "\n".join([CORRECTED, *LINES[1:]])
    assert newest.label_source is LabelSource.lines
    if outlines is not None:  # the label keeps each line's outline, as the screen had it
        for line, outline in zip(newest.lines, outlines, strict=True):
            np.testing.assert_allclose(line["outline"], outline, atol=0.01)
    else:
        assert not any("outline" in line for line in newest.lines)


@pytest.mark.parametrize("loop", ["sqlite"], indirect=True)
def test_a_page_read_without_line_texts_is_corrected_in_its_paragraph_box(
    loop: Loop, browser: Browser, tmp_path: Path
) -> None:
    # The model read the three lines as one (no line boxes logged): the segmenter's three boxes cannot be paired
    # with its one line of text, so the screen shows the boxes without text and the reading in the paragraph box.
    reading = " ".join(LINES)
    valid_image(loop, _page_image(), confidence=0.1, text=reading)
    summary = route(RouteParams(budget=10, threshold=0.8, audit_rate=0.0))
    page, task_id, errors = _open_task(loop, browser, summary, f"ui-p-{uuid.uuid4().hex[:8]}@inkloop.local")
    try:
        shown = page.locator(PARAGRAPH_TEXT)
        expect(shown).to_have_count(1, timeout=60_000)
        expect(shown).to_have_text(reading)
        expect(page.locator(PARAGRAPH_INPUT)).to_have_count(0)  # the one paragraph allowed is there
        assert [page.locator(LINE_FIELD).nth(i).input_value() for i in range(page.locator(LINE_FIELD).count())] == [
            ""
        ] * page.locator(LINE_FIELD).count()

        # The annotator edits the paragraph in place: one line of handwriting per line.
        page.locator("[data-testid=textarea-regions] [data-testid=htx-textbox-edit-button]").click()
        box = page.locator("[data-testid=htx-textbox-input]")
        box.click()
        page.keyboard.press("Control+A")
        for i, line in enumerate(LINES):
            if i:
                page.keyboard.press("Enter")  # a new line (Shift+Enter would save)
            page.keyboard.type(line)
        page.locator("[data-testid=htx-textbox-save]").click()
        expect(shown).to_have_count(1)
        submitted = _submit(page, loop, task_id, tmp_path, "labeling-paragraph.png")
    finally:
        page.close()
    assert not errors, errors

    (answer,) = submitted
    assert answer_texts(answer["result"]) == {label_config().paragraph: ["\n".join(LINES)]}

    assert sync().new_annotations == 1
    newest = _newest(loop)
    assert newest.text == "\n".join(LINES) and newest.label_source is LabelSource.paragraph
