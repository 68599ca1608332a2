"""The model registry: artifacts live in the content-addressed store, their versions and statuses in the database
(`model_versions`, at most one champion). Serving loads the champion from here; with none registered it serves
the shipped model.

An artifact's model card is read straight from the TorchScript zip, so registering a model needs no torch."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import repo
from db.models import ModelVersion
from inkloop.errors import InkloopError, NotFoundError
from inkloop.store import ImageStore, validate_key

CARD_MEMBER = "extra/card.json"


class RegistryError(InkloopError):
    """A file that is not a model artifact, or a registry that cannot serve what it lists."""


def read_card(path: Path) -> dict[str, Any]:
    """The model card inside an exported artifact (`model/export.py`), or RegistryError saying why not."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith(f"/{CARD_MEMBER}")), None)
            if member is None:
                raise RegistryError(f"{path} is a TorchScript file without a model card; export it with inkloop")
            card = json.loads(archive.read(member))
    except FileNotFoundError:
        raise RegistryError(f"no model file at {path}") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise RegistryError(f"{path} is not a model artifact (not a TorchScript archive)") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} has an unreadable model card: {exc}") from None
    if not isinstance(card, dict) or not isinstance(card.get("version"), str) or not card["version"]:
        raise RegistryError(f"{path} has a model card without a version")
    return card


def register(
    *, session: Session, store: ImageStore, path: Path, version: str | None = None
) -> tuple[ModelVersion, bool]:
    """Put the artifact in the store and record it as a candidate. Registering the same file under the same
    version again changes nothing; another file under a taken version is a ConflictError.
    Returns the row and whether it is new."""
    card = read_card(path)
    version = version or card["version"]
    data = Path(path).read_bytes()
    try:
        existing = repo.get_model(session=session, version=version)
    except NotFoundError:
        existing = None
    key = store.put(data)
    if existing is not None:
        if existing.artifact_key != key:
            raise RegistryError(f"model version {version!r} is already registered with a different artifact")
        return existing, False
    parent = (card.get("parent") or {}).get("version") if isinstance(card.get("parent"), dict) else None
    if parent is not None:
        try:
            repo.get_model(session=session, version=parent)
        except NotFoundError:
            parent = None  # lineage outside this registry stays in the card
    row = repo.register_model(
        session=session,
        version=version,
        artifact_key=key,
        card=card,
        metrics=card.get("metrics"),
        parent_version=parent,
    )
    return row, True


def materialize(store: ImageStore, key: str, cache_dir: Path) -> Path:
    """A local file holding the artifact `key` (fetched once from the store, verified, then reused)."""
    validate_key(key)
    target = cache_dir / f"{key}.pt"
    if target.is_file():
        return target
    data = store.get(key)  # raises if missing or corrupt
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key[:12]}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
