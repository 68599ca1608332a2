"""An imported page under review in headless Chromium (Debian's package, `make browser`) against the session's real
Label Studio: `inkloop datasets review` sends a real Hooker page; the labeling screen draws its line outlines on the
image and lists every line's text, pre-filled, in the Regions panel; the annotator corrects one line there and
submits; sync gives the corrected text to the stored line of the page, and the other lines stay as they were.

The screenshot with the correction typed in is kept under the test's folder (and copied to TEST_SCREENSHOTS_DIR
when that is set), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from typer.testing import CliRunner

from annotation.labeling import label_config
from cli.app import app
from db.models import GroundTruthLine, GroundTruthPage
from devtools.annotators import SimulatedAnnotator
from flows.sync import sync
from inkloop.wait import wait_until
from tests.support.loop import Loop
from tests.support.real_pages import HOOKER, copy_pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = 34  # JDH_2_16_168_003: four transcribed lines and one drawn without text
SHOWN = ["With best love to Harriet &", "Frances", "Ever affectionately your", "Jos D Hooker"]
CORRECTED = "Frances Hooker"
PASSWORD = "review-ui-pass-123"
OUTLINE_RGB = (0x2C, 0xA0, 0x2C)  # the outline label's colour in annotation/label_config.xml
# The per-region text boxes Label Studio draws in its Regions panel (displayMode="region-list", rows above 1).
LINE_FIELD = "[data-testid=textarea-region-textarea]"
runner = CliRunner()


def invoke(*args: str) -> None:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _outline_pixels(path: Path) -> int:
    """Pixels of the screenshot in the outlines' colour (Label Studio strokes a region in its label's colour)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(OUTLINE_RGB)).sum(axis=2) < 40).sum())


def _screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    shown = os.environ.get("TEST_SCREENSHOTS_DIR")
    if shown:
        Path(shown).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(shown) / name)
    return path


@pytest.mark.parametrize("loop", ["sqlite"], indirect=True)
def test_a_reviewer_sees_the_outlines_and_corrects_a_line_that_reaches_the_page(
    loop: Loop, browser: Browser, tmp_path: Path
) -> None:
    copy_pages(HOOKER, tmp_path / "hooker", 1, first=PAGE)
    invoke("datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0")
    invoke("datasets", "review", "hooker")
    ((task,),) = [loop.tasks()]
    assert task.ls_project_id is not None and task.ls_task_id is not None
    ls = loop.label_studio
    email = f"review-{uuid.uuid4().hex[:8]}@inkloop.local"
    with ls.client() as admin:
        SimulatedAnnotator.sign_up(admin, email, password=PASSWORD).close()

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{ls.url}/user/login/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda current: "/user/login" not in current, timeout=30_000)
        page.goto(f"{ls.url}/projects/{task.ls_project_id}/data?task={task.ls_task_id}")
        page.wait_for_load_state("networkidle")

        # Every transcribed line is there, pre-filled in its own box in the Regions panel ...
        fields = page.locator(LINE_FIELD)
        expect(fields).to_have_count(len(SHOWN), timeout=60_000)
        for i, text in enumerate(SHOWN):
            expect(fields.nth(i)).to_have_value(text)
        # ... as an outline region, drawn on the image in the outline label's colour.
        expect(page.get_by_text("Line outline", exact=True)).not_to_have_count(0)
        before = _screenshot(page, tmp_path, "review-outlines.png")
        assert _outline_pixels(before) > 500, "no line outline is drawn on the page image"

        fields.nth(1).click()
        page.keyboard.press("Control+A")
        page.keyboard.type(CORRECTED)
        assert fields.nth(1).input_value() == CORRECTED
        _screenshot(page, tmp_path, "review-corrected.png")
        page.get_by_role("button", name="Submit").click()
        with ls.client() as admin:
            (answer,) = wait_until(
                lambda: admin.task(task.ls_task_id or 0)["annotations"],
                timeout_s=30,
                what="the reviewer's submission reaching Label Studio",
            )
    finally:
        page.close()
    assert not errors, errors
    # The screen sends each outline back with its text (the same region).
    config = label_config()
    assert sum(1 for item in answer["result"] if item["from_name"] == config.outlines) == len(SHOWN)

    summary = sync()
    assert (summary.new_annotations, summary.pages_corrected) == (1, 1)
    with loop.session() as session:
        stored = session.scalar(select(GroundTruthPage))
        assert stored is not None
        texts = [line.text for line in session.scalars(select(GroundTruthLine).order_by(GroundTruthLine.position))]
        assert stored.corrected_by == email
    assert texts == ["", SHOWN[0], CORRECTED, *SHOWN[2:]]  # the one corrected, the rest as imported
