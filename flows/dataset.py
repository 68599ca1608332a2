"""Dataset versions: the completed annotations, frozen into train/val/test with their labels and slice facts.

A build takes the newest revision of each completed annotation (skipped, unreadable and disputed answers stay out,
counted by reason), places every page in a split by inkloop.splits' rule (groups of near-duplicates, a salted hash;
a page keeps the split it had in any earlier version), checks the guards, and writes the version and its members
in one transaction. So a build that dies half-way leaves no version, and building with nothing new creates nothing
(the same membership hashes to the same version).

Guards, checked on every build; each refuses the build with its name:
- `near_duplicate_across_splits`: no two pages within the near-duplicate distance on two sides;
- `evaluated_after_training`: no page in val/test that an ancestor version had in train;
- `golden_in_train`: no golden page (model/golden), nor a copy of one, in train.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prefect import flow, task
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from db import repo
from db.models import Annotation, DatasetVersion
from flows.common import IO_TASK, FlowContext, FlowSummary, finish, flow_context
from inkloop.domain import ImageSource, Split, TaskReason, TaskState
from inkloop.errors import EmptyDatasetError, LeakageError
from inkloop.labels import LabelSource
from inkloop.phash import near_duplicates
from inkloop.splits import SplitRule, assign
from model.golden import GOLDEN_DIR
from monitoring.features import compute_features

GUARDS = ("near_duplicate_across_splits", "evaluated_after_training", "golden_in_train")
_EXAMPLES = 3  # pages named in a guard's refusal


class DatasetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    val_share: float = Field(0.1, ge=0, lt=1, description="Share of new page groups sent to validation.")
    test_share: float = Field(0.1, ge=0, lt=1, description="Share of new page groups sent to test.")
    description: str | None = Field(None, description="A note kept with the version.")
    collections: list[str] | None = Field(
        None, description="Imported collections whose pages join the version (default: all; [] for none)."
    )


class DatasetSummary(FlowSummary):
    """What a dataset build did."""

    version: str | None = None
    created: bool = False
    parent: str | None = None
    members: int = 0
    splits: dict[str, int] = {}
    added: int = 0
    relabelled: int = 0
    removed: int = 0
    left_out: dict[str, int] = {}
    nothing_to_build: str | None = None  # why no version exists yet (a scheduled run waits, it does not fail)


# --- plain functions --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenPages:
    """The golden pages' sha256s and perceptual hashes: a copy of one must never train."""

    sha256s: frozenset[str]
    phashes: tuple[str, ...]

    @classmethod
    def load(cls) -> GoldenPages:
        shas, hashes = set(), []
        for path in sorted(GOLDEN_DIR.glob("*.png")):
            data = path.read_bytes()
            shas.add(hashlib.sha256(data).hexdigest())
            features = compute_features(data)
            if features.phash:
                hashes.append(features.phash)
        return cls(frozenset(shas), tuple(hashes))

    def matches(self, sha256s: Sequence[str], phashes: Sequence[str | None]) -> list[bool]:
        hashed = [i for i, value in enumerate(phashes) if value]
        near = near_duplicates([phashes[i] or "" for i in hashed], list(self.phashes)).found()
        close = {hashed[i] for i in near.nonzero()[0]}
        return [sha in self.sha256s or i in close for i, sha in enumerate(sha256s)]


@dataclass
class Plan:
    """What a build would freeze: its members, and what it left out and why."""

    members: list[repo.MemberSpec]
    left_out: Counter[str] = field(default_factory=Counter)
    licences: dict[str, int] = field(default_factory=dict)  # imported pages by licence
    attributions: dict[str, str] = field(default_factory=dict)  # by collection


def _choose(page: repo.LabelledPage) -> tuple[Annotation | None, str | None]:
    """The answer a page is labelled with (the newest one given), or None and why it stays out."""
    if page.state is TaskState.needs_review:
        return None, "needs_review"
    answered = [a for a in page.answers if not a.skipped]
    if page.state is TaskState.skipped or not answered:
        return None, "skipped"
    answer = answered[-1]
    if answer.unreadable:
        return None, "unreadable"
    if answer.label_source is LabelSource.conflict:
        return None, "needs_review"
    if not (answer.text or "").strip():
        return None, "empty"
    return answer, None


@dataclass(frozen=True)
class _Candidate:
    member: repo.MemberSpec  # its split is placed by the rule
    link: str | None  # its document: pages sharing one stay in one split
    imported: Any = None  # the imported page (db.models.GroundTruthPage) it was made from


def _imported_members(session: Session, collections: Sequence[str] | None, plan: Plan) -> list[_Candidate]:
    """Imported pages (flows/groundtruth.py) as candidates: their transcribed lines, in reading order, are the label;
    their document (a letter, a writer) is their split group."""
    candidates = []
    for page in repo.gt_pages(session=session, collections=collections):
        lines = [line for line in repo.lines_as_json(page) if line["text"].strip()]
        if not lines:
            plan.left_out["no_transcribed_lines"] += 1
            continue
        text = "\n".join(line["text"] for line in lines)
        spec = repo.MemberSpec(
            image_sha256=page.image_sha256,
            split=Split.train,  # placed below
            text=text,
            lines=lines,
            gt_page_id=page.id,
            source=ImageSource.imported,
            line_count=len(lines),
        )
        link = f"{page.collection}/{page.document}" if page.document else None
        candidates.append(_Candidate(spec, link, page))
    return candidates


def _outlined(text: str, imported: list[Any]) -> tuple[list[dict[str, Any]], Any] | None:
    """The lines of the imported page an answer corrected (sync wrote the answer into it), with their polygons and
    baselines, when they say what the answer says; else None."""
    for page in imported:
        lines = [line for line in repo.lines_as_json(page) if line["text"].strip()]
        if lines and "\n".join(line["text"] for line in lines) == text:
            return lines, page
    return None


def _annotated_members(session: Session, project: str, plan: Plan) -> list[_Candidate]:
    candidates = []
    pages = repo.labelled_pages(session=session, project=project)
    imported = repo.gt_pages_by_image(session=session, image_sha256s=[p.image_sha256 for p in pages])
    for page in pages:
        answer, why = _choose(page)
        if answer is None:
            plan.left_out[why or "unknown"] += 1
            continue
        text = (answer.text or "").strip()
        # A reviewed imported page keeps its outlines: its stored lines are the answer's (flows/sync.py).
        outlined = _outlined(text, imported.get(page.image_sha256, []))
        spec = repo.MemberSpec(
            image_sha256=page.image_sha256,
            split=Split.train,  # placed below
            text=text,
            lines=outlined[0] if outlined else answer.lines,
            gt_page_id=outlined[1].id if outlined else None,
            annotation_id=answer.id,
            annotation_revision=answer.revision,
            reason=page.reason,
            source=page.source,
            polarity=page.polarity,
            line_count=len(text.split("\n")),
            request_id=page.request_id,
            served_model=page.served_model,
            served_confidence=page.served_confidence,
        )
        candidates.append(_Candidate(spec, page.document))
        if outlined:
            _credit(plan, outlined[1])
    return candidates


def _credit(plan: Plan, page: Any) -> None:
    """Count an imported page under its licence in the plan, and keep its collection's attribution."""
    plan.licences[page.licence or "unknown"] = plan.licences.get(page.licence or "unknown", 0) + 1
    if page.attribution:
        plan.attributions.setdefault(page.collection, page.attribution)


def plan_version(
    session: Session,
    *,
    project: str,
    rule: SplitRule,
    golden: GoldenPages,
    collections: Sequence[str] | None = None,
) -> Plan:
    """The members a build would freeze (nothing is written): `project`'s annotations, and the pages imported into
    `collections` (None: every collection; empty: none). A page both annotated and imported keeps its annotation."""
    plan = Plan(members=[])
    chosen = _annotated_members(session, project, plan)
    if collections is None or collections:
        seen = {c.member.image_sha256 for c in chosen}
        for candidate in _imported_members(session, collections, plan):
            if candidate.member.image_sha256 in seen:
                plan.left_out["imported_copy_of_another_page"] += 1
                continue
            seen.add(candidate.member.image_sha256)
            chosen.append(candidate)
            _credit(plan, candidate.imported)
    if not chosen:
        return plan
    keys = [c.member.image_sha256 for c in chosen]
    phashes_by_key = repo.image_phashes(session=session, sha256s=keys)
    phashes = [phashes_by_key.get(key) for key in keys]
    forced = {key: Split.test for key, hit in zip(keys, golden.matches(keys, phashes), strict=True) if hit}
    links = [c.link for c in chosen]
    placed = assign(keys, phashes, repo.frozen_splits(session=session), rule, links=links, forced=forced)
    for candidate, where in zip(chosen, placed, strict=True):
        if where.split is None:
            plan.left_out["near_duplicate_of_two_splits"] += 1
            continue
        plan.members.append(replace(candidate.member, split=where.split, group_key=where.group_key))
    return plan


def check_guards(
    session: Session,
    members: Sequence[repo.MemberSpec],
    *,
    parent: DatasetVersion | None,
    golden: GoldenPages,
) -> list[str]:
    """The guards this membership passes (all of GUARDS), or LeakageError naming the first that fails."""
    phashes = repo.image_phashes(session=session, sha256s=[m.image_sha256 for m in members])
    by_split: dict[Split, list[str]] = {s: [] for s in Split}
    for member in members:
        by_split[Split(member.split)].append(member.image_sha256)

    def hashed(shas: list[str]) -> list[str]:
        return [s for s in shas if phashes.get(s)]

    for left, right in ((Split.train, Split.val), (Split.train, Split.test), (Split.val, Split.test)):
        a, b = hashed(by_split[left]), hashed(by_split[right])
        near = near_duplicates([phashes[s] or "" for s in a], [phashes[s] or "" for s in b])
        pairs = [(a[i], b[int(near.index[i])]) for i in near.found().nonzero()[0][:_EXAMPLES]]
        if pairs:
            shown = ", ".join(f"{x[:12]} ({left}) ~ {y[:12]} ({right})" for x, y in pairs)
            raise LeakageError(f"dataset build refused: near_duplicate_across_splits: {shown}")
    lineage = ([parent] + repo.ancestors(session=session, version=parent)) if parent is not None else []
    trained = repo.trained_images(session=session, version_ids=[v.id for v in lineage])
    evaluated = sorted(trained.intersection(by_split[Split.val] + by_split[Split.test]))
    if evaluated:
        shown = ", ".join(s[:12] for s in evaluated[:_EXAMPLES])
        raise LeakageError(
            f"dataset build refused: evaluated_after_training: {len(evaluated)} val/test page(s) trained in an "
            f"ancestor version: {shown}"
        )
    train = by_split[Split.train]
    golden_hits = [
        s for s, hit in zip(train, golden.matches(train, [phashes.get(s) for s in train]), strict=True) if hit
    ]
    if golden_hits:
        shown = ", ".join(s[:12] for s in golden_hits[:_EXAMPLES])
        raise LeakageError(f"dataset build refused: golden_in_train: {shown}")
    return list(GUARDS)


def _changes(parent: list[Any], members: Sequence[repo.MemberSpec]) -> dict[str, list[str]]:
    before = {m.image_sha256: (m.text, m.lines) for m in parent}
    after = {m.image_sha256: (m.text, m.lines) for m in members}
    return {
        "added": sorted(set(after) - set(before)),
        "relabelled": sorted(s for s in set(after) & set(before) if after[s] != before[s]),
        "removed": sorted(set(before) - set(after)),
    }


def _next_name(session: Session) -> str:
    newest = repo.newest_dataset(session=session)
    return f"ds-{(newest.id if newest is not None else 0) + 1:04d}"


def build_version(
    session: Session,
    *,
    project: str,
    params: DatasetParams,
    golden: GoldenPages | None = None,
) -> DatasetSummary:
    """Freeze the completed annotations of `project` into a new dataset version, or find the identical one.

    Runs in the caller's transaction: nothing is kept unless it commits. EmptyDatasetError when no page qualifies;
    LeakageError when a guard fails.
    """
    rule = SplitRule(val=params.val_share, test=params.test_share)
    golden = golden or GoldenPages.load()
    plan = plan_version(session, project=project, rule=rule, golden=golden, collections=params.collections)
    summary = DatasetSummary(left_out=dict(sorted(plan.left_out.items())))
    if not plan.members:
        left = ", ".join(f"{n} {why}" for why, n in sorted(plan.left_out.items()))
        raise EmptyDatasetError(
            "no completed annotations yet: run inkloop flow run sync" + (f" (left out: {left})" if left else "")
        )
    content_hash = repo.membership_hash(plan.members)
    existing = repo.dataset_by_hash(session=session, content_hash=content_hash)
    parent = repo.newest_dataset(session=session)
    if existing is None:
        guards = check_guards(session, plan.members, parent=parent, golden=golden)
        old = repo.dataset_members(session=session, version_id=parent.id) if parent is not None else []
        changes = _changes(old, plan.members)
        name = _next_name(session)
        row = repo.create_dataset_version(
            session=session,
            version=name,
            members=plan.members,
            parent_version=parent.version if parent is not None else None,
            description=params.description,
            details={
                "project": project,
                "changes": changes,
                "left_out": summary.left_out,
                "guards": guards,
                "split_rule": {"salt": rule.salt, "val": rule.val, "test": rule.test},
                "imported": {"licences": plan.licences, "attributions": plan.attributions},
            },
        )
        summary.created = True
    else:
        row = existing
        changes = (row.details or {}).get("changes", {})
    summary.version = row.version
    summary.parent = parent.version if summary.created and parent is not None else None
    summary.members = len(plan.members)
    summary.splits = dict(row.counts or {})
    summary.added, summary.relabelled, summary.removed = (
        len(changes.get(k, [])) if summary.created else 0 for k in ("added", "relabelled", "removed")
    )
    return summary


@dataclass(frozen=True)
class SliceCounts:
    """Members of a version counted by split and by slice, for `inkloop datasets show`."""

    by_split: dict[str, int]
    by_slice: dict[str, dict[str, int]]  # "reason/audit" -> {"train": n, "val": n, "test": n}


def slice_counts(session: Session, version: DatasetVersion) -> SliceCounts:
    members = repo.dataset_members(session=session, version_id=version.id)
    by_split: Counter[str] = Counter(Split(m.split).value for m in members)
    by_slice: dict[str, Counter[str]] = {}
    for member in members:
        split = Split(member.split).value
        keys = []
        if member.reason is not None:
            keys.append(f"reason/{TaskReason(member.reason).value}")
            keys.append("stream/" + ("audit" if member.reason is TaskReason.audit else "routed"))
        if member.polarity:
            keys.append(f"polarity/{member.polarity}")
        if member.source is not None:
            keys.append(f"source/{member.source.value}")
        if member.line_count is not None:
            keys.append("lines/" + ("1" if member.line_count == 1 else "2-5" if member.line_count <= 5 else "6+"))
        for key in keys:
            by_slice.setdefault(key, Counter())[split] += 1
    return SliceCounts(
        by_split={s.value: by_split.get(s.value, 0) for s in Split},
        by_slice={k: {s.value: c.get(s.value, 0) for s in Split} for k, c in sorted(by_slice.items())},
    )


# --- Prefect ----------------------------------------------------------------------------------------------------


@task(name="build-dataset-version", **IO_TASK)
def _build(context: FlowContext, params: DatasetParams) -> DatasetSummary:
    try:
        with context.transaction() as session:
            return build_version(session, project=context.settings.label_studio_project, params=params)
    except EmptyDatasetError as empty:
        # Before the first annotations arrive, the nightly run has nothing to do: that is no failure.
        return DatasetSummary(nothing_to_build=str(empty))


@flow(name="dataset", validate_parameters=True)
def dataset(params: DatasetParams | None = None) -> DatasetSummary:
    """Freeze the completed annotations into a new dataset version (nothing new: nothing created)."""
    params = params or DatasetParams()
    started = time.perf_counter()
    with flow_context() as context:
        summary = _build(context, params)
    return finish(summary, started=started, name="dataset", title="Dataset version")
