"""The segmenter's fast kernels give exactly what the library calls they replaced give (tests/support/
segment_reference.py), so the crops, and every model trained on them, are unchanged: bilinear rotation by Pillow
vs scipy's `ndimage.rotate`, the median and percentile by counting vs numpy's, line openings from run ends vs two
uniform filters, dilations by shifts vs structuring elements; and whole pages segment the same on either."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from devtools import segment_reference as reference
from inkloop.labels import read_records
from model.preprocess import to_grayscale
from model.segment import (
    _grow_columns,
    _grow_rows,
    _median_below,
    _open_line,
    _percentile_of_nonnegative,
    _rotate,
    segment,
)
from synth.fonts import FontSet
from synth.generate import SynthOptions, generate


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (151, 320), (600, 1400)])
@pytest.mark.parametrize("angle", [-6.0, -2.75, -0.25, 0.0, 0.5, 1.0, 4.25, 6.0])
def test_rotation_is_scipys_bilinear_rotation(shape: tuple[int, int], angle: float) -> None:
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    expected = reference.rotate(image, angle)
    turned = _rotate(image, angle)
    assert turned.shape == expected.shape
    np.testing.assert_allclose(turned, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("where", ["middle", "top edge", "left edge", "corner", "one pixel", "nothing"])
@pytest.mark.parametrize("angle", [-5.5, -1.0, 0.25, 3.75])
def test_rotation_of_ink_on_paper_is_scipys(where: str, angle: float) -> None:
    # Only the part of the canvas that ink can reach is computed: wherever the ink is, the rest is still zero.
    image = np.zeros((240, 500), np.float32)
    rng = np.random.default_rng(3)
    rows, cols = {
        "middle": (slice(80, 150), slice(100, 420)),
        "top edge": (slice(0, 30), slice(50, 300)),
        "left edge": (slice(60, 200), slice(0, 40)),
        "corner": (slice(200, 240), slice(460, 500)),
        "one pixel": (slice(120, 121), slice(250, 251)),
        "nothing": (slice(0, 0), slice(0, 0)),
    }[where]
    image[rows, cols] = rng.random(image[rows, cols].shape).astype(np.float32)
    expected = reference.rotate(image, angle)
    turned = _rotate(image, angle)
    assert turned.shape == expected.shape
    np.testing.assert_allclose(turned, expected, rtol=0, atol=1e-6)


def test_median_and_percentile_equal_numpys_to_the_last_bit() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(1, 60))
        grey = rng.integers(120, 137, n).astype(np.float32)  # many values at and around the level
        assert _median_below(grey, 128.0) == reference.median_below(grey, 128.0)
        darkness = np.clip(rng.normal(0, 30, n), 0, None).astype(np.float32)  # about half exactly 0
        q = float(rng.choice([0.0, 50.0, 90.0, 99.5, 100.0]))
        assert _percentile_of_nonnegative(darkness, q) == reference.percentile_of_nonnegative(darkness, q)


def test_openings_and_dilations_equal_the_morphology_they_replace() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        mask = rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 80)))) < rng.random()
        for axis in (0, 1):
            length = int(rng.integers(1, 30))
            assert (_open_line(mask, length, axis) == reference.open_line(mask, length, axis)).all()
        assert (_grow_rows(mask) == reference.grow_rows(mask)).all()
        assert (_grow_columns(mask) == reference.grow_columns(mask)).all()


@pytest.mark.slow
def test_pages_segment_the_same_on_either_kernels(tmp_path: Path) -> None:
    # Both polarities, ruled paper, perspective, lighting, every font family: the same lines, boxes and angles,
    # crops equal to float32 rounding (measured identical on 60 of 60 such pages).
    folder = generate(tmp_path / "pages", SynthOptions(count=24, seed=21, font_set=FontSet.all, dark_share=0.5))
    for record in read_records(folder):
        grey = to_grayscale(Image.open(record["path"]))
        fast = segment(grey)
        with reference.library_kernels():
            slow = segment(grey)
        assert [(line.box, line.angle) for line in fast] == [(line.box, line.angle) for line in slow]
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_allclose(a.crop, b.crop, rtol=0, atol=1e-6)
