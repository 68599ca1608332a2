"""The gate flow: a candidate model is promoted only when it passes every gate of model/gates.py; otherwise it is
rejected with its reasons. Each run writes a `gate_reports` row with the whole evidence, an HTML page a person
reads (INKLOOP_HOME/reports/gates/), and a Prefect artifact.

The champion it is compared with is the registry's champion; with none registered yet, the shipped model becomes
the champion first (it is what serving answers with). The frozen sets both models read:

- the dataset version's **test** split (the candidate's own version), sliced by routing reason (`audit` is the
  unbiased sample of production), polarity, line count and source;
- the **golden** pages (model/golden/), never in any training split;
- a **held-out synthetic** set: pages rendered in the held-out font families with a fixed seed, the same pages on
  every run and every machine (cached under INKLOOP_HOME/cache/gates/).

Re-running the gate on the same candidate measures again and writes a new report; a promoted candidate stays
promoted. Nothing is changed before every gate has run, and the verdict, the report row and the status change are
one transaction. The verdicts are model/gates.py's, the status changes model/registry.py's: this flow gathers the
inputs and records what they decide.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import ConfigDict, Field

from db import repo
from db.models import DatasetMember, ModelVersion
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import Split
from inkloop.errors import InkloopError
from inkloop.files import write_bytes_atomic
from inkloop.labels import read_records
from inkloop.text import cer
from model.data import LineItem, Page, load_lines
from model.gate_html import render
from model.gates import (
    AS_SERVED,
    Check,
    GateConfig,
    GateResult,
    PageRead,
    ScoredPage,
    Serving,
    calibration_check,
    gate_result,
    interleaved_seconds,
    memorization_check,
    parity_check,
    regression_check,
    slice_results,
    speed_check,
    worse_pages,
)
from model.golden import GOLDEN_DIR
from model.memorize import eager_recognizer, line_losses, memorize
from model.recognizer import SHIPPED_MODEL, Prediction, Recognizer
from model.registry import ensure_champion, materialize, record_gate, who
from model.runtimes import Runtime, has_int8, runtime_reason, runtimes_of, shared_runtime
from synth.fonts import FontSet
from synth.generate import SynthOptions, generate

HELDOUT_SEED = 9001  # the frozen held-out set: never change it, or reports stop being comparable


class GateParams(GateConfig):
    """The gate's strictness (GateConfig) and what to gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="Candidate version (default: the newest candidate).")
    promote: bool = Field(True, description="Promote a candidate that passes (false: report only).")


class GateSummary(FlowSummary):
    candidate: str | None = None
    champion: str | None = None
    dataset: str | None = None
    passed: bool | None = None
    promoted: bool = False
    failures: list[str] = Field(default_factory=list)
    report: str | None = None
    nothing_to_gate: str | None = None


@dataclass
class FrozenPage:
    set: str
    key: str
    image: Image.Image
    truth: str
    slices: tuple[str, ...]


def _line_bucket(count: int) -> str:
    return "1" if count <= 1 else "2-3" if count <= 3 else "4+"


def test_pages(context: FlowContext, dataset_id: int | None) -> list[FrozenPage]:
    """The dataset version's test split, each page with its slices."""
    if dataset_id is None:
        return []
    with context.transaction(write=False) as session:
        members: list[DatasetMember] = repo.dataset_members(session=session, version_id=dataset_id, split=Split.test)
    pages = []
    for member in members:
        slices = ["test/all"]
        if member.reason is not None:
            slices.append(f"test/reason/{member.reason.value}")
        if member.polarity:
            slices.append(f"test/polarity/{member.polarity}")
        lines = member.line_count or len(member.text.split("\n"))
        slices.append(f"test/lines/{_line_bucket(lines)}")
        if member.source is not None:
            slices.append(f"test/source/{member.source.value}")
        with Image.open(io.BytesIO(context.store.get(member.image_sha256))) as image:
            pages.append(FrozenPage("test", member.image_sha256[:12], image.copy(), member.text, tuple(slices)))
    return pages


def _folder_pages(folder: Path, name: str) -> list[FrozenPage]:
    pages = []
    for record in read_records(folder):
        slices = [f"{name}/all"]
        if record.get("font_family"):
            slices.append(f"{name}/font/{record['font_family']}")
        with Image.open(record["path"]) as image:
            pages.append(FrozenPage(name, Path(record["file"]).stem, image.copy(), record["text"], tuple(slices)))
    return pages


def heldout_folder(gate_sets: Path, count: int) -> Path:
    """The frozen held-out synthetic set (rendered once, then read from the cache)."""
    folder = gate_sets / f"heldout-{count}-seed{HELDOUT_SEED}"
    if not (folder / "labels.jsonl").is_file():
        options = SynthOptions(
            count=count, seed=HELDOUT_SEED, font_set=FontSet.heldout, dark_share=0.5, caps_share=0.3, max_lines=8
        )
        generate(folder, options, workers=min(os.cpu_count() or 1, 4))
    return folder


def _read(recognizer: Recognizer, pages: list[FrozenPage]) -> list[Prediction]:
    return recognizer.predict_images([p.image for p in pages], batch_size=32) if pages else []


def _png(image: Image.Image, width: int = 640) -> bytes:
    copy = image.convert("L")
    if copy.width > width:
        copy = copy.resize((width, max(1, round(copy.height * width / copy.width))))
    out = io.BytesIO()
    copy.save(out, "PNG", optimize=True)
    return out.getvalue()


def _new_lines(
    context: FlowContext, dataset_id: int | None, champion: ModelVersion, limit: int, height: int, width: int
) -> list[LineItem]:
    """Line crops of the dataset's train pages that the champion never trained on (all train pages when it
    trained on none of this registry's versions), at most `limit`."""
    if dataset_id is None:
        return []
    with context.transaction(write=False) as session:
        members = repo.dataset_members(session=session, version_id=dataset_id, split=Split.train)
        old = (
            repo.trained_labels(session=session, version_id=champion.dataset_version_id)
            if champion.dataset_version_id
            else set()
        )
    fresh = sorted((m for m in members if (m.image_sha256, m.text) not in old), key=lambda m: m.image_sha256)
    with tempfile.TemporaryDirectory(prefix="inkloop-gate-") as tmp:
        pages = []
        for member in fresh[:limit]:
            path = Path(tmp) / f"{member.image_sha256}.png"
            path.write_bytes(_png(Image.open(io.BytesIO(context.store.get(member.image_sha256))), width=10_000))
            lines = member.lines or []
            rows = member.text.split("\n")
            boxes = (
                tuple(tuple(float(v) for v in line["box"]) for line in lines)
                if len(lines) == len(rows) and all(len(line.get("box") or []) == 4 for line in lines)
                else None
            )
            pages.append(Page(path, member.text, boxes))  # type: ignore[arg-type]
        return load_lines(pages, height, width, workers=1) if pages else []


@dataclass(frozen=True)
class GatePick:
    """What one gate run compares: the candidate, the champion, and the dataset version the candidate trained on
    (its test split is one of the frozen sets)."""

    candidate: str
    champion: str
    dataset: str | None
    dataset_id: int | None


@dataclass(frozen=True)
class NothingToGate:
    reason: str


@task(name="gate-pick", **IO_TASK)
def pick(params: GateParams) -> GatePick | NothingToGate:
    """The candidate (the one named, else the newest) and the champion, or why there is nothing to gate."""
    with flow_context() as context, context.transaction() as session:
        champion = ensure_champion(session=session, store=context.store, shipped=SHIPPED_MODEL)
        if params.model is not None:
            candidate = repo.get_model(session=session, version=params.model)
        else:
            found = repo.newest_candidate(session=session)
            if found is None:
                return NothingToGate("no candidate to gate: run inkloop flow run retrain")
            candidate = found
        if candidate.id == champion.id:
            raise InkloopError(f"{candidate.version} is the champion already; gate a candidate")
        dataset = repo.dataset_by_id(session=session, version_id=candidate.dataset_version_id)
        return GatePick(
            candidate=candidate.version,
            champion=champion.version,
            dataset=dataset.version if dataset else None,
            dataset_id=candidate.dataset_version_id,
        )


def _artifact(context: FlowContext, version: str) -> tuple[ModelVersion, Path]:
    with context.transaction(write=False) as session:
        row = repo.get_model(session=session, version=version)
    return row, materialize(context.store, row.artifact_key, context.settings.paths.models)


def run_gates(context: FlowContext, params: GateParams, picked: GatePick) -> tuple[GateResult, dict[str, bytes]]:
    """Every gate, measured; nothing written."""
    log = get_run_logger()
    config = GateConfig.model_validate(params.model_dump(include=set(GateConfig.model_fields)))
    seconds: dict[str, float] = {}
    _, candidate_path = _artifact(context, picked.candidate)
    champion_row, champion_path = _artifact(context, picked.champion)
    checks: list[Check] = []

    started = time.perf_counter()
    spec = Recognizer.load(candidate_path).card.input
    lines = _new_lines(context, picked.dataset_id, champion_row, 16, spec.line_height, spec.max_line_width)
    memorized = None
    if lines:
        worst = np.argsort(line_losses(champion_path, lines))[::-1][: config.memorization_lines]
        batch = [lines[i] for i in sorted(worst.tolist())]
        memorized = memorize(
            candidate=candidate_path,
            parent=champion_path,
            lines=batch,
            steps=config.memorization_steps,
            seed=config.seed,
        )
    checks.append(memorization_check(memorized, config))
    seconds["memorization"] = round(time.perf_counter() - started, 2)
    log.info("memorization: %s", checks[-1].summary)

    started = time.perf_counter()
    pages = test_pages(context, picked.dataset_id)
    pages += _folder_pages(GOLDEN_DIR, "golden")
    if config.heldout_pages:
        pages += _folder_pages(heldout_folder(context.settings.paths.gate_sets, config.heldout_pages), "heldout")
    seconds["load_pages"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    champion = Recognizer.load(champion_path)
    candidate = Recognizer.load(candidate_path)
    champion_reads = _read(champion, pages)
    candidate_reads = _read(candidate, pages)
    reads = [
        PageRead(p.set, p.key, p.truth, a.text, b.text, p.slices)
        for p, a, b in zip(pages, champion_reads, candidate_reads, strict=True)
    ]
    slices = slice_results(reads, config)
    checks.append(regression_check(slices, config))
    seconds["regression"] = round(time.perf_counter() - started, 2)
    log.info("regression: %s", checks[-1].summary)

    started = time.perf_counter()
    tests = [p for p in pages if p.set == "test"] or [p for p in pages if p.set == "golden"]
    eager = _read(eager_recognizer(candidate_path), tests)
    chosen = {id(p) for p in tests}
    served = {candidate.runtime.value: [b for p, b in zip(pages, candidate_reads, strict=True) if id(p) in chosen]}
    for runtime in Runtime:
        if runtime.value not in served and (runtime is not Runtime.onnx_int8 or has_int8(candidate_path)):
            served[runtime.value] = _read(Recognizer.load(candidate_path, runtime=runtime), tests)
    where = tests[0].set if tests else "test"
    checks.append(
        parity_check(
            [p.key for p in tests],
            {name: [r.text for r in reads] for name, reads in served.items()},
            [r.text for r in eager],
            config,
            where,
            truths=[p.truth for p in tests],
        )
    )
    seconds["export_parity"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    scored = [
        ScoredPage(p.set, b.confidence, cer(b.text, p.truth)) for p, b in zip(pages, candidate_reads, strict=True)
    ]
    checks.append(calibration_check(scored, config))
    seconds["calibration"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    # The test pages first, then the other frozen pages: enough pages that a round is not a few milliseconds of noise.
    timed = [p.image for p in sorted(pages, key=lambda p: p.set != "test")][: config.speed_pages]
    # Both in the fastest runtime they share (the networks compared, not the runtimes), and each as it serves
    # where that differs (for the report).
    runtime = shared_runtime(runtimes_of(candidate_path), runtimes_of(champion_path))
    serving = {
        name: Serving(model.runtime, runtime_reason(model.card, model.runtime))
        for name, model in (("candidate", candidate), ("champion", champion))
    }
    readers: dict[str, Callable[[], object]] = {}
    for name, model, path in (("champion", champion, champion_path), ("candidate", candidate, candidate_path)):
        like = model if model.runtime is runtime else Recognizer.load(path, runtime=runtime)
        readers[name] = partial(like.predict_images, timed, batch_size=32)
        if like is not model:
            readers[name + AS_SERVED] = partial(model.predict_images, timed, batch_size=32)
    times = interleaved_seconds(readers, config.speed_rounds)
    checks.append(speed_check(times, config, len(timed), runtime, serving))
    seconds["speed"] = round(time.perf_counter() - started, 2)

    images = {f"{p.set}/{p.key}": _png(p.image) for p in pages}
    worse = worse_pages(reads, config.worse_pages)
    result = gate_result(
        candidate=picked.candidate,
        champion=picked.champion,
        dataset_version=picked.dataset,
        checks=checks,
        slices=slices,
        worse=worse,
        config=config,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=seconds,
    )
    shown = {k: v for k, v in images.items() if any(f"{w.set}/{w.key}" == k for w in worse)}
    return result, shown


def _markdown(result: GateResult, path: Path) -> str:
    verdict = "passed" if result.passed else "rejected"
    lines = [f"# Gate: {result.candidate} vs {result.champion}: {verdict}", "", "| gate | | |", "|---|---|---|"]
    lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.summary.replace('|', '/')} |" for c in result.checks]
    lines += ["", f"Report: `{path}`"]
    return "\n".join(lines)


@flow(name="gate", log_prints=True)
def gate(params: GateParams | None = None) -> GateSummary:
    """Gate a candidate against the champion; promote it when every gate passes, reject it otherwise."""
    params = params or GateParams()
    started = time.perf_counter()
    picked = pick(params)
    if isinstance(picked, NothingToGate):
        return finish(GateSummary(nothing_to_gate=picked.reason), started=started, name="gate", title="Gate")
    with flow_context() as context:
        result, images = run_gates(context, params, picked)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = context.settings.paths.gate_reports / f"{picked.candidate}-{stamp}.html"
        write_bytes_atomic(path, render(result, images).encode())
        with context.transaction() as session:
            recorded = record_gate(
                session=session,
                result=result,
                dataset_version_id=picked.dataset_id,
                report_path=str(path),
                promote=params.promote,
                actor=f"gate ({who()})",
            )
    create_markdown_artifact(key="gate-report", markdown=_markdown(result, path), description="the gate's verdict")
    summary = GateSummary(
        candidate=picked.candidate,
        champion=picked.champion,
        dataset=picked.dataset,
        passed=result.passed,
        promoted=recorded.promoted,
        failures=result.failures(),
        report=str(path),
    )
    return finish(summary, started=started, name="gate", title="Gate")
