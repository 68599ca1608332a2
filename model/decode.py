"""Greedy CTC decoding with the probability of every emitted character, and the raw confidence built from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.charset import BLANK, Charset


@dataclass
class Decoded:
    text: str
    char_probs: list[float]  # one per character of `text` (newlines included)
    raw_confidence: float  # geometric mean of char_probs (or of frame maxima for an empty page)
    line_raw_confidences: list[float]  # the same, line by line


def geometric_mean(probs: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(np.clip(probs, 1e-6, 1.0))))) if probs.size else 1.0


def greedy(probs: np.ndarray, charset: Charset) -> Decoded:
    """`probs`: (T, K) softmax outputs of one page. Collapse repeats, drop blanks; a character's probability is
    the highest its frames gave it."""
    best = probs.argmax(axis=1)
    best_p = probs.max(axis=1)
    ids: list[int] = []
    char_probs: list[float] = []
    previous = BLANK
    for token, p in zip(best.tolist(), best_p.tolist(), strict=True):
        if token != BLANK and token != previous:
            ids.append(token)
            char_probs.append(p)
        elif token != BLANK and token == previous:
            char_probs[-1] = max(char_probs[-1], p)
        previous = token
    text = charset.decode(ids)
    # Strip newlines the network wrote at the very start or end: they are not lines.
    lead = len(text) - len(text.lstrip("\n"))
    trail = len(text) - len(text.rstrip("\n"))
    text = text.strip("\n")
    char_probs = char_probs[lead : len(char_probs) - trail]
    raw = geometric_mean(np.array(char_probs)) if char_probs else geometric_mean(best_p)
    lines: list[float] = []
    start = 0
    for line in text.split("\n"):
        end = start + len(line)
        lines.append(geometric_mean(np.array(char_probs[start:end])) if line else raw)
        start = end + 1
    return Decoded(text=text, char_probs=char_probs, raw_confidence=raw, line_raw_confidences=lines)
