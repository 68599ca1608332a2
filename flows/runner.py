"""Running the flows by name: from the command line (`inkloop flow run`) and as scheduled Prefect deployments
(`inkloop flow serve`).

Which Prefect API the runs go to (PREFECT_API_URL, the local server of `inkloop prefect up`, or a temporary
local API) is chosen by devtools/prefect_server.py before prefect is imported.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from inkloop.errors import InkloopError
from inkloop.schedules import Schedule, parse_schedule, parse_schedules

if TYPE_CHECKING:  # flows.common imports prefect, which must wait until prefect_server.use_prefect has run
    from flows.common import FlowSummary


@dataclass(frozen=True)
class FlowSpec:
    module: str
    flow: str
    params: str
    schedule: str  # its deployment's default schedule (inkloop/schedules.py); INKLOOP_SCHEDULES overrides it
    what: str


# The schedules a team starts from: traffic moves every few minutes; the dataset is frozen at 01:00 UTC and the
# retrain (which runs only with enough new labels, and gates its candidate) follows at 02:00; drift at 06:00, on
# the day that just ended. synth and gate run inside retrain, and the loop runs every step (the demo's way), so
# they are deployed without a schedule.
FLOWS: dict[str, FlowSpec] = {
    "ingest": FlowSpec("flows.ingest", "ingest", "IngestParams", "every 5m", "validate new logged images"),
    "route": FlowSpec("flows.route", "route", "RouteParams", "every 15m", "send images to annotators"),
    "sync": FlowSpec("flows.sync", "sync", "SyncParams", "every 5m", "bring annotations back"),
    "dataset": FlowSpec(
        "flows.dataset", "dataset", "DatasetParams", "0 1 * * *", "freeze annotations into a dataset version"
    ),
    "synth": FlowSpec("flows.synth", "synth", "SynthParams", "off", "synthesize train pages for the newest version"),
    "retrain": FlowSpec(
        "flows.retrain", "retrain", "RetrainParams", "0 2 * * *", "fine-tune the champion on new labels"
    ),
    "gate": FlowSpec("flows.gate", "gate", "GateParams", "off", "gate the newest candidate, promote it"),
    "drift": FlowSpec(
        "flows.drift", "drift", "DriftParams", "0 6 * * *", "compare production with its reference window"
    ),
    "loop": FlowSpec("flows.loop", "loop", "LoopParams", "off", "every step once: ingest to retrain, then drift"),
}


def _spec(name: str) -> FlowSpec:
    try:
        return FLOWS[name]
    except KeyError:
        raise InkloopError(f"no flow named {name!r}; the flows are {', '.join(FLOWS)}") from None


def load(name: str) -> tuple[Any, type[BaseModel]]:
    spec = _spec(name)
    module = importlib.import_module(spec.module)
    return getattr(module, spec.flow), getattr(module, spec.params)


def parse_params(name: str, pairs: list[str]) -> BaseModel:
    """`key=value` pairs into the flow's parameter model; unknown keys and bad values are errors naming them."""
    _, model = load(name)
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InkloopError(f"parameter {pair!r} is not key=value")
        raw[key.strip().replace("-", "_")] = value.strip()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if value.lower() in ("", "none", "null"):
            values[key] = None
        elif value[:1] in "{[":  # a nested step's parameters (the loop's), or a list
            try:
                values[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InkloopError(f"parameter {key}: {value!r} is not valid JSON ({exc.msg})") from None
        else:
            values[key] = value
    try:
        return model.model_validate(values, strict=False)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        known = ", ".join(model.model_fields)
        raise InkloopError(f"invalid parameters for flow {name}: {problems} (parameters: {known})") from None


class FlowFailed(InkloopError):
    """A flow that ended failed but says what it did (the loop: which steps ran, which failed)."""

    def __init__(self, message: str, summary: FlowSummary) -> None:
        super().__init__(message)
        self.summary = summary


def run(name: str, params: BaseModel) -> FlowSummary:
    """Run the flow now; its summary. A flow that raised raises the same; one that ended failed with its summary
    (flows/loop.py) raises FlowFailed carrying it."""
    from flows.common import FlowSummary

    flow, _ = load(name)
    state = flow(params, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, FlowSummary):
        raise InkloopError(f"flow {name} returned {type(result).__name__}, not its summary")
    if not state.is_completed():
        raise FlowFailed(state.message or f"flow {name} ended {state.name}", result)
    return result


def schedules(overrides: str = "", every: dict[str, timedelta] | None = None) -> dict[str, Schedule]:
    """Each flow's schedule: its default, then INKLOOP_SCHEDULES (`overrides`), then `every` (intervals)."""
    plan = {name: parse_schedule(spec.schedule) for name, spec in FLOWS.items()}
    for name, schedule in parse_schedules(overrides).items():
        if name not in FLOWS:
            raise InkloopError(f"INKLOOP_SCHEDULES names no flow {name!r}; the flows are {', '.join(FLOWS)}")
        plan[name] = schedule
    plan.update({name: Schedule(interval=interval) for name, interval in (every or {}).items()})
    return plan


def deployments(every: dict[str, timedelta] | None = None) -> list[Any]:
    """One deployment per flow, on its schedule (settings, then `every`), each with at most
    INKLOOP_FLOW_CONCURRENCY runs at a time: a run scheduled while another is running waits in Prefect's queue
    (ENQUEUE) instead of colliding with it."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from inkloop.settings import load_settings

    settings = load_settings()
    plan = schedules(settings.schedules, every)
    limit = ConcurrencyLimitConfig(limit=settings.flow_concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    result = []
    for name, spec in FLOWS.items():
        flow, _ = load(name)
        schedule = plan[name]
        when: dict[str, Any] = {}
        if schedule.interval is not None:
            when["interval"] = schedule.interval
        elif schedule.cron is not None:
            when["schedule"] = Cron(schedule.cron, timezone="UTC")  # as documented, whatever the server's zone
        result.append(
            flow.to_deployment(
                name=f"inkloop-{name}",
                description=f"inkloop {name}: {spec.what} ({schedule.describe()})",
                tags=["inkloop"],
                concurrency_limit=limit,
                **when,
            )
        )
    return result


# Flows a GPU worker takes when INKLOOP_RETRAIN_POOL names its work pool (retrain gates its candidate in-process).
POOLED = ("retrain",)


def place(every: dict[str, timedelta] | None = None) -> tuple[list[Any], list[Any]]:
    """(deployments this process serves, deployments registered with INKLOOP_RETRAIN_POOL).

    With a pool, the retrain deployment is registered there (schedule and concurrency limit kept; the pool is
    created as a `process` pool when missing) and a worker of that pool runs it, from the same code at the same
    path (compose's GPU worker runs the same image). Without one, every deployment is served here."""
    from inkloop.settings import load_settings

    pool = load_settings().retrain_pool
    served: list[Any] = []
    pooled: list[Any] = []
    for deployment in deployments(every):
        (pooled if pool and deployment.name in {f"inkloop-{n}" for n in POOLED} else served).append(deployment)
    if pooled:
        ensure_pool(pool)
        for deployment in pooled:
            deployment.apply(work_pool_name=pool)
    return served, pooled


def ensure_pool(name: str) -> None:
    """A `process` work pool called `name` (what `prefect worker start --pool NAME --type process` makes)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    # Already there after a restart, or made first by the pool's worker.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def serve(every: dict[str, timedelta] | None = None) -> None:
    """Run the deployments here until interrupted (Prefect's `serve`: this process is the worker), except those
    registered with INKLOOP_RETRAIN_POOL, which that pool's workers run."""
    from prefect import serve as prefect_serve

    served, _ = place(every)
    prefect_serve(*served)
