"""Which split a labelled page belongs to, so that no page (nor a copy of it) is ever on two sides.

The unit of assignment is a group, not an image: near-duplicates (inkloop.phash's rule, so a page and its
re-photograph) are one group, and pages of one writer or document are one group where the source says so. A new
group's split is a salted hash of its key, a function of the group alone: never of the order pages arrive in or
of how many there are. A group that already has members keeps the split it was first given (the caller passes the
frozen assignments), so adding data never moves a page and a split once frozen only grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from inkloop.domain import Split
from inkloop.phash import NEAR_DUPLICATE_DISTANCE, hash_array, popcount

# Changing the salt reshuffles every new group: it is part of the rule, recorded in each version's details.
SPLIT_SALT = "inkloop-splits-1"
_CHUNK_CELLS = 4_000_000  # pairs compared per step (~32 MB), whatever the number of pages


@dataclass(frozen=True)
class SplitRule:
    """Shares of new groups sent to val and test (the rest trains), and the salt of the hash that decides."""

    val: float = 0.1
    test: float = 0.1
    salt: str = SPLIT_SALT

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError(
                f"val and test shares must lie within 0..1 and leave some to train, not {self.val}, {self.test}"
            )

    def split_of(self, group_key: str) -> Split:
        """The split of a group seen for the first time: a function of its key alone."""
        digest = hashlib.sha256(f"{self.salt}\0{group_key}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        if position < self.test:
            return Split.test
        if position < self.test + self.val:
            return Split.val
        return Split.train


def near_duplicate_pairs(phashes: Sequence[str], max_distance: int = NEAR_DUPLICATE_DISTANCE) -> np.ndarray:
    """(k, 2) int64: every pair i < j of hashes within `max_distance` bits."""
    values = hash_array(phashes)
    found = []
    rows = max(_CHUNK_CELLS // max(len(values), 1), 1)
    for start in range(0, len(values), rows):
        block = popcount(values[start : start + rows, None] ^ values[None, :])  # (rows, n)
        i, j = np.nonzero(block <= max_distance)
        i = i + start
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def groups(keys: Sequence[str], phashes: Sequence[str | None], links: Sequence[str | None] = ()) -> list[str]:
    """The group key of each page: pages joined by near-duplicate hashes, or by an equal link (a writer or document
    id; None for none), form one group, keyed by its smallest page key. `keys` are the pages' own keys (sha256)."""
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    hashed = [i for i, value in enumerate(phashes) if value]
    for a, b in near_duplicate_pairs([phashes[i] or "" for i in hashed]):
        union(hashed[int(a)], hashed[int(b)])
    first_with: dict[str, int] = {}
    for i, link in enumerate(links):
        if link:
            union(first_with.setdefault(link, i), i)
    smallest: dict[int, str] = {}
    for i, key in enumerate(keys):
        root = find(i)
        smallest[root] = min(smallest.get(root, key), key)
    return [smallest[find(i)] for i in range(len(keys))]


@dataclass(frozen=True)
class Assignment:
    split: Split | None  # None: the page cannot be placed (its group already spans two splits)
    group_key: str


def assign(
    keys: Sequence[str],
    phashes: Sequence[str | None],
    frozen: Mapping[str, Split],
    rule: SplitRule,
    *,
    links: Sequence[str | None] = (),
    forced: Mapping[str, Split] | None = None,
) -> list[Assignment]:
    """The split of each page. `frozen` holds the split every page ever had in an earlier version (it keeps it);
    `forced` puts a page's whole group in a split (the golden pages' look-alikes go to test). A new page whose
    group holds frozen pages of one split joins that split; one whose group holds pages of two splits cannot be
    placed without a near-duplicate across splits, so its split is None (the caller leaves it out, saying why)."""
    group_of = groups(keys, phashes, links)
    members: dict[str, list[int]] = {}
    for i, group in enumerate(group_of):
        members.setdefault(group, []).append(i)
    result: list[Assignment | None] = [None] * len(keys)
    forced = forced or {}
    for group, indices in members.items():
        pinned = {frozen[keys[i]] for i in indices if keys[i] in frozen}
        wanted = {forced[keys[i]] for i in indices if keys[i] in forced}
        if len(pinned) > 1:
            split_for_new: Split | None = None
        elif pinned:
            split_for_new = next(iter(pinned))
        elif wanted:
            split_for_new = min(wanted, key=_STRICTEST.index)
        else:
            split_for_new = rule.split_of(group)
        for i in indices:
            result[i] = Assignment(frozen.get(keys[i], split_for_new), group)
    return [a for a in result if a is not None]


_STRICTEST = [Split.test, Split.val, Split.train]
