"""Every way an upload can be unusable gets its own code, status and a message naming the problem."""

from __future__ import annotations

import pytest
from PIL import Image

from serving.uploads import Limits, RejectedUpload, check_upload
from tests.support.uploads import BAD, encode

LIMITS = Limits(max_bytes=2_000_000, max_pixels=40_000_000)


@pytest.mark.parametrize("name", BAD)
def test_bad_upload_is_rejected_with_its_reason(name: str) -> None:
    data, status, code, words = BAD[name]
    with pytest.raises(RejectedUpload) as caught:
        check_upload(data, LIMITS)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "L"), ("PNG", "RGBA"), ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("TIFF", "F"), ("GIF", "P")],
)
def test_reasonable_images_are_decoded(fmt: str, mode: str) -> None:
    upload = check_upload(encode(Image.new(mode, (64, 32)), fmt), LIMITS)
    assert (upload.format, upload.width, upload.height) == (fmt, 64, 32)
    assert upload.image.mode == mode
