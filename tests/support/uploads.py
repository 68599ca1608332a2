"""Uploads that are unusable in every way the endpoint knows, each with the status, code and words it must answer
with (the upload checker's tests and the live API's tests share them)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise_jpeg() -> bytes:
    return encode(Image.effect_noise((300, 200), 60).convert("RGB"), "JPEG")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def zero_width_png() -> bytes:
    header = struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("L", (40, 40), level) for level in (0, 128, 255)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def two_page_tiff() -> bytes:
    pages = [Image.new("L", (40, 40), level) for level in (0, 255)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


BAD = {
    "empty": (b"", 400, "empty_image", "empty"),
    "text": (b"name,text\n1,hello\n", 415, "not_an_image", "not an image"),
    "truncated png": (encode(Image.effect_noise((200, 200), 60), "PNG")[:3000], 422, "truncated_image", "cut short"),
    "truncated jpeg": (noise_jpeg()[:4000], 422, "truncated_image", "cut short"),
    "too many bytes": (b"\x89PNG" + bytes(2_000_000), 413, "too_many_bytes", "limit is 2,000,000"),
    "decompression bomb": (encode(Image.new("1", (20_000, 20_000)), "PNG"), 413, "too_many_pixels", "pixels"),
    "over the pixel limit": (encode(Image.new("1", (7_000, 7_000)), "PNG"), 413, "too_many_pixels", "7000x7000"),
    "animated gif": (animated_gif(), 422, "multi_frame", "3 frames"),
    "multi-page tiff": (two_page_tiff(), 422, "multi_frame", "2 frames"),
    "zero width": (zero_width_png(), 422, "zero_size", "0x10"),
    "lab tiff": (encode(Image.new("LAB", (20, 20)), "TIFF"), 422, "unsupported_mode", "LAB"),
    "icon": (encode(Image.new("RGB", (32, 32)), "ICO"), 415, "unsupported_format", "ICO"),
}
