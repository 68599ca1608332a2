"""The Great Expectations suite on real images and real GE: each kind of bad image is quarantined with its
reason, a broken batch is refused whole, and the Data Docs site accumulates runs a person can open."""

from __future__ import annotations

import hashlib
import html
import io
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

import serving.uploads
from inkloop.errors import InkloopError
from inkloop.images import FORMATS
from monitoring.features import compute_features
from monitoring.validation import (
    REQUIRED_COLUMNS,
    BatchRefusedError,
    BatchValidation,
    build_checks,
    validate_batch,
    write_data_docs,
)
from monitoring.validation.result import translate
from monitoring.validation.suite import INK_RATIO_MIN
from tests.support.paths import GOLDEN

MAX_BYTES = 20_000_000
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _text(page: str) -> str:
    """What a page says: its HTML without tags, entities resolved, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _row(data: bytes, request_id: str, confidence: float = 0.9) -> dict[str, Any]:
    """One row as the ingest flow builds it: the image's features and its request's fields."""
    return compute_features(data).as_dict() | {
        "request_id": request_id,
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "source": "production",
        "confidence": confidence,
    }


def _blank_photo() -> bytes:
    rng = np.random.default_rng(0)
    paper = 215 + rng.normal(0, 8, size=(700, 900))  # grey paper and heavy sensor noise, nothing written
    return _png(Image.fromarray(paper.clip(0, 255).astype(np.uint8)))


@pytest.fixture(scope="module")
def goldens() -> list[bytes]:
    return [path.read_bytes() for path in sorted(GOLDEN.glob("*.png"))]


@pytest.fixture(scope="module")
def batch(goldens: list[bytes]) -> tuple[pd.DataFrame, dict[str, str]]:
    """A good page, a blank one, a corrupt file, a tiny image, a confidence of 1.5, a truncated page."""
    tiny = _png(Image.open(io.BytesIO(goldens[0])).convert("L").resize((24, 20)))
    half = goldens[3][: len(goldens[3]) // 2]
    images = {
        "good": (goldens[0], 0.97),
        "blank": (_blank_photo(), 0.2),
        "corrupt": (b"\x89PNG\r\n\x1a\n" + bytes(200), 0.5),
        "tiny": (tiny, 0.4),
        "overconfident": (goldens[1], 1.5),
        "truncated": (half, 0.6),
    }
    rows = [_row(data, f"req-{name}", confidence) for name, (data, confidence) in images.items()]
    shas = {name: hashlib.sha256(data).hexdigest() for name, (data, _) in images.items()}
    return pd.DataFrame.from_records(rows), shas


def test_each_bad_image_is_quarantined_with_its_reason(batch: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, shas = batch
    validation = validate_batch(frame, max_bytes=MAX_BYTES, run_name="mixed")
    assert validation.reasons_for(shas["good"]) == ()
    assert validation.reasons_for(shas["blank"]) == ("blank",)
    assert validation.reasons_for(shas["corrupt"]) == ("not_decodable",)
    assert "too_small" in validation.reasons_for(shas["tiny"])
    assert validation.reasons_for(shas["overconfident"]) == ("confidence_out_of_range",)
    assert validation.reasons_for(shas["truncated"]) == ("not_decodable",)
    assert not validation.success and not validation.refused and validation.table_failures == ()
    assert validation.row_count == 6 and validation.run_name == "mixed" and validation.seconds > 0
    counts = validation.counts()
    assert counts["decodable"] == 2 and counts["confidence_in_range"] == 1 and counts["width_min"] == 1
    assert counts["image_sha256_unique"] == 0 and counts["request_id_present"] == 0
    assert validation.reason_counts()["not_decodable"] == 2
    levels = {outcome.name: outcome.level for outcome in validation.outcomes}
    assert levels["image_sha256_unique"] == "table" and levels["ink_ratio_min"] == "row"


def test_a_page_over_the_byte_limit_is_quarantined(goldens: list[bytes]) -> None:
    rows = [_row(data, f"req-{i}") for i, data in enumerate(goldens)]
    smallest = min(len(data) for data in goldens)
    validation = validate_batch(pd.DataFrame.from_records(rows), max_bytes=smallest)
    too_big = {hashlib.sha256(d).hexdigest() for d in goldens if len(d) > smallest}
    assert set(validation.reasons) == too_big
    assert all(reasons == ("too_many_bytes",) for reasons in validation.reasons.values())


def test_ten_good_pages_pass(goldens: list[bytes]) -> None:
    rows = []
    for index in range(10):
        page = Image.open(io.BytesIO(goldens[index % len(goldens)])).convert("L")
        # Each a different image (a different sha256), as a real batch is.
        page = page.resize((page.width - index, page.height - index))
        rows.append(_row(_png(page), f"req-{index}", confidence=index / 10))
    validation = validate_batch(pd.DataFrame.from_records(rows), max_bytes=MAX_BYTES)
    assert validation.success and validation.reasons == {} and validation.row_count == 10
    assert all(count == 0 for count in validation.counts().values())
    assert min(row["ink_ratio"] for row in rows) > INK_RATIO_MIN


def test_a_short_one_line_page_is_not_too_small() -> None:
    """A single line of handwriting can be a whole page 40 rows tall; the recognizer reads it (MIN_SIDE)."""
    page = Image.new("L", (900, 40), 235)
    ImageDraw.Draw(page).text((12, 8), "Turn left at the white gate, cross two fields.", fill=30, font_size=22)
    validation = validate_batch(pd.DataFrame.from_records([_row(_png(page), "req-line")]), max_bytes=MAX_BYTES)
    assert "too_small" not in validation.reasons_for(hashlib.sha256(_png(page)).hexdigest())


def test_an_empty_batch_passes() -> None:
    for frame in (pd.DataFrame(), pd.DataFrame(columns=list(REQUIRED_COLUMNS))):
        validation = validate_batch(frame, max_bytes=MAX_BYTES)
        assert validation.success and validation.row_count == 0 and validation.reasons == {}


def test_a_duplicate_image_refuses_the_whole_batch(batch: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, shas = batch
    doubled = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    doubled.loc[len(doubled) - 1, "request_id"] = "req-again"
    with pytest.raises(BatchRefusedError, match="duplicate_image_sha256: 2 of 7 rows") as refused:
        validate_batch(doubled, max_bytes=MAX_BYTES)
    assert shas["good"] in str(refused.value)
    validation = refused.value.validation
    assert isinstance(validation, BatchValidation) and validation.refused
    assert [outcome.name for outcome in validation.table_failures] == ["image_sha256_unique"]
    assert validation.table_failure_ids["image_sha256_unique"] == (shas["good"], shas["good"])


def test_a_missing_request_id_refuses_the_whole_batch(batch: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _ = batch
    broken = frame.copy()
    broken.loc[2, "request_id"] = None
    with pytest.raises(BatchRefusedError, match="missing_request_id: 1 of 6 rows"):
        validate_batch(broken, max_bytes=MAX_BYTES)


def test_a_missing_column_is_named(batch: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _ = batch
    with pytest.raises(BatchRefusedError, match=r"lacks columns \['ink_ratio'\]"):
        validate_batch(frame.drop(columns=["ink_ratio"]), max_bytes=MAX_BYTES)


def test_the_allowed_formats_are_the_ones_serving_accepts() -> None:
    (check,) = [c for c in build_checks(max_bytes=MAX_BYTES) if c.name == "format_allowed"]
    assert set(check.expectation.value_set) == FORMATS  # type: ignore[attr-defined]
    assert serving.uploads.FORMATS is FORMATS


def test_an_unexpected_result_shape_fails_in_one_place() -> None:
    started = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with pytest.raises(InkloopError, match="no 'results' in the result"):
        translate({"success": True}, run_name="x", started_at=started, seconds=0.0, row_count=0)
    item = {"success": False, "expectation_config": {"type": "t", "kwargs": {}, "meta": {}}, "result": {}}
    with pytest.raises(InkloopError, match="no 'inkloop' in results\\[0\\]"):
        translate({"success": False, "results": [item]}, run_name="x", started_at=started, seconds=0, row_count=1)


def test_data_docs_accumulate_runs_and_name_the_expectations(
    batch: tuple[pd.DataFrame, dict[str, str]], tmp_path: Path
) -> None:
    frame, shas = batch
    folder = tmp_path / "reports" / "data_docs"
    first = validate_batch(frame, max_bytes=MAX_BYTES, run_name="run-one")
    second = validate_batch(frame.iloc[:2], max_bytes=MAX_BYTES, run_name="run-two")
    assert write_data_docs(first, folder) == folder / "index.html"
    index = write_data_docs(second, folder)
    write_data_docs(second, folder)  # writing a run again adds nothing
    with pytest.raises(BatchRefusedError) as refused:
        validate_batch(pd.concat([frame, frame], ignore_index=True), max_bytes=MAX_BYTES, run_name="run-refused")
    assert refused.value.validation is not None
    write_data_docs(refused.value.validation, folder)  # a refused batch still gets its page

    text = index.read_text()
    for name in ("run-one", "run-two", "run-refused", "refused: duplicate_image_sha256", "not_decodable 2"):
        assert name in text
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 3
    pages = sorted(folder.glob("validations/**/*.html"))
    assert len(pages) == 3
    page = _text(next(p for p in pages if "run-one" in str(p)).read_text())
    for expected in ("inkloop_ingest", "ink_ratio", "values must be greater than or equal to 0.004", shas["blank"]):
        assert expected in page
    suite_page = _text((folder / "expectations" / "inkloop_ingest.html").read_text())
    assert "quarantined as" in suite_page and "refuses the whole batch" in suite_page


@pytest.mark.browser
def test_data_docs_render_in_a_browser(batch: tuple[pd.DataFrame, dict[str, str]], tmp_path: Path) -> None:
    """Offline (no CDN for GE's table scripts) the index still lists the runs, and each run's page shows the
    expectations that failed."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make browser`"
    frame, _ = batch
    index = write_data_docs(validate_batch(frame, max_bytes=MAX_BYTES, run_name="browser-run"), tmp_path / "docs")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            # As offline as the machines this runs on: GE's CDN scripts and styles never arrive.
            page.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
            )
            page.goto(index.as_uri(), wait_until="domcontentloaded")
            runs = page.locator("#inkloop-runs")
            assert "browser-run" in runs.inner_text() and "rows quarantined" in runs.inner_text()
            runs.get_by_role("link", name="browser-run").click()
            page.wait_for_load_state("domcontentloaded")
            body = page.inner_text("body")
            assert "browser-run" in body and "Failed" in body and "ink_ratio" in body
        finally:
            browser.close()
