"""Perceptual hashes (64-bit, as 16 hex characters) and the near-duplicate rule that compares them.

monitoring/features.py computes an image's hash; routing (annotation/routing.py) sends near-duplicates to
annotators once. Both need the same distance and the same fast comparison, so they live here, below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HASH_BITS = 64


def hamming(a_hex: str, b_hex: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a_hex) != len(b_hex):
        raise ValueError(f"hashes of different lengths: {a_hex!r} and {b_hex!r}")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


# Near-duplicates: the largest Hamming distance between the phashes of two images that count as the same page.
# Measured on synthetic pages (`inkloop synth`: 160 pages for the variants, 600 for the pairs):
#   same page, re-encoded as JPEG at quality 90/60/30, resized to 90% or 50%, darkened 15%, contrast -20%,
#   Gaussian noise sigma 4: median 0, max 4 bits. Brightened 15% (highlights clip): median 0, 95th percentile 8,
#   max 14. Re-photographed (cropped 2% a side, or rotated 1 degree): median 4-6, 95th percentile 10-12, max 16.
#   different pages, 179,700 pairs: min 6, 0.01th percentile 10, 0.1th 14, 1st 16, median 30. Pairs within
#   6 bits: 1 (2 of the 600 pages have a false match); within 8: 10 pairs (18 pages); within 10: 43 (69).
# The close different pages are one-line pages, which a 32x32 thumbnail squashes to the same grey band: the
# hash cannot tell them apart, whatever the threshold. 6 catches every re-encoding and resize and most
# re-photographs while merging almost no different pages; the cost of a miss (a page annotated twice) is small,
# and a false match would cost a label. (Requiring the aspect ratios to agree within 10% as well removes every
# false pair up to 8 bits on the same pages.)
NEAR_DUPLICATE_DISTANCE = 6
_CHUNK_CELLS = 4_000_000  # pairs compared per step: bounds memory at ~32 MB whatever the sizes


def hash_array(hashes: Sequence[str]) -> np.ndarray:
    """(n,) uint64 from 16-character hex hashes."""
    values = np.empty(len(hashes), dtype=np.uint64)
    for index, text in enumerate(hashes):
        if not isinstance(text, str) or len(text) != HASH_BITS // 4:
            raise ValueError(f"not a {HASH_BITS}-bit hex hash: {text!r} (at index {index})")
        try:
            values[index] = int(text, 16)
        except ValueError:
            raise ValueError(f"not a {HASH_BITS}-bit hex hash: {text!r} (at index {index})") from None
    return values


def popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values).astype(np.int16)
    as_bytes = values.view(np.uint8).reshape(*values.shape, 8)
    return _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.int16)


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.int16)


def distances(phashes: Sequence[str], others: Sequence[str]) -> np.ndarray:
    """(len(phashes), len(others)) int16 Hamming distances. For small inputs; near_duplicates works in chunks."""
    a, b = hash_array(phashes), hash_array(others)
    return popcount(a[:, None] ^ b[None, :])


@dataclass(frozen=True)
class NearDuplicates:
    """For each hash of `phashes`: the index in `others` of its nearest hash within the distance (-1: none) and
    that distance (-1: none)."""

    index: np.ndarray  # (n,) int64
    distance: np.ndarray  # (n,) int16

    def found(self) -> np.ndarray:
        """(n,) bool: which hashes have a near-duplicate."""
        return self.index >= 0


def near_duplicates(
    phashes: Sequence[str], others: Sequence[str], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> NearDuplicates:
    """Nearest neighbour of every hash in `phashes` among `others`, kept when within `max_distance` bits."""
    if not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance must be within 0..{HASH_BITS}, not {max_distance}")
    a, b = hash_array(phashes), hash_array(others)
    index = np.full(len(a), -1, dtype=np.int64)
    distance = np.full(len(a), -1, dtype=np.int16)
    if len(a) == 0 or len(b) == 0:
        return NearDuplicates(index=index, distance=distance)
    rows = max(_CHUNK_CELLS // len(b), 1)
    for start in range(0, len(a), rows):
        block = popcount(a[start : start + rows, None] ^ b[None, :])  # (rows, m)
        nearest = block.argmin(axis=1)
        best = block[np.arange(len(block)), nearest]
        close = best <= max_distance
        index[start : start + rows] = np.where(close, nearest, -1)
        distance[start : start + rows] = np.where(close, best, -1)
    return NearDuplicates(index=index, distance=distance)


def first_occurrences(phashes: Sequence[str], max_distance: int = NEAR_DUPLICATE_DISTANCE) -> np.ndarray:
    """(n,) int64: for each hash, the index of the first earlier hash it near-duplicates, or its own index. The
    images with `result[i] == i` are the ones to send once; the others repeat an earlier one. (A chain a~b~c
    with a and c far apart keeps c: only a hash's distance to a kept hash makes it a repeat.)"""
    values = hash_array(phashes)
    first = np.arange(len(values), dtype=np.int64)
    kept = np.empty(len(values), dtype=np.int64)  # indices of the hashes kept so far, in order
    count = 0
    for index, value in enumerate(values):
        near = np.flatnonzero(popcount(values[kept[:count]] ^ value) <= max_distance)
        if near.size:
            first[index] = kept[near[0]]
        else:
            kept[count] = index
            count += 1
    return first
