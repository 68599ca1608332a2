"""Checking an uploaded image before anything is stored: every way an upload can be unusable has a code, an HTTP
status and a message that says what was wrong. Nothing here touches the store or the database, so a rejected
upload leaves no trace but its rejection count."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from inkloop.errors import InkloopError
from inkloop.images import FORMATS, sniff

# Accepted formats are the kernel's FORMATS. MPO (a JPEG with a preview image behind it, as some phones write) is
# read as its first image; every other format must hold exactly one frame.
# Modes the recognizer reads (model/preprocess.py); others (LAB, HSV, YCbCr in a TIFF...) are refused.
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "I;16", "I;16L", "I;16B", "I", "F"}
# The media type of each accepted format, for the API's schema (the multipart encoding of `image`). An MPO is a JPEG
# to every client (its first image is one), so it has no type of its own.
MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}
ACCEPTED_FORMATS = ", ".join(list(MEDIA_TYPES)[:-1]) + " or " + list(MEDIA_TYPES)[-1]


class RejectedUpload(InkloopError):
    """An upload the endpoint will not read. `code` is stable (clients and the rejection log key on it)."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int


@dataclass
class Upload:
    data: bytes
    image: Image.Image  # fully decoded
    format: str
    width: int
    height: int


def check_upload(data: bytes, limits: Limits) -> Upload:
    """Decode `data` completely, or raise RejectedUpload naming the problem."""
    if not data:
        raise RejectedUpload("empty_image", "the uploaded image is empty (0 bytes)", 400)
    if len(data) > limits.max_bytes:
        raise RejectedUpload(
            "too_many_bytes", f"the image is {len(data):,} bytes; the limit is {limits.max_bytes:,}", 413
        )
    try:
        # Opening reads only the header: the pixel limit is checked before any pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        header = sniff(data)
        if header is None:
            raise RejectedUpload(
                "not_an_image", "the upload is not an image file (PNG, JPEG, WEBP, TIFF...)", 415
            ) from None
        if header.width == 0 or header.height == 0:
            raise RejectedUpload(
                "zero_size", f"the {header.format} is {header.width}x{header.height} pixels: it has no pixels"
            ) from None
        raise RejectedUpload(
            "unreadable_image", f"the file starts like a {header.format} but its header is damaged"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedUpload("too_many_pixels", f"the image has over {limits.max_pixels:,} pixels", 413) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise RejectedUpload("unreadable_image", f"the image header cannot be read ({exc})") from None
    fmt = (image.format or "").upper()
    width, height = image.size
    if fmt not in FORMATS:
        raise RejectedUpload("unsupported_format", f"{fmt or 'this'} images are not accepted; send PNG or JPEG", 415)
    if width == 0 or height == 0:
        raise RejectedUpload("zero_size", f"the image is {width}x{height} pixels: it has no pixels", 422)
    if width * height > limits.max_pixels:
        raise RejectedUpload(
            "too_many_pixels",
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}",
            413,
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and fmt != "MPO":
        raise RejectedUpload("multi_frame", f"the image has {frames} frames; send a single still image", 422)
    if image.mode not in MODES:
        raise RejectedUpload("unsupported_mode", f"pixel mode {image.mode} is not supported; send RGB or grayscale")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        detail = str(exc) or type(exc).__name__
        code = "truncated_image" if "truncated" in detail or "broken" in detail else "unreadable_image"
        raise RejectedUpload(code, f"the image data is damaged or cut short ({detail})") from None
    return Upload(data=data, image=image, format=fmt, width=width, height=height)
