"""Writing a file so that readers see all of it or none of it.

Everything inkloop writes that another process may read while it is being written (a store object, a model
artifact, a cached artifact fetched from the store, the training-line cache) goes through `atomic_write`: the
bytes go to a temporary file in the same folder (so the final rename stays on one filesystem and is atomic),
then `os.replace` puts it in place. A crash leaves at worst a stray temporary file, never a half-written target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(target: Path, *, durable: bool = False, tmp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it replaces `target`, on an exception it is removed.

    `durable` fsyncs the file and then its folder, so the new content survives a power cut once the block ends
    (the request log needs it: a client hears 200 only when the image is on disk). `tmp_dir` must be on the
    same filesystem as `target` (default: the target's folder).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = tmp_dir or target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:24]}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(target.parent, directory=True)


def write_bytes_atomic(target: Path, data: bytes, *, durable: bool = False, tmp_dir: Path | None = None) -> None:
    """`target.write_bytes(data)`, atomically (see atomic_write)."""
    with atomic_write(target, durable=durable, tmp_dir=tmp_dir) as tmp:
        tmp.write_bytes(data)


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Persist a file's bytes, or a folder's entries (a rename is only durable once its folder is synced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:  # some filesystems cannot open a folder for reading; the rename is still atomic
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def new_folder_problem(out: Path) -> str | None:
    """Why `out` cannot be an export's destination (it exists and is not an empty folder), or None."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"--out {out} exists and is not an empty folder: choose a new one (nothing was written)"
    return None


@contextmanager
def staged_folder(out: Path, *, error: Callable[[str], Exception] = FileExistsError) -> Iterator[Path]:
    """A folder to write an export into, beside `out` and renamed to it when the block ends: a failed export leaves
    nothing. `out` must not exist, or be empty: checked again before the rename (nobody wrote there meanwhile),
    when it raises `error(message)`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield staging
        problem = new_folder_problem(out)
        if problem:
            raise error(problem)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
