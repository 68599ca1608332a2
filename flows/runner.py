"""Running the flows by name: from the command line (`inkloop flow run`) and as scheduled Prefect deployments
(`inkloop flow serve`).

Which Prefect API the runs go to (PREFECT_API_URL, the local server of `inkloop prefect up`, or a temporary
local API) is chosen by flows/prefect_server.py before prefect is imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from inkloop.errors import InkloopError

if TYPE_CHECKING:  # flows.common imports prefect, which must wait until prefect_server.use_prefect has run
    from flows.common import FlowSummary


@dataclass(frozen=True)
class FlowSpec:
    module: str
    flow: str
    params: str
    every: timedelta  # default schedule of its deployment
    what: str


FLOWS: dict[str, FlowSpec] = {
    "ingest": FlowSpec("flows.ingest", "ingest", "IngestParams", timedelta(minutes=5), "validate new logged images"),
    "route": FlowSpec("flows.route", "route", "RouteParams", timedelta(minutes=15), "send images to annotators"),
    "sync": FlowSpec("flows.sync", "sync", "SyncParams", timedelta(minutes=5), "bring annotations back"),
    "dataset": FlowSpec(
        "flows.dataset", "dataset", "DatasetParams", timedelta(hours=24), "freeze annotations into a dataset version"
    ),
    "synth": FlowSpec(
        "flows.synth", "synth", "SynthParams", timedelta(hours=24), "synthesize train pages for the newest version"
    ),
    "retrain": FlowSpec(
        "flows.retrain", "retrain", "RetrainParams", timedelta(hours=24), "fine-tune the champion on new labels"
    ),
    "gate": FlowSpec("flows.gate", "gate", "GateParams", timedelta(hours=24), "gate the newest candidate, promote it"),
    "drift": FlowSpec(
        "flows.drift", "drift", "DriftParams", timedelta(hours=24), "compare production with its reference window"
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
    try:
        return model.model_validate(
            {k: (None if v.lower() in ("", "none", "null") else v) for k, v in raw.items()}, strict=False
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        known = ", ".join(model.model_fields)
        raise InkloopError(f"invalid parameters for flow {name}: {problems} (parameters: {known})") from None


def run(name: str, params: BaseModel) -> FlowSummary:
    from flows.common import FlowSummary

    flow, _ = load(name)
    summary = flow(params)
    if not isinstance(summary, FlowSummary):
        raise InkloopError(f"flow {name} returned {type(summary).__name__}, not its summary")
    return summary


def deployments(every: dict[str, timedelta] | None = None) -> list[Any]:
    """One deployment per flow, each on its interval (`every` overrides the defaults)."""
    every = every or {}
    result = []
    for name, spec in FLOWS.items():
        flow, _ = load(name)
        result.append(
            flow.to_deployment(
                name=f"inkloop-{name}",
                interval=every.get(name, spec.every),
                description=f"inkloop {name}: {spec.what}",
                tags=["inkloop"],
            )
        )
    return result


def serve(every: dict[str, timedelta] | None = None) -> None:
    """Run the deployments here until interrupted (Prefect's `serve`: this process is the worker)."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(every))
