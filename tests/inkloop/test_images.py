"""Header sniffing: the format (and, where the header says, the size) of files no decoder will open."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from inkloop.images import FORMATS, Header, sniff


def _encoded(fmt: str, size: tuple[int, int] = (30, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_formats_with_a_size_in_the_header(fmt: str) -> None:
    assert sniff(_encoded(fmt)) == Header(fmt, 30, 20)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP"])
def test_formats_named_by_their_magic(fmt: str) -> None:
    found = sniff(_encoded(fmt))
    assert found is not None and found.format == fmt


def test_a_zero_width_png_header_and_a_damaged_jpeg() -> None:
    zero = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 0, 10)
    assert sniff(zero) == Header("PNG", 0, 10)
    assert sniff(b"\xff\xd8\xff\xe0 cut short") == Header("JPEG")


def test_anything_else_is_not_an_image() -> None:
    assert sniff(b"name,text\n1,hello\n") is None and sniff(b"") is None


def test_every_accepted_format_is_one_a_phone_scanner_or_browser_writes() -> None:
    assert {"PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "GIF"} == FORMATS
