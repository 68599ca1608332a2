"""Running the flows by name: from the command line (`inkloop flow run`) and as scheduled Prefect deployments
(`inkloop flow serve`).

Which Prefect API the runs go to (PREFECT_API_URL, the local server, or a temporary local API) is chosen by
devtools/prefect_server.py before prefect is imported.

Each flow declares the services it cannot work without (`FlowSpec.needs`), and `check_services` asks them once
before a run from the command line starts, before prefect is even imported. `inkloop flow run route` with Label
Studio down used to fail only after Prefect had started and its first task had tried 4 times over 22 s: 33-34 s on
2 cores, 41 s (median of 3) with a load average of 7, 62 s on a busier machine. The check fails it in 3-4 s at that
load, most of it Python importing the CLI and Label Studio's SDK, with one line naming the service, its URL and how
to start it. The loop needs Label Studio only for its route and sync steps: it still runs the others and reports
those two failed, but they fail at their first try instead of after their retries (`flows.common.not_retried`).
Scheduled runs are not checked: there a Label Studio that is restarting is what the retries are for.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from inkloop.errors import InkloopError, LabelStudioUnavailableError, first_line
from inkloop.schedules import Schedule, parse_schedule, parse_schedules
from inkloop.settings import Settings

if TYPE_CHECKING:  # flows.common imports prefect, which must wait until prefect_server.use_prefect has run
    from flows.common import FlowSummary


# Seconds the check of a service may take. Label Studio answers its two requests in about 0.1 s and a stopped one
# refuses the connection at once; this bounds only a host that drops the packets.
SERVICE_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Service:
    """A service outside the database that a flow cannot do its work without."""

    name: str  # for messages: "Label Studio"
    check: Callable[[Settings], object]  # raises an InkloopError saying why it cannot be used
    down: type[Exception]  # what `check` and the flows' tasks raise while it does not answer
    how_to_start: Callable[[Settings], str]  # ends the message when it is down


def _check_label_studio(settings: Settings) -> str:
    from annotation.client import LabelStudioClient

    with LabelStudioClient.from_settings(settings, timeout_s=SERVICE_CHECK_TIMEOUT_S) as client:
        return client.check()  # answers, and accepts the token


def _start_label_studio(settings: Settings) -> str:
    if urlsplit(settings.label_studio_url).hostname in ("127.0.0.1", "localhost"):
        return "start it: inkloop labelstudio up"
    return "start it, or set INKLOOP_LABEL_STUDIO_URL to one that runs"


LABEL_STUDIO = Service("Label Studio", _check_label_studio, LabelStudioUnavailableError, _start_label_studio)


@dataclass(frozen=True)
class FlowSpec:
    module: str
    flow: str
    params: str
    schedule: str  # its deployment's default schedule (inkloop/schedules.py); INKLOOP_SCHEDULES overrides it
    what: str
    needs: tuple[Service, ...] = ()  # checked before a run from the command line starts
    # The flows it runs as steps (the loop, flows/loop.py): a service only a step needs fails that step, not the run.
    steps: tuple[str, ...] = ()


# The schedules a team starts from: traffic moves every few minutes; the dataset is frozen at 01:00 UTC and the
# retrain (which runs only with enough new labels, and gates its candidate) follows at 02:00; drift at 06:00, on
# the day that just ended. synth and gate run inside retrain, and the loop runs every step (the demo's way), so
# they are deployed without a schedule.
FLOWS: dict[str, FlowSpec] = {
    "ingest": FlowSpec("flows.ingest", "ingest", "IngestParams", "every 5m", "validate new logged images"),
    "route": FlowSpec(
        "flows.route", "route", "RouteParams", "every 15m", "send images to annotators", needs=(LABEL_STUDIO,)
    ),
    "sync": FlowSpec("flows.sync", "sync", "SyncParams", "every 5m", "bring annotations back", needs=(LABEL_STUDIO,)),
    "dataset": FlowSpec(
        "flows.dataset", "dataset", "DatasetParams", "0 1 * * *", "freeze annotations into a dataset version"
    ),
    "import-pages": FlowSpec(
        "flows.groundtruth", "import_ground_truth", "ImportParams", "off", "import PAGE XML or ALTO ground truth"
    ),
    "synth": FlowSpec("flows.synth", "synth", "SynthParams", "off", "synthesize train pages for the newest version"),
    "retrain": FlowSpec(
        "flows.retrain", "retrain", "RetrainParams", "0 2 * * *", "fine-tune the champion on new labels"
    ),
    "gate": FlowSpec("flows.gate", "gate", "GateParams", "off", "gate the newest candidate, promote it"),
    "drift": FlowSpec(
        "flows.drift", "drift", "DriftParams", "0 6 * * *", "compare production with its reference window"
    ),
    "loop": FlowSpec(
        "flows.loop",
        "loop",
        "LoopParams",
        "off",
        "every step once: ingest to retrain, then drift",
        steps=("ingest", "route", "sync", "dataset", "retrain", "drift"),
    ),
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


@dataclass(frozen=True)
class ServiceDown:
    """A service that could not be used before a run, and the run's steps that need it."""

    service: Service
    reason: str  # the check's one line: "Label Studio at http://127.0.0.1:8080 is not reachable: ..."
    hint: str  # how to start it; "" when it answered but refused (the reason says what to change)
    steps: tuple[str, ...]

    def describe(self) -> str:
        if not self.hint:
            return f"{self.reason}: {', '.join(self.steps)} will fail"
        return f"{self.reason}: {', '.join(self.steps)} will fail at their first try ({self.hint})"


def check_services(name: str, settings: Settings) -> list[ServiceDown]:
    """Ask each service flow `name` or one of its steps needs whether it can be used, once each; this imports no
    prefect, so it runs before a Prefect API is chosen or started.

    A service the flow itself needs that is down raises its error at once, in one line naming the service, its
    URL and how to start it; any other refusal (a wrong token) raises as the check raised it. The services that only
    some of its steps need and that cannot be used come back, with those steps: the flow runs its other steps, and
    `run` makes those fail at their first try.
    """
    spec = _spec(name)
    steps_needing: dict[Service, list[str]] = {service: [] for service in spec.needs}
    for step in spec.steps:
        for service in _spec(step).needs:
            steps_needing.setdefault(service, []).append(step)
    found: list[ServiceDown] = []
    for service, steps in steps_needing.items():
        try:
            service.check(settings)
        except InkloopError as exc:
            hint = service.how_to_start(settings) if isinstance(exc, service.down) else ""
            if service not in spec.needs:
                found.append(ServiceDown(service, reason=first_line(exc), hint=hint, steps=tuple(steps)))
            elif hint:
                raise service.down(f"{first_line(exc)}: {name} cannot run without it; {hint}") from None
            else:
                raise
    return found


class FlowFailed(InkloopError):
    """A flow that ended failed but says what it did (the loop: which steps ran, which failed)."""

    def __init__(self, message: str, summary: FlowSummary) -> None:
        super().__init__(message)
        self.summary = summary


def run(name: str, params: BaseModel, *, down: Sequence[ServiceDown] = ()) -> FlowSummary:
    """Run the flow now; its summary. A flow that raised raises the same; one that ended failed with its summary
    (flows/loop.py) raises FlowFailed carrying it. A task failing on a service in `down` (`check_services` found it
    down) fails at its first try."""
    from flows.common import FlowSummary, not_retried

    flow, _ = load(name)
    with not_retried(*(d.service.down for d in down)):
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
