"""Dataset versions on SQLite and PostgreSQL: frozen membership, stable leak-free splits, guards, identity, a build
killed half-way, export that trains. (Annotations made through Label Studio itself: tests/flows/test_dataset_loop.py.)
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.app import app
from db import repo
from db.models import Annotation, DatasetMember, DatasetVersion
from devtools.pages import Page, handwritten_pages, rephotographed
from devtools.records import labelled
from flows.dataset import DatasetParams, DatasetSummary, GoldenPages, build_version, check_guards
from flows.dataset_export import export_version
from flows.groundtruth import export_version as export_xml
from inkloop.domain import Split, TaskReason, TaskState
from inkloop.errors import DatasetError, EmptyDatasetError, LeakageError, NotFoundError
from inkloop.groundtruth import Format, parse
from inkloop.labels import read_records
from inkloop.phash import NEAR_DUPLICATE_DISTANCE, hamming
from inkloop.store import ImageStore
from model.data import load_lines, read_pages
from model.golden import GOLDEN_DIR
from model.preprocess import page_lines
from monitoring.features import compute_features
from tests.support.kill import kill_at_marker
from tests.support.paths import SHIPPED_VERSION

PROJECT = "inkloop"
SPLITS = DatasetParams(val_share=0.2, test_share=0.3)


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return handwritten_pages(24, seed=11)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "store"))


def _build(session: Session, params: DatasetParams = SPLITS) -> DatasetSummary:
    summary = build_version(session, project=PROJECT, params=params)
    session.commit()
    return summary


def _members(session: Session, version: str) -> dict[str, DatasetMember]:
    row = repo.get_dataset(session=session, version=version)
    return {m.image_sha256: m for m in repo.dataset_members(session=session, version_id=row.id)}


def test_completed_annotations_become_a_version_with_their_labels_and_slices(
    session: Session, store: ImageStore, pages: list[Page]
) -> None:
    keys = [labelled(session, store, page, project=PROJECT) for page in pages[:6]]
    labelled(session, store, pages[6], project=PROJECT, skipped=True, state=TaskState.skipped)
    labelled(session, store, pages[7], project=PROJECT, unreadable=True)
    labelled(session, store, pages[8], project=PROJECT, state=TaskState.needs_review)
    audit = labelled(session, store, pages[9], project=PROJECT, reason=TaskReason.audit)
    session.commit()

    summary = _build(session)
    assert summary.created and summary.version == "ds-0001" and summary.parent is None
    assert summary.members == 7 and summary.added == 7
    assert summary.left_out == {"needs_review": 1, "skipped": 1, "unreadable": 1}
    members = _members(session, "ds-0001")
    assert set(members) == {*keys, audit}
    for key, page in zip(keys, pages[:6], strict=True):
        member = members[key]
        # The annotator fixed the first line in its box: the label is the corrected paragraph, not the reading.
        assert member.text == page.text != page.reading
        if page.boxes is not None:
            assert [line["text"] for line in member.lines or []] == page.text.split("\n")
            assert [tuple(line["box"]) for line in member.lines or []] == page.boxes
        assert member.reason is TaskReason.low_confidence and member.served_model == SHIPPED_VERSION
        assert member.served_confidence == pytest.approx(0.4) and member.line_count == len(page.text.split("\n"))
        assert member.polarity == "dark_on_light" and member.annotation_revision == 1 and member.group_key
    assert members[audit].reason is TaskReason.audit
    assert sum(summary.splits.values()) == 7

    again = _build(session)
    assert not again.created and again.version == "ds-0001"
    assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 1


def test_adding_data_never_moves_a_member_and_a_copy_of_a_test_page_lands_in_test(
    session: Session, store: ImageStore, pages: list[Page]
) -> None:
    for page in pages[:14]:
        labelled(session, store, page, project=PROJECT)
    session.commit()
    first = _members(session, _build(session).version or "")
    test_keys = [k for k, m in first.items() if m.split is Split.test]
    assert test_keys, "the first version should hold test pages (30% of groups)"
    original = next(p for p in pages[:14] if store.get(test_keys[0]) == p.data)
    copy = rephotographed(original)
    distance = hamming(compute_features(copy).phash or "", compute_features(original.data).phash or "")
    assert distance <= NEAR_DUPLICATE_DISTANCE, f"the re-photographed copy is {distance} bits away"

    copy_key = labelled(session, store, original, project=PROJECT, data=copy)
    for page in pages[14:20]:
        labelled(session, store, page, project=PROJECT)
    session.commit()
    summary = _build(session)
    assert summary.created and summary.parent == "ds-0001" and summary.added == 7
    second = _members(session, summary.version or "")
    assert all(second[k].split is m.split for k, m in first.items())
    assert second[copy_key].split is Split.test
    assert second[copy_key].group_key == first[test_keys[0]].group_key
    by_split = {s: {k for k, m in second.items() if m.split is s} for s in Split}
    assert not (by_split[Split.train] & by_split[Split.val]) and not (by_split[Split.train] & by_split[Split.test])


def test_a_relabelled_page_gives_a_new_version_whose_parent_keeps_the_old_label(
    session: Session, store: ImageStore, pages: list[Page]
) -> None:
    keys = [labelled(session, store, page, project=PROJECT) for page in pages[:4]]
    session.commit()
    first = _build(session).version or ""
    annotation = session.scalars(select(Annotation).order_by(Annotation.id)).first()
    assert annotation is not None
    page = next(p for p, k in zip(pages, keys, strict=False) if k == annotation.task.image_sha256)
    new_text = page.text.replace(page.text.split("\n")[0], "a corrected first line", 1)
    repo.add_annotation_revision(
        session=session,
        task_id=annotation.task_id,
        ls_annotation_id=annotation.ls_annotation_id,
        annotator=annotation.annotator,
        annotated_at=annotation.annotated_at,
        text=new_text,
        lines=[],
    )
    session.commit()
    summary = _build(session)
    assert summary.created and summary.parent == first and summary.relabelled == 1 and summary.added == 0
    assert _members(session, first)[annotation.task.image_sha256].text == page.text
    newer = _members(session, summary.version or "")[annotation.task.image_sha256]
    assert newer.text == new_text and newer.annotation_revision == 2
    assert newer.split is _members(session, first)[annotation.task.image_sha256].split


def test_a_page_whose_answer_is_withdrawn_is_removed_and_comes_back_to_its_split(
    session: Session, store: ImageStore, pages: list[Page]
) -> None:
    keys = [labelled(session, store, page, project=PROJECT) for page in pages[:5]]
    session.commit()
    first = _members(session, _build(session).version or "")
    task = session.scalars(select(Annotation).order_by(Annotation.id)).first()
    assert task is not None
    task.task.state = TaskState.needs_review
    session.commit()
    summary = _build(session)
    assert summary.removed == 1 and summary.left_out == {"needs_review": 1}
    task.task.state = TaskState.completed
    session.commit()
    back = _build(session)
    assert not back.created and back.version == "ds-0001"  # the same membership as the first: the same version
    assert set(first) == set(keys)


def test_nothing_annotated_is_a_clear_error_and_writes_nothing(
    session: Session, store: ImageStore, pages: list[Page]
) -> None:
    with pytest.raises(EmptyDatasetError, match="no completed annotations yet: run inkloop flow run sync"):
        _build(session)
    labelled(session, store, pages[0], project=PROJECT, skipped=True, state=TaskState.skipped)
    session.commit()
    with pytest.raises(EmptyDatasetError, match=r"left out: 1 skipped"):
        _build(session)
    assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0


def test_the_guards_refuse_leaks_by_name(session: Session, store: ImageStore, pages: list[Page]) -> None:
    keys = [labelled(session, store, page, project=PROJECT) for page in pages[:3]]
    session.commit()
    golden = GoldenPages.load()
    spec = [repo.MemberSpec(k, Split.train, "t") for k in keys]
    assert check_guards(session, spec, parent=None, golden=golden) == [
        "near_duplicate_across_splits",
        "evaluated_after_training",
        "golden_in_train",
    ]
    # A copy of a train page in test.
    copy = labelled(session, store, pages[0], project=PROJECT, data=rephotographed(pages[0]))
    session.commit()
    with pytest.raises(LeakageError, match="near_duplicate_across_splits"):
        check_guards(session, [*spec, repo.MemberSpec(copy, Split.test, "t")], parent=None, golden=golden)
    # A page an ancestor trained on, now in val.
    parent = repo.create_dataset_version(session=session, version="ds-a", members=spec)
    moved = [repo.MemberSpec(keys[0], Split.val, "t"), *spec[1:]]
    with pytest.raises(LeakageError, match="evaluated_after_training"):
        check_guards(session, moved, parent=parent, golden=golden)
    # A golden page in train.
    golden_page = Page((GOLDEN_DIR / "000000.png").read_bytes(), "x", None)
    golden_key = labelled(session, store, golden_page, project=PROJECT)
    with pytest.raises(LeakageError, match="golden_in_train"):
        check_guards(session, [*spec, repo.MemberSpec(golden_key, Split.train, "t")], parent=None, golden=golden)


def test_pages_of_one_document_share_a_split(session: Session, store: ImageStore, pages: list[Page]) -> None:
    # The client sent a document id with each page (POST /v1/predict, field `document`): one group, one split.
    keys = [labelled(session, store, page, project=PROJECT, document="exam 12") for page in pages[:8]]
    others = [labelled(session, store, page, project=PROJECT) for page in pages[8:16]]
    session.commit()
    members = _members(session, _build(session).version or "")
    assert len({members[k].split for k in keys}) == 1 and len({members[k].group_key for k in keys}) == 1
    assert len({members[k].group_key for k in others}) == 8


def test_golden_pages_in_traffic_go_to_test(session: Session, store: ImageStore, pages: list[Page]) -> None:
    golden_page = Page((GOLDEN_DIR / "000003.png").read_bytes(), "some golden text", None)
    key = labelled(session, store, golden_page, project=PROJECT)
    labelled(session, store, pages[0], project=PROJECT)
    session.commit()
    members = _members(session, _build(session, DatasetParams(val_share=0, test_share=0)).version or "")
    assert members[key].split is Split.test


def test_export_writes_the_folder_format_with_line_boxes_and_refuses_a_used_folder(
    session: Session, store: ImageStore, pages: list[Page], tmp_path: Path
) -> None:
    for page in pages[:6]:
        labelled(session, store, page, project=PROJECT)
    session.commit()
    version = _build(session).version or ""
    out = tmp_path / "export"
    done = export_version(session, store, version=version, out=out)
    records = read_records(out)
    assert done.pages == len(records) == 6
    assert {r["split"] for r in records} <= {"train", "val", "test"}
    for record in records:
        assert record["path"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert record["text"] in {p.text for p in pages}
    assert any(record["lines"] for record in records)
    assert json.loads((out / "dataset.json").read_text())["version"] == version
    with pytest.raises(DatasetError, match="exists and is not an empty folder"):
        export_version(session, store, version=version, out=out)
    with pytest.raises(NotFoundError, match="no dataset version 'ds-9999'"):
        export_version(session, store, version="ds-9999", out=tmp_path / "other")
    assert not (tmp_path / "other").exists()
    only_train = export_version(session, store, version=version, out=tmp_path / "train", split=Split.train)
    assert {r["split"] for r in read_records(tmp_path / "train")} == {"train"}
    assert only_train.pages == done.pages - sum(1 for r in records if r["split"] != "train")


def test_lines_answered_as_outlines_export_as_polygons_in_the_pages_pixels_and_train_along_them(
    session: Session, store: ImageStore, pages: list[Page], tmp_path: Path
) -> None:
    # Routing pre-fills the segmenter's outlines (percent of the page); an answer that keeps them keeps them in its
    # label, and the export gives them in the exported page's pixels, where training cuts lines along polygons.
    page = next(p for p in pages if p.boxes is not None)
    with Image.open(io.BytesIO(page.data)) as image:
        image.load()
        outlines = [line.percent_region() for line in page_lines(image)]
        width, height = image.size
    assert len(outlines) == len(page.boxes or [])
    labelled(session, store, page, project=PROJECT, outlines=outlines)
    session.commit()
    version = _build(session).version or ""
    out = tmp_path / "export"
    export_version(session, store, version=version, out=out)
    (record,) = read_records(out)
    for line, outline in zip(record["lines"], outlines, strict=True):
        assert line["outline"] == [list(p) for p in outline]
        assert line["polygon"] == [[round(x * width / 100), round(y * height / 100)] for x, y in outline]
    # PAGE XML gets the same polygons (eScriptorium and Transkribus read them back).
    export_xml(session, store, version=version, out=tmp_path / "page", format=Format.page)
    (xml,) = (tmp_path / "page").glob("*.xml")
    written = parse(xml.read_bytes(), file=xml.name)
    assert [[list(p) for p in line.polygon] for line in written.lines] == [line["polygon"] for line in record["lines"]]
    (read,) = read_pages(out)
    assert read.outlines is not None and len(read.outlines) == len(outlines)
    items = load_lines([read], height=32, max_width=1024)
    assert [text for _, text in items] == page.text.split("\n")


def test_a_build_killed_half_way_leaves_no_version_and_the_rerun_builds_it_once(
    migrated_url: str, store: ImageStore, pages: list[Page], tmp_path: Path
) -> None:
    from db.session import make_engine, session_factory

    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            for page in pages[:5]:
                labelled(session, store, page, project=PROJECT)
            session.commit()
    finally:
        engine.dispose()
    marker = tmp_path / "members-written"
    # The build process stops right after writing the version and its members, before its commit; it is killed there.
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from db import repo
        from db.session import make_engine, session_factory, session_scope
        from flows.dataset import DatasetParams, build_version

        create = repo.create_dataset_version
        def create_and_hang(**kwargs):
            row = create(**kwargs)
            pathlib.Path({str(marker)!r}).write_text(row.version)
            time.sleep(120)
            return row
        repo.create_dataset_version = create_and_hang
        engine = make_engine({migrated_url!r})
        with session_scope(session_factory(engine)) as session:
            build_version(session, project={PROJECT!r}, params=DatasetParams())
        """
    )
    kill_at_marker(script, marker, what="writing its members")
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0
            assert session.scalar(select(func.count()).select_from(DatasetMember)) == 0
            first = build_version(session, project=PROJECT, params=DatasetParams())
            session.commit()
            second = build_version(session, project=PROJECT, params=DatasetParams())
            session.commit()
            assert first.created and not second.created and first.version == second.version == "ds-0001"
            assert session.scalar(select(func.count()).select_from(DatasetMember)) == 5
    finally:
        engine.dispose()


def test_the_cli_builds_lists_shows_and_exports(
    migrated_url: str, pages: list[Page], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.session import make_engine, session_factory

    store = ImageStore(str(tmp_path / "home" / "store"))
    monkeypatch.setenv("INKLOOP_DATABASE_URL", migrated_url)
    monkeypatch.setenv("INKLOOP_STORE_URL", str(tmp_path / "home" / "store"))
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_PROJECT", PROJECT)
    runner = CliRunner()
    empty = runner.invoke(app, ["datasets", "build"])
    assert empty.exit_code == 1 and "no completed annotations yet: run inkloop flow run sync" in empty.output
    assert "no dataset versions yet" in runner.invoke(app, ["datasets", "list"]).output
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            for page in pages[:6]:
                labelled(session, store, page, project=PROJECT, reason=TaskReason.audit)
            labelled(session, store, pages[6], project=PROJECT, skipped=True, state=TaskState.skipped)
            session.commit()
    finally:
        engine.dispose()

    built = runner.invoke(app, ["datasets", "build"])
    assert built.exit_code == 0, built.output
    assert built.output.startswith("built dataset version ds-0001 (train ")
    assert "6 added, 0 relabelled, 0 removed" in built.output and "left out: 1 skipped" in built.output
    again = json.loads(runner.invoke(app, ["datasets", "build", "--json"]).output)
    assert again["created"] is False and again["version"] == "ds-0001"
    listed = runner.invoke(app, ["datasets", "list", "--json"])
    assert [json.loads(line)["version"] for line in listed.output.splitlines()] == ["ds-0001"]
    shown = runner.invoke(app, ["datasets", "show", "ds-0001"])
    assert shown.exit_code == 0, shown.output
    assert "guards passed  near_duplicate_across_splits, evaluated_after_training, golden_in_train" in shown.output
    assert "stream/audit" in shown.output
    record = json.loads(runner.invoke(app, ["datasets", "show", "ds-0001", "--json"]).output)
    assert sum(record["splits"].values()) == 6 and record["slices"]["stream/audit"] == record["splits"]
    assert record["left_out"] == {"skipped": 1} and len(record["changes"]["added"]) == 6
    unknown = runner.invoke(app, ["datasets", "show", "ds-0042"])
    assert unknown.exit_code == 1 and "no dataset version 'ds-0042' (newest: ds-0001)" in unknown.output

    out = tmp_path / "out"
    exported = runner.invoke(app, ["datasets", "export", "ds-0001", "--out", str(out)])
    assert exported.exit_code == 0 and "exported 6 pages of ds-0001" in exported.output
    used = runner.invoke(app, ["datasets", "export", "ds-0001", "--out", str(out)])
    assert used.exit_code == 1 and "exists and is not an empty folder" in used.output
    bad_split = runner.invoke(app, ["datasets", "export", "ds-0001", "--out", str(tmp_path / "x"), "--split", "dev"])
    assert bad_split.exit_code == 1 and "--split must be one of train, val, test" in bad_split.output
    assert not (tmp_path / "x").exists()
