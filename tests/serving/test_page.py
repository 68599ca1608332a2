"""The web page in headless Chromium (Debian's package, `make browser`): upload a page, read the answer, flag it.
The screenshot of the answered page is kept under the test's folder and checked to show the text."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser

from tests.support.paths import GOLDEN
from tests.support.servers import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_upload_shows_text_and_confidence_and_flags_reach_the_database(
    live: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    page.goto(live.url)
    assert page.title().startswith("inkloop")
    assert page.locator("#result").is_hidden()

    page.set_input_files("#file", str(GOLDEN / "000004.png"))
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    text = page.locator("#text").inner_text()
    assert len(text.split("\n")) >= 2 and sum(c.isalpha() for c in text) > 20
    assert page.locator("#confidence-badge").inner_text().startswith("confidence ")
    assert page.locator("#model").inner_text().startswith("model ")
    assert page.locator("#lines li").count() == len(text.split("\n"))
    # Each line with its text and its confidence, never rounded up to a certainty the model did not state.
    assert page.locator("#lines li .line-text").all_inner_texts() == text.split("\n")
    shown = page.locator("#lines li .line-confidence").all_inner_texts()
    assert all(re.fullmatch(r"\d{1,3}\.\d%", value) for value in shown), shown
    answer = [r for r in live.rows() if r.text == text][-1]
    expected = [f"{math.floor(c * 1000) / 10:.1f}%" for c in answer.line_confidences or []]
    assert shown == expected
    badge = page.locator("#confidence-badge").inner_text()
    assert badge == f"confidence {math.floor(answer.confidence * 1000) / 10:.1f}%" and badge != "confidence 100.0%"

    screenshot = Path(os.environ.get("TEST_SCREENSHOTS_DIR", tmp_path)) / "answered.png"
    page.screenshot(path=str(screenshot), full_page=True)
    pixels = np.asarray(Image.open(screenshot).convert("L"))
    assert pixels.shape[0] > 600 and pixels.std() > 20, "the screenshot is blank"

    page.fill("#correction", "a corrected paragraph")
    page.click("button[data-flag=incorrect]")
    page.wait_for_function("document.getElementById('feedback-status').textContent.length > 0")
    assert "Thank you" in page.locator("#feedback-status").inner_text()
    flagged = [r for r in live.rows() if r.feedback]
    assert any(
        f.flag.value == "incorrect" and f.correction == "a corrected paragraph" for r in flagged for f in r.feedback
    )
    assert not [m for m in messages if m.startswith(("error", "pageerror"))], messages


def test_a_rejected_upload_shows_the_servers_reason(live: LiveServer, browser: Browser, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are not pixels")
    page = browser.new_page()
    page.goto(live.url)
    page.set_input_files("#file", str(not_an_image))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "not an image" in page.locator("#error").inner_text()
    assert page.locator("#result").is_hidden()
