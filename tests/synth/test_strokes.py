"""Pages drawn as pen strokes (synth/strokes.py): every face writes the charset, no two instances of a letter are
the same, a writer stays one hand across lines, the labels say what is drawn (the shipped model reads the pages),
and the option leaves every font page of a seed as it was."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inkloop.labels import LABELS, read_records
from inkloop.text import DEFAULT_CHARSET, cer
from synth import strokes
from synth.generate import SynthError, SynthOptions, generate


def _labels(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / LABELS).read_text().splitlines()]


@pytest.mark.parametrize("face", strokes.FACES)
def test_every_face_writes_the_whole_charset_on_its_lines(face: str) -> None:
    assert strokes.covers(face, DEFAULT_CHARSET)
    writer = replace(strokes.Writer.sample(np.random.default_rng(1)), face=face)
    text = ["The quick brown fox, 1905!", "jumps over the lazy dog?"]
    rendered = strokes.render_strokes(text, writer, np.random.default_rng(2))
    assert len(rendered.baselines) == 2
    rows = np.asarray((rendered.mask > 64).any(axis=1))
    for baseline in rendered.baselines:
        # Ink just above each baseline (the x-height band), and each line is a separate band of ink.
        assert rows[int(baseline - 0.3 * writer.size)], face
    between = int((rendered.baselines[0] + rendered.baselines[1]) / 2 + 0.2 * writer.size)
    assert (rendered.mask[between] > 64).mean() < 0.2


def test_no_two_instances_of_a_letter_are_the_same_and_a_writer_stays_one_hand() -> None:
    glyph, _, _ = strokes._face("scripts")["a"]
    writer = strokes.Writer.sample(np.random.default_rng(3))
    rng = np.random.default_rng(4)
    first, second = strokes._deformed(glyph, writer, rng), strokes._deformed(glyph, writer, rng)
    assert not np.allclose(first[0], second[0])
    # ... but alike: the same letter moved by a fraction of its height, not another shape.
    assert np.abs(first[0] - second[0]).max() < 0.5 * strokes.CAP_UNITS
    lines = [writer.vary(np.random.default_rng(k)) for k in range(20)]
    assert {line.face for line in lines} == {writer.face} and {line.pen for line in lines} == {writer.pen}
    assert max(abs(line.size / writer.size - 1) for line in lines) <= 0.08


def test_wrapping_keeps_lines_within_the_width_and_every_word() -> None:
    writer = strokes.Writer.sample(np.random.default_rng(5))
    words = [
        "Dear",
        "Sir,",
        "I",
        "received",
        "your",
        "letter",
        "of",
        "the",
        "21st",
        "and",
        "thank",
        "you",
        "for",
        "the",
        "seeds.",
    ]
    lines = strokes.wrap_strokes(words, writer, 14 * writer.size, max_lines=10)
    assert " ".join(lines).split() == words and len(lines) > 1
    assert all(strokes.measure(line, writer) <= 14 * writer.size for line in lines if " " in line)


@pytest.mark.slow
def test_stroke_pages_are_read_as_labelled_and_font_pages_stay_as_they_were(tmp_path: Path) -> None:
    from model.recognizer import Recognizer

    plain = generate(tmp_path / "plain", SynthOptions(count=12, seed=6, max_lines=4), workers=1)
    mixed = generate(tmp_path / "mixed", SynthOptions(count=12, seed=6, max_lines=4, strokes_share=0.5), workers=1)
    drawn = [r for r in _labels(mixed) if r["generator"] == "strokes"]
    assert 2 <= len(drawn) <= 10 and all(r["writer"]["face"] in strokes.FACES for r in drawn)
    for p, m in zip(_labels(plain), _labels(mixed), strict=True):
        if m["generator"] != "strokes":  # the option takes pages from a stream of its own
            assert (plain / p["file"]).read_bytes() == (mixed / m["file"]).read_bytes()
    # The labels say what is drawn: the shipped model (which never saw a stroke page) reads them at 0.12 on 16
    # pages (measured); a page whose label is not its drawing reads near 1.
    records = [r for r in read_records(mixed) if r["generator"] == "strokes"]
    predictions = Recognizer.load().predict_paths([r["path"] for r in records])
    errors = [cer(p.text, r["text"]) for p, r in zip(predictions, records, strict=True)]
    assert float(np.mean(errors)) < 0.35, errors
    with pytest.raises(SynthError, match="strokes share"):
        generate(tmp_path / "bad", SynthOptions(count=1, strokes_share=1.5))
