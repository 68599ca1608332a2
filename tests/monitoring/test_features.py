"""Image features: real synthetic pages against blank ones (texture, gradients, noise, JPEG, ruled paper, either
polarity), bytes that do not decode, every pixel mode, EXIF orientation, and the perceptual hash."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from inkloop.phash import NEAR_DUPLICATE_DISTANCE, distances, hamming
from monitoring.features import ImageFeatures, compute_features
from synth.generate import SynthOptions, generate
from tests.support.paths import GOLDEN

# monitoring/validation/suite.py quarantines pages below an ink ratio of 0.004 (INK_RATIO_MIN, with the measurements
# behind it). Here each side must clear it by a factor of two: pages above 0.008, blanks below 0.002.
PAGE_INK = 0.008
BLANK_INK = 0.002


@pytest.fixture(scope="session")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, dict]]:
    """16 synthetic paragraphs, half of them light on dark: (PNG bytes, label)."""
    folder = tmp_path_factory.mktemp("pages") / "out"
    out = generate(folder, SynthOptions(count=16, seed=5, dark_share=0.5), workers=2)
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    return [((out / label["file"]).read_bytes(), label) for label in labels]


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    if fmt == "PNG":
        options.setdefault("compress_level", 1)  # fast: these bytes live for one call
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _blank(
    seed: int,
    *,
    size: tuple[int, int] = (1200, 900),
    paper: float = 225.0,
    texture: float = 0.0,
    lighting: float = 0.0,
    noise: float = 0.0,
    ruled: bool = False,
    rotate: float = 0.0,
) -> Image.Image:
    """A photographed blank sheet: paper level, low-frequency texture, a lighting gradient, sensor noise, and
    optionally ruled and margin lines and a slight rotation."""
    rng = np.random.default_rng(seed)
    width, height = size
    page = np.full((height, width), paper, dtype=np.float32)
    if texture:
        cells = rng.uniform(-1, 1, size=(height // 48 + 2, width // 48 + 2)).astype(np.float32)
        page += np.asarray(Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC), dtype=np.float32) * texture
    if ruled:
        tone = 160.0 if paper > 128 else 110.0
        for y in range(30, height, 40):
            page[y : y + 2] = page[y : y + 2] * 0.4 + tone * 0.6
        page[:, 60:62] = page[:, 60:62] * 0.4 + tone * 0.6
    if lighting:
        ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :] + np.linspace(0.0, 0.5, height)[:, None]
        page *= 1.0 - lighting * ramp / ramp.max()
    page += rng.normal(0.0, noise, size=page.shape).astype(np.float32) if noise else 0.0
    image = Image.fromarray(page.clip(0, 255).astype(np.uint8), "L")
    if rotate:
        image = image.rotate(rotate, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=int(paper))
    return image


def test_real_pages_have_ink_in_either_polarity(pages: list[tuple[bytes, dict]]) -> None:
    for data, label in pages:
        found = compute_features(data)
        assert found.decodable and found.error is None, label["file"]
        image = Image.open(io.BytesIO(data))
        assert (found.width, found.height, found.format, found.mode) == (*image.size, "PNG", image.mode)
        assert found.byte_size == len(data)
        assert found.ink_ratio is not None and found.ink_ratio > PAGE_INK, (label["file"], found.ink_ratio)
        expected = "light_on_dark" if label["dark_background"] else "dark_on_light"
        assert found.polarity == expected, label["file"]
        assert found.blur is not None and found.blur > 0
        assert found.contrast is not None and found.contrast > 0
        assert found.mean_brightness is not None and 0 <= found.mean_brightness <= 255
        assert found.phash is not None and len(found.phash) == 16 and int(found.phash, 16) >= 0
    assert {label["dark_background"] for _, label in pages} == {True, False}


BLANKS = {
    "flat": dict(),
    "dark paper": dict(paper=35.0, noise=3.0),
    "texture": dict(texture=18.0, noise=2.0),
    "lighting gradient": dict(lighting=0.5, texture=8.0, noise=2.0),
    "sensor noise sigma 8": dict(noise=8.0, texture=10.0, lighting=0.3),
    "noise sigma 8, dark": dict(paper=50.0, noise=8.0, texture=10.0),
    "ruled, rotated": dict(ruled=True, rotate=1.5, noise=3.0, texture=6.0),
    "ruled, dark": dict(paper=40.0, ruled=True, noise=4.0),
    "small and noisy": dict(size=(300, 120), noise=8.0),
}


@pytest.mark.parametrize("name", sorted(BLANKS))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_blank_pages_have_no_ink(name: str, fmt: str) -> None:
    image = _blank(sorted(BLANKS).index(name), **BLANKS[name])  # type: ignore[arg-type]
    data = _encode(image, fmt, **({"quality": 35} if fmt == "JPEG" else {}))
    found = compute_features(data)
    assert found.decodable
    assert found.ink_ratio is not None and found.ink_ratio < BLANK_INK, (name, fmt, found.ink_ratio)


def test_a_large_photo_is_read_at_reduced_size_with_the_same_answers(pages: list[tuple[bytes, dict]]) -> None:
    data, _ = max(pages, key=lambda page: Image.open(io.BytesIO(page[0])).size[1])
    page = Image.open(io.BytesIO(data)).convert("RGB")
    photo = page.resize((2000, 2500), Image.Resampling.BICUBIC)
    for fmt in ("JPEG", "PNG"):
        found = compute_features(_encode(photo, fmt, **({"quality": 90} if fmt == "JPEG" else {})))
        assert (found.width, found.height, found.mode) == (2000, 2500, "RGB")
        assert found.ink_ratio is not None and found.ink_ratio > PAGE_INK
    blank = compute_features(_encode(_blank(3, size=(3000, 4000), noise=8.0, texture=10.0), "JPEG", quality=80))
    assert blank.ink_ratio is not None and blank.ink_ratio < BLANK_INK


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "empty"),
        (b"hello, this is a text file, not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "starts like a PNG but its header is damaged"),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)), "JPEG"),
    ],
)
def test_bytes_that_are_not_an_image_never_raise(data: bytes, expected: str) -> None:
    found = compute_features(data)
    assert not found.decodable and found.error is not None and expected in found.error
    assert found.format == ("PNG" if data.startswith(b"\x89PNG") else "JPEG" if data[:2] == b"\xff\xd8" else None)
    assert found.byte_size == len(data)
    assert found.ink_ratio is None and found.phash is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_keeps_what_its_header_says(pages: list[tuple[bytes, dict]], fmt: str) -> None:
    image = Image.open(io.BytesIO(pages[0][0])).convert("RGB")
    data = _encode(image, fmt)
    found = compute_features(data[: len(data) // 2])
    assert not found.decodable
    assert found.error is not None and "cannot be decoded" in found.error
    assert (found.format, found.width, found.height) == (fmt, image.width, image.height)
    assert found.byte_size == len(data) // 2 and found.ink_ratio is None


def test_an_image_over_the_pixel_limit_is_not_decoded(pages: list[tuple[bytes, dict]]) -> None:
    data = pages[0][0]
    width, height = Image.open(io.BytesIO(data)).size
    found = compute_features(data, max_pixels=width * height - 1)
    assert not found.decodable and found.error is not None and "over the limit" in found.error
    assert (found.width, found.height) == (width, height)


def _modes(page: Image.Image) -> dict[str, bytes]:
    gray = page.convert("L")
    rgba = page.convert("RGBA")
    rgba.putalpha(255)
    transparent = Image.new("RGBA", page.size, (0, 0, 0, 0))  # a transparent background reads as white paper
    transparent.putalpha(Image.eval(gray, lambda v: 255 - v))
    palette = page.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = int(np.bincount(np.asarray(palette).ravel()).argmax())  # the paper: see-through
    sixteen = Image.fromarray((np.asarray(gray, dtype=np.uint16) * 257).astype(np.uint16))
    return {
        "L": _encode(gray),
        "RGB": _encode(page.convert("RGB")),
        "RGBA": _encode(rgba),
        "RGBA transparent": _encode(transparent),
        "LA": _encode(gray.convert("LA")),
        "P with transparency": _encode(palette),
        "1": _encode(gray.point(lambda v: 255 if v > 128 else 0).convert("1")),
        "I;16": _encode(sixteen),
        "CMYK JPEG": _encode(page.convert("CMYK"), "JPEG", quality=92),
        "F TIFF": _encode(Image.fromarray(np.asarray(gray, dtype=np.float32)), "TIFF"),
        "WEBP": _encode(page.convert("RGB"), "WEBP", quality=90),
        "BMP": _encode(page.convert("RGB"), "BMP"),
    }


# Modes that change what the page looks like: bilevel thresholding, see-through paper shown on white.
_ALTERED = {"1", "RGBA transparent", "P with transparency"}


def test_every_pixel_mode_gives_the_same_page(pages: list[tuple[bytes, dict]]) -> None:
    data, _ = next(p for p in pages if not p[1]["dark_background"])
    page = Image.open(io.BytesIO(data))
    reference = compute_features(_encode(page.convert("L")))
    assert reference.ink_ratio is not None and reference.phash is not None
    assert reference.mean_brightness is not None
    for name, encoded in _modes(page).items():
        found = compute_features(encoded)
        assert found.decodable, (name, found.error)
        assert (found.width, found.height) == page.size, name
        assert found.polarity == "dark_on_light", name
        assert found.ink_ratio is not None and found.ink_ratio > PAGE_INK, (name, found.ink_ratio)
        if name in _ALTERED:
            continue
        assert abs(found.ink_ratio - reference.ink_ratio) < 0.3 * reference.ink_ratio, (name, found.ink_ratio)
        assert found.mean_brightness is not None, name
        assert abs(found.mean_brightness - reference.mean_brightness) < 12, (name, found.mean_brightness)
        assert hamming(found.phash or "", reference.phash) <= NEAR_DUPLICATE_DISTANCE, name


def test_exif_orientation_is_applied(pages: list[tuple[bytes, dict]]) -> None:
    page = Image.open(io.BytesIO(pages[2][0])).convert("RGB")
    upright = compute_features(_encode(page, "JPEG", quality=95))
    # Stored lying on its side, with the EXIF tag that tells a viewer to turn it upright (6: rotate 90 cw).
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = page.transpose(Image.Transpose.ROTATE_90)
    found = compute_features(_encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (found.width, found.height) == page.size
    assert hamming(found.phash or "", upright.phash or "") <= 4
    unturned = compute_features(_encode(stored, "JPEG", quality=95))
    assert (unturned.width, unturned.height) == stored.size


def test_features_round_trip_as_a_dict() -> None:
    found = compute_features(_encode(_blank(1, size=(200, 100))))
    as_dict = found.as_dict()
    assert list(as_dict) == [field.name for field in dataclasses.fields(ImageFeatures)]
    assert ImageFeatures(**as_dict) == found
    json.dumps(as_dict)  # plain values only: the flow stores them as JSON
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.ink_ratio = 1.0  # type: ignore[misc]


def _variants(page: Image.Image) -> dict[str, bytes]:
    rgb = page.convert("RGB")
    return {
        "jpeg 90": _encode(rgb, "JPEG", quality=90),
        "jpeg 40": _encode(rgb, "JPEG", quality=40),
        "resized 90%": _encode(rgb.resize((int(rgb.width * 0.9), int(rgb.height * 0.9)), Image.Resampling.LANCZOS)),
        "resized 50%": _encode(rgb.resize((rgb.width // 2, rgb.height // 2), Image.Resampling.LANCZOS)),
        "darker 10%": _encode(ImageEnhance.Brightness(rgb).enhance(0.9)),
        "less contrast": _encode(ImageEnhance.Contrast(rgb).enhance(0.8)),
    }


def test_phash_survives_reencoding_resizing_and_brightness(pages: list[tuple[bytes, dict]]) -> None:
    for data, label in pages[:5]:
        original = compute_features(data).phash or ""
        for name, variant in _variants(Image.open(io.BytesIO(data))).items():
            distance = hamming(original, compute_features(variant).phash or "")
            assert distance <= NEAR_DUPLICATE_DISTANCE, (label["file"], name, distance)


def test_phash_separates_different_pages(pages: list[tuple[bytes, dict]]) -> None:
    hashes = [compute_features(data).phash or "" for data, _ in pages]
    matrix = distances(hashes, hashes)
    different = matrix[~np.eye(len(hashes), dtype=bool)]
    assert different.min() > NEAR_DUPLICATE_DISTANCE
    assert np.median(different) >= 20


def test_golden_pages_are_pages(tmp_path: Path) -> None:
    """The checked-in golden paragraphs (both polarities) are what the suite must let through."""
    golden = GOLDEN
    for path in sorted(golden.glob("*.png")):
        found = compute_features(path.read_bytes())
        assert found.ink_ratio is not None and found.ink_ratio > PAGE_INK, path.name
