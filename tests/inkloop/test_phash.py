"""Comparing perceptual hashes: Hamming distances, the chunked nearest-neighbour search, and keeping one image
of each near-duplicate group. (How well the hash itself finds the same page: tests/unit/test_features.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import inkloop.phash as phash
from inkloop.phash import distances, first_occurrences, hamming, near_duplicates


def test_hamming() -> None:
    assert hamming("0" * 16, "0" * 16) == 0
    assert hamming("0" * 16, "f" * 16) == 64
    assert hamming("00000000000000ff", "000000000000000f") == 4
    with pytest.raises(ValueError, match="different lengths"):
        hamming("00", "000")


def test_near_duplicates_match_pairwise_hamming(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    others = [f"{int(v):016x}" for v in rng.integers(0, 2**63, size=50, dtype=np.int64)]
    # Each query flips a few bits of one of `others`, or is random (then far from everything).
    queries = []
    for index in range(40):
        if index % 2:
            queries.append(f"{int(rng.integers(0, 2**63, dtype=np.int64)):016x}")
        else:
            value = int(others[index], 16) ^ (1 << (index % 60)) ^ (1 << ((index * 7) % 61))
            queries.append(f"{value:016x}")
    monkeypatch.setattr(phash, "_CHUNK_CELLS", 120)  # several chunks, as a big batch would take
    found = near_duplicates(queries, others, max_distance=4)
    for position, query in enumerate(queries):
        pairwise = [hamming(query, other) for other in others]
        best = int(np.argmin(pairwise))
        if pairwise[best] <= 4:
            assert (found.index[position], found.distance[position]) == (best, pairwise[best])
        else:
            assert (found.index[position], found.distance[position]) == (-1, -1)
    assert found.found().sum() == 20
    assert np.array_equal(
        distances(queries[:3], others[:5]), [[hamming(q, o) for o in others[:5]] for q in queries[:3]]
    )


def test_near_duplicates_edge_cases() -> None:
    empty = near_duplicates([], ["0" * 16])
    assert empty.index.shape == (0,)
    none = near_duplicates(["0" * 16], [])
    assert none.index.tolist() == [-1]
    with pytest.raises(ValueError, match="not a 64-bit hex hash: 'xyz'"):
        near_duplicates(["xyz"], ["0" * 16])
    with pytest.raises(ValueError, match="zz"):
        near_duplicates(["0" * 16], ["zz" * 8])
    with pytest.raises(ValueError, match="max_distance"):
        near_duplicates(["0" * 16], ["0" * 16], max_distance=65)


def test_first_occurrences_keep_one_of_each_near_duplicate_group() -> None:
    a, b = "0" * 16, "f" * 16
    a_close = "0000000000000003"  # 2 bits from a
    b_close = "fffffffffffffff0"  # 4 bits from b
    result = first_occurrences([a, b, a_close, b_close, a], max_distance=4)
    assert result.tolist() == [0, 1, 0, 1, 0]
    assert first_occurrences([]).tolist() == []
