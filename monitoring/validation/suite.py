"""The Great Expectations suite the ingest flow validates logged images with, kept in code.

Expectations come at two levels:
- ROW-level: a failing row is one bad image. It is quarantined with the expectation's short reason name
  (`blank`, `not_decodable`, ...) and the rest of the batch goes on.
- TABLE-level: a failure means the pipeline upstream is broken (a request without an id, the same image twice
  in one batch, an expectation GE could not evaluate). No single image is to blame, so the whole batch is
  refused (`validate_batch` raises BatchRefusedError, carrying the record) rather than quarantining rows.

Every threshold is stated here with the measurement that chose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import great_expectations as gx

from inkloop.images import FORMATS

Level = Literal["row", "table"]

SUITE_NAME = "inkloop_ingest"
ID_COLUMN = "image_sha256"
# One row per image to validate. The ingest flow builds these from the request log and compute_features.
REQUIRED_COLUMNS = (
    "request_id",
    "image_sha256",
    "source",
    "byte_size",
    "format",
    "width",
    "height",
    "decodable",
    "mean_brightness",
    "contrast",
    "ink_ratio",
    "blur",
    "confidence",
)

# FORMATS (inkloop/images.py) are the formats serving accepts. An image that reached the log in another format
# came in through a side door (an import), and the recognizer was not built for it.
# Smallest side: a one-line page can be short (the held-out production pages of devtools/traffic.py include one 60
# pixels tall). Measured with the shipped model (base-2) on that page scaled down: CER 0.016 at 60 rows, 0.065 at
# 32, 0.081 at 24, 0.27 at 16 (its 12 shortest neighbours, scaled alike: median CER 0.05, 0.06, 0.17, 0.33). So
# 32 keeps every page the model reads and refuses thumbnails and icons. Largest side: no camera or scanner at
# 600 dpi produces more than 20,000 pixels on a side (an A3 scan at 1200 dpi is 14,000); beyond it an image is a
# panorama or a crafted file. (INKLOOP_MAX_IMAGE_PIXELS bounds the area too.)
MIN_SIDE = 32
MAX_SIDE = 20_000
# Blank pages. Measured with monitoring.features on 600 synthetic pages (`inkloop synth`: 200 of seed 5, 300 of
# seed 7 in all fonts with 30% block capitals and 30% light on dark, 100 held-out-font pages of seed 6, half
# light on dark; ruled paper, texture, lighting, blur, noise and JPEG as the generator draws them) against 412
# blank photos (paper 170-255 or 5-70, texture up to 18 grey levels, lighting gradients up to 50%, Gaussian
# noise sigma 0-12, JPEG quality 25-92 or PNG; 200 of them ruled, half with a margin line, rotated ~1.2 deg):
#   ink_ratio: real pages min 0.0096 (1st percentile 0.027, median 0.15); plain blanks max 0.0000; ruled blanks
#   max 0.0018 (99th percentile 0.0002). 0.004 sits 2.4x below the faintest real page (a hairline font on
#   heavily textured paper) and 2.2x above the worst ruled blank. Blurring pages until the shipped model cannot
#   read them also ends here: of 40 pages blurred with radius 0-6, every one under 0.004 read at CER >= 0.45.
#   contrast (std of the grayscale): real pages min 8.9; blanks 0.06-32 (a lighting gradient alone gives 30),
#   so contrast cannot tell a page from a blank; its floor only catches flat images (a uniform fill, a lens
#   cap), at half the lowest real page's value.
INK_RATIO_MIN = 0.004
CONTRAST_MIN = 4.0
# No blur floor, by measurement: 40 synthetic pages blurred with Gaussian radius 0, 1.5, 3, 4.5 and 6 and read
# by the shipped model (base-2): pages it read well (CER < 0.1) had blur (variance of the Laplacian) as low as
# 6.5, pages it could not read (CER > 0.3) as high as 114; a floor of 20 would quarantine 9 of 95 readable
# pages and pass 8 of 85 unreadable ones. Noise raises the figure too (noisy blank photos reach 160). Unreadable
# pages are caught by `blank` (their strokes smear below the ink threshold) and by their low confidence
# (routed to annotators). `blur` is still computed, for the drift report.


@dataclass(frozen=True)
class Check:
    """One expectation of the suite and what its failure means to inkloop."""

    name: str  # unique in the suite, e.g. "width_min"
    reason: str  # the quarantine reason (row level) or the name of the table failure
    level: Level
    expectation: gx.expectations.Expectation


def build_checks(
    *,
    max_bytes: int,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
    min_ink_ratio: float = INK_RATIO_MIN,
    min_contrast: float = CONTRAST_MIN,
) -> list[Check]:
    """The suite, in the order reasons are reported."""
    ex = gx.expectations

    def row(name: str, reason: str, expectation: gx.expectations.Expectation, note: str) -> Check:
        expectation.meta = {"inkloop": {"name": name, "reason": reason, "level": "row"}}
        expectation.notes = f"Row level: an image that fails is quarantined as `{reason}`. {note}"
        return Check(name=name, reason=reason, level="row", expectation=expectation)

    def table(name: str, reason: str, expectation: gx.expectations.Expectation, note: str) -> Check:
        expectation.meta = {"inkloop": {"name": name, "reason": reason, "level": "table"}}
        expectation.notes = f"Table level: any failure refuses the whole batch (`{reason}`). {note}"
        return Check(name=name, reason=reason, level="table", expectation=expectation)

    return [
        table(
            "request_id_present",
            "missing_request_id",
            ex.ExpectColumnValuesToNotBeNull(column="request_id"),
            "Every image comes from a logged request.",
        ),
        table(
            "image_sha256_present",
            "missing_image_sha256",
            ex.ExpectColumnValuesToNotBeNull(column=ID_COLUMN),
            "Every image has its store key.",
        ),
        table(
            "image_sha256_unique",
            "duplicate_image_sha256",
            ex.ExpectColumnValuesToBeUnique(column=ID_COLUMN),
            "The flow validates each stored image once; a repeat means deduplication upstream failed.",
        ),
        row(
            "decodable",
            "not_decodable",
            ex.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True]),
            "The bytes decode to pixels (not corrupt, not truncated).",
        ),
        row(
            "format_allowed",
            "format",
            ex.ExpectColumnValuesToBeInSet(column="format", value_set=sorted(FORMATS)),
            "A format serving accepts.",
        ),
        row(
            "byte_size_nonzero",
            "empty",
            ex.ExpectColumnValuesToBeBetween(column="byte_size", min_value=1),
            "At least one byte.",
        ),
        row(
            "byte_size_max",
            "too_many_bytes",
            ex.ExpectColumnValuesToBeBetween(column="byte_size", max_value=max_bytes),
            f"At most {max_bytes:,} bytes (INKLOOP_MAX_UPLOAD_BYTES).",
        ),
        row(
            "width_min",
            "too_small",
            ex.ExpectColumnValuesToBeBetween(column="width", min_value=min_side),
            f"At least {min_side} pixels wide: smaller is a thumbnail, not a page.",
        ),
        row(
            "height_min",
            "too_small",
            ex.ExpectColumnValuesToBeBetween(column="height", min_value=min_side),
            f"At least {min_side} pixels high.",
        ),
        row(
            "width_max",
            "too_large",
            ex.ExpectColumnValuesToBeBetween(column="width", max_value=max_side),
            f"At most {max_side:,} pixels wide: no camera or page scan is wider.",
        ),
        row(
            "height_max",
            "too_large",
            ex.ExpectColumnValuesToBeBetween(column="height", max_value=max_side),
            f"At most {max_side:,} pixels high.",
        ),
        row(
            "ink_ratio_min",
            "blank",
            ex.ExpectColumnValuesToBeBetween(column="ink_ratio", min_value=min_ink_ratio),
            f"At least {min_ink_ratio:.2%} of the pixels are pen strokes: the faintest real page measured had "
            "0.96%, noisy, textured, shaded and ruled blank pages at most 0.18%. Blank pages make the recognizer "
            "read spurious text.",
        ),
        row(
            "contrast_min",
            "blank",
            ex.ExpectColumnValuesToBeBetween(column="contrast", min_value=min_contrast),
            f"Grey-level standard deviation at least {min_contrast}: a flat image holds no writing.",
        ),
        row(
            "confidence_in_range",
            "confidence_out_of_range",
            ex.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
            "The model's confidence on the request that brought the image is a probability.",
        ),
    ]


def build_suite(checks: Sequence[Check]) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=[check.expectation for check in checks])
