"""Real pages in, on SQLite and PostgreSQL: PAGE XML and ALTO imported from the command line with their images, a
second import creating nothing, each bad file one clear error that leaves nothing behind, an import killed half-way
and rerun ending as an uninterrupted one, imported pages in dataset versions, and export round-tripping."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from cli.app import app
from db.models import AnnotationTask, DatasetMember, DatasetVersion, GroundTruthLine, GroundTruthPage
from db.models import Image as ImageRow
from inkloop.domain import ImageStatus
from inkloop.groundtruth import parse
from inkloop.store import ImageStore
from tests.support.kill import kill_at_marker
from tests.support.paths import INKLOOP
from tests.support.real_pages import HOOKER, STANFORD, copy_pages

runner = CliRunner()


@pytest.fixture
def home(inkloop_home: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    return inkloop_home


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def pages_in(url: str) -> dict[str, dict[str, Any]]:
    """Every imported page with its lines, as plain data (for comparing two databases)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            pages = connection.execute(select(GroundTruthPage)).mappings().all()
            lines = connection.execute(select(GroundTruthLine).order_by(GroundTruthLine.position)).mappings().all()
    finally:
        engine.dispose()
    result: dict[str, dict[str, Any]] = {}
    by_id = {}
    for page in pages:
        record = {k: page[k] for k in ("collection", "image_sha256", "xml_sha256", "licence", "document", "line_count")}
        record["lines"] = []
        result[f"{page['collection']}/{page['name']}"] = by_id[page["id"]] = record
    for line in lines:
        by_id[line["page_id"]]["lines"].append(
            (line["position"], line["text"], line["polygon"], line["baseline"], line["line_type"])
        )
    return result


def test_both_sets_import_with_licences_and_a_second_import_creates_nothing(
    home: Path, migrated_url: str, tmp_path: Path
) -> None:
    stanford = copy_pages(STANFORD, tmp_path / "stanford-memorials", 3)
    copy_pages(HOOKER, tmp_path / "hooker", 3)
    done = invoke(
        "datasets", "import", str(tmp_path / "stanford-memorials"), "--format", "alto",
        "--line-types", "Handwritten", "--document-pattern", r"Lettre(\d+)",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "imported stanford-memorials: 3 pages new, 0 updated, 0 unchanged, 0 failed, of 3 files" in done.output
    assert "licence: CC-BY-4.0" in done.output
    assert "type DefaultLine:Typewritten" in done.output  # left out, counted by type
    done = invoke(
        "datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0",
        "--attribution", "Joseph Hooker Correspondence Project, RBG Kew",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "imported hooker: 3 pages new" in done.output
    stored = pages_in(migrated_url)
    assert len(stored) == 6
    assert stored[f"stanford-memorials/{stanford[0].name}"]["document"] == "42"
    handwritten_lines = 0
    for xml in stanford:
        page = stored[f"stanford-memorials/{xml.name}"]
        assert page["licence"] == "CC-BY-4.0"
        truth = parse(xml.read_bytes(), file=xml.name)
        handwritten = [line for line in truth.lines if "Handwritten" in (line.line_type or "")]
        assert [line[1] for line in page["lines"]] == [line.text for line in handwritten]
        assert [line[2] for line in page["lines"]] == [[list(p) for p in line.polygon] for line in handwritten]
        assert [line[3] for line in page["lines"]] == [[list(p) for p in line.baseline] for line in handwritten]
        assert all(line[4].endswith(":Handwritten") for line in page["lines"])
        handwritten_lines += len(handwritten)
    assert handwritten_lines >= 20
    # The images are in the store, validated, with the size the XML gives.
    store = ImageStore(str(home / "store"))
    engine = create_engine(migrated_url)
    try:
        with engine.connect() as connection:
            images = connection.execute(select(ImageRow)).mappings().all()
    finally:
        engine.dispose()
    assert len(images) == 6
    assert all(store.exists(row["sha256"]) and row["status"] == ImageStatus.valid for row in images)
    assert all(row["phash"] for row in images)
    # A second import of the same files writes nothing.
    again = invoke("datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0")
    assert again.exit_code == 0, again.output
    assert "0 pages new, 0 updated, 3 unchanged" in again.output
    assert pages_in(migrated_url) == stored
    listed = invoke("datasets", "collections")
    assert "hooker: 3 pages" in listed.output and "licence CC-BY-SA-4.0" in listed.output
    assert "stanford-memorials: 3 pages" in listed.output


def test_each_bad_file_is_one_error_naming_it_and_leaves_nothing(home: Path, migrated_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    good, malformed, missing, mismatched, outside = copy_pages(HOOKER, folder, 5)
    malformed.write_bytes(malformed.read_bytes()[:-200])
    missing.with_suffix(".jpg").unlink()
    with Image.open(mismatched.with_suffix(".jpg")) as image:
        image.resize((image.width // 2, image.height // 2)).save(mismatched.with_suffix(".jpg"))
    text = outside.read_text(encoding="utf-8")
    start = text.index("<Coords", text.index("<TextLine"))
    end = text.index("/>", start)
    outside.write_text(text[:start] + '<Coords points="9000,9000 9100,9000 9100,9100"' + text[end:], encoding="utf-8")
    store_before = set(ImageStore(str(home / "store")).keys()) if (home / "store").exists() else set()
    done = invoke("datasets", "import", str(folder), "--licence", "CC-BY-SA-4.0")
    assert done.exit_code == 1, done.output
    assert "1 pages new, 0 updated, 0 unchanged, 4 failed, of 5 files" in done.output
    assert f"error: {malformed.name}: is not well-formed XML" in done.output
    assert f"error: {missing.name}: Page: its image {missing.stem}.jpg is not beside it" in done.output
    assert f"error: {mismatched.name}: Page: its image {mismatched.stem}.jpg is " in done.output
    assert "but the XML describes" in done.output
    assert f"error: {outside.name}: TextLine " in done.output and "lies wholly outside the" in done.output
    stored = pages_in(migrated_url)
    assert list(stored) == [f"batch/{good.name}"]
    # Nothing of the bad files reached the store: only the good page's image is new.
    assert set(ImageStore(str(home / "store")).keys()) - store_before == {stored[f"batch/{good.name}"]["image_sha256"]}
    # --skip-bad-lines imports the page whose one line is off it, without that line.
    skipped = invoke("datasets", "import", str(folder), "--licence", "CC-BY-SA-4.0", "--skip-bad-lines")
    assert "1 pages new" in skipped.output and "1 unreadable" in skipped.output


def test_a_flow_run_imports_too(home: Path, migrated_url: str, tmp_path: Path) -> None:
    copy_pages(STANFORD, tmp_path / "letters", 2, first=5)
    done = subprocess.run(
        [INKLOOP, "flow", "run", "import-pages", "--param", f"path={tmp_path / 'letters'}", "--no-server"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"created +2\n", done.stdout), done.stdout
    stored = pages_in(migrated_url)
    assert len(stored) == 2 and {p["licence"] for p in stored.values()} == {"CC-BY-4.0"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_killed_half_way_then_rerun_ends_as_an_uninterrupted_one(
    home: Path, migrated_url: str, tmp_path: Path, second_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "hooker"
    copy_pages(HOOKER, folder, 6)
    marker = tmp_path / "fourth-page-written"
    # The import stops inside its fourth page's transaction (the page and its lines written, not committed); it is
    # killed there.
    script = textwrap.dedent(
        f"""
        import pathlib, sys, time
        from db import repo
        import flows.groundtruth as gt
        save, calls = repo.save_gt_page, []
        def save_and_hang(**kwargs):
            result = save(**kwargs)
            calls.append(1)
            if len(calls) == 4:
                pathlib.Path({str(marker)!r}).write_text("x")
                time.sleep(120)
            return result
        gt.repo.save_gt_page = save_and_hang
        from cli.app import app
        sys.argv = ["inkloop", "datasets", "import", {str(folder)!r}, "--licence", "CC-BY-SA-4.0"]
        app()
        """
    )
    kill_at_marker(script, marker, what="its fourth page")
    assert len(pages_in(migrated_url)) == 3  # three committed; the fourth's transaction died with the process
    rerun = invoke("datasets", "import", str(folder), "--licence", "CC-BY-SA-4.0")
    assert rerun.exit_code == 0, rerun.output
    assert "3 pages new, 0 updated, 3 unchanged" in rerun.output
    # The same as an import that was never interrupted, into another database.
    monkeypatch.setenv("INKLOOP_DATABASE_URL", second_url)
    clean = invoke("datasets", "import", str(folder), "--licence", "CC-BY-SA-4.0")
    assert clean.exit_code == 0, clean.output
    assert pages_in(migrated_url) == pages_in(second_url)


@pytest.fixture
def second_url(tmp_path: Path) -> str:
    """A second migrated SQLite database, for an import to compare with."""
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'clean.db'}"
    upgrade(url)
    return url


def _members(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(DatasetMember)).mappings()]
    finally:
        engine.dispose()


def test_imported_pages_join_dataset_versions_and_export_round_trips(
    home: Path, migrated_url: str, tmp_path: Path
) -> None:
    copy_pages(STANFORD, tmp_path / "stanford-memorials", 3, first=1)  # three pages in handwriting
    copy_pages(HOOKER, tmp_path / "hooker", 3)
    assert (
        invoke("datasets", "import", str(tmp_path / "stanford-memorials"), "--line-types", "Handwritten").exit_code == 0
    )
    assert invoke("datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0").exit_code == 0
    built = invoke("datasets", "build")
    assert built.exit_code == 0, built.output
    assert "built dataset version ds-0001" in built.output
    members = _members(migrated_url)
    assert len(members) == 6 and all(m["gt_page_id"] for m in members), built.output
    assert all(m["source"] == "imported" for m in members)
    line = members[0]["lines"][0]
    assert set(line) >= {"text", "box", "polygon", "baseline", "type"}
    assert members[0]["text"] == "\n".join(line["text"] for line in members[0]["lines"])
    engine = create_engine(migrated_url)
    try:
        with engine.connect() as connection:
            details = connection.execute(select(DatasetVersion.details)).scalar_one()
    finally:
        engine.dispose()
    assert details["imported"]["licences"] == {"CC-BY-4.0": 3, "CC-BY-SA-4.0": 3}
    assert "Memorials for Jane Lathrop Stanford" in details["imported"]["attributions"]["stanford-memorials"]
    before = {p["image_sha256"]: [line[1:] for line in p["lines"] if line[1]] for p in pages_in(migrated_url).values()}
    for fmt in ("page", "alto"):
        out = tmp_path / f"export-{fmt}"
        done = invoke("datasets", "export", "ds-0001", "--format", fmt, "--out", str(out))
        assert done.exit_code == 0, done.output
        assert "exported 6 pages" in done.output and "licences: 3 CC-BY-SA-4.0, 3 CC-BY-4.0" in done.output
        assert len(list(out.glob("*.xml"))) == 6
        credits = (out / "LICENCES.md").read_text(encoding="utf-8")
        assert "3 pages: CC-BY-4.0" in credits and "3 pages: CC-BY-SA-4.0" in credits
        assert "Memorials for Jane Lathrop Stanford" in credits
        again = invoke("datasets", "import", str(out), "--collection", f"again-{fmt}", "--format", fmt)
        assert again.exit_code == 0, again.output
        after = {
            p["image_sha256"]: [line[1:] for line in p["lines"]]
            for p in pages_in(migrated_url).values()
            if p["collection"] == f"again-{fmt}"
        }
        assert after == before
    refused = invoke("datasets", "export", "ds-0001", "--format", "page", "--out", str(tmp_path / "export-page"))
    assert refused.exit_code == 1 and "exists and is not an empty folder" in refused.output


@pytest.mark.slow
def test_a_model_trained_on_imported_pages_lists_their_licences(home: Path, migrated_url: str, tmp_path: Path) -> None:
    from inkloop.labels import read_records
    from model.data import load_lines, read_pages
    from model.train import train
    from tests.support.training import tiny_config

    copy_pages(STANFORD, tmp_path / "stanford-memorials", 2, first=1)
    copy_pages(HOOKER, tmp_path / "hooker", 2)
    assert (
        invoke("datasets", "import", str(tmp_path / "stanford-memorials"), "--line-types", "Handwritten").exit_code == 0
    )
    assert invoke("datasets", "import", str(tmp_path / "hooker"), "--licence", "CC-BY-SA-4.0").exit_code == 0
    assert invoke("datasets", "build", "--val-share", "0", "--test-share", "0").exit_code == 0
    out = tmp_path / "folder"
    assert invoke("datasets", "export", "ds-0001", "--out", str(out)).exit_code == 0
    records = read_records(out)
    assert len(records) == 4 and all(line.get("polygon") for r in records for line in r["lines"])
    # Training cuts every transcribed line along its polygon (the segmenter would have to agree with the line
    # count, which on these letters it does not: 1 of these 4 pages).
    pages = read_pages(out)
    assert all(page.outlines for page in pages)
    lines = load_lines(pages, 32, 1024)
    assert len(lines) == sum(len(r["lines"]) for r in records)
    # The shipped model read on these ground-truth lines: the line-level CER with its interval.
    read = invoke("evaluate", "--data", str(out), "--lines", "--json")
    assert read.exit_code == 0, read.output
    report = json.loads(read.output)
    assert (report["pages"], report["lines"]) == (4, len(lines))
    assert 0 < report["interval"][0] <= report["cer"] <= report["interval"][1]
    result = train([out], [], tmp_path / "run", tiny_config(max_steps=2, val_fraction=0.5), grow_charset=True)
    data = result.card.training_data
    assert data is not None and data.licences == {"CC-BY-4.0": 2, "CC-BY-SA-4.0": 2}
    assert "Memorials for Jane Lathrop Stanford" in data.attributions["stanford-memorials"]
    shown = invoke("datasets", "show", "ds-0001")
    assert "licences" in shown.output and "2 imported pages CC-BY-SA-4.0" in shown.output


def test_a_review_with_label_studio_down_is_one_line_and_queues_nothing(
    home: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens there
    done = invoke("datasets", "review", "hooker")
    assert done.exit_code == 1
    assert "Label Studio at http://127.0.0.1:9 is not reachable" in done.output
    assert "review cannot run without it; start it: inkloop labelstudio up" in done.output
    engine = create_engine(migrated_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(AnnotationTask)).scalar_one() == 0
    finally:
        engine.dispose()
