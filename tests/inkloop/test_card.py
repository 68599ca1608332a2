"""The model card: every reader gets typed fields, a malformed card is an error naming the field, and the shipped
model's card (written before the card was typed) still parses."""

from __future__ import annotations

import pytest

from inkloop.card import CardError, ConfidenceQuality, InputSpec, Metrics, ModelCard
from model.recognizer import SHIPPED_MODEL
from model.registry import read_card
from tests.support.paths import SHIPPED_VERSION

INPUT = InputSpec(line_height=40, max_line_width=2048, segmenter="1")


def test_a_card_round_trips_through_json() -> None:
    card = ModelCard(
        version="m-1",
        charset=["a", "\n"],
        input=INPUT,
        metrics={"val": Metrics(cer=0.1, pages=4, confidence=ConfidenceQuality(ece=0.01, cer_coverage_auc=0.05,
                                                                                cer_coverage_auc_random=0.1))},
    )  # fmt: skip
    again = ModelCard.parse(card.to_json(), source="test")
    assert again == card and again.cer("val") == 0.1 and again.cer("heldout_fonts") is None
    assert "gate_report" not in card.to_json()  # unset fields are left out, not written as null


def test_metrics_are_added_without_losing_the_others() -> None:
    card = ModelCard(version="m-1", charset=["a", "\n"], input=INPUT, metrics={"val": Metrics(cer=0.1)})
    measured = card.with_metrics("heldout_fonts", Metrics(cer=0.04, pages=400, cer_by={"font/Andika": 0.005}))
    assert set(measured.metrics) == {"val", "heldout_fonts"} and card.metrics.keys() == {"val"}
    assert measured.metrics["heldout_fonts"].cer_by == {"font/Andika": 0.005}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"charset": ["a"], "input": INPUT.model_dump()}, "version: Field required"),
        ({"version": "v", "charset": ["a"], "input": {"line_height": "tall"}}, "input.line_height"),
        ({"version": "v", "charset": ["a"], "input": INPUT.model_dump(), "metrics": {"val": {"pages": 3}}}, "cer"),
        ({"version": "v", "charset": ["a"], "input": INPUT.model_dump(), "colour": "red"}, "colour"),
        ("{not json", "Invalid JSON"),
    ],
)
def test_a_malformed_card_names_what_is_wrong(data: object, named: str) -> None:
    with pytest.raises(CardError, match="artifact.pt has an invalid model card") as error:
        ModelCard.parse(data, source="artifact.pt")
    assert named in str(error.value)


def test_the_shipped_card_parses_with_its_validation_confidence_under_val() -> None:
    card = read_card(SHIPPED_MODEL)
    assert card.version == SHIPPED_VERSION and card.input.line_height == 40
    val = card.metrics["val"]
    assert val.confidence is not None and val.confidence.pages == val.pages and (val.pages or 0) >= 300
    assert "confidence" not in card.metrics  # a card never has the old layout's stray entry
    assert card.calibration is not None and len(card.calibration.knots_x) == len(card.calibration.knots_y) > 2
