"""The drift tests' traffic: real pages, really read by the shipped model (devtools.pages), cut into windows by
the tests. devtools.records writes such pages into a database the way the loop does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devtools.pages import Observed, Page, blurred, observe, rendered
from model.recognizer import SHIPPED_MODEL, Recognizer
from synth.generate import SynthOptions


@dataclass(frozen=True)
class Traffic:
    """Pages as production sends them, read by the shipped model; the drift tests' windows are cut from these."""

    reference: list[Observed]  # 200 paragraphs like the training data: dark ink on light paper
    same: list[Observed]  # 1000 more drawn the same way: 20 current windows of 50
    dark: list[Observed]  # 60 light-on-dark pages
    blurred_pages: list[Page]  # 150 pages that production sends out of focus
    blurred: list[Observed]  # ... as the shipped model reads them


@pytest.fixture(scope="session")
def drift_traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    folder = tmp_path_factory.mktemp("drift-traffic")
    recognizer = Recognizer.load(SHIPPED_MODEL)

    def pages(name: str, count: int, seed: int, dark_share: float = 0.0) -> list[Page]:
        return rendered(folder / name, SynthOptions(count=count, seed=seed, max_lines=3, dark_share=dark_share))

    blurry = pages("blurred", 150, 304)
    return Traffic(
        reference=observe(pages("reference", 200, 301), recognizer=recognizer),
        same=observe(pages("same", 1000, 302), recognizer=recognizer),
        dark=observe(pages("dark", 60, 303, dark_share=1.0), recognizer=recognizer),
        blurred_pages=blurry,
        blurred=observe(blurry, recognizer=recognizer, transform=blurred),
    )
