"""Text shared by synthesis, the recognizer and the flows: the default character set, the policy for characters
outside it, and character error rate (CER)."""

from __future__ import annotations

import enum
import logging
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

from inkloop.errors import InkloopError

log = logging.getLogger(__name__)

NEWLINE = "\n"
# Printable ASCII without the newline: what the base model reads. "\n" separates lines and is a token of its own.
DEFAULT_CHARSET = "".join(sorted(set(string.ascii_letters + string.digits + string.punctuation + " ")))

# Typographic characters that have an obvious ASCII spelling (NFKD cannot fold these).
_FOLDS = {
    "\u2018": "'", "\u2019": "'", "\u201a": ",", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "\u00d7": "x", "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE", "\u00f8": "o",
    "\u00d8": "O", "\u0142": "l", "\u0141": "L",
}  # fmt: skip


class OutOfCharset(enum.StrEnum):
    """What to do with a character the model cannot write."""

    fold = "fold"  # ASCII look-alike when there is one (é→e, “→"), else drop it
    drop = "drop"  # remove it
    error = "error"  # refuse the text


class CharsetError(InkloopError):
    """Text contains characters outside the charset and the policy is `error`."""


def fold_char(char: str) -> str:
    if char in _FOLDS:
        return _FOLDS[char]
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def apply_charset(text: str, charset: str | set[str], policy: OutOfCharset, dropped: Counter[str] | None = None) -> str:
    """`text` restricted to `charset` (newlines kept) under `policy`; dropped characters are counted in `dropped`."""
    allowed = set(charset) | {NEWLINE}
    if all(c in allowed for c in text):
        return text
    out: list[str] = []
    for char in text:
        if char in allowed:
            out.append(char)
            continue
        if policy is OutOfCharset.error:
            raise CharsetError(f"character {char!r} (U+{ord(char):04X}) is not in the charset")
        replacement = fold_char(char) if policy is OutOfCharset.fold else ""
        kept = "".join(c for c in replacement if c in allowed)
        if not kept and dropped is not None:
            dropped[char] += 1
        out.append(kept)
    return "".join(out)


def log_dropped(dropped: Counter[str], where: str) -> None:
    if dropped:
        shown = ", ".join(f"{c!r}×{n}" for c, n in dropped.most_common(10))
        log.warning("%s: %d characters outside the charset were dropped (%s)", where, sum(dropped.values()), shown)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    return int(Levenshtein.distance(a, b))


def cer(prediction: str, reference: str) -> float:
    """Character error rate: edits needed to turn the prediction into the reference, per reference character."""
    if not reference:
        return 0.0 if not prediction else 1.0
    return edit_distance(prediction, reference) / len(reference)


def corpus_cer(predictions: Iterable[str], references: Iterable[str]) -> float:
    """CER over a corpus: total edits over total reference characters (long texts weigh more)."""
    edits = chars = 0
    for prediction, reference in zip(predictions, references, strict=True):
        edits += edit_distance(prediction, reference)
        chars += len(reference)
    return edits / chars if chars else 0.0
