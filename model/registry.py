"""The model registry: artifacts live in the content-addressed store, their versions and statuses in the database
(`model_versions`, at most one champion). Serving loads the champion from here; with none registered it serves
the shipped model.

An artifact's model card is read straight from the TorchScript zip, so registering a model needs no torch, and
importing this module imports none (serving's model watcher and the CLI's `models` commands stay light)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from sqlalchemy.orm import Session

from db import repo
from db.models import ModelVersion
from inkloop.card import CardError, ModelCard
from inkloop.errors import InkloopError, NotFoundError
from inkloop.files import write_bytes_atomic
from inkloop.store import ImageStore, validate_key

CARD_MEMBER = "extra/card.json"


class RegistryError(InkloopError):
    """A file that is not a model artifact, or a registry that cannot serve what it lists."""


def read_card(path: Path) -> ModelCard:
    """The model card inside an exported artifact (`model/export.py`), or RegistryError saying why not."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith(f"/{CARD_MEMBER}")), None)
            if member is None:
                raise RegistryError(f"{path} is a TorchScript file without a model card; export it with inkloop")
            text = archive.read(member)
    except FileNotFoundError:
        raise RegistryError(f"no model file at {path}") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise RegistryError(f"{path} is not a model artifact (not a TorchScript archive)") from None
    try:
        return ModelCard.parse(text, source=str(path))
    except CardError as exc:
        raise RegistryError(str(exc)) from None


def register(
    *,
    session: Session,
    store: ImageStore,
    path: Path,
    version: str | None = None,
    dataset_version_id: int | None = None,
) -> tuple[ModelVersion, bool]:
    """Put the artifact in the store and record it as a candidate. Registering the same file under the same
    version again changes nothing; another file under a taken version is a ConflictError.
    Returns the row and whether it is new."""
    card = read_card(path)
    version = version or card.version
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
    parent = card.parent.version if card.parent is not None else None
    if parent is not None:
        try:
            repo.get_model(session=session, version=parent)
        except NotFoundError:
            parent = None  # lineage outside this registry stays in the card
    row = repo.register_model(
        session=session,
        version=version,
        artifact_key=key,
        card=card.as_dict(),
        metrics={name: m.model_dump(mode="json", exclude_none=True) for name, m in card.metrics.items()},
        parent_version=parent,
        dataset_version_id=dataset_version_id,
    )
    return row, True


def materialize(store: ImageStore, key: str, cache_dir: Path) -> Path:
    """A local file holding the artifact `key` (fetched once from the store, verified, then reused)."""
    validate_key(key)
    target = cache_dir / f"{key}.pt"
    if target.is_file():
        return target
    write_bytes_atomic(target, store.get(key))  # get raises if the object is missing or corrupt
    return target


def ensure_champion(*, session: Session, store: ImageStore, shipped: Path) -> ModelVersion:
    """The champion; with none registered yet, the shipped model (what serving answers with then) is registered
    and made the champion, so a retrain has a parent in the registry and lineage starts there."""
    champion = repo.get_champion(session=session)
    if champion is not None:
        return champion
    row, _ = register(session=session, store=store, path=shipped)
    return repo.promote_model(
        session=session, version=row.version, actor="inkloop", reason="first retrain: the shipped model is the champion"
    )
