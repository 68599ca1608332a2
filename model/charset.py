"""The model's alphabet. Token 0 is the CTC blank, then the characters in a fixed order, newline included as a
token of its own. The list travels inside every checkpoint and exported artifact; serving reads it from there."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from inkloop.text import DEFAULT_CHARSET, NEWLINE, OutOfCharset, apply_charset

BLANK = 0


class Charset:
    def __init__(self, characters: Sequence[str]) -> None:
        if len(set(characters)) != len(characters) or any(len(c) != 1 for c in characters):
            raise ValueError("a charset is a list of distinct single characters")
        if NEWLINE not in characters:
            raise ValueError("a paragraph charset must contain the newline token")
        self.characters = list(characters)
        self._index = {c: i + 1 for i, c in enumerate(self.characters)}

    @classmethod
    def default(cls) -> Charset:
        return cls([*DEFAULT_CHARSET, NEWLINE])

    def __len__(self) -> int:
        """Number of classes the network predicts (characters + blank)."""
        return len(self.characters) + 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Charset) and self.characters == other.characters

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def clean(self, text: str, policy: OutOfCharset, dropped: Counter[str] | None = None) -> str:
        return apply_charset(text, set(self.characters), policy, dropped)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, which must already be within the charset (see `clean`)."""
        try:
            return [self._index[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the charset") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.characters[i - 1] for i in ids if i != BLANK)

    def grow(self, texts: Iterable[str]) -> tuple[Charset, list[str]]:
        """A charset that also holds every character of `texts` (new ones appended, so old ids keep their
        meaning for warm starts), and the list of characters added."""
        seen = Counter(c for text in texts for c in text if c not in self._index)
        added = sorted(seen)
        return Charset(self.characters + added), added
