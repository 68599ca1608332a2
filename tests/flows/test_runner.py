"""Flows by name: parameters from the command line, the scheduled deployments, the services each flow needs, and
`inkloop flow run` itself."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from flows.common import not_retried, retry_on_io
from flows.ingest import IngestParams
from flows.loop import NEEDS
from flows.route import RouteParams
from flows.runner import FLOWS, LABEL_STUDIO, check_services, deployments, parse_params, place, schedules
from inkloop.errors import InkloopError, LabelStudioAuthError, LabelStudioUnavailableError
from inkloop.settings import load_settings
from tests.support.labelstudio import LabelStudioHandle
from tests.support.loop import Loop
from tests.support.ports import free_port
from tests.support.prefect import CliHome

FLOW_NAMES = ("ingest", "route", "sync", "dataset", "import-pages", "synth", "retrain", "gate", "drift", "loop")


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


def _registered(built: list[Any]) -> dict[str, tuple[str, int | None, str | None]]:
    """deployment name -> (its schedule as registered, its concurrency limit, its collision strategy)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    ids = [d.apply() for d in built]

    async def read() -> dict[str, tuple[str, int | None, str | None]]:
        async with get_client() as client:
            found = {}
            for deployment_id in ids:
                deployment = await client.read_deployment(deployment_id)
                shown = "off"
                if deployment.schedules:
                    (entry,) = deployment.schedules
                    schedule = entry.schedule
                    if isinstance(schedule, IntervalSchedule):
                        shown = f"every {schedule.interval.total_seconds():g}s"
                    else:
                        assert isinstance(schedule, CronSchedule)
                        shown = f"{schedule.cron} {schedule.timezone}"
                limit = deployment.global_concurrency_limit.limit if deployment.global_concurrency_limit else None
                options = deployment.concurrency_options
                found[deployment.name] = (shown, limit, options.collision_strategy.value if options else None)
            return found

    return asyncio.run(read())


@pytest.mark.slow
def test_deployments_register_with_their_schedules_and_one_run_at_a_time(prefect_harness: None) -> None:
    assert _registered(deployments()) == {
        "inkloop-ingest": ("every 300s", 1, "ENQUEUE"),
        "inkloop-route": ("every 900s", 1, "ENQUEUE"),
        "inkloop-sync": ("every 300s", 1, "ENQUEUE"),
        "inkloop-dataset": ("0 1 * * * UTC", 1, "ENQUEUE"),
        "inkloop-import-pages": ("off", 1, "ENQUEUE"),
        "inkloop-synth": ("off", 1, "ENQUEUE"),
        "inkloop-retrain": ("0 2 * * * UTC", 1, "ENQUEUE"),
        "inkloop-gate": ("off", 1, "ENQUEUE"),
        "inkloop-drift": ("0 6 * * * UTC", 1, "ENQUEUE"),
        "inkloop-loop": ("off", 1, "ENQUEUE"),
    }


@pytest.mark.slow
def test_schedules_and_limits_are_settings(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INKLOOP_SCHEDULES", "retrain=0 3 * * 1-5; drift=every 6h; ingest=off")
    monkeypatch.setenv("INKLOOP_FLOW_CONCURRENCY", "2")
    found = _registered(deployments(every={"sync": timedelta(minutes=1)}))
    assert found["inkloop-retrain"] == ("0 3 * * 1-5 UTC", 2, "ENQUEUE")
    assert found["inkloop-drift"] == ("every 21600s", 2, "ENQUEUE")
    assert found["inkloop-ingest"] == ("off", 2, "ENQUEUE")
    assert found["inkloop-sync"] == ("every 60s", 2, "ENQUEUE")  # --every wins over the settings
    assert found["inkloop-route"] == ("every 900s", 2, "ENQUEUE")


@pytest.mark.slow
def test_retraining_goes_to_its_own_work_pool(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """With INKLOOP_RETRAIN_POOL (compose's GPU worker), the retrain deployment is registered with that pool, on its
    schedule and limit, and the serving process keeps every other flow."""
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("INKLOOP_RETRAIN_POOL", "inkloop-gpu-test")
    served, pooled = place()
    assert [d.name for d in pooled] == ["inkloop-retrain"]
    assert {d.name for d in served} == {f"inkloop-{n}" for n in FLOW_NAMES} - {"inkloop-retrain"}

    async def read() -> tuple[Any, Any]:
        async with get_client() as client:
            pool = await client.read_work_pool("inkloop-gpu-test")
            return pool, await client.read_deployment_by_name("retrain/inkloop-retrain")

    pool, deployment = asyncio.run(read())
    assert pool.type == "process"
    assert deployment.work_pool_name == "inkloop-gpu-test"
    assert deployment.entrypoint is not None and deployment.entrypoint.endswith("flows/retrain.py:retrain")
    assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
    assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
    assert place()[1][0].name == "inkloop-retrain"  # a restart registers it again, the pool already there

    monkeypatch.delenv("INKLOOP_RETRAIN_POOL")
    served, pooled = place()
    assert pooled == [] and "inkloop-retrain" in {d.name for d in served}


def test_a_schedule_for_no_flow_is_a_clear_error() -> None:
    with pytest.raises(InkloopError, match="INKLOOP_SCHEDULES names no flow 'nightly'; the flows are ingest, route"):
        schedules("nightly=0 2 * * *")
    assert schedules("")["retrain"].describe() == "cron 0 2 * * * (UTC)"


def test_each_flow_declares_the_services_it_needs() -> None:
    assert {name for name, spec in FLOWS.items() if spec.needs} == {"route", "sync"}
    assert FLOWS["route"].needs == FLOWS["sync"].needs == (LABEL_STUDIO,)
    assert FLOWS["loop"].steps == tuple(NEEDS)  # the loop's steps, as flows/loop.py runs them
    assert all(step in FLOWS for step in FLOWS["loop"].steps)


def test_a_service_that_is_down_fails_the_flow_that_needs_it_and_only_the_steps_of_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("INKLOOP_LABEL_STUDIO_URL", url)
    settings = load_settings()
    assert check_services("ingest", settings) == []  # needs nothing: asks nothing
    with pytest.raises(LabelStudioUnavailableError) as raised:
        check_services("route", settings)
    assert str(raised.value) == (
        f"Label Studio at {url} is not reachable: [Errno 111] Connection refused: route cannot run without it; "
        "start it: inkloop labelstudio up"
    )
    (down,) = check_services("loop", settings)
    assert down.service == LABEL_STUDIO and down.steps == ("route", "sync")
    assert down.describe() == (
        f"Label Studio at {url} is not reachable: [Errno 111] Connection refused: route, sync will fail at their "
        "first try (start it: inkloop labelstudio up)"
    )
    remote = load_settings(label_studio_url="https://labels.example.org")
    assert LABEL_STUDIO.how_to_start(remote) == "start it, or set INKLOOP_LABEL_STUDIO_URL to one that runs"


def test_a_refused_token_fails_the_flow_that_needs_label_studio_and_only_the_steps_of_the_loop(
    label_studio: LabelStudioHandle,
) -> None:
    settings = load_settings(label_studio_url=label_studio.url, label_studio_token="not-the-token-0123")
    good = load_settings(label_studio_url=label_studio.url, label_studio_token=label_studio.token)
    assert check_services("sync", good) == []  # it answers, and accepts the token
    with pytest.raises(LabelStudioAuthError, match="refused the token"):
        check_services("sync", settings)
    (refused,) = check_services("loop", settings)
    assert refused.hint == "" and refused.steps == ("route", "sync")
    assert refused.describe().startswith(f"Label Studio at {label_studio.url} refused the token (HTTP 40")
    assert refused.describe().endswith("an API token of that Label Studio: route, sync will fail")


def test_a_service_found_down_before_the_run_is_not_retried() -> None:
    down = SimpleNamespace(data=LabelStudioUnavailableError("Label Studio at http://127.0.0.1:9 is not reachable"))
    assert retry_on_io(None, None, down)  # Label Studio may be restarting: retried
    with not_retried(LabelStudioUnavailableError):
        assert not retry_on_io(None, None, down)  # it was down when the run began: fails at once
        assert retry_on_io(None, None, SimpleNamespace(data=ConnectionError("the database went away")))
    assert retry_on_io(None, None, down)


def test_flow_run_from_the_command_line(loop: Loop) -> None:
    home = CliHome(loop.home, extra_env=loop.env())
    try:
        result = home.inkloop("flow", "run", "sync", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)  # stdout holds the JSON alone; the server's start went to stderr
        assert summary["tasks_seen"] == 0 and summary["new_annotations"] == 0
        assert result.stderr.startswith(f"starting the Prefect server on {home.url}")

        bad = home.inkloop("flow", "run", "route", "-p", "budget=lots", timeout=120)
        assert bad.returncode == 1
        assert bad.stderr.startswith("inkloop: error: invalid parameters for flow route: budget")
    finally:
        home.stop_server()
