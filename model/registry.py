"""The model registry: artifacts live in the content-addressed store, their versions and statuses in the database
(`model_versions`, at most one champion). Serving loads the champion from here; with none registered it serves
the shipped model.

Every change of status goes through this module, under one rule: a candidate becomes the champion when its gate
passed (`record_gate`) or when a person promotes it (`promote`); a model its gate rejected serves only when a
person forces it, with a reason on record; `rollback` brings back the champion before. The gate flow and the CLI
(`inkloop models promote|rollback`) both call these functions.

An artifact's model card is read straight from the TorchScript zip, so registering a model needs no torch, and
importing this module imports none (serving's model watcher and the CLI's `models` commands stay light)."""

from __future__ import annotations

import getpass
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from db import repo
from db.models import ModelVersion
from inkloop.card import CardError, ModelCard
from inkloop.domain import ModelStatus, PromotionKind
from inkloop.errors import InkloopError, NotFoundError
from inkloop.files import write_bytes_atomic
from inkloop.store import ImageStore, validate_key
from model.gates import GateResult

CARD_MEMBER = "extra/card.json"


class RegistryError(InkloopError):
    """A file that is not a model artifact, or a registry that cannot serve what it lists."""


class PromotionRefused(RegistryError):
    """A promotion the rule does not allow: a model its gate rejected, without force; force without a reason."""

    def __init__(self, message: str, *, version: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.version = version
        self.failures = failures or []


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


def who() -> str:
    """The OS user running this process, for the promotions record ("unknown" in a bare container)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):  # no LOGNAME/USER and no passwd entry for the uid
        return "unknown"


@dataclass(frozen=True)
class ChampionChange:
    """What a promotion did: the champion now, the one it replaced (None: the shipped model was serving), and
    whether anything changed (promoting the champion changes nothing)."""

    champion: ModelVersion
    previous: ModelVersion | None
    changed: bool
    forced: bool = False


def promote(
    *,
    session: Session,
    version: str,
    actor: str,
    reason: str | None = None,
    force: bool = False,
    kind: PromotionKind | None = None,
) -> ChampionChange:
    """Make `version` the champion, recording who and why; running servers switch to it on their next refresh.
    A model its gate rejected is promoted only with `force` and a `reason` (recorded with the gate report it
    overrode); a retired model coming back is a rollback."""
    row = repo.get_model(session=session, version=version)
    if row.status is ModelStatus.champion:
        return ChampionChange(champion=row, previous=None, changed=False)
    if force and not (reason and reason.strip()):
        raise PromotionRefused("a forced promotion needs a reason on record", version=version)
    rejected = row.status is ModelStatus.rejected
    reports = repo.gate_reports(session=session, model_id=row.id) if rejected else []
    if rejected and not force:
        failures = GateResult.stored(reports[0].checks, reports[0].id).failures() if reports else []
        because = f" ({'; '.join(failures)})" if failures else ""
        raise PromotionRefused(
            f"model version {version!r} was rejected by its gate{because}", version=version, failures=failures
        )
    previous = repo.get_champion(session=session)
    champion = repo.promote_model(
        session=session,
        version=version,
        allow_rejected=force,
        actor=actor,
        reason=reason,
        gate_report_id=reports[0].id if reports else None,  # the verdict a forced promotion overrode
        kind=kind,
    )
    return ChampionChange(champion=champion, previous=previous, changed=True, forced=rejected)


def rollback(*, session: Session, actor: str) -> ChampionChange:
    """Make the most recently retired champion the champion again."""
    previous = repo.previous_champion(session=session)
    if previous is None:
        raise RegistryError("no earlier champion to roll back to")
    return promote(
        session=session, version=previous.version, actor=actor, reason="rollback", kind=PromotionKind.rollback
    )


@dataclass(frozen=True)
class GateRecord:
    """What recording a gate run did: its report row, and whether the candidate became the champion."""

    report_id: int
    promoted: bool


def record_gate(
    *,
    session: Session,
    result: GateResult,
    dataset_version_id: int | None,
    report_path: str,
    promote: bool,
    actor: str,
) -> GateRecord:
    """Keep a gate run's result and act on its verdict, in the caller's transaction: a candidate that passed
    becomes the champion (unless `promote` is false: report only), one that failed is rejected. A model already
    promoted or retired keeps its status; a rejected one that passes a later gate stays rejected until a person
    promotes it."""
    candidate = repo.get_model(session=session, version=result.candidate)
    champion = repo.get_model(session=session, version=result.champion)
    report = repo.add_gate_report(
        session=session,
        candidate_id=candidate.id,
        champion_id=champion.id,
        dataset_version_id=dataset_version_id,
        passed=result.passed,
        checks=result.model_dump(mode="json"),
        report_path=report_path,
    )
    promoted = False
    if result.passed and promote and candidate.status is ModelStatus.candidate:
        repo.promote_model(
            session=session,
            version=candidate.version,
            actor=actor,
            reason=f"passed every gate against {champion.version}",
            gate_report_id=report.id,
            kind=PromotionKind.gate,
        )
        promoted = True
    elif not result.passed:
        repo.reject_model(session=session, version=candidate.version)
    return GateRecord(report_id=report.id, promoted=promoted)
