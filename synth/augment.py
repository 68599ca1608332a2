"""Turn an ink mask into a page as phones and scanners see it: paper colour and texture, ruled lines, ink colour
and pressure, either polarity (dark ink on light paper, or light on dark), small rotation and perspective,
uneven lighting, blur, sensor noise and JPEG artefacts. Every choice comes from the caller's generator, so a
seed gives the same page."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class PageStyle:
    dark_background: bool  # light ink on dark paper (a blackboard, a negative scan)
    paper: tuple[int, int, int]
    ink: tuple[int, int, int]
    texture: float  # amplitude of low-frequency paper unevenness
    pressure: float  # amplitude of ink-density variation along the strokes
    ruled: bool
    margin_line: bool
    rotation: float  # degrees
    perspective: float  # corner displacement / size
    lighting: float  # strength of the brightness gradient, 0 = even
    blur: float  # Gaussian radius, pixels
    noise: float  # sensor noise std, grey levels
    jpeg_quality: int  # 0 = no JPEG round trip
    downscale: float  # 1 = none; <1 resamples down and up (low resolution camera)
    # What real pages add to rendered fonts (`sample(..., realism=rng)`; all off otherwise, so pages drawn before
    # these existed stay the same):
    squared: int = 0  # squared (graph) paper: the grid's cell in pixels, 0 = none
    pencil: bool = False  # graphite: grey, grainy, never fully opaque
    thinning: float = 1.0  # > 1 thins the strokes (a fine pen): ink coverage is raised to this power
    shadow: float = 0.0  # strength of a soft shadow across part of the page (a hand or a phone over it)

    @classmethod
    def sample_realism(cls, style: PageStyle, rng: np.random.Generator) -> PageStyle:
        """`style` with the extras real pages have, drawn from `rng`: squared paper, pencil, a thinner or
        heavier hand, a shadow, and a page photographed at a steeper angle."""
        dark = style.dark_background
        squared = int(rng.integers(18, 40)) if not dark and rng.random() < 0.2 else 0
        pencil = not dark and rng.random() < 0.2
        ink = style.ink
        if pencil:
            grey = int(rng.integers(30, 100))
            ink = (grey, grey, grey)
        return replace(
            style,
            ink=ink,
            ruled=style.ruled and not squared,
            margin_line=style.margin_line and not squared,
            squared=squared,
            pencil=bool(pencil),
            thinning=float(rng.uniform(1.0, 2.5)) if rng.random() < 0.35 else 1.0,
            shadow=float(rng.uniform(0.15, 0.5)) if rng.random() < 0.25 else 0.0,
            perspective=float(rng.uniform(0.02, 0.07)) if rng.random() < 0.3 else style.perspective,
            pressure=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.3 else style.pressure,
        )

    @classmethod
    def sample(cls, rng: np.random.Generator, dark_background: bool | None = None) -> PageStyle:
        dark = bool(rng.random() < 0.2) if dark_background is None else dark_background
        if dark:
            paper = tuple(int(v) for v in rng.integers(5, 70, size=3))
            ink = tuple(int(v) for v in rng.integers(185, 256, size=3))
        else:
            base = int(rng.integers(200, 256))
            tint = rng.integers(-15, 6, size=3)
            paper = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
            ink = (
                tuple(int(v) for v in rng.integers(0, 70, size=3))
                if rng.random() < 0.6
                else (int(rng.integers(0, 60)), int(rng.integers(20, 90)), int(rng.integers(90, 190)))  # blue pen
            )
        ruled = bool(rng.random() < 0.3)
        return cls(
            dark_background=dark,
            paper=paper,  # type: ignore[arg-type]
            ink=ink,  # type: ignore[arg-type]
            texture=float(rng.uniform(0, 18)),
            pressure=float(rng.uniform(0, 0.45)),
            ruled=ruled,
            margin_line=ruled and bool(rng.random() < 0.5),
            rotation=float(rng.normal(0, 1.2)),
            perspective=float(rng.uniform(0, 0.035)) if rng.random() < 0.35 else 0.0,
            lighting=float(rng.uniform(0.1, 0.45)) if rng.random() < 0.5 else 0.0,
            blur=float(rng.uniform(0.3, 1.4)) if rng.random() < 0.4 else 0.0,
            noise=float(rng.uniform(0, 9)),
            jpeg_quality=int(rng.integers(25, 92)) if rng.random() < 0.5 else 0,
            downscale=float(rng.uniform(0.55, 0.95)) if rng.random() < 0.3 else 1.0,
        )

    def as_dict(self) -> dict[str, object]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Noise in [-1, 1] that varies over about `cell` pixels."""
    h, w = shape
    small = rng.uniform(-1, 1, size=(max(h // cell, 1) + 2, max(w // cell, 1) + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32).clip(-1, 1)


def compose(
    mask: np.ndarray,
    baselines: list[float],
    line_height: float,
    style: PageStyle,
    rng: np.random.Generator,
    color: bool = False,
) -> Image.Image:
    """The page: an 'L' image, or 'RGB' with `color` (grayscale pages are composed in one channel, 3x cheaper)."""
    h, w = mask.shape
    channels = 3 if color else 1

    def tone(rgb: tuple[int, ...] | list[int]) -> np.ndarray:
        value = np.array(rgb, dtype=np.float32)
        return value if color else np.array([value @ np.array([0.299, 0.587, 0.114], dtype=np.float32)])

    paper = np.empty((h, w, channels), dtype=np.float32)
    paper[:] = tone(style.paper)
    paper += (_smooth_noise(rng, (h, w), 48) * style.texture)[..., None]
    paper += rng.normal(0, 2.0, size=(h, w, 1)).astype(np.float32)

    if style.ruled:
        rule = tone([150, 170, 220] if not style.dark_background else [110, 130, 150])
        thickness = int(rng.integers(1, 3))
        for baseline in baselines:
            y = int(round(baseline + line_height * 0.08))
            paper[max(y, 0) : y + thickness] = paper[max(y, 0) : y + thickness] * 0.4 + rule * 0.6
        if style.margin_line:
            x = int(rng.integers(2, max(3, min(60, w // 8))))
            paper[:, x : x + 2] = paper[:, x : x + 2] * 0.4 + tone([220, 90, 90]) * 0.6

    if style.squared:
        grid = tone([150, 175, 210] if rng.random() < 0.6 else [175, 175, 175])
        cell = style.squared
        x0, y0 = (int(v) for v in rng.integers(0, cell, size=2))
        paper[y0::cell] = paper[y0::cell] * 0.5 + grid * 0.5
        paper[:, x0::cell] = paper[:, x0::cell] * 0.5 + grid * 0.5

    alpha = mask.astype(np.float32) / 255.0
    if style.thinning != 1.0:
        alpha **= style.thinning
    if style.pencil:
        grain = rng.uniform(0.45, 1.0, size=(h, w)).astype(np.float32)
        alpha *= grain * float(rng.uniform(0.75, 0.95))
    if style.pressure:
        alpha *= 1.0 - style.pressure * (0.5 + 0.5 * _smooth_noise(rng, (h, w), 24))
    page = paper * (1 - alpha[..., None]) + tone(style.ink) * alpha[..., None]
    pixels = page.clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels if color else pixels[..., 0], "RGB" if color else "L")
    fill = tuple(int(v) for v in tone(style.paper)) if color else int(tone(style.paper)[0])

    if style.rotation:
        image = image.rotate(style.rotation, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill)
    if style.perspective:
        image = _perspective(image, style.perspective, rng, fill)
    if style.lighting:
        image = _lighting(image, style.lighting, rng)
    if style.shadow:
        image = _shadow(image, style.shadow, rng)
    if style.downscale < 1.0:
        small = (max(int(image.width * style.downscale), 8), max(int(image.height * style.downscale), 8))
        image = image.resize(small, Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.BILINEAR)
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    if style.noise:
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + rng.normal(0, style.noise, size=pixels.shape).astype(np.float32)
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), image.mode)
    if style.jpeg_quality:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=style.jpeg_quality)
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    return image


def _perspective(
    image: Image.Image, amount: float, rng: np.random.Generator, fill: tuple[int, ...] | int
) -> Image.Image:
    w, h = image.size
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    target = source + rng.uniform(-amount, amount, size=(4, 2)) * np.array([w, h])
    # PIL maps output pixels back to input ones: solve for the 8 coefficients of target -> source.
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coefficients = np.linalg.solve(np.array(rows), source.reshape(8))
    return image.transform(
        (w, h), Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BILINEAR, fillcolor=fill
    )


def _lighting(image: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Multiply by a linear brightness ramp at a random angle (computed coarse, then upsampled: it is smooth)."""
    w, h = image.size
    gw, gh = max(w // 8, 2), max(h // 8, 2)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    ramp = (xs / gw - 0.5) * np.cos(angle) + (ys / gh - 0.5) * np.sin(angle)
    gain = 1.0 - strength * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    gain = np.asarray(
        Image.fromarray(gain.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * (gain[..., None] if pixels.ndim == 3 else gain)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), image.mode)


def _shadow(image: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Darken the part of the page beyond a random line, with a soft edge (a shadow cast across the sheet)."""
    w, h = image.size
    gw, gh = max(w // 8, 2), max(h // 8, 2)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    distance = (xs / gw - 0.5) * np.cos(angle) + (ys / gh - 0.5) * np.sin(angle) - rng.uniform(-0.3, 0.3)
    softness = rng.uniform(0.02, 0.12)
    shade = 1.0 - strength / (1.0 + np.exp(-distance / softness))
    gain = np.asarray(
        Image.fromarray(shade.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * (gain[..., None] if pixels.ndim == 3 else gain)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), image.mode)
