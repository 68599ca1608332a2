"""atomic_write: readers see the old file or the new one, never a part; a failure leaves the old file and no
temporary behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkloop.files import atomic_write, write_bytes_atomic


def test_the_new_content_appears_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "folder" / "model.pt"
    write_bytes_atomic(target, b"first")
    with atomic_write(target, durable=True) as tmp:
        tmp.write_bytes(b"second, longer")
        assert target.read_bytes() == b"first"  # while writing, readers still see the old file
        assert tmp.parent == target.parent
    assert target.read_bytes() == b"second, longer"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.pt"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_temporaries_can_live_in_a_folder_of_their_own(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    write_bytes_atomic(tmp_path / "objects" / "ab" / "key", b"bytes", durable=True, tmp_dir=scratch)
    assert (tmp_path / "objects" / "ab" / "key").read_bytes() == b"bytes" and list(scratch.iterdir()) == []
