"""The split rule: a function of the group, stable as data grows, near-duplicates never on two sides."""

from __future__ import annotations

import hashlib
import random

import pytest

from inkloop.domain import Split
from inkloop.splits import SplitRule, assign, groups

RULE = SplitRule(val=0.1, test=0.1)


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _phash(i: int) -> str:
    # Far-apart hashes: each differs from the others in many bits.
    return hashlib.sha256(f"p{i}".encode()).hexdigest()[:16]


def _flip(phash: str, bits: int) -> str:
    value = int(phash, 16)
    for bit in range(bits):
        value ^= 1 << (bit * 7)
    return f"{value:016x}"


def test_the_split_is_a_function_of_the_page_not_of_arrival_order_or_company() -> None:
    keys = [_sha(i) for i in range(500)]
    hashes = [_phash(i) for i in range(500)]
    alone = {k: a.split for k, a in zip(keys, assign(keys, hashes, {}, RULE), strict=True)}
    order = list(range(500))
    random.Random(7).shuffle(order)
    shuffled = assign([keys[i] for i in order], [hashes[i] for i in order], {}, RULE)
    assert {keys[i]: a.split for i, a in zip(order, shuffled, strict=True)} == alone
    half = assign(keys[:250], hashes[:250], {}, RULE)
    assert all(alone[k] == a.split for k, a in zip(keys[:250], half, strict=True))
    shares = {s: sum(1 for v in alone.values() if v is s) / 500 for s in Split}
    assert 0.05 < shares[Split.test] < 0.15 and 0.05 < shares[Split.val] < 0.15


def test_near_duplicates_and_linked_pages_form_one_group() -> None:
    keys = [_sha(i) for i in range(4)]
    hashes = [_phash(0), _flip(_phash(0), 5), _phash(2), _phash(3)]
    found = groups(keys, hashes, links=[None, None, "writer-7", "writer-7"])
    assert found[0] == found[1] == min(keys[0], keys[1])
    assert found[2] == found[3] != found[0]
    assert (
        groups(keys, [_phash(0), _flip(_phash(0), 9), None, None])[0]
        != groups(keys, [_phash(0), _flip(_phash(0), 9), None, None])[1]
    )


def test_a_new_copy_of_a_frozen_page_joins_its_split_and_frozen_pages_never_move() -> None:
    keys = [_sha(i) for i in range(200)]
    hashes = [_phash(i) for i in range(200)]
    first = assign(keys, hashes, {}, RULE)
    test_page = next(i for i, a in enumerate(first) if a.split is Split.test)
    frozen = {k: a.split for k, a in zip(keys, first, strict=True) if a.split is not None}
    # Against the rule's own choice, pretend history froze page 0 in val: it stays there.
    frozen[keys[0]] = Split.val
    copy_key, copy_hash = _sha(10_000), _flip(hashes[test_page], 4)
    again = assign([*keys, copy_key], [*hashes, copy_hash], frozen, RULE)
    assert again[0].split is Split.val
    assert all(a.split is frozen[k] for k, a in zip(keys, again[:-1], strict=True))
    assert again[-1].split is Split.test


def test_a_page_bridging_two_splits_is_not_placed() -> None:
    a, b = "0000000000000000", "00000000000003ff"  # 10 bits apart: two groups
    bridge = "000000000000001f"  # 5 bits from a, 5 from b
    frozen = {_sha(1): Split.train, _sha(2): Split.test}
    result = assign([_sha(1), _sha(2), _sha(3)], [a, b, bridge], frozen, RULE)
    assert [r.split for r in result] == [Split.train, Split.test, None]


def test_forced_pages_take_their_whole_group_to_the_strictest_split() -> None:
    keys = [_sha(1), _sha(2)]
    hashes = [_phash(1), _flip(_phash(1), 3)]
    result = assign(keys, hashes, {}, RULE, forced={keys[1]: Split.test})
    assert [r.split for r in result] == [Split.test, Split.test]


def test_shares_that_leave_nothing_to_train_are_refused() -> None:
    with pytest.raises(ValueError, match="leave some to train"):
        SplitRule(val=0.5, test=0.5)
