"""Flows by name: parameters from the command line, the scheduled deployments, and `inkloop flow run` itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.ingest import IngestParams
from flows.route import RouteParams
from flows.runner import FLOWS, deployments, parse_params
from inkloop.errors import InkloopError
from tests.support.loop import Loop

INKLOOP = str(Path(sys.executable).with_name("inkloop"))


def test_parameters_are_parsed_and_checked() -> None:
    params = parse_params("ingest", ["batch_size=200", "data-docs=false"])
    assert isinstance(params, IngestParams)
    assert params.batch_size == 200 and params.data_docs is False
    route_params = parse_params("route", ["budget=none"])
    assert isinstance(route_params, RouteParams) and route_params.budget is None
    with pytest.raises(InkloopError, match="batch_size"):
        parse_params("ingest", ["batch_size=-1"])
    with pytest.raises(InkloopError, match=r"batchsize.*parameters: batch_size"):
        parse_params("ingest", ["batchsize=5"])
    with pytest.raises(InkloopError, match="not key=value"):
        parse_params("sync", ["full"])
    retrain_params = parse_params("retrain", ["force=true", "max_steps=5", "wait=false"])
    assert getattr(retrain_params, "force", None) is True and getattr(retrain_params, "max_steps", None) == 5
    gate_params = parse_params("gate", ["model=m-0004", "margin=0.01"])
    assert getattr(gate_params, "margin", None) == 0.01 and getattr(gate_params, "model", None) == "m-0004"
    with pytest.raises(InkloopError, match="margin"):
        parse_params("gate", ["margin=-1"])
    with pytest.raises(InkloopError, match="no flow named 'nightly'"):
        parse_params("nightly", [])


@pytest.mark.slow
def test_deployments_register_with_their_schedules(prefect_harness: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import IntervalSchedule

    built = deployments()
    ids = [d.apply() for d in built]

    async def read() -> dict[str, float]:
        async with get_client() as client:
            found = {}
            for deployment_id in ids:
                deployment = await client.read_deployment(deployment_id)
                (schedule,) = deployment.schedules
                assert isinstance(schedule.schedule, IntervalSchedule)
                found[deployment.name] = schedule.schedule.interval.total_seconds()
            return found

    assert asyncio.run(read()) == {f"inkloop-{n}": spec.every.total_seconds() for n, spec in FLOWS.items()}


def test_flow_run_from_the_command_line(loop: Loop, tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PREFECT_")}
    env.update(loop.env(), PREFECT_HOME=str(tmp_path / "prefect"))
    result = subprocess.run(
        [INKLOOP, "flow", "run", "sync", "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["tasks_seen"] == 0 and summary["new_annotations"] == 0

    bad = subprocess.run(
        [INKLOOP, "flow", "run", "route", "-p", "budget=lots"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("inkloop: error: invalid parameters for flow route: budget")
