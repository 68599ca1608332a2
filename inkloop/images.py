"""The image formats inkloop accepts, and what a file's first bytes say when no decoder will open it.

Serving refuses uploads in other formats (serving/uploads.py) and the ingest suite quarantines images that
reached the log in one by a side door (monitoring/validation): both read `FORMATS` from here, so the two can
never disagree. `sniff` names the format of a file that PIL refuses outright (a damaged header, a zero-size
image), so the error can say "starts like a PNG" instead of "not an image".
"""

from __future__ import annotations

from dataclasses import dataclass

# Formats a phone, a scanner or a browser produces. MPO is a JPEG with a preview image behind it, as some phones
# write; the recognizer reads its first image.
FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "GIF"})

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# JPEG start-of-frame markers (baseline, extended, progressive): the frame header holds the size.
_JPEG_FRAMES = (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2")


@dataclass(frozen=True)
class Header:
    """What a file's first bytes announce: its format and, where the header gives it, its size (else None)."""

    format: str
    width: int | None = None
    height: int | None = None


def sniff(data: bytes) -> Header | None:
    """The format (and size, for PNG, GIF, BMP and JPEG) that `data` starts with; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Header("WEBP")
    fmt = next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)
    if fmt == "PNG" and len(data) >= 24:
        return Header(fmt, int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    if fmt == "GIF" and len(data) >= 10:
        return Header(fmt, int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"))
    if fmt == "BMP" and len(data) >= 26:
        width = int.from_bytes(data[18:22], "little", signed=True)
        return Header(fmt, width, int.from_bytes(data[22:26], "little", signed=True))
    if fmt == "JPEG":
        for marker in _JPEG_FRAMES:
            at = data.find(marker)
            if at != -1 and len(data) >= at + 9:
                return Header(
                    fmt, int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")
                )
    return Header(fmt) if fmt is not None else None
