"""The shipped model on the checked-in golden paragraphs (held-out fonts, both polarities): a stated CER bound,
and the model card that the docs and the serving endpoint quote."""

from __future__ import annotations

from inkloop.labels import read_records
from inkloop.text import DEFAULT_CHARSET, edit_distance
from model.recognizer import SHIPPED_MODEL, Recognizer
from synth.fonts import FontSet, discover
from tests.support.paths import GOLDEN

CER_BOUND = 0.07  # base-2 read these at CER 0.043; base-4's figure: docs/recognizer.md ("The shipped model")


def test_shipped_model_reads_the_golden_paragraphs() -> None:
    records = read_records(GOLDEN)
    assert {r["dark_background"] for r in records} == {True, False}
    recognizer = Recognizer.load()
    predictions = recognizer.predict_paths([r["path"] for r in records])
    edits = sum(edit_distance(p.text, r["text"]) for p, r in zip(predictions, records, strict=True))
    chars = sum(len(r["text"]) for r in records)
    report = "\n".join(f"{r['file']}: {p.text!r}" for p, r in zip(predictions, records, strict=True))
    assert edits / chars <= CER_BOUND, f"CER {edits / chars:.3f} > {CER_BOUND}\n{report}"
    # Every line is found and confidence is meaningful where the reading is right.
    for prediction, record in zip(predictions, records, strict=True):
        assert prediction.text.count("\n") == record["text"].count("\n")
        assert 0.0 <= prediction.confidence <= 1.0


def test_shipped_model_card_reports_training_and_held_out_evaluation() -> None:
    card = Recognizer.load(SHIPPED_MODEL).card
    assert card.version == "base-4" and card.parent is not None and card.parent.version == "base-3"
    assert card.parameters is not None and card.parameters < 3_000_000
    assert SHIPPED_MODEL.stat().st_size < 8 * 1024 * 1024
    training = card.training
    assert training is not None and training.steps > 0 and training.wall_s > 0
    assert card.training_data is not None and (card.training_data.train_lines or 0) > 0
    held_out = card.metrics["heldout_fonts"]
    assert (held_out.pages or 0) >= 400 and held_out.cer <= 0.02  # the target for unseen hands
    assert set(held_out.cer_by) >= {"polarity/dark_on_light", "polarity/light_on_dark"}
    # Every held-out family is reported on its own.
    families = {f.family for f in discover(DEFAULT_CHARSET, FontSet.heldout)}
    assert len(families) >= 18 and {f"font/{family}" for family in families} <= set(held_out.cer_by)
