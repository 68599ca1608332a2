"""Content-addressed image store: an object's key is the sha256 of its bytes.

A local folder by default, any fsspec URL (s3://bucket/prefix, memory://...) by configuration. Writes are atomic
(temporary file, then rename; object stores publish a single PUT atomically), idempotent (the same bytes twice
store one object) and reads verify the hash. Keys are validated before they touch a path, so no key can name
anything outside the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from inkloop.errors import CorruptObjectError, InvalidKeyError, ObjectNotFoundError, StoreError
from inkloop.files import write_bytes_atomic

_KEY = re.compile(r"[0-9a-f]{64}")
# Object stores make a single PUT visible all at once, so a temporary name would only add a copy.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_key(key: str) -> str:
    """Return the key if it is a lowercase hex sha256 digest; raise InvalidKeyError otherwise."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        shown = key if isinstance(key, str) and len(key) <= 80 else f"{str(key)[:77]}..."
        raise InvalidKeyError(
            f"invalid store key {shown!r}: a key is the 64-character lowercase hex sha256 of the bytes"
        )
    return key


class ImageStore:
    """Objects live at `<root>/objects/<k[:2]>/<k[2:4]>/<k>`; temporary files under `<root>/tmp/`."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") if "://" in url else str(Path(url))
        try:
            # No listings cache: s3fs keeps one per filesystem instance (shared by every ImageStore on this URL in the
            # process), and after keys() it would hide objects other processes write or delete: exists() would say
            # no to an object the server just logged, and put() would skip re-uploading bytes another deleted.
            options = {"use_listings_cache": False} if "://" in self.url else {}
            self.fs, root = fsspec.core.url_to_fs(self.url, **options)
        except ImportError as exc:
            raise StoreError(f"store {url} needs a filesystem package that is not installed: {exc}") from None
        self._root = root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._atomic_put = any(p in _ATOMIC_PUT_PROTOCOLS for p in protocols)

    def __repr__(self) -> str:
        return f"ImageStore({self.url!r})"

    def path_of(self, key: str) -> str:
        """Where the object for `key` lives (a filesystem path for a local store). Validates the key."""
        validate_key(key)
        return f"{self._root}/objects/{key[:2]}/{key[2:4]}/{key}"

    def ensure(self) -> None:
        """Create the store's folders (a no-op on object stores)."""
        if self._local:
            Path(self._root, "objects").mkdir(parents=True, exist_ok=True)
            Path(self._root, "tmp").mkdir(parents=True, exist_ok=True)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path_of(key)))

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store `data` and return its key. Storing bytes already present writes nothing."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"put() takes bytes, not {type(data).__name__}")
        data = bytes(data)
        key = sha256_hex(data)
        path = self.path_of(key)
        if self.fs.exists(path):
            return key
        if self._local:
            self._put_local(path, data)
            return key
        try:
            self._put_remote(path, data)
        except OSError as exc:  # a missing bucket, a refused write: say which store
            raise StoreError(f"cannot write to store {self.url}: {exc}") from exc
        return key

    def _put_remote(self, path: str, data: bytes) -> None:
        if self._atomic_put:
            self.fs.pipe_file(path, data)
        else:
            tmp = f"{self._root}/tmp/{uuid.uuid4().hex}"
            self.fs.makedirs(f"{self._root}/tmp", exist_ok=True)
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(tmp, data)
            try:
                self.fs.mv(tmp, path)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)

    def _put_local(self, path: str, data: bytes) -> None:
        # Temporaries under <root>/tmp share the objects' filesystem, so the rename is atomic; durable, because
        # the request log answers 200 only once the image would survive a power cut.
        write_bytes_atomic(Path(path), data, durable=True, tmp_dir=Path(self._root, "tmp"))

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`, after checking they still hash to it."""
        path = self.path_of(key)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key} in store {self.url}") from None
        actual = sha256_hex(data)
        if actual != key:
            raise CorruptObjectError(f"object {key} in store {self.url} is corrupt: its bytes hash to {actual}")
        return data

    def delete(self, key: str) -> None:
        """Remove the object (a no-op when it is not there)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path_of(key))

    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self.path_of(key)))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key} in store {self.url}") from None

    def keys(self) -> Iterator[str]:
        """Every stored key (files whose names are not keys, such as stray temporaries, are ignored)."""
        base = f"{self._root}/objects"
        if not self.fs.exists(base):
            return
        for path in self.fs.find(base):
            name = path.rsplit("/", 1)[-1]
            if _KEY.fullmatch(name):
                yield name

    def verify(self) -> tuple[int, list[str]]:
        """Re-hash every object: (how many were checked, the keys whose bytes no longer match)."""
        checked, corrupt = 0, []
        for key in self.keys():
            checked += 1
            try:
                self.get(key)
            except CorruptObjectError:
                corrupt.append(key)
            except ObjectNotFoundError:  # deleted since it was listed
                checked -= 1
        return checked, corrupt
