"""The model registry's rows: model versions and their statuses, promotions, training runs and gate reports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import GateReport, ModelVersion, Promotion, TrainingRun, utcnow
from db.repo.common import add_unique
from inkloop.domain import ModelStatus, PromotionKind, RunStatus
from inkloop.errors import ConflictError, NotFoundError


def register_model(
    *,
    session: Session,
    version: str,
    artifact_key: str,
    card: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    parent_version: str | None = None,
    dataset_version_id: int | None = None,
) -> ModelVersion:
    parent_id = get_model(session=session, version=parent_version).id if parent_version else None
    row = ModelVersion(
        version=version,
        artifact_key=artifact_key,
        card=card,
        metrics=metrics,
        parent_id=parent_id,
        dataset_version_id=dataset_version_id,
        status=ModelStatus.candidate,
    )
    add_unique(session, row, f"model version {version!r} is already registered")
    return row


def get_model(*, session: Session, version: str) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"no model version {version!r}")
    return row


def get_champion(*, session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == ModelStatus.champion))


def previous_champion(*, session: Session) -> ModelVersion | None:
    """The most recently retired champion: where a rollback goes."""
    query = select(ModelVersion).where(ModelVersion.status == ModelStatus.retired)
    return session.scalar(query.order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc()).limit(1))


def list_models(*, session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id)))


def promote_model(
    *,
    session: Session,
    version: str,
    allow_rejected: bool = False,
    actor: str = "inkloop",
    reason: str | None = None,
    gate_report_id: int | None = None,
    kind: PromotionKind | None = None,
) -> ModelVersion:
    """Make `version` the champion; the previous champion becomes retired. Promoting a retired model is a rollback.
    Every change of champion is recorded in `promotions` with who did it and why (a model its gate rejected is
    promoted only with `allow_rejected`, recorded as forced)."""
    model = get_model(session=session, version=version)
    if model.status is ModelStatus.champion:
        return model
    if model.status is ModelStatus.rejected and not allow_rejected:
        raise ConflictError(f"model version {version!r} was rejected by its gate; promote it explicitly to override")
    if kind is None:
        kind = {
            ModelStatus.rejected: PromotionKind.forced,
            ModelStatus.retired: PromotionKind.rollback,
        }.get(model.status, PromotionKind.manual)
    current = session.scalar(select(ModelVersion).where(ModelVersion.status == ModelStatus.champion).with_for_update())
    try:
        with session.begin_nested():
            if current is not None:
                current.status = ModelStatus.retired
                session.flush()  # demote first: the partial unique index allows one champion at a time
            model.status = ModelStatus.champion
            model.promoted_at = utcnow()
            session.add(
                Promotion(
                    model_id=model.id,
                    previous_id=current.id if current is not None else None,
                    gate_report_id=gate_report_id,
                    kind=kind,
                    actor=actor,
                    reason=reason,
                )
            )
    except IntegrityError:
        raise ConflictError(f"another promotion ran at the same time as {version!r}; rerun") from None
    return model


def reject_model(*, session: Session, version: str) -> ModelVersion:
    """Mark a candidate rejected (its gate report says why). A champion or retired model is left as it is."""
    model = get_model(session=session, version=version)
    if model.status is ModelStatus.candidate:
        model.status = ModelStatus.rejected
        session.flush()
    return model


def promotions(*, session: Session, model_id: int | None = None) -> list[Promotion]:
    """Changes of champion, oldest first (of one model, when given)."""
    query = select(Promotion).order_by(Promotion.created_at, Promotion.id)
    if model_id is not None:
        query = query.where(Promotion.model_id == model_id)
    return list(session.scalars(query))


def training_run_by_key(*, session: Session, run_key: str) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.run_key == run_key))


def start_training_run(
    *,
    session: Session,
    run_key: str,
    dataset_version_id: int | None,
    parent_model_id: int | None,
    config: dict[str, Any],
    device: str,
    run_dir: str,
    tracker: str | None,
) -> TrainingRun:
    """A `running` row for a new training run, named after its id (`m-0007`: the candidate's version)."""
    row = TrainingRun(
        run_key=run_key,
        dataset_version_id=dataset_version_id,
        parent_model_id=parent_model_id,
        config=config,
        device=device,
        run_dir=run_dir,
        tracker=tracker,
        status=RunStatus.running,
    )
    add_unique(session, row, f"a training run with key {run_key[:12]} already exists")
    row.name = f"m-{row.id:04d}"
    session.flush()
    return row


def finish_training_run(
    *,
    session: Session,
    run: TrainingRun,
    status: RunStatus,
    result_model_id: int | None = None,
    steps: int | None = None,
    wall_s: float | None = None,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> TrainingRun:
    run.status = status
    run.result_model_id = result_model_id
    run.steps, run.wall_s, run.metrics, run.error = steps, wall_s, metrics, error
    run.finished_at = utcnow()
    session.flush()
    return run


def restart_training_run(*, session: Session, run: TrainingRun) -> TrainingRun:
    """A failed run taken up again under the same key and name: running, its error and end cleared."""
    run.status, run.error, run.finished_at = RunStatus.running, None, None
    session.flush()
    return run


def place_training_run(*, session: Session, run: TrainingRun, run_dir: str, tracker: str | None) -> TrainingRun:
    """Where the run writes its files and its curves (named after the run, so known only once it has a name)."""
    run.run_dir, run.tracker = run_dir, tracker
    session.flush()
    return run


def training_runs(*, session: Session, status: RunStatus | None = None) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(TrainingRun.id)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    return list(session.scalars(query))


def training_run_of(*, session: Session, model_id: int) -> TrainingRun | None:
    """The run that produced a model (None for a model registered by hand)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.result_model_id == model_id))


def add_gate_report(
    *,
    session: Session,
    candidate_id: int,
    champion_id: int | None,
    dataset_version_id: int | None,
    passed: bool,
    checks: dict[str, Any],
    report_path: str | None,
) -> GateReport:
    row = GateReport(
        candidate_id=candidate_id,
        champion_id=champion_id,
        dataset_version_id=dataset_version_id,
        passed=passed,
        checks=checks,
        report_path=report_path,
    )
    session.add(row)
    session.flush()
    return row


def gate_reports(*, session: Session, model_id: int) -> list[GateReport]:
    """A model's gate reports, newest first."""
    query = select(GateReport).where(GateReport.candidate_id == model_id)
    return list(session.scalars(query.order_by(GateReport.created_at.desc(), GateReport.id.desc())))


def newest_candidate(*, session: Session) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.status == ModelStatus.candidate)
    return session.scalar(query.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))


def models_by_id(*, session: Session, ids: Iterable[int | None]) -> dict[int, ModelVersion]:
    wanted = [i for i in set(ids) if i is not None]
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(wanted)))}
