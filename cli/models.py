"""`inkloop models ...`: the model registry (model/registry.py) from the command line: what each model is, where it
came from, what its gate said, and who promoted it and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.orm import Session

from cli.common import database, group
from db.models import VERSION_LEN, ModelVersion
from inkloop.card import ModelCard
from inkloop.card import TrainingRun as CardTrainingRun
from inkloop.domain import ModelStatus
from inkloop.errors import InkloopError, NotFoundError
from inkloop.store import ImageStore
from inkloop.untrusted import checked_text

if TYPE_CHECKING:
    from db.models import GateReport, Promotion, TrainingRun
    from inkloop.settings import Settings
    from model.registry import ChampionChange

VersionOf = Callable[[int | None], str | None]

models_app = group("The model registry: register, list, show, promote, roll back.")

NO_VERDICT = "—"
NEEDS_REASON = '--force needs a reason on record: add --reason "why it should serve despite its gate"'
_KEY = 10  # width of the field names in `models show`


def _promoted(session: Session, version: str, *, force: bool, reason: str | None) -> ChampionChange:
    """model/registry.py's promotion, its refusals worded with this command's options."""
    from model import registry

    try:
        return registry.promote(session=session, version=version, actor=registry.who(), reason=reason, force=force)
    except registry.PromotionRefused as refused:
        if force:  # the reason is missing
            raise InkloopError(NEEDS_REASON) from None
        raise InkloopError(
            f'{refused}; to promote it anyway add --force --reason "why it should serve regardless"'
        ) from None


def _card(row: ModelVersion) -> ModelCard | None:
    return ModelCard.parse(row.card, source=f"model version {row.version}") if row.card else None


def _model_line(row: ModelVersion, gate: str | None = None) -> str:
    card = _card(row)
    figures = ", ".join(
        f"{label} CER {value:.4f}"
        for label, value in (
            ("val", card.cer("val") if card else None),
            ("held-out", card.cer("heldout_fonts") if card else None),
        )
        if value is not None
    )
    verdict = "" if gate is None else f"{gate:<9} "
    return f"{row.version:<24} {row.status.value:<10} {verdict}{row.created_at:%Y-%m-%d %H:%M}  {figures}"


def _gate_verdict(report: GateReport | None) -> str:
    if report is None:
        return NO_VERDICT
    return "passed" if report.passed else "rejected"


@models_app.command("register")
def models_register(
    artifact: Annotated[Path, typer.Argument(help="A model.pt written by `inkloop train`.")],
    version: Annotated[str | None, typer.Option("--version", help="Default: the version in its model card.")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Make it the champion right away.")] = False,
) -> None:
    """Copy an artifact into the store and record it as a candidate (or the champion, with --promote)."""
    if version is not None:  # before loading the model code: the command line alone is wrong
        checked_text(version, what="--version", one_line=True, max_length=VERSION_LEN)
    from model import registry

    with database() as (settings, session):
        row, new = registry.register(
            session=session, store=ImageStore(settings.store_url), path=artifact, version=version
        )
        if promote:
            row = _promoted(session, row.version, force=False, reason="registered with --promote").champion
        line = _model_line(row)
    typer.echo(("registered " if new else "already registered ") + line)


@models_app.command("list")
def models_list() -> None:
    """Every registered model, oldest first, with its status, its newest gate verdict and CER figures."""
    from db import repo

    with database(write=False) as (_, session):
        rows = repo.list_models(session=session)
        verdicts = {
            row.id: _gate_verdict(next(iter(repo.gate_reports(session=session, model_id=row.id)), None)) for row in rows
        }
        lines = [_model_line(row, verdicts[row.id]) for row in rows]
    if not lines:
        typer.echo("no registered models; serving uses the shipped model")
        return
    typer.echo(f"{'VERSION':<24} {'STATUS':<10} {'GATE':<9} {'CREATED (UTC)':<16}  CER")
    typer.echo("\n".join(lines))


# --- show: one record, printed whole as JSON or as the few lines a person deciding on the model reads ------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def serves(settings: Settings, row: ModelVersion) -> dict[str, str]:
    """What a CPU server answers with for this model (INKLOOP_INFERENCE_RUNTIME=auto) and why: its artifact is
    fetched from the store once (INKLOOP_HOME/cache/models) and its zip read, no network loaded."""
    from model.registry import materialize
    from model.runtimes import cpu_runtime, runtime_reason

    path = materialize(ImageStore(settings.store_url), row.artifact_key, settings.paths.models)
    runtime = cpu_runtime(path)
    card = _card(row)
    return {"runtime": runtime.value, "reason": runtime_reason(card, runtime) if card else ""}


def show_record(session: Session, row: ModelVersion, serving: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the registry knows of one model, JSON-ready: its card, what it serves with (`serving`, from
    `serves`), the run that trained it, every gate report (newest first, with the gate's whole result) and every
    change of champion it took part in. --json prints it, and the text is drawn from it, so the two never
    disagree."""
    from db import repo

    run = repo.training_run_of(session=session, model_id=row.id)
    reports = repo.gate_reports(session=session, model_id=row.id)
    promotions = [p for p in repo.promotions(session=session) if row.id in (p.model_id, p.previous_id)]
    versions = repo.models_by_id(
        session=session,
        ids=[row.parent_id, run.parent_model_id if run is not None else None]
        + [r.champion_id for r in reports]
        + [id_ for p in promotions for id_ in (p.model_id, p.previous_id)],
    )
    datasets: dict[int | None, str | None] = {None: None}
    for dataset_id in {
        row.dataset_version_id,
        run.dataset_version_id if run else None,
        *(r.dataset_version_id for r in reports),
    }:
        if dataset_id is not None:
            found = repo.dataset_by_id(session=session, version_id=dataset_id)
            datasets[dataset_id] = found.version if found is not None else None

    def version_of(model_id: int | None) -> str | None:
        return versions[model_id].version if model_id in versions else None

    card = _card(row)
    # The parent: as registered, else the model the run started from, else what the card says (a model outside
    # this registry, such as the shipped model's own ancestor).
    parent = version_of(row.parent_id) or (version_of(run.parent_model_id) if run is not None else None)
    return {
        "version": row.version,
        "status": row.status.value,
        "artifact_key": row.artifact_key,
        "created_at": _iso(row.created_at),
        "promoted_at": _iso(row.promoted_at),
        "parent": parent or (card.parent.version if card and card.parent else None),
        "parent_registered": parent is not None,
        "dataset_version": datasets.get(row.dataset_version_id)
        or (card.training_data.dataset_version if card and card.training_data else None),
        "card": row.card,
        "serving": serving,
        "training_run": _run_record(run, datasets, version_of) if run is not None else None,
        "gate_reports": [
            {
                "id": r.id,
                "created_at": _iso(r.created_at),
                "passed": r.passed,
                "champion": version_of(r.champion_id),
                "dataset_version": datasets.get(r.dataset_version_id),
                "report_path": r.report_path,
                "checks": r.checks,
            }
            for r in reports
        ],
        "promotions": [_promotion_record(p, version_of) for p in promotions],
    }


def _run_record(run: TrainingRun, datasets: dict[int | None, str | None], version_of: VersionOf) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "steps": run.steps,
        "wall_s": run.wall_s,
        "device": run.device,
        "dataset_version": datasets.get(run.dataset_version_id),
        "parent_model": version_of(run.parent_model_id),
        "run_dir": run.run_dir,
        "tracker": run.tracker,
        "metrics": run.metrics,
        "config": run.config,
        "error": run.error,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def _promotion_record(promotion: Promotion, version_of: VersionOf) -> dict[str, Any]:
    return {
        "id": promotion.id,
        "created_at": _iso(promotion.created_at),
        "model": version_of(promotion.model_id),
        "previous": version_of(promotion.previous_id),
        "kind": promotion.kind.value,
        "actor": promotion.actor,
        "reason": promotion.reason,
        "gate_report_id": promotion.gate_report_id,
    }


def _field(key: str, value: str) -> str:
    return f"{key.ljust(_KEY)}  {value}"


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") + " UTC" if iso else "?"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _training_lines(record: dict[str, Any]) -> dict[str, str]:
    card = record["card"] or {}
    run = record["training_run"]
    val_cer = ((card.get("metrics") or {}).get("val") or {}).get("cer")
    trained = CardTrainingRun.model_validate(card["training"]) if card.get("training") else None
    gpu = trained.gpu if trained else None
    if run is None:
        what = record.get("unregistered") or "no training run recorded (registered by hand)"
        if trained:
            what += f"; its card says {trained.steps_text()} on {trained.device}" + (f" ({gpu})" if gpu else "")
        return {"training": what + (f", val CER {val_cer:.4f}" if val_cer is not None else "")}
    val_cer = ((run["metrics"] or {}).get("val") or {}).get("cer", val_cer)
    facts = [run["status"]]
    if trained is not None and trained.steps == run["steps"]:
        facts.append(trained.steps_text())  # with the planned steps and any cap that stopped it
    elif run["steps"] is not None:
        facts.append(f"{run['steps']} steps")
    where = f"on {run['device']}" + (f" ({gpu})" if gpu else "") if run["device"] else ""
    took = " ".join(part for part in (_duration(run["wall_s"]) if run["wall_s"] is not None else "", where) if part)
    if took:
        facts.append(took)
    if val_cer is not None:
        facts.append(f"val CER {val_cer:.4f}")
    lines = {"training": f"run {run['name']}: " + ", ".join(facts)}
    if run["error"]:
        lines["error"] = run["error"]
    if run["tracker"]:
        lines["curves"] = f"{run['tracker']} (browse every run: inkloop tensorboard)"
    return lines


def _gate_lines(record: dict[str, Any]) -> list[str]:
    reports = record["gate_reports"]
    if not reports:
        hint = " (gate it: inkloop flow run gate)" if record["status"] == ModelStatus.candidate else ""
        return [_field("gate", f"no gate report{hint}")]
    newest = reports[0]
    from model.gates import GateResult

    result = GateResult.stored(newest["checks"], newest["id"])
    against = f" against {newest['champion'] or result.champion}"
    on = f" on {newest['dataset_version']}" if newest["dataset_version"] else ""
    older = f"; {len(reports) - 1} earlier report{'s' * (len(reports) > 2)} in --json" if len(reports) > 1 else ""
    verdict = "passed" if newest["passed"] else "REJECTED"
    lines = [_field("gate", f"{verdict} {_when(newest['created_at'])}{against}{on}{older}")]
    width = max((len(c.name) for c in result.checks), default=0)
    lines += [f"  {'pass' if c.passed else 'FAIL'}  {c.name.ljust(width)}  {c.summary}" for c in result.checks]
    failed = [s for s in result.slices if not s.passed]
    if failed:
        lines.append("  failed slices:")
        for s in failed:
            cers = (
                f"CER {s.champion_cer:.4f} -> {s.candidate_cer:.4f}, "
                if s.champion_cer is not None and s.candidate_cer is not None
                else ""
            )
            lines.append(f"    {s.name} ({s.pages} pages): {cers}{s.note}")
    if newest["report_path"]:
        path = Path(newest["report_path"]).absolute()
        lines.append(f"  report: open {path.as_uri()}" + ("" if path.is_file() else " (the file is missing)"))
    return lines


def _promotion_lines(record: dict[str, Any]) -> list[str]:
    events = record["promotions"]
    if not events:
        return [_field("promotions", "none")]
    lines = ["promotions"]
    for p in events:
        reason = f": {p['reason']}" if p["reason"] and p["reason"] != p["kind"] else ""
        if p["model"] == record["version"]:
            replaced = f", replacing {p['previous']}" if p["previous"] else ""
            lines.append(f"  {_when(p['created_at'])}  {p['kind']:<8} by {p['actor']}{replaced}{reason}")
        else:
            lines.append(
                f"  {_when(p['created_at'])}  retired  when {p['model']} became champion ({p['kind']} by {p['actor']})"
            )
    return lines


def _licence_line(record: dict[str, Any]) -> dict[str, str]:
    """The licences of the pages it learnt from, where its card records them (imported pages carry theirs)."""
    licences = ((record.get("card") or {}).get("training_data") or {}).get("licences") or {}
    if not licences:
        return {}
    return {"licences": ", ".join(f"{n} pages {name}" for name, n in licences.items())}


def render_show(record: dict[str, Any]) -> list[str]:
    """The record as the lines an ML engineer reads before promoting or rolling back."""
    parent = record["parent"] or "none (trained from scratch or registered by hand)"
    if record["parent"] and not record["parent_registered"]:
        parent += " (not in this registry)"
    serving = record.get("serving")
    fields = {
        "model": f"{record['version']} ({record['status']})",
        **({"serves": f"{serving['runtime']} ({serving['reason']})"} if serving else {}),
        "created": _when(record["created_at"]),
        "promoted": _when(record["promoted_at"]) if record["promoted_at"] else "never",
        "parent": parent,
        "dataset": record["dataset_version"] or "not recorded",
        **_licence_line(record),
        **_training_lines(record),
    }
    return [_field(key, value) for key, value in fields.items()] + _gate_lines(record) + _promotion_lines(record)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print everything whole: card, training run, gate reports, promotions.")
    ] = False,
) -> None:
    """What a model is and how it got here: its training run, its newest gate verdict check by check, and its
    promotion history."""
    from db import repo

    with database(write=False) as (settings, session):
        try:
            row = repo.get_model(session=session, version=version)
        except NotFoundError:
            record = shipped_record(version)
            if record is None:
                raise
        else:
            record = show_record(session, row, serves(settings, row))
    if as_json:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    typer.echo("\n".join(render_show(record)))


def shipped_record(version: str) -> dict[str, Any] | None:
    """The shipped model's record while the registry does not hold it yet (a fresh home: serving answers with it,
    and the first retrain registers it as the champion), or None when `version` is not the shipped model's."""
    from model import SHIPPED_MODEL
    from model.registry import read_card
    from model.runtimes import cpu_runtime, runtime_reason

    card = read_card(SHIPPED_MODEL)
    if card.version != version:
        return None
    runtime = cpu_runtime(SHIPPED_MODEL)
    return {
        "version": card.version,
        "status": "shipped, not registered",
        "artifact_key": None,
        "created_at": card.exported_at,
        "promoted_at": None,
        "parent": card.parent.version if card.parent else None,
        "parent_registered": False,
        "dataset_version": card.training_data.dataset_version if card.training_data else None,
        "card": card.as_dict(),
        "serving": {"runtime": runtime.value, "reason": runtime_reason(card, runtime)},
        "training_run": None,
        "unregistered": (
            f"the shipped model ({SHIPPED_MODEL}): serving answers with it while the registry has no champion, "
            "and the first retrain registers it"
        ),
        "gate_reports": [],
        "promotions": [],
    }


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even a model its gate rejected (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why: required with --force, recorded with the promotion.")
    ] = None,
) -> None:
    """Make VERSION the champion; running servers switch to it within INKLOOP_MODEL_REFRESH_SECONDS. Who promoted
    it (the OS user) and why are recorded (`inkloop models show VERSION` lists them)."""
    if force and not (reason and reason.strip()):
        raise InkloopError(NEEDS_REASON)  # before opening the database: the command line alone is wrong
    if reason is not None:
        checked_text(reason, what="--reason")
    with database() as (_, session):
        change = _promoted(session, version, force=force, reason=reason)
    if not change.changed:
        typer.echo(f"{change.champion.version} is already the champion")
        return
    was = change.previous.version if change.previous else "the shipped model"
    forced = f" (forced over a failed gate: {reason})" if change.forced else ""
    typer.echo(f"champion: {change.champion.version} (was {was}){forced}")


@models_app.command("rollback")
def models_rollback() -> None:
    """Make the most recently retired champion the champion again."""
    from model import registry

    with database() as (_, session):
        change = registry.rollback(session=session, actor=registry.who())
        was = change.previous.version if change.previous else "none"
    typer.echo(f"champion: {change.champion.version} (rolled back from {was})")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
