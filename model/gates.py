"""The gates a candidate model passes before it serves: what each one measures, typed, the statistics behind them,
and every verdict. flows/gate.py gathers the inputs (pages read by both models, the memorization run, timings) and
records what this module decides; model/registry.py acts on it; model/gate_html.py renders the report a person
reads.

1. **Memorization** - the candidate's network and training code (its own config, learning rate included), from
   the parent's weights, overfit one batch of the new data below a loss bound, and to at most half the loss it
   started at, within a fixed number of steps: the training path can learn this data (model/memorize.py).
2. **Export parity** - every float runtime that can serve the artifact (TorchScript, ONNX Runtime) reads the test
   pages as the eager network does; its int8 graph's CER there is reported beside eager's.
3. **Regression** - on frozen sets read by both models (the dataset's test split by slice, the golden pages, a
   frozen held-out synthetic set), the 95% interval of the CER difference (candidate - champion) from a paired
   bootstrap over pages. A decisive slice (enough pages) fails when its upper bound is above the margin; a
   configured slice with no pages fails; the test split's CER must improve.
4. **Calibration** - the candidate's confidence ECE on the test pages (with the held-out pages when the test
   pages are too few) stays under a bound (routing relies on it).
5. **Speed** - the candidate reads the test pages at most `speed_tolerance` slower than the champion, both in the
   same runtime, measured side by side, interleaved, in one process; what each serves with is reported beside it.

CER is always total edits / total characters of the pages counted, so a slice's figure is the share of its
characters read wrong, and the bootstrap resamples pages (edits and lengths together), never characters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inkloop.errors import InkloopError
from inkloop.text import corpus_cer, edit_distance
from model.confidence import expected_calibration_error
from model.runtimes import Runtime

if TYPE_CHECKING:
    from model.memorize import Memorized

# Slices every gate run must find pages for (a configured slice with no pages fails the gate).
DEFAULT_REQUIRED = ("test/all", "golden/all", "heldout/all")


class GateConfig(BaseModel):
    """How strict the gates are. Each field is a gate parameter (`inkloop flow run gate -p margin=0.01`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(0.005, ge=0, description="Largest CER increase a decisive slice may show (upper bound).")
    replicates: int = Field(2000, ge=100, description="Paired bootstrap replicates per slice.")
    seed: int = Field(0, description="Seed of the bootstrap.")
    level: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    min_slice_pages: int = Field(20, ge=1, description="A slice with fewer pages is reported, not decisive.")
    required: tuple[str, ...] = Field(DEFAULT_REQUIRED, description="Slices that must have pages.")
    ece_max: float = Field(0.05, gt=0, le=1, description="Largest confidence ECE on the test pages.")
    parity_cer: float = Field(
        0.002, ge=0, le=1, description="Largest CER between the TorchScript and the eager readings of the pages."
    )
    speed_tolerance: float = Field(0.2, ge=0, description="The candidate may read this much slower (0.2 = 20%).")
    speed_rounds: int = Field(5, ge=1, description="Interleaved timing rounds per model; the median counts.")
    speed_pages: int = Field(32, ge=1, description="Pages timed per round.")
    memorization_steps: int = Field(40, ge=1, description="Steps to overfit one batch in.")
    memorization_lines: int = Field(4, ge=1, description="Lines in the batch to overfit.")
    memorization_loss: float = Field(0.1, gt=0, description="CTC loss per character the batch must fall below.")
    heldout_pages: int = Field(60, ge=0, description="Pages of the frozen held-out synthetic set.")
    worse_pages: int = Field(12, ge=0, description="Pages that got worse shown in the report.")


class SliceResult(BaseModel):
    """Both models on one slice of pages, and the interval of the difference."""

    model_config = ConfigDict(frozen=True)

    name: str
    pages: int
    characters: int
    champion_cer: float | None
    candidate_cer: float | None
    delta: float | None  # candidate - champion (negative: the candidate reads better)
    low: float | None
    high: float | None
    decisive: bool
    required: bool = False
    passed: bool
    note: str = ""


class Check(BaseModel):
    """One gate's verdict, a line a person reads, and its evidence."""

    name: str
    passed: bool
    summary: str
    details: dict[str, object] = Field(default_factory=dict)


class WorsePage(BaseModel):
    """A page the candidate reads worse than the champion, as the report shows it."""

    set: str
    key: str
    truth: str
    champion: str
    candidate: str
    champion_cer: float
    candidate_cer: float


class GateResult(BaseModel):
    """Everything a gate run decided, stored whole in `gate_reports.checks`."""

    candidate: str
    champion: str
    dataset_version: str | None
    passed: bool
    checks: list[Check]
    slices: list[SliceResult]
    worse: list[WorsePage] = Field(default_factory=list)
    config: GateConfig
    created_at: str
    seconds: dict[str, float] = Field(default_factory=dict)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.summary}" for c in self.checks if not c.passed]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @classmethod
    def stored(cls, checks: dict[str, Any], report_id: int) -> GateResult:
        """A gate report's stored result (`gate_reports.checks`), or an error naming the report that does not
        parse."""
        try:
            return cls.model_validate(checks)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "checks"
            message = f"gate report {report_id} does not hold a gate result: {where}: {problem['msg']}"
            raise InkloopError(message) from None


def gate_result(
    *,
    candidate: str,
    champion: str,
    dataset_version: str | None,
    checks: list[Check],
    slices: list[SliceResult],
    worse: list[WorsePage],
    config: GateConfig,
    created_at: str,
    seconds: dict[str, float],
) -> GateResult:
    """The verdict: a candidate passes only when every gate passed, and a run with no gates passes nothing."""
    return GateResult(
        candidate=candidate,
        champion=champion,
        dataset_version=dataset_version,
        passed=bool(checks) and all(c.passed for c in checks),
        checks=checks,
        slices=slices,
        worse=worse,
        config=config,
        created_at=created_at,
        seconds=seconds,
    )


# --- the statistics ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    delta: float
    low: float
    high: float


def paired_bootstrap(
    champion_edits: ArrayLike,
    candidate_edits: ArrayLike,
    characters: ArrayLike,
    *,
    replicates: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """The CER difference (candidate - champion) over the pages, and its percentile interval from resampling
    pages with replacement: each replicate draws the same pages for both models (paired), so the page-to-page
    variation both share cancels, and only how differently the two read the same pages remains."""
    a = np.asarray(champion_edits, dtype=np.float64)
    b = np.asarray(candidate_edits, dtype=np.float64)
    n = np.asarray(characters, dtype=np.float64)
    if not len(a) == len(b) == len(n) or not len(n):
        raise ValueError("the bootstrap needs the same pages, at least one, for both models")
    delta = float((b.sum() - a.sum()) / max(n.sum(), 1.0))
    rng = np.random.default_rng(seed)
    diffs = np.empty(replicates)
    chunk = max(1, 2_000_000 // len(n))  # bounded memory: about 2M page draws at a time
    for start in range(0, replicates, chunk):
        draws = rng.integers(0, len(n), size=(min(chunk, replicates - start), len(n)))
        diffs[start : start + len(draws)] = (b[draws].sum(1) - a[draws].sum(1)) / np.maximum(n[draws].sum(1), 1.0)
    tail = (1.0 - level) / 2
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return Interval(delta=delta, low=float(low), high=float(high))


@dataclass(frozen=True)
class PageRead:
    """One frozen page read by both models, with the slices it belongs to ("test/all", "test/reason/audit")."""

    set: str
    key: str
    truth: str
    champion: str
    candidate: str
    slices: tuple[str, ...]

    @property
    def characters(self) -> int:
        return max(len(self.truth), 1)

    @property
    def champion_edits(self) -> int:
        return edit_distance(self.champion, self.truth)

    @property
    def candidate_edits(self) -> int:
        return edit_distance(self.candidate, self.truth)


def slice_results(reads: Iterable[PageRead], config: GateConfig) -> list[SliceResult]:
    """Every slice any page names (and every required one), compared with its interval and verdict."""
    by_slice: dict[str, list[PageRead]] = {name: [] for name in config.required}
    for read in reads:
        for name in read.slices:
            by_slice.setdefault(name, []).append(read)
    results = []
    for name in sorted(by_slice, key=lambda s: (s.split("/")[0], s.count("/"), s)):
        pages = by_slice[name]
        required = name in config.required
        if not pages:
            results.append(
                SliceResult(
                    name=name,
                    pages=0,
                    characters=0,
                    champion_cer=None,
                    candidate_cer=None,
                    delta=None,
                    low=None,
                    high=None,
                    decisive=False,
                    required=required,
                    passed=not required,
                    note="configured slice with no pages" if required else "no pages",
                )
            )
            continue
        a = [p.champion_edits for p in pages]
        b = [p.candidate_edits for p in pages]
        n = [p.characters for p in pages]
        interval = paired_bootstrap(a, b, n, replicates=config.replicates, seed=config.seed, level=config.level)
        decisive = len(pages) >= config.min_slice_pages
        regressed = decisive and interval.high > config.margin
        note = (
            f"may be worse by up to {interval.high:.4f} (> margin {config.margin})"
            if regressed
            else ("" if decisive else f"fewer than {config.min_slice_pages} pages: reported, not decisive")
        )
        results.append(
            SliceResult(
                name=name,
                pages=len(pages),
                characters=int(sum(n)),
                champion_cer=round(sum(a) / sum(n), 5),
                candidate_cer=round(sum(b) / sum(n), 5),
                delta=round(interval.delta, 5),
                low=round(interval.low, 5),
                high=round(interval.high, 5),
                decisive=decisive,
                required=required,
                passed=not regressed,
                note=note,
            )
        )
    return results


def regression_check(slices: list[SliceResult], config: GateConfig, improve: str = "test/all") -> Check:
    """Pass when no slice failed and the `improve` slice's CER went down."""
    failed = [s for s in slices if not s.passed]
    target = next((s for s in slices if s.name == improve), None)
    improved = target is not None and target.delta is not None and target.delta < 0
    reasons = [f"{s.name}: {s.note}" for s in failed]
    if target is None or target.pages == 0:
        reasons.append(f"{improve}: no pages to measure the improvement on")
    elif not improved:
        reasons.append(f"{improve}: CER did not improve ({target.champion_cer:.4f} -> {target.candidate_cer:.4f})")
    decisive = sum(1 for s in slices if s.decisive)
    if reasons:
        summary = "; ".join(reasons)
    else:
        assert target is not None
        summary = (
            f"{improve} CER {target.champion_cer:.4f} -> {target.candidate_cer:.4f} "
            f"(95% interval of the change {target.low:+.4f} .. {target.high:+.4f}); "
            f"no decisive slice worse by more than {config.margin} ({decisive} decisive of {len(slices)})"
        )
    return Check(
        name="regression",
        passed=not reasons,
        summary=summary,
        details={"failed_slices": [s.name for s in failed], "improve": improve, "decisive_slices": decisive},
    )


def worse_pages(reads: Iterable[PageRead], limit: int) -> list[WorsePage]:
    """The pages the candidate reads worse than the champion, the largest CER increase first."""
    worse = [
        (r.candidate_edits / r.characters - r.champion_edits / r.characters, r)
        for r in reads
        if r.candidate_edits > r.champion_edits
    ]
    worse.sort(key=lambda pair: -pair[0])
    return [
        WorsePage(
            set=r.set,
            key=r.key,
            truth=r.truth,
            champion=r.champion,
            candidate=r.candidate,
            champion_cer=round(r.champion_edits / r.characters, 4),
            candidate_cer=round(r.candidate_edits / r.characters, 4),
        )
        for _, r in worse[:limit]
    ]


def interleaved_seconds(readers: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall time of each reader over `rounds` rounds, taking turns (A B A B ...) so that whatever else the
    machine does falls on both alike. One untimed warm-up call each first."""
    for read in readers.values():
        read()
    times: dict[str, list[float]] = {name: [] for name in readers}
    for round_ in range(rounds):
        order = list(readers) if round_ % 2 == 0 else list(reversed(list(readers)))
        for name in order:
            started = time.perf_counter()
            readers[name]()
            times[name].append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class Serving:
    """What a model serves with by default on a CPU, and why (model/runtimes.py `runtime_reason`)."""

    runtime: Runtime
    reason: str


AS_SERVED = " as served"  # a reader timed in the runtime its model serves with, where that is not the shared one


def speed_check(
    times: dict[str, list[float]],
    config: GateConfig,
    pages: int,
    runtime: Runtime,
    serving: dict[str, Serving],
) -> Check:
    """The candidate against the champion in the same runtime (`runtime`: the fastest both have), so the gate
    compares networks and not runtimes, from the rounds' paired ratios (each round times both, interleaved, so a
    busy moment of the machine falls on both). Pass when the median ratio is within `speed_tolerance`.

    What each serves with is reported beside it: a candidate whose int8 graph training left out serves in float,
    slower than an int8 champion, whatever its network; that is said here (and timed, `... as served`), not
    judged: it is the runtime's loss, not the training's."""
    ratios = [c / max(h, 1e-9) for c, h in zip(times["candidate"], times["champion"], strict=True)]
    ratio = float(np.median(ratios))
    candidate = float(np.median(times["candidate"]))
    champion = float(np.median(times["champion"]))
    passed = ratio <= 1.0 + config.speed_tolerance
    summary = (
        f"{pages} pages, both in {runtime}: candidate {candidate:.2f} s, champion {champion:.2f} s (median of "
        f"{len(ratios)} interleaved rounds), {ratio:.2f}x {'within' if passed else 'beyond'} the allowed "
        f"{1 + config.speed_tolerance:.2f}x"
    )
    mine, theirs = serving["candidate"], serving["champion"]
    served = f"; the candidate serves with {mine.runtime} ({mine.reason})"
    if mine.runtime is not theirs.runtime:
        served += f", the champion with {theirs.runtime}"
        mine_s = float(np.median(times.get("candidate" + AS_SERVED, times["candidate"])))
        theirs_s = float(np.median(times.get("champion" + AS_SERVED, times["champion"])))
        served += f": as served, {mine_s / max(theirs_s, 1e-9):.2f}x the champion's time (for information)"
    return Check(
        name="speed",
        passed=passed,
        summary=summary + served,
        details={
            "runtime": runtime.value,
            "champion_s": champion,
            "candidate_s": candidate,
            "ratio": ratio,
            "ratios": ratios,
            "times": times,
            "pages": pages,
            "serving": {name: {"runtime": s.runtime.value, "reason": s.reason} for name, s in serving.items()},
        },
    )


APPROXIMATE_RUNTIMES = frozenset({"onnx-int8"})  # quantized: judged by accuracy, not by identical readings


def parity_check(
    keys: list[str],
    served: dict[str, list[str]],
    eager: list[str],
    config: GateConfig,
    where: str,
    truths: list[str] | None = None,
) -> Check:
    """Each runtime that can serve the artifact (`served`: runtime name -> its readings) against the eager network
    on the same pages. An export bug (a wrong charset order, a missing normalisation) changes most readings; float
    differences between two graphs can only flip a character where two were nearly tied. So the bound is on the
    CER between the readings over all pages (Σedits/Σchars, `parity_cer`), not on identical texts: measured in the
    loop test, a candidate fine-tuned for 40 steps read 1 of 6 golden pages one character differently, about
    0.0005 of their characters. A quantized runtime (int8) reads differently by design: its CER against `truths`
    beside eager's is reported, for information (training kept it only within `parity_cer` on its validation
    pages)."""
    if not keys or not served:
        return Check(name="export_parity", passed=False, summary="no pages to compare on")
    parts: list[str] = []
    details: dict[str, object] = {"pages": len(keys)}
    passed = True
    for runtime, readings in served.items():
        differ = [i for i, (a, b) in enumerate(zip(readings, eager, strict=True)) if a != b]
        between = corpus_cer(readings, eager)
        if runtime in APPROXIMATE_RUNTIMES:
            if truths is None:
                raise ValueError(f"{runtime} is judged against the truth: give truths")
            own, reference = corpus_cer(readings, truths), corpus_cer(eager, truths)
            within = own - reference <= config.parity_cer
            parts.append(
                f"{runtime} reads the {len(keys)} {where} pages at CER {own:.4f}, eager at {reference:.4f} "
                f"({'within' if within else 'over'} +{config.parity_cer}; for information)"
            )
            # Information only: training kept the int8 graph after checking it on its validation pages, more
            # pages than a gate's test split often has (8 pages: one character is 0.001), and the float runtimes
            # are what this check guards (an export bug). A candidate is not rejected for an optimisation.
            ok = True
        else:
            ok = between <= config.parity_cer
            parts.append(
                f"{runtime} reads all {len(keys)} {where} pages as eager does"
                if not differ
                else f"{runtime} reads {len(differ)} of {len(keys)} {where} pages differently from eager: CER "
                f"between the readings {between:.4f} ({'within' if ok else 'over'} the bound {config.parity_cer})"
            )
        passed &= ok
        details[runtime] = {
            "cer_between": between,
            "differ": [
                {
                    "key": keys[i],
                    runtime: readings[i],
                    "eager": eager[i],
                    "cer": edit_distance(readings[i], eager[i]) / max(len(eager[i]), 1),
                }
                for i in differ[:10]
            ],
        }
    return Check(name="export_parity", passed=passed, summary="; ".join(parts), details=details)


def memorization_check(memorized: Memorized | None, config: GateConfig) -> Check:
    """Pass when the loss on the batch of new lines ended below `memorization_loss` and at most half of where it
    started (model/memorize.py runs it); None (no new lines to train on) fails."""
    if memorized is None:
        return Check(name="memorization", passed=False, summary="no new training lines to memorize")
    passed = memorized.end_loss <= config.memorization_loss and memorized.end_loss <= 0.5 * memorized.start_loss
    return Check(
        name="memorization",
        passed=passed,
        summary=(
            f"{memorized.lines} new lines, {memorized.steps} steps from the parent's weights: loss "
            f"{memorized.start_loss:.4f} -> {memorized.end_loss:.4f} "
            f"(must end <= {config.memorization_loss} and at most half its start)"
        ),
        details={
            "losses": memorized.losses,
            "start": memorized.start_loss,
            "end": memorized.end_loss,
            "lines": memorized.lines,
            "seconds": memorized.seconds,
        },
    )


@dataclass(frozen=True)
class ScoredPage:
    """One frozen page as the candidate read it: its set ("test", "golden", "heldout"), the confidence it gave and
    the CER it made."""

    set: str
    confidence: float
    cer: float


def calibration_check(pages: Sequence[ScoredPage], config: GateConfig) -> Check:
    """Pass when the candidate's confidence ECE stays under `ece_max`: on the test pages, joined by the held-out
    pages when there are fewer test pages than a decisive slice needs; no pages at all fails."""
    scored = [p for p in pages if p.set == "test"]
    basis = "test pages"
    if len(scored) < config.min_slice_pages:
        scored += [p for p in pages if p.set == "heldout"]
        basis = "test and held-out pages (too few test pages alone)"
    if not scored:
        return Check(name="calibration", passed=False, summary="no pages to measure calibration on")
    confidence = np.array([p.confidence for p in scored])
    errors = np.array([p.cer for p in scored])
    ece = expected_calibration_error(confidence, errors)
    return Check(
        name="calibration",
        passed=ece <= config.ece_max,
        summary=f"confidence ECE {ece:.4f} on {len(scored)} {basis} (bound {config.ece_max})",
        details={
            "ece": ece,
            "pages": len(scored),
            "mean_confidence": float(confidence.mean()),
            "mean_accuracy": float(1 - np.minimum(errors, 1).mean()),
        },
    )
