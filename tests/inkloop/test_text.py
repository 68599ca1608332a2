"""Charset policy and character error rate."""

from __future__ import annotations

from collections import Counter

import pytest

from inkloop.text import DEFAULT_CHARSET, CharsetError, OutOfCharset, apply_charset, cer, corpus_cer


def test_default_charset_is_printable_ascii_without_newline() -> None:
    assert len(DEFAULT_CHARSET) == 95
    assert "\n" not in DEFAULT_CHARSET and " " in DEFAULT_CHARSET and "~" in DEFAULT_CHARSET


def test_fold_policy_spells_typography_in_ascii_and_counts_what_it_drops() -> None:
    dropped: Counter[str] = Counter()
    text = "Caf\u00e9 \u201cquoted\u201d \u2014 na\u00efve\u2026 \u00a3 5\nnext line \u4e2d"
    result = apply_charset(text, DEFAULT_CHARSET, OutOfCharset.fold, dropped)
    assert result == 'Cafe "quoted" - naive...  5\nnext line '
    assert dropped == Counter({"\u00a3": 1, "\u4e2d": 1})


def test_drop_and_error_policies() -> None:
    assert apply_charset("na\u00efve", DEFAULT_CHARSET, OutOfCharset.drop) == "nave"
    with pytest.raises(CharsetError, match=r"'\u00ef' \(U\+00EF\) is not in the charset"):
        apply_charset("na\u00efve", DEFAULT_CHARSET, OutOfCharset.error)
    assert apply_charset("plain\ntext", DEFAULT_CHARSET, OutOfCharset.error) == "plain\ntext"


def test_cer() -> None:
    assert cer("hello", "hello") == 0.0
    assert cer("helo", "hello") == pytest.approx(0.2)
    assert cer("", "abcd") == 1.0
    assert cer("", "") == 0.0 and cer("x", "") == 1.0
    assert cer("ab\ncd", "ab cd") == pytest.approx(0.2)  # a wrong line break is one error
    assert corpus_cer(["abc", "x"], ["abd", "xyz"]) == pytest.approx(3 / 6)
