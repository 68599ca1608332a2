"""Text to write: the shipped corpus (or the user's), restricted to the model's charset under an explicit policy,
sampled as word streams that the renderer wraps into lines."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inkloop.errors import InkloopError
from inkloop.text import DEFAULT_CHARSET, OutOfCharset, apply_charset, log_dropped

SHIPPED_CORPUS = Path(__file__).resolve().parent / "data" / "corpus.txt"


class CorpusError(InkloopError):
    """The corpus file is missing, unreadable or has no usable text."""


@dataclass
class Corpus:
    words: list[str]
    charset: str
    source: str

    @classmethod
    def from_file(
        cls,
        path: Path = SHIPPED_CORPUS,
        charset: str = DEFAULT_CHARSET,
        policy: OutOfCharset = OutOfCharset.fold,
    ) -> Corpus:
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CorpusError(f"corpus file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise CorpusError(f"corpus file {path} is not UTF-8 text: {exc}") from None
        dropped: Counter[str] = Counter()
        text = apply_charset(re.sub(r"\s+", " ", raw), charset, policy, dropped)
        log_dropped(dropped, f"corpus {path}")
        words = [w for w in text.split(" ") if w]
        if len(words) < 20:
            raise CorpusError(f"corpus file {path} has {len(words)} usable words; it needs at least 20")
        return cls(words=words, charset=charset, source=str(path))

    def sample_words(self, rng: np.random.Generator, count: int) -> list[str]:
        """`count` words: mostly running text, sometimes shuffled words, sometimes codes and numbers, so rare
        characters and digit strings appear often enough to be learnt."""
        mode = rng.random()
        if mode < 0.7:
            start = int(rng.integers(0, len(self.words)))
            return [self.words[(start + i) % len(self.words)] for i in range(count)]
        if mode < 0.9:
            return [self.words[int(i)] for i in rng.integers(0, len(self.words), size=count)]
        return [
            self._token(rng) if rng.random() < 0.5 else self.words[int(rng.integers(len(self.words)))]
            for _ in range(count)
        ]

    def _token(self, rng: np.random.Generator) -> str:
        kind = rng.random()
        symbols = [c for c in self.charset if c in string.punctuation]
        if kind < 0.35:
            return str(int(rng.integers(0, 10 ** int(rng.integers(1, 6)))))
        if kind < 0.55:
            return f"{int(rng.integers(1, 32)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1950, 2040))}"
        if kind < 0.7:
            return f"{int(rng.integers(0, 1000))}.{int(rng.integers(0, 100)):02d}"
        length = int(rng.integers(1, 8))
        pool = [c for c in self.charset if c != " "] if kind < 0.85 else symbols
        return "".join(pool[int(i)] for i in rng.integers(0, len(pool), size=length))
