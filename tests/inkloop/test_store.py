"""Image store: content addressing, idempotency, atomic writes, corruption detection, keys that cannot escape."""

from __future__ import annotations

import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest

from inkloop.errors import CorruptObjectError, InvalidKeyError, ObjectNotFoundError, StoreError
from inkloop.store import ImageStore

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "store"))


@pytest.fixture
def memory_store() -> ImageStore:
    return ImageStore(f"memory://inkloop-test-{uuid.uuid4().hex}")


def test_key_is_sha256_and_bytes_round_trip(store: ImageStore) -> None:
    key = store.put(PNG_BYTES)
    assert key == hashlib.sha256(PNG_BYTES).hexdigest()
    assert store.get(key) == PNG_BYTES
    assert store.exists(key)
    assert store.size(key) == len(PNG_BYTES)


def test_same_bytes_twice_store_one_object(store: ImageStore, tmp_path: Path) -> None:
    first = store.put(PNG_BYTES)
    second = store.put(bytearray(PNG_BYTES))
    assert first == second
    files = _files(tmp_path / "store")
    assert [f.name for f in files] == [first]  # one object, and no temporary left behind
    assert list(store.keys()) == [first]


def test_concurrent_puts_of_the_same_bytes_give_one_object(store: ImageStore, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: store.put(PNG_BYTES), range(32)))
    assert len(keys) == 1
    assert [f.name for f in _files(tmp_path / "store")] == list(keys)


def test_missing_object_is_a_clear_error(store: ImageStore) -> None:
    with pytest.raises(ObjectNotFoundError, match="no object"):
        store.get("0" * 64)
    with pytest.raises(ObjectNotFoundError):
        store.size("0" * 64)


def test_corruption_is_detected_on_read_and_by_verify(store: ImageStore) -> None:
    key = store.put(PNG_BYTES)
    other = store.put(b"another image")
    Path(store.path_of(key)).write_bytes(PNG_BYTES[:-1] + b"\x00")
    with pytest.raises(CorruptObjectError, match=f"object {key}.*corrupt"):
        store.get(key)
    assert store.verify() == (2, [key])
    assert store.get(other) == b"another image"


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "ab/../../../etc/passwd",
        "../" + "a" * 61,
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "",
        "a" * 62 + "/.",
        "a" * 64 + "\n",
    ],
)
def test_keys_that_could_escape_the_store_are_refused(store: ImageStore, key: str) -> None:
    for operation in (store.get, store.exists, store.path_of, store.size):
        with pytest.raises(InvalidKeyError, match="invalid store key"):
            operation(key)


def test_non_string_key_is_refused(store: ImageStore) -> None:
    with pytest.raises(InvalidKeyError):
        store.get(None)  # type: ignore[arg-type]


def test_put_refuses_non_bytes(store: ImageStore) -> None:
    with pytest.raises(StoreError, match="takes bytes"):
        store.put("text")  # type: ignore[arg-type]


def test_failed_write_leaves_nothing_behind(store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.put(PNG_BYTES)
    monkeypatch.undo()
    assert _files(tmp_path / "store") == []
    assert not store.exists(hashlib.sha256(PNG_BYTES).hexdigest())
    assert store.get(store.put(PNG_BYTES)) == PNG_BYTES  # and the store still works


def test_objects_are_sharded_under_the_root(store: ImageStore, tmp_path: Path) -> None:
    key = store.put(PNG_BYTES)
    assert Path(store.path_of(key)) == tmp_path / "store" / "objects" / key[:2] / key[2:4] / key


def test_fsspec_store_has_the_same_contract(memory_store: ImageStore) -> None:
    key = memory_store.put(PNG_BYTES)
    assert memory_store.put(PNG_BYTES) == key
    assert list(memory_store.keys()) == [key]
    assert memory_store.get(key) == PNG_BYTES
    memory_store.fs.pipe_file(memory_store.path_of(key), b"tampered")
    with pytest.raises(CorruptObjectError):
        memory_store.get(key)
    with pytest.raises(InvalidKeyError):
        memory_store.get("../../etc/passwd")
    fsspec.filesystem("memory").rm(memory_store.url.removeprefix("memory://"), recursive=True)


def test_generic_fsspec_path_writes_through_a_temporary(store: ImageStore, tmp_path: Path) -> None:
    # A filesystem that is neither local nor an object store (sftp, hdfs, ...) gets temp-then-move; drive that
    # code path against a real filesystem.
    store._local = False
    store._atomic_put = False
    key = store.put(PNG_BYTES)
    assert store.get(key) == PNG_BYTES
    assert [f.name for f in _files(tmp_path / "store")] == [key]


def test_a_missing_filesystem_package_is_a_clear_error() -> None:
    # oss:// is a protocol fsspec knows but whose package (ossfs) inkloop does not install.
    with pytest.raises(StoreError, match="store oss://bucket/x needs a filesystem package that is not installed"):
        ImageStore("oss://bucket/x")
