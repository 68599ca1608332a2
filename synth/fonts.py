"""The fonts synthetic paragraphs are written in: handwriting and printed families from Debian packages and
handwriting families from npm's @fontsource packages (`make fonts` installs both), plus any folder of font files
the user points to.

Whole families are held out of training so evaluation measures reading unseen handwriting, not memorised
glyphs: `FontSet.train` never contains a held-out family (`is_held_out`), `FontSet.heldout` contains only those.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

from inkloop.errors import InkloopError

SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".woff2", ".woff")
FONTSOURCE_LIST = Path(__file__).with_name("data") / "fontsource.txt"

# Debian packages the setup installs (Makefile FONT_PACKAGES) and the families they provide.
HANDWRITING_FAMILIES = {
    "DkgHandwriting", "Breip", "Because We Build", "Because We Connect", "Because We Create", "Because We Learn",
    "Because We Mentor", "Because We Organize", "Dancing Script", "Ecolier_court", "femkeklaver", "Humor Sans",
    "Kristi", "Klee One", "Rufscript", "Comic Neue", "Kaushan Script", "Jura", "Yanone Kaffeesatz", "Comfortaa",
}  # fmt: skip
PRINT_FAMILIES = {
    "DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "Liberation Sans", "Liberation Serif", "Liberation Mono",
    "FreeSans", "FreeSerif", "FreeMono", "Open Sans", "Lato", "Cantarell", "Charis SIL", "Gentium", "GentiumAlt",
    "Linux Libertine O", "Linux Biolinum O", "Old Standard TT", "Caladea", "Andika",
}  # fmt: skip
# Never trained on; the held-out evaluation uses only these (Debian families by name, npm ones by package id).
HELD_OUT_FAMILIES = {"Because We Mentor", "Because We Organize", "Humor Sans", "Klee One", "Caladea", "Andika"}
HELD_OUT_FONTSOURCE = frozenset({
    "short-stack", "pangolin", "mynerve", "edu-qld-beginner", "gaegu", "sriracha", "loved-by-the-king",
    "the-girl-next-door", "grape-nuts", "neucha", "courgette", "marck-script", "cookie", "yesteryear",
})  # fmt: skip
# Kept for an independent check of the shipped model: never used here, for training or for evaluation. A family
# whose name starts with one of these (Caveat Brush, Patrick Hand SC, Shadows Into Light Two) is the same hand.
RESERVED_FAMILIES = frozenset({
    "caveat", "indie-flower", "homemade-apple", "reenie-beanie", "shadows-into-light", "patrick-hand", "gochi-hand",
    "kalam", "covered-by-your-grace", "gloria-hallelujah", "nanum-pen-script", "cedarville-cursive",
    "architects-daughter", "rock-salt", "just-another-hand", "nothing-you-could-do", "la-belle-aurore", "zeyada",
    "dawning-of-a-new-day", "sue-ellen-francisco", "schoolbell", "coming-soon", "handlee", "annie-use-your-telescope",
})  # fmt: skip


def family_slug(family: str) -> str:
    """'Shadows Into Light Two' -> 'shadows-into-light-two' (the form npm's @fontsource package names use)."""
    return "-".join("".join(c if c.isalnum() else " " for c in family.lower()).split())


def is_reserved(family: str) -> bool:
    slug = family_slug(family)
    return any(slug == r or slug.startswith(r + "-") for r in RESERVED_FAMILIES)


@functools.lru_cache(maxsize=1)
def fontsource_families() -> frozenset[str]:
    """The npm package ids (= family slugs) of synth/data/fontsource.txt, all handwriting."""
    lines = FONTSOURCE_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.split()[0] for line in lines if line.strip() and not line.startswith("#"))


def is_handwriting(family: str) -> bool:
    return family in HANDWRITING_FAMILIES or family_slug(family) in fontsource_families()


def is_held_out(family: str) -> bool:
    return family in HELD_OUT_FAMILIES or family_slug(family) in HELD_OUT_FONTSOURCE


def catalogue() -> frozenset[str]:
    """Every family discovery may use from the system, as slugs."""
    names = HANDWRITING_FAMILIES | PRINT_FAMILIES | HELD_OUT_FAMILIES
    return frozenset(family_slug(f) for f in names) | fontsource_families()


class FontSet(enum.StrEnum):
    train = "train"
    heldout = "heldout"
    all = "all"


class FontError(InkloopError):
    """No usable font, or a font file that cannot be read."""


@dataclass(frozen=True)
class Font:
    path: Path
    family: str
    style: str
    handwriting: bool
    missing: frozenset[str] = field(default=frozenset(), compare=False)  # charset characters it has no glyph for
    caps_only: bool = False  # draws lowercase letters as capitals: text written in it is upper-cased

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()

    def covers(self, text: str) -> bool:
        return not (set(text) & self.missing)


def _glyph_signature(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    mask = font.getmask(char)
    return bytes(mask.size) + bytes(np.asarray(mask, dtype=np.uint8).tobytes()) if mask.size[0] else b""


def _missing_glyphs(font: ImageFont.FreeTypeFont, charset: str) -> frozenset[str]:
    """Characters drawn as the font's 'missing glyph' box (compared with private-use characters no font has)."""
    notdef = {_glyph_signature(font, c) for c in ("\ue000", "\U000f0000")}
    return frozenset(c for c in charset if c.strip() and _glyph_signature(font, c) in notdef)


def _shape(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    mask = font.getmask(char)
    ink = np.asarray(mask, dtype=np.uint8).reshape(mask.size[1], mask.size[0])
    shape = np.asarray(Image.fromarray(ink).resize((24, 24)), dtype=np.float32)
    return shape - shape.mean()


def _is_caps_only(font: ImageFont.FreeTypeFont) -> bool:
    """Lowercase letters shaped like their capitals (small caps fonts). Letters whose cases differ in shape are
    compared after scaling to one size; ordinary fonts correlate below 0.55, caps fonts above 0.6."""
    scores = []
    for lower in "abdeghnqrty":
        a, b = _shape(font, lower), _shape(font, lower.upper())
        scores.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-6)))
    return float(np.mean(scores)) > 0.6


@functools.lru_cache(maxsize=512)
def _load(path: str, charset: str) -> tuple[str, str, frozenset[str], bool]:
    try:
        font = ImageFont.truetype(path, 40)
    except OSError as exc:
        raise FontError(f"cannot read font {path}: {exc}") from None
    family, style = font.getname()
    return family or Path(path).stem, style or "", _missing_glyphs(font, charset), _is_caps_only(font)


def _font_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())


def discover(
    charset: str,
    font_set: FontSet = FontSet.train,
    user_dirs: Sequence[Path] = (),
    system_dirs: Iterable[Path] = SYSTEM_FONT_DIRS,
    max_missing: int = 12,
) -> list[Font]:
    """Usable fonts, sorted by path. System fonts are kept when their family is a known one; every font in
    `user_dirs` is used (in the training set). A font missing more than `max_missing` charset glyphs is skipped."""
    for folder in user_dirs:
        if not Path(folder).is_dir():
            raise FontError(f"font folder {folder} does not exist")
    found: list[Font] = []
    for folder in system_dirs:
        if not folder.is_dir():
            continue
        for path in _font_files(folder):
            family, style, missing, caps = _load(str(path), charset)
            handwriting = is_handwriting(family)
            known = handwriting or family in PRINT_FAMILIES
            held_out = is_held_out(family)
            wanted = (
                font_set is FontSet.all
                or (font_set is FontSet.train and not held_out)
                or (font_set is FontSet.heldout and held_out)
            )
            if known and wanted and not is_reserved(family) and len(missing) <= max_missing:
                found.append(Font(path, family, style, handwriting, missing, caps))
    if font_set is not FontSet.heldout:
        for folder in user_dirs:
            files = _font_files(Path(folder))
            if not files:
                raise FontError(f"font folder {folder} has no font files (.ttf, .otf, .woff2, .woff)")
            for path in files:
                family, style, missing, caps = _load(str(path), charset)
                if is_reserved(family):
                    raise FontError(
                        f"{path} is the family {family}, which is reserved for an independent check of the shipped "
                        f"model and never used for training or evaluation: take it out of {folder}"
                    )
                if len(missing) <= max_missing:
                    found.append(Font(path, family, style, True, missing, caps))
    if not found:
        raise FontError(
            f"no usable {font_set.value} fonts found in {', '.join(str(d) for d in [*system_dirs, *user_dirs])}; "
            "install the font packages (`make fonts`) or pass --fonts DIR"
        )
    return sorted(found, key=lambda f: str(f.path))


@functools.lru_cache(maxsize=256)
def truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)
