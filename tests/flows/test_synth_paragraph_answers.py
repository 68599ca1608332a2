"""The synth flow on a dataset version whose answers are whole paragraphs (issue 30, point 8): the labeling screen
lets an annotator retype the paragraph instead of correcting line boxes, so a version may hold no annotated line.
Its lines are then cut by the segmenter where it finds as many as the text has (the rule training applies to the
same pages); with none at all, no page is stitched and the summary says why, unless stitched pages were asked for
by count, which is then a clear error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from db import repo
from db.migrate import upgrade
from db.models import SyntheticSample
from devtools.pages import Page, handwritten_pages
from devtools.records import labelled
from flows.dataset import DatasetParams, dataset
from flows.runner import parse_params
from flows.synth import SynthParams, synth
from inkloop.domain import Split
from inkloop.errors import DatasetError
from inkloop.store import ImageStore
from tests.support.databases import session_on

pytestmark = pytest.mark.slow

PROJECT = "inkloop"
SPLITS = DatasetParams(val_share=0.2, test_share=0.2)


@pytest.fixture
def url(inkloop_home: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> str:
    upgrade(sqlite_url)
    monkeypatch.setenv("INKLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_PROJECT", PROJECT)
    return sqlite_url


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    """Pages the segmenter cuts into as many lines as their text has (their `boxes`), two or three lines each."""
    return [page for page in handwritten_pages(16, seed=5) if page.boxes is not None and "\n" in page.text][:8]


def _answered(url: str, inkloop_home: Path, pages: list[Page], answers: list[str]) -> str:
    """Each page answered with its paragraph typed whole (no line boxes); the dataset version built from them."""
    store = ImageStore(str(inkloop_home / "store"))
    with session_on(url) as session:
        for page, answer in zip(pages, answers, strict=True):
            labelled(session, store, replace(page, boxes=None), project=PROJECT, answer=answer)
    built = dataset(SPLITS)
    assert built.created and built.version
    return built.version


def _samples(url: str) -> list[SyntheticSample]:
    with session_on(url) as session:
        samples = list(session.scalars(select(SyntheticSample)))
        session.expunge_all()
    return samples


def test_paragraph_answers_give_the_lines_the_segmenter_cuts_to_match(
    url: str, inkloop_home: Path, pages: list[Page]
) -> None:
    version = _answered(url, inkloop_home, pages, [page.text for page in pages])
    made = synth(SynthParams(stitched=4, rendered=0, max_lines=3))
    assert (made.version, made.stitched, made.not_stitched) == (version, 4, None)
    assert made.train_pages and made.segmented_pages == made.train_pages
    assert "cut by the segmenter" in made.stitched_line()

    with session_on(url) as session:
        row = repo.get_dataset(session=session, version=version)
        train = {
            m.image_sha256: m.text
            for m in repo.dataset_members(session=session, version_id=row.id)
            if m.split is Split.train
        }
    for sample in _samples(url):
        params = sample.params or {}
        assert {sha for sha, _ in params["source_lines"]} <= set(train)  # train pages only, as ever
        assert params["source_cuts"] == ["segmenter"] * len(params["source_lines"])
        # each stitched line's text is the line of its page's answer it was paired with
        for (sha, index), line in zip(params["source_lines"], params["lines"], strict=True):
            assert train[sha].split("\n")[index] == line["text"]


def test_with_no_line_to_stitch_the_flow_says_why_unless_stitched_pages_were_asked_for(
    url: str, inkloop_home: Path, pages: list[Page]
) -> None:
    # Each paragraph typed on one row: the segmenter's two or three lines cannot be paired with it.
    version = _answered(url, inkloop_home, pages, [page.text.replace("\n", " ") for page in pages])

    assert parse_params("synth", []) == SynthParams()  # `inkloop flow run synth` asks for no count
    made = synth(SynthParams(rendered=2))
    assert (made.stitched, made.rendered) == (0, 2)
    assert made.not_stitched is not None
    assert made.not_stitched.startswith("no annotated lines (paragraph answers only) in the ")
    assert f"train pages of {version}, and the segmenter found as many lines as the text has on none" in (
        made.not_stitched
    )
    assert ("not stitched", made.not_stitched) in made.rows()  # what `inkloop flow run synth` prints
    assert sorted(s.generator for s in _samples(url)) == ["font", "font"]

    asked = parse_params("synth", ["stitched=4", "rendered=0"])  # `inkloop flow run synth -p stitched=4`
    assert isinstance(asked, SynthParams) and asked.stitched == 4
    with pytest.raises(DatasetError, match=f"dataset version {version} has no lines to stitch: no annotated lines"):
        synth(asked)
    assert len(_samples(url)) == 2
