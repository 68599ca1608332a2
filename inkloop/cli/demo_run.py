"""The steps of `inkloop demo`, the main job on the embedded default: the first half of the loop, end to end,
on this machine.

init → Label Studio up → the endpoint up → sample production traffic through POST /v1/predict (pages in hands the
model never trained on, blank pages, broken files) and a user's flag → ingest → route. It prints what happened and
where the annotation queue waits, then keeps the services up until interrupted (or stops them, with `once`).
Every step is safe to repeat: a second run sends the same images again, which become new requests of known images.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from annotation import server as label_studio_server
from annotation.client import LabelStudioClient
from db.migrate import init_database
from flows.ingest import IngestParams, IngestSummary, ingest
from flows.route import RouteParams, RouteSummary, route
from flows.traffic import TrafficResult, sample_traffic, send
from inkloop.errors import InkloopError
from inkloop.processes import Echo
from inkloop.settings import Settings
from inkloop.store import ImageStore
from serving.health import NotHealthyError, wait_until_healthy


@dataclass
class DemoReport:
    endpoint: str = ""
    traffic: TrafficResult = field(default_factory=TrafficResult)
    ingest: IngestSummary = field(default_factory=IngestSummary)
    route: RouteSummary = field(default_factory=RouteSummary)
    label_studio_url: str = ""
    prefect: str = ""  # where the flow runs are shown
    label_studio_login: tuple[str, str] = ("", "")


def start_endpoint(settings: Settings, port: int, log: Path, timeout_s: float = 120.0) -> subprocess.Popen[bytes]:
    """`inkloop serve` in a child process, once /healthz answers."""
    url = f"http://127.0.0.1:{port}"
    try:
        httpx.get(f"{url}/healthz", timeout=1)
        raise InkloopError(f"something already listens on port {port}; choose another with --port")
    except httpx.TransportError:
        pass
    inkloop = str(Path(sys.executable).with_name("inkloop"))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [inkloop, "serve", "--port", str(port), "--log-level", "warning"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_healthy(url, process, timeout_s=timeout_s)
    except NotHealthyError as exc:
        process.kill()
        raise InkloopError(f"{exc}; see {log}") from None
    return process


def flag_one(base_url: str, traffic: TrafficResult) -> str | None:
    """A user reports the most confident answer as wrong (so the demo shows a flagged task too)."""
    if not traffic.answers:
        return None
    name, answer = max(traffic.answers.items(), key=lambda item: item[1]["confidence"])
    response = httpx.post(
        f"{base_url}/v1/feedback", json={"request_id": answer["request_id"], "flag": "incorrect"}, timeout=30
    )
    response.raise_for_status()
    return name


def run_demo(
    settings: Settings,
    *,
    pages: int,
    port: int,
    once: bool,
    echo: Echo,
    prefect: str,
    stop_prefect: Callable[[], object],
) -> DemoReport:
    """The demo's steps; `prefect` says where the flow runs show, `stop_prefect` stops the Prefect server the demo
    started (with `once`, at the end)."""
    report = DemoReport(endpoint=f"http://127.0.0.1:{port}", prefect=prefect)
    settings.home.mkdir(parents=True, exist_ok=True)
    init_database(settings)
    ImageStore(settings.store_url).ensure()
    echo(f"database     {settings.masked_database_url()} (migrated to head)")

    ls = label_studio_server.from_settings(settings)
    report.label_studio_url = ls.url
    started_ls = False
    if ls.is_local:
        if not label_studio_server.is_installed(ls.venv):
            echo(f"installing Label Studio into {ls.venv} (once, about 2 minutes)")
            label_studio_server.install(ls.venv, echo=echo)
        status, started_ls = label_studio_server.up(ls, echo=echo)
        report.label_studio_login = (ls.username, ls.password)
        echo(f"label studio {status.version} at {ls.url}")
    else:
        with LabelStudioClient.from_settings(settings) as client:
            echo(f"label studio {client.check()} at {ls.url} (yours: INKLOOP_LABEL_STUDIO_URL)")

    endpoint = start_endpoint(settings, port, settings.home / "demo" / "endpoint.log")
    try:
        echo(f"endpoint     {report.endpoint} (the page at /, the API at /docs)")
        uploads = sample_traffic(settings.home / "demo" / "traffic", pages=pages)
        echo(f"sending      {len(uploads)} uploads to POST /v1/predict")
        report.traffic = send(report.endpoint, uploads)
        flag_one(report.endpoint, report.traffic)
        report.ingest = ingest(IngestParams())
        report.route = route(RouteParams())
        print_report(report, settings, echo)
        if not once:
            echo("\nThe services keep running; press Ctrl-C to stop them.")
            try:
                while endpoint.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                echo("stopping")
    finally:
        endpoint.terminate()
        try:
            endpoint.wait(timeout=30)
        except subprocess.TimeoutExpired:
            endpoint.kill()
        if started_ls:
            label_studio_server.down(ls)
        stop_prefect()
    return report


def print_report(report: DemoReport, settings: Settings, echo: Echo) -> None:
    traffic = report.traffic
    ok = traffic.statuses.get(200, 0)
    refused = sum(n for status, n in traffic.statuses.items() if status != 200)
    refusals = ", ".join(f"{code} {n}" for code, n in traffic.errors.most_common()) or "none"
    ingest_, route_ = report.ingest, report.route
    reasons = ", ".join(f"{reason} {n}" for reason, n in ingest_.reasons.items()) or "none"
    by_reason = ", ".join(f"{reason} {n}" for reason, n in route_.created_by_reason.items()) or "none"
    user, password = report.label_studio_login
    echo("")
    echo(f"requests     {ok} answered, {refused} refused at the endpoint ({refusals})")
    echo(
        f"ingest       {ingest_.requests} requests, {ingest_.new_images} new images: "
        f"{ingest_.valid} valid, {ingest_.quarantined} quarantined ({reasons})"
    )
    echo(
        f"route        {route_.created} new tasks ({by_reason}); {route_.not_needed} confident "
        f"enough; {route_.near_duplicates} near-duplicates; {route_.budget_left} left of today's budget"
    )
    if ingest_.data_docs:
        echo(f"data docs    {ingest_.data_docs}")
    login = f" (login {user} / {password})" if user else ""
    echo(f"flow runs    {report.prefect}")
    echo(f"annotate     {report.label_studio_url}/projects/{route_.ls_project_id}/data{login}")
    echo(
        "next         annotate there, then: inkloop flow run sync && inkloop datasets build && inkloop flow run retrain"
    )
