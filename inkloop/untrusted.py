"""The one rule for text that comes from outside inkloop (an HTTP body or form, a command-line option, an
annotator's answer, an imported file) before it is stored: what is wrong with a text, in words.

Every entry point checks with `text_problem` (serving's request models, the CLI's stored options) and answers in
its own way (a 422 naming the field, a one-line error); db/guard.py refuses, on both databases alike, what no
database can store (`storage_problem`), as the backstop for a path nobody checked.
"""

from __future__ import annotations

import re

from inkloop.errors import InvalidTextError

# What no database stores the same way: NUL (PostgreSQL refuses it in text, where SQLite keeps it) and lone
# surrogates (not Unicode characters at all: an undecodable byte in a command-line argument becomes one, a JSON
# "\ud800" escape too; neither driver can encode one as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The other C0 control characters, and DEL, are refused from outside too, though both databases would keep them:
# no handwritten page, correction, reason or note holds one (the recognizer's charset has none, so a correction
# holding one could never become a label); HTML cannot show them (the gate and drift reports, Label Studio's page)
# and XML 1.0 forbids them; and an ESC or BEL kept in a text reaches an operator's terminal when `inkloop lineage`
# or `inkloop models show` prints it. Tab, line feed and carriage return are text (a correction has lines). C1
# controls (U+0080-U+009F) are kept: XML 1.0 allows them, and they are what text mis-decoded as Latin-1 holds,
# which a person should still be able to send.
_CONTROL = "\x01-\x08\x0b\x0c\x0e-\x1f\x7f"
_LINE_BREAKS = "\t\n\r"
_REFUSED_IN_TEXT = re.compile(f"[\x00{_CONTROL}\ud800-\udfff]")
_REFUSED_IN_LINE = re.compile(f"[\x00{_CONTROL}{_LINE_BREAKS}\ud800-\udfff]")


def _named(char: str, at: int) -> str:
    code = ord(char)
    where = f"at character {at + 1}"
    if char == "\x00":
        return f"contains a NUL character (U+0000) {where}"
    if 0xD800 <= code <= 0xDFFF:
        return f"is not valid Unicode: a lone surrogate (U+{code:04X}) {where}, as bytes that are not UTF-8 give"
    if char in _LINE_BREAKS:
        return f"must be one line: it contains {char!r} (U+{code:04X}) {where}"
    return f"contains the control character U+{code:04X} {where}"


def text_problem(value: str, *, one_line: bool = False) -> str | None:
    """What is wrong with `value` as a text inkloop stores ("contains a NUL character (U+0000) at character 2"), or
    None. `one_line` (ids, versions, names) refuses tab, line feed and carriage return as well."""
    found = (_REFUSED_IN_LINE if one_line else _REFUSED_IN_TEXT).search(value)
    return None if found is None else _named(found.group(), found.start())


def storage_problem(value: str) -> str | None:
    """What no database can store of `value` (a NUL, a lone surrogate), or None: the databases' own rule, which
    db/guard.py applies to every value written, whichever path it came by."""
    found = _UNSTORABLE.search(value)
    return None if found is None else _named(found.group(), found.start())


def checked_text(value: str, *, what: str, one_line: bool = False, max_length: int | None = None) -> str:
    """`value`, or InvalidTextError naming `what` ("--reason") and the problem."""
    problem = text_problem(value, one_line=one_line)
    if problem is None and max_length is not None and len(value) > max_length:
        problem = f"is {len(value):,} characters long; at most {max_length:,} are kept"
    if problem is not None:
        raise InvalidTextError(f"{what} {problem}")
    return value


def json_schema_pattern(*, one_line: bool = False) -> str:
    """The rule as a JSON Schema `pattern` (ECMA-262, as OpenAPI reads it), for the API's schema: a value matches
    exactly when `text_problem` finds nothing. Lone surrogates are left out: a regular expression over Unicode
    characters cannot name them, and a JSON text that is valid UTF-8 cannot carry one unescaped."""
    refused = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
    if one_line:
        refused = "\\x00-\\x1f\\x7f"
    return f"^[^{refused}]*$"
