"""The one rule for text from outside (inkloop/untrusted.py): what is refused, what is kept, and the message."""

from __future__ import annotations

import re

import pytest

from inkloop.errors import InvalidTextError
from inkloop.untrusted import checked_text, json_schema_pattern, storage_problem, text_problem

C0_BUT_LINE_BREAKS = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]


@pytest.mark.parametrize("char", [*C0_BUT_LINE_BREAKS, "\x7f", "\ud800", "\udcff", "\udfff"])
def test_control_characters_and_lone_surrogates_are_refused_in_any_text(char: str) -> None:
    assert text_problem(f"ab{char}c") is not None
    assert text_problem(f"ab{char}c", one_line=True) is not None


def test_the_message_names_the_character_and_where_it_is() -> None:
    assert text_problem("a\x00b") == "contains a NUL character (U+0000) at character 2"
    assert text_problem("ab\x1b[31m") == "contains the control character U+001B at character 3"
    assert text_problem("x\udcff") == (
        "is not valid Unicode: a lone surrogate (U+DCFF) at character 2, as bytes that are not UTF-8 give"
    )
    assert text_problem("id\n", one_line=True) == "must be one line: it contains '\\n' (U+000A) at character 3"


def test_text_keeps_lines_tabs_and_every_printable_character() -> None:
    text = "Dear Sam,\r\n\tthank you — ünïcödé, 中文, emoji \U0001f600, NEL \x85 and NBSP \xa0 are text\n"
    assert text_problem(text) is None
    assert text_problem("") is None
    for char in "\t\n\r":
        assert text_problem(f"a{char}b") is None
        assert text_problem(f"a{char}b", one_line=True) is not None


def test_what_no_database_stores_is_only_nul_and_lone_surrogates() -> None:
    # db/guard.py applies this one: a control character an entry point would refuse is still storable.
    assert storage_problem("a\x00") == "contains a NUL character (U+0000) at character 2"
    assert storage_problem("\ud83d") is not None
    assert storage_problem("escape \x1b and bell \x07, tab\t") is None
    assert storage_problem("\U0001f600") is None


def test_checked_text_names_the_field_and_bounds_the_length() -> None:
    assert checked_text("fine reason", what="--reason") == "fine reason"
    with pytest.raises(InvalidTextError, match=r"^--reason contains a NUL character \(U\+0000\) at character 4$"):
        checked_text("why\x00", what="--reason")
    with pytest.raises(InvalidTextError, match=r"^--version is 65 characters long; at most 64 are kept$"):
        checked_text("v" * 65, what="--version", one_line=True, max_length=64)
    with pytest.raises(InvalidTextError, match="must be one line"):
        checked_text("m-1\tx", what="--version", one_line=True)


@pytest.mark.parametrize("one_line", [False, True])
def test_the_schema_pattern_says_what_the_rule_says(one_line: bool) -> None:
    # `$` in Python also matches before a final newline; ECMA-262's (OpenAPI's) does not: read it as \Z.
    pattern = re.compile(json_schema_pattern(one_line=one_line).replace("$", r"\Z"))
    for code in [*range(0x300), 0x2028, 0xFEFF, 0x1F600]:
        text = f"a{chr(code)}b"
        assert (pattern.search(text) is not None) == (text_problem(text, one_line=one_line) is None), hex(code)
