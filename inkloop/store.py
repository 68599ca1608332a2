"""Content-addressed image store: an object's key is the sha256 of its bytes.

A local folder by default, any fsspec URL (s3://bucket/prefix, memory://...) by configuration. Writes are atomic
(temporary file, then rename; object stores publish a single PUT atomically), idempotent (the same bytes twice
store one object) and reads verify the hash. Keys are validated before they touch a path, so no key can name
anything outside the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from inkloop.errors import CorruptObjectError, InvalidKeyError, ObjectNotFoundError, StoreError

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
            self.fs, root = fsspec.core.url_to_fs(self.url)
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

    def put(self, data: bytes) -> str:
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
        elif self._atomic_put:
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
        return key

    def _put_local(self, path: str, data: bytes) -> None:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(self._root, "tmp")
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # Same filesystem as the target, so os.replace is an atomic rename: readers see all bytes or none.
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=final.name[:16] + ".")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

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
        return checked, corrupt


def _fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry must reach the disk too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
