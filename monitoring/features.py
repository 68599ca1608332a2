"""Per-image features for the ingest flow: what an image is (format, size, mode), how it looks (brightness,
contrast, ink, blur, polarity) and a perceptual hash for near-duplicates.

The Great Expectations suite (monitoring/validation) judges images by these numbers and the drift report
compares their distributions, so they must be cheap (every logged image gets them) and must never raise: an
image that cannot be decoded is itself a finding (`decodable=False` with the reason), not a crash of the flow.

`ink_ratio` is the feature that matters most. The recognizer's known weakness is that a blank page (paper
texture, a lighting gradient, JPEG artefacts, heavy sensor noise) makes it read spurious text, and its own ink
map (model/segment.py) cannot tell: it counts texture and noise as ink on most blank photos. So ink here is
stricter: darkness relative to the paper right around a mark (either polarity), only for marks as thin as pen
strokes, only well above the page's own noise, and not on ruled lines.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import fft, ndimage

from inkloop.images import sniff

Polarity = Literal["dark_on_light", "light_on_dark"]

# Features are computed on a work image whose longest side is at most this many pixels (and at least half of
# it, for larger images): JPEGs are decoded at 1/2, 1/4 or 1/8 scale straight from the DCT (PIL `draft`),
# everything else is box-reduced by an integer factor. At this size a pen stroke is still 1-6 pixels wide.
WORK_SIDE = 1024
# Blur is the variance of the Laplacian of the page scaled so its longest side is this many pixels, so the
# figure does not depend on the resolution the photo was taken at.
BLUR_SIDE = 512
# The image is refused (decodable=False) rather than decoded when its header declares more pixels than this
# (a decompression bomb); the caller passes INKLOOP_MAX_IMAGE_PIXELS.
DEFAULT_MAX_PIXELS = 40_000_000

# Ink: the work image is smoothed with a Gaussian of sigma INK_SMOOTH (averaging sensor noise), then a pixel is
# ink when it is darker (lighter, on a light-on-dark page) than the local paper level by more than
# INK_MIN_DARKNESS grey levels AND by more than INK_NOISE_SIGMAS times the page's own noise (the robust spread of
# that darkness). The local paper level is a grey closing over INK_STROKE x INK_STROKE pixels: it erases every
# dark mark narrower than that (a pen stroke at work scale is 1-6 pixels) and follows everything wider (paper
# texture, a lighting gradient, a shadow, the edge of the sheet), so only stroke-like marks count as ink.
# Long straight runs (ruled lines, margin lines: at least RULE_FRACTION of the page's width or height) are
# not ink either: a blank page of a notebook is blank. Rules are found on a looser mask (darkness above
# RULE_LOOSENESS times the margin), where a faint rule is whole rather than in noisy fragments, as marks that
# run straight for RULE_SEGMENT pixels, span RULE_FRACTION of the page and are at most RULE_THICKNESS thick.
# The values were tuned on synthetic pages against blank ones; the measured ink ratios are in
# monitoring/validation/suite.py (INK_RATIO_MIN).
INK_SMOOTH = 1.0
INK_STROKE = 9
INK_MIN_DARKNESS = 12.0
INK_NOISE_SIGMAS = 5.0
RULE_FRACTION = 0.125
RULE_THICKNESS = 6.0
RULE_SEGMENT = 15  # odd
RULE_LOOSENESS = 0.5

# The perceptual hash (inkloop/phash.py compares them): 8x8 low DCT frequencies of a 32x32 grayscale thumbnail.
_HASH_SIDE = 32
_HASH_LOW = 8

# EXIF orientation tag -> the transpose that shows the image upright (EXIF 2.3, tag 0x0112).
_ORIENTATION_TAG = 0x0112
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


class _HeaderFields(TypedDict):
    """What the image header gives: the ImageFeatures fields that are known before any pixel is decoded."""

    byte_size: int
    format: str | None
    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class ImageFeatures:
    """Features of one image. When `decodable` is False, `error` says why and only what the header gave (if
    anything) is filled in; the pixel features are None. `width`/`height` are as the image is shown (after its
    EXIF orientation), in pixels of the original, not of the work image."""

    byte_size: int
    decodable: bool
    error: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    mean_brightness: float | None = None  # 0-255, of the grayscale
    contrast: float | None = None  # standard deviation of the grayscale, 0-255 scale
    ink_ratio: float | None = None  # share of pixels that are ink, 0-1
    blur: float | None = None  # variance of the Laplacian at BLUR_SIDE; low = blurred or empty
    polarity: Polarity | None = None
    phash: str | None = None  # 64-bit DCT perceptual hash, 16 lowercase hex characters

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compute_features(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFeatures:
    """Features of an encoded image. Never raises on bad bytes: returns decodable=False with the reason."""
    size = len(data)
    if not data:
        return ImageFeatures(byte_size=0, decodable=False, error="empty: 0 bytes")
    try:
        # (PIL may warn about a damaged file or one over its own pixel limit. The warnings are left alone:
        # silencing them takes the process-wide warnings filter, and the flow computes features in threads.)
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        header = sniff(data)
        if header is None:
            return ImageFeatures(byte_size=size, decodable=False, error="not an image any decoder recognises")
        return ImageFeatures(
            byte_size=size,
            decodable=False,
            format=header.format,
            error=f"the file starts like a {header.format} but its header is damaged",
        )
    except Image.DecompressionBombError as exc:
        return ImageFeatures(byte_size=size, decodable=False, error=f"too many pixels ({exc})")
    except Exception as exc:  # damaged bytes raise all sorts of errors; the contract is a finding, not a crash
        return ImageFeatures(byte_size=size, decodable=False, error=f"header cannot be read ({_describe(exc)})")

    fmt = (image.format or "").upper() or None
    width, height = image.size
    orientation = _orientation(image)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    fields: _HeaderFields = {"byte_size": size, "format": fmt, "width": width, "height": height, "mode": image.mode}
    if width < 1 or height < 1:
        return ImageFeatures(decodable=False, error=f"the image is {width}x{height} pixels", **fields)
    if width * height > max_pixels:
        return ImageFeatures(
            decodable=False,
            error=f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,}; not decoded",
            **fields,
        )
    try:
        gray = _work_gray(image)
    except Exception as exc:  # as above: a damaged image is a finding
        return ImageFeatures(decodable=False, error=f"pixels cannot be decoded ({_describe(exc)})", **fields)
    finally:
        image.close()
    if orientation in _UPRIGHT:
        gray = np.ascontiguousarray(np.asarray(Image.fromarray(gray).transpose(_UPRIGHT[orientation])))
    # Paper is most of a page, so a dark median means light writing on a dark background (as the recognizer
    # decides it); every other pixel gives the same median four times faster.
    polarity: Polarity = "light_on_dark" if float(np.median(gray[::2, ::2])) < 128 else "dark_on_light"
    return ImageFeatures(
        decodable=True,
        mean_brightness=round(float(gray.mean()), 3),
        contrast=round(float(gray.std()), 3),
        ink_ratio=round(ink_share(gray, polarity), 6),
        blur=round(_laplacian_variance(gray), 3),
        polarity=polarity,
        phash=phash(gray),
        **fields,
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not make the whole image unreadable
        return 1
    return value if isinstance(value, int) else 1


def _work_gray(image: Image.Image) -> np.ndarray:
    """The image decoded at (at most) WORK_SIDE on its longest side, as float32 grayscale 0-255, (H, W)."""
    longest = max(image.size)
    if image.format in ("JPEG", "MPO") and longest > WORK_SIDE:
        # Decode straight to grayscale at 1/2, 1/4 or 1/8 scale, as small as keeps the longest side at
        # WORK_SIDE / 2 or more: the cheapest pixels there are.
        scale = longest / (WORK_SIDE // 2)
        image.draft("L" if image.mode in ("RGB", "L") else None, (int(image.width / scale), int(image.height / scale)))
    image.load()
    factor = math.ceil(max(image.size) / WORK_SIDE)
    if image.mode in _HIGH_DEPTH_MODES:
        small = image.reduce(factor) if factor > 1 and image.mode in ("I", "F") else image
        pixels = _high_depth_to_8bit(np.asarray(small, dtype=np.float32))
        if small is image and factor > 1:
            pixels = _block_mean(pixels, factor)
        return pixels
    gray = _to_luminance(image)
    if factor > 1:
        gray = gray.reduce(factor)
    return np.asarray(gray, dtype=np.float32)


def _to_luminance(image: Image.Image) -> Image.Image:
    """8-bit grayscale; transparent pixels are shown on white paper, as a browser shows them."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    if image.mode in ("L", "RGB", "CMYK", "P", "1", "RGBX", "YCbCr"):
        return image.convert("L")
    return image.convert("RGB").convert("L")  # LAB, HSV...: via RGB (raises ValueError if PIL cannot)


def _high_depth_to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit and float pixels on the 0-255 scale: by their nominal range when it fits one, else by
    their own range."""
    low, high = float(pixels.min()), float(pixels.max())
    if low >= 0 and high <= 255:
        return pixels
    if low >= 0 and high <= 65535:
        return pixels / 257.0
    return (pixels - low) * (255.0 / max(high - low, 1e-6))


def _block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    h, w = pixels.shape
    hh, ww = h // factor * factor, w // factor * factor
    if hh == 0 or ww == 0:
        return pixels
    blocks = pixels[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _resize(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def ink_share(gray: np.ndarray, polarity: Polarity) -> float:
    """Share of the pixels of `gray` (float32 0-255, (H, W)) that are ink."""
    if gray.size == 0:
        return 0.0
    return float(np.count_nonzero(ink_mask(gray, polarity))) / gray.size


def ink_mask(gray: np.ndarray, polarity: Polarity) -> np.ndarray:
    """(H, W) bool: the pixels of `gray` (float32 0-255) that are pen strokes, not paper, grain, shadow or rule."""
    page = 255.0 - gray if polarity == "light_on_dark" else gray  # ink is dark from here on
    smooth = ndimage.gaussian_filter(page, INK_SMOOTH, mode="nearest", truncate=2.0)
    # (H, W) >= 0: how much darker each pixel is than the paper around it (a grey closing).
    paper = _window(_window(smooth, INK_STROKE, 0, np.maximum), INK_STROKE, 1, np.maximum)
    darkness = _window(_window(paper, INK_STROKE, 0, np.minimum), INK_STROKE, 1, np.minimum) - smooth
    sample = darkness[::2, ::2]  # a quarter of the pixels give the same medians, four times faster
    centre = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - centre)))  # robust sigma: paper is most of any page
    margin = max(INK_MIN_DARKNESS, INK_NOISE_SIGMAS * noise)
    mask = darkness > centre + margin
    edge = INK_STROKE // 2  # the closing sees only one side of a mark on the border: no verdict there
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = False, False, False, False
    if not mask.any():
        return mask
    # Rules are found on a looser mask, where a faint ruled line is whole rather than in noisy fragments.
    return mask & ~_rules(darkness > centre + RULE_LOOSENESS * margin)


def _window(a: np.ndarray, size: int, axis: int, op: np.ufunc) -> np.ndarray:
    """`op` (np.maximum or np.minimum) over a centred window of `size` (odd) pixels along `axis`, the borders
    repeated: scipy's maximum_filter1d, about three times faster, by doubling the window log2(size) times."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (size // 2, size // 2)
    run = np.moveaxis(np.pad(a, pad, mode="edge"), axis, 0)
    width = 1
    while width * 2 <= size:
        run = op(run[:-width], run[width:])  # run[i] = op(padded[i : i + 2 * width])
        width *= 2
    if width < size:
        run = op(run[: width - size], run[size - width :])
    return np.moveaxis(run, 0, axis)


def _rules(loose: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of `loose` on ruled or margin lines."""
    # A pixel of tolerance: a faint line is broken by noise and JPEG, and a photographed one is not level.
    widened = _window(_window(loose, 3, 0, np.maximum), 3, 1, np.maximum)
    return loose & (_horizontal_lines(widened, loose) | _horizontal_lines(widened.T, loose.T).T)


def _horizontal_lines(widened: np.ndarray, loose: np.ndarray) -> np.ndarray:
    """Horizontal marks in `widened` that span at least RULE_FRACTION of the page and are on average at most
    RULE_THICKNESS pixels of `loose` thick across it: rules, at whatever slight angle the page was photographed.
    Only the stretches that run straight for RULE_SEGMENT pixels are grouped, so a margin line does not join the
    rules it crosses into one mark, and writing that touches a rule mostly stays ink."""
    # A binary opening with a horizontal line: the pixels on a straight run of RULE_SEGMENT set pixels.
    straight = _window(_window(widened, RULE_SEGMENT, 1, np.minimum), RULE_SEGMENT, 1, np.maximum)
    labels, count = ndimage.label(straight, structure=np.ones((3, 3), bool))
    if count == 0:
        return straight
    pixels = np.bincount(labels[loose], minlength=count + 1)  # (count + 1,) loose pixels per mark
    rules = np.zeros(count + 1, dtype=bool)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            length = box[1].stop - box[1].start
            rules[label] = length >= RULE_FRACTION * loose.shape[1] and pixels[label] <= RULE_THICKNESS * length
    return rules[labels]


def _laplacian_variance(gray: np.ndarray) -> float:
    h, w = gray.shape
    scale = BLUR_SIDE / max(h, w)
    resized = _resize(gray, max(round(w * scale), 1), max(round(h * scale), 1))
    return float(ndimage.laplace(resized).var())


def phash(gray: np.ndarray) -> str:
    """64-bit perceptual hash of a grayscale image (float 0-255, (H, W)), as 16 hex characters: the image is
    scaled to 32x32, transformed with a 2-D DCT, and each of the 8x8 lowest frequencies becomes one bit, set when
    the coefficient is above the median of the 63 non-DC ones (the DC term is the mean brightness: leaving it out
    of the median makes the hash blind to exposure; its own bit is then always set)."""
    thumb = _resize(gray, _HASH_SIDE, _HASH_SIDE).astype(np.float64)
    low = fft.dctn(thumb, type=2, norm="ortho")[:_HASH_LOW, :_HASH_LOW].ravel()  # (64,)
    bits = low > np.median(low[1:])
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"
