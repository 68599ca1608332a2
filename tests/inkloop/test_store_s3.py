"""The store's contract on S3 (moto's server on 127.0.0.1, tests/support/s3.py), as INKLOOP_STORE_URL=s3://...
configures it for scale: one atomic PUT per object, reads that verify the hash, verify() finding bit rot, keys
that never reach the bucket unless valid, and another process's writes and deletes seen at once."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import pytest

from inkloop.errors import CorruptObjectError, InvalidKeyError, ObjectNotFoundError, StoreError
from inkloop.store import ImageStore, sha256_hex
from tests.support.paths import REPO


def _object_name(s3_url: str, key: str) -> tuple[str, str]:
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    return bucket, f"{prefix}/objects/{key[:2]}/{key[2:4]}/{key}"


def test_put_get_exists_keys_size_delete(s3_url: str) -> None:
    store = ImageStore(s3_url)
    key = store.put(b"page one")
    assert key == sha256_hex(b"page one")
    assert store.put(b"page one") == key  # the same bytes twice are one object
    assert store.exists(key) and store.get(key) == b"page one" and store.size(key) == 8
    assert list(store.keys()) == [key]
    assert store.verify() == (1, [])
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    store.delete(key)  # deleting what is not there is a no-op


def test_a_put_is_one_object_with_no_temporary_copy(s3_url: str, s3_client: Any) -> None:
    key = ImageStore(s3_url).put(b"x")
    bucket, name = _object_name(s3_url, key)
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == [name]


def test_a_corrupt_object_is_found_by_get_and_verify(s3_url: str, s3_client: Any) -> None:
    store = ImageStore(s3_url)
    good, bad = store.put(b"good"), store.put(b"bad")
    bucket, name = _object_name(s3_url, bad)
    s3_client.put_object(Bucket=bucket, Key=name, Body=b"\x89PNG damaged")  # bit rot, from outside inkloop
    with pytest.raises(CorruptObjectError, match="its bytes hash to"):
        store.get(bad)
    assert store.verify() == (2, [bad])
    assert store.get(good) == b"good"


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "0" * 63, "g" * 64, "0" * 64 + "/x", ""])
def test_invalid_keys_never_reach_the_bucket(s3_url: str, key: str) -> None:
    store = ImageStore(s3_url)
    for operation in (store.get, store.exists, store.delete, store.size, store.path_of):
        with pytest.raises(InvalidKeyError):
            operation(key)


def test_a_missing_bucket_is_a_store_error(s3_endpoint: str) -> None:
    with pytest.raises(StoreError, match="no-such-bucket"):
        ImageStore("s3://no-such-bucket-here/store").put(b"page")


_OTHER_PROCESS = """
import sys
from inkloop.store import ImageStore
store = ImageStore(sys.argv[1])
if sys.argv[2] == "put":
    print(store.put(bytes.fromhex(sys.argv[3])))
else:
    store.delete(sys.argv[3])
"""


def _other_process(url: str, env: dict[str, str], operation: str, argument: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, url, operation, argument],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_what_another_process_writes_and_deletes_is_seen_at_once(s3_url: str, s3_env: dict[str, str]) -> None:
    # As the server and the ingest flow share a bucket: the other process writes next to an object this one has
    # listed (same objects/ab/cd/ folder), then deletes it.
    first = b"first"
    folder = sha256_hex(first)[:4]
    second = next(b"n%d" % i for i in itertools.count() if sha256_hex(b"n%d" % i)[:4] == folder)
    store = ImageStore(s3_url)
    k1 = store.put(first)
    assert list(store.keys()) == [k1]
    k2 = _other_process(s3_url, s3_env, "put", second.hex())
    assert store.exists(k2) and store.get(k2) == second
    assert store.verify() == (2, [])
    _other_process(s3_url, s3_env, "delete", k1)
    assert not store.exists(k1)
    store.put(first)  # really uploaded again, not skipped on a stale listing
    assert ImageStore(s3_url).get(k1) == first
