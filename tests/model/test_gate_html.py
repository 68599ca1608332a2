"""The gate report page, from a hand-built failed gate run: the verdict and what failed come first, every text is
escaped, the chart has one bar pair per slice that has pages, and the page renders in headless Chromium.

The browser test's screenshot is kept under the test's folder (and copied to TEST_SCREENSHOTS_DIR when that is
set), for a person to look at.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from model.gate_html import render
from model.gates import Check, GateConfig, GateResult, SliceResult, WorsePage
from tests.support.pages import draw_page

TRUTH = "the cat sat\non the mat"
SCRIPT = "<script>alert('x')</script>"


def _slice(name: str, pages: int, champion: float, candidate: float, low: float, high: float, **kw) -> SliceResult:
    return SliceResult(
        name=name,
        pages=pages,
        characters=pages * 40,
        champion_cer=champion,
        candidate_cer=candidate,
        delta=round(candidate - champion, 5),
        low=low,
        high=high,
        decisive=pages >= 20,
        **kw,
    )


def _result() -> GateResult:
    slices = [
        _slice("test/all", 120, 0.0512, 0.0431, -0.0120, -0.0040, required=True, passed=True),
        _slice(
            "test/reason/audit",
            40,
            0.0300,
            0.0610,
            0.0150,
            0.0480,
            passed=False,
            note="may be worse by up to 0.0480 (> margin 0.005)",
        ),
        _slice("test/reason/low_confidence", 6, 0.1200, 0.1100, -0.0400, 0.0200, passed=True, note="few pages"),
        _slice("golden/all", 24, 0.0430, 0.0425, -0.0030, 0.0020, required=True, passed=True),
        SliceResult(
            name="heldout/all",
            pages=0,
            characters=0,
            champion_cer=None,
            candidate_cer=None,
            delta=None,
            low=None,
            high=None,
            decisive=False,
            required=True,
            passed=False,
            note="configured slice with no pages",
        ),
    ]
    regression = "test/reason/audit: may be worse by up to 0.0480; heldout/all: configured slice with no pages"
    checks = [
        Check(name="memorization", passed=True, summary="loss 0.21 < 0.5 after 180 steps"),
        Check(name="export_parity", passed=True, summary="TorchScript reads the 120 test pages the same"),
        Check(name="regression", passed=False, summary=regression),
        Check(name="calibration", passed=True, summary="ECE 0.031 <= 0.05"),
        Check(name="speed", passed=True, summary="1.04x within the allowed 1.20x"),
    ]
    worse = [
        WorsePage(
            set="test",
            key="page-7",
            truth=TRUTH,
            champion="the cat sat\non the mat",
            candidate=f"the bat sat\non te mat {SCRIPT}",
            champion_cer=0.0,
            candidate_cer=0.9,
        ),
        WorsePage(
            set="golden",
            key="g-1",
            truth="a & b",
            champion="a & b",
            candidate="a b",
            champion_cer=0.0,
            candidate_cer=0.4,
        ),
    ]
    return GateResult(
        candidate="v12",
        champion="v11",
        dataset_version="ds-2024-05-01",
        passed=False,
        checks=checks,
        slices=slices,
        worse=worse,
        config=GateConfig(),
        created_at="2024-05-01T12:00:00+00:00",
        seconds={"memorization": 41.5, "regression": 12.0},
    )


def _images() -> dict[str, bytes]:
    buffer = io.BytesIO()
    draw_page(TRUTH, (360, 60), font_size=16).save(buffer, format="PNG")
    return {"test/page-7": buffer.getvalue()}  # golden/g-1 has no image


def test_the_report_leads_with_the_verdict_and_the_failed_check() -> None:
    page = render(_result(), _images())
    assert 'class="verdict fail">REJECTED<' in page
    failures = page.split('<div class="failures">')[1].split("</div>")[0]
    assert page.index(failures) < page.index("<h2>Checks</h2>")
    assert "<b>regression</b>" in failures and "heldout/all" in failures and "memorization" not in failures
    assert page.count('class="badge pass"') >= 4  # the four checks that passed, at least


def test_a_passed_run_says_so_and_lists_no_failures() -> None:
    result = _result()
    result = result.model_copy(
        update={"passed": True, "checks": [c.model_copy(update={"passed": True}) for c in result.checks], "worse": []}
    )
    page = render(result, {})
    assert 'class="verdict pass">PASSED<' in page and "Failed checks" not in page
    assert "No page got worse." in page


def test_failed_slices_are_highlighted_and_the_empty_required_one_is_there() -> None:
    page = render(_result(), _images())
    failed = re.findall(r'<tr class="failed"><td>([^<]+)<', page)
    assert failed == ["test/reason/audit", "heldout/all"]
    assert "+0.0310 [+0.0150, +0.0480]" in page  # ΔCER with its interval, 4 decimals
    assert "reported, not decisive" in page
    assert [m for m in re.findall(r'<tr class="set"><th colspan="8">(\w+)<', page)] == ["test", "golden", "heldout"]


def test_every_text_is_escaped() -> None:
    page = render(_result(), _images())
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a &amp; b" in page
    # The wrong character is marked, the missed one struck out, and the line break kept.
    assert "the <mark>b</mark><del" in page and '<del title="missed">h</del>' in page
    assert "the cat sat\non the mat" in page


def test_the_chart_has_one_bar_pair_per_slice_with_pages() -> None:
    page = render(_result(), _images())
    svg = page[page.index("<svg") : page.index("</svg>")]
    charted = re.findall(r'<g class="pair" data-slice="([^"]+)">', svg)
    assert charted == ["test/all", "test/reason/audit", "test/reason/low_confidence", "golden/all"]
    assert svg.count('<rect class="champion"') == svg.count('<rect class="candidate"') == len(charted)
    assert "margin +0.0050" in svg


def test_worse_pages_show_the_image_or_say_it_is_missing() -> None:
    page = render(_result(), _images())
    assert page.count('src="data:image/png;base64,') == 1
    assert "image not available" in page
    assert "CER 0.9000" in page


@pytest.mark.browser
def test_the_report_renders_in_chromium(browser: Browser, tmp_path: Path) -> None:
    html = tmp_path / "gate.html"
    html.write_text(render(_result(), _images()), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(html.as_uri())
        box = page.locator("svg").bounding_box()
        assert box is not None and box["width"] > 500 and box["height"] > 100
        image = page.locator(".page img").bounding_box()
        assert image is not None and 0 < image["width"] <= 480
        screenshot = tmp_path / "gate_report.png"
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    assert screenshot.stat().st_size > 10_000
    shown = os.environ.get("TEST_SCREENSHOTS_DIR")
    if shown:
        Path(shown).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, Path(shown) / "gate_report.png")


def test_a_slice_too_small_to_decide_shows_no_pass_badge() -> None:
    page = render(_result(), _images())
    rows = re.findall(r"<tr><td>([^<]+)</td>.*?<td>(decisive|reported, not decisive)</td><td>(.*?)</td>", page)
    assert rows, "no slice rows found"
    for name, decisive, badge in rows:
        if decisive == "decisive":
            assert 'class="badge pass"' in badge, name
        else:
            assert 'class="badge info">info<' in badge, name
