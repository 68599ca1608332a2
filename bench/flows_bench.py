"""The data flows under Prefect, in one run: ingest + validate (images/s), route into Label Studio (tasks/s, next to
a bare bulk import of the same tasks into the same Label Studio) and sync (annotations/s).

    .venv/bin/python bench/flows_bench.py [--requests 10000] [--tasks 1000] [--annotations 1000] [--batch-size 500]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--cache data/bench-pages]
        [--repeats 3] [--png-every N] [--quick] [--keep] [--out FILE]

What it builds, in a temporary folder: two inkloop installations (home, store, database), a Label Studio 1.23.2
from `.venv-labelstudio` (its own SQLite; its document root contains both stores) and Prefect's embedded local API
(PREFECT_HOME in the temporary folder, flow-run heartbeats off). With `--database-url` the installations use
PostgreSQL: the bench creates three databases `inkloop_bench_<hex>_*` on that server and drops them at the end.

1. ingest: `--requests` distinct images logged as another serving stack would (image into the store, then a
   `requests` row), then one run of the ingest flow. The images are synthetic paragraphs (`devtools.traffic`,
   generated once into `--cache`), each page sent as itself (PNG) and as variants (cropped a few pixels,
   brightness shifted, re-encoded as JPEG, or PNG with --png-every; the bytes differ and the page stays
   realistic), plus 1% blank pages (`devtools.traffic.blank_page`).
2. route: `--tasks` distinct pages logged with the shipped model's text and line boxes, as the endpoint logs
   them (read once and cached beside the pages), and marked valid directly in a second installation (features
   and perceptual hash as ingest stores them, copied from the first installation where its ingest computed them
   for the same bytes), then one run of the route flow; next to it, the very payloads it built imported with the
   Label Studio client into fresh projects (one bulk request, and chunks of 100 as the flow sends them): the
   ceiling. Then the same pages logged without line boxes in a third installation, and one route run that
   segments every page again (`route_segmenting`: requests logged before the endpoint recorded lines).
3. sync: `--annotations` of the routed tasks answered by an annotator account, then one run of the sync flow
   (everything new) and `--repeats` runs with nothing new (the idempotent poll).

About 12 minutes on 2 cores (ingest about 3, route about 2, Label Studio answering 1,000 annotations about 1.5,
setup the rest; the first run also synthesises 1,000 pages and reads them with the shipped model, about 5
minutes more, both cached); `--quick` about 2 minutes.

Flows are timed around the call (`wall_s`: Prefect's flow-run bookkeeping included) and by their own clock
(`flow_seconds`: what the flow's summary reports). Breakdowns come from timing the flow modules' own functions
(wrapped for the run, never edited); "prefect_and_other_s" is the rest. Prints JSON (progress on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = 101  # devtools.traffic.SEED: production-like pages in the held-out fonts
TOKEN = "inkloop-bench-token-0123456789"  # guards only the bench's own Label Studio on 127.0.0.1
ANNOTATOR = ("bench-annotator@inkloop.local", "bench-annotator-password")
BLANK_SHARE = 0.01
MAX_VARIANTS = 20  # variants of one page; more requests than pages x this draw more pages
MODEL_VERSION = "base-2"


def say(message: str) -> None:
    print(f"[flows_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


# --- timing the flows' own functions ----------------------------------------------------------------------------


class Probe:
    """Seconds spent inside wrapped functions, per name and per call (thread-safe)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def _add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.calls[name].append(seconds)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - started)

        return timed

    def wrap_iter(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """For a generator: the time spent producing its items (not the consumer's time between them)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            spent = 0.0
            items = iter(fn(*args, **kwargs))
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    finally:
                        spent += time.perf_counter() - started
                    yield item
            finally:
                self._add(name, spent)

        return timed

    def total(self, *names: str) -> float:
        return sum(sum(self.calls.get(name, [])) for name in names)

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))


@contextlib.contextmanager
def probing(probe: Probe, targets: list[tuple[Any, str, str]]) -> Iterator[None]:
    """Wrap `owner.attribute` for the block; kind "call" or "iter"."""
    with contextlib.ExitStack() as stack:
        for owner, attribute, kind in targets:
            original = getattr(owner, attribute)
            wrapper = probe.wrap_iter if kind == "iter" else probe.wrap
            stack.enter_context(mock.patch.object(owner, attribute, wrapper(attribute, original)))
        yield


# --- traffic ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    data: bytes
    text: str


def load_pages(cache: Path, count: int) -> tuple[list[Page], dict[str, Any]]:
    """`count` synthetic production pages, from the cache or generated into it (once)."""
    from devtools.traffic import production_pages

    cache.mkdir(parents=True, exist_ok=True)
    folder = cache / f"production-seed{SEED}-n{count}"
    # Page i depends only on (seed, i): a larger cached set holds the same first `count` pages.
    for existing in sorted(cache.glob(f"production-seed{SEED}-n*")):
        if (existing / "labels.jsonl").exists() and int(existing.name.rsplit("-n", 1)[1]) >= count:
            folder = existing
            break
    generated = not (folder / "labels.jsonl").exists()
    started = time.perf_counter()
    if generated:
        say(f"synthesising {count} production pages into {folder} (once; cached)")
    uploads = production_pages(folder, count=count, workers=os.cpu_count() or 1)
    pages = [Page(u.data, u.text or "") for u in uploads]
    return pages, {
        "pages": len(pages),
        "folder": str(folder),
        "generated_now": generated,
        "seconds": round(time.perf_counter() - started, 1),
    }


def served_predictions(pages: list[Page], folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the endpoint logs for each page: the shipped model's text and line boxes (cached beside the pages,
    per model version; the first run reads every page, about 0.2 s each on 2 cores)."""
    from model.recognizer import Recognizer

    recognizer = Recognizer.load()
    cache = folder / f"predictions-{recognizer.version}.jsonl"
    cached = [json.loads(line) for line in cache.read_text().splitlines()] if cache.exists() else []
    started = time.perf_counter()
    if len(cached) < len(pages):
        say(f"reading {len(pages) - len(cached)} pages with {recognizer.version} (once; cached in {cache.name})")
        for start in range(len(cached), len(pages), 32):
            images: list[Image.Image] = [Image.open(io.BytesIO(page.data)) for page in pages[start : start + 32]]
            cached += [
                {"text": p.text, "line_boxes": [list(box) for box in p.line_boxes]}
                for p in recognizer.predict_images(images, batch_size=64)
            ]
        cache.write_text("".join(json.dumps(entry) + "\n" for entry in cached))
    info = {"model": recognizer.version, "file": str(cache), "seconds": round(time.perf_counter() - started, 1)}
    return cached[: len(pages)], info


def _encode_variant(job: tuple[bytes, int, int, int]) -> list[tuple[bytes, str, int, int]]:
    """`count` variants of one page: (bytes, format, width, height). Variant 0 is the page as generated (PNG); the
    others are cropped by a few pixels, shifted in brightness and re-encoded as JPEG, as a phone photo arrives
    (a PNG re-encode costs 10x a JPEG one: 21 vs 1.8 ms for these pages; --png-share makes some of them PNG)."""
    data, page, count, png_every = job
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        fmt = image.format or "PNG"
        pixels = np.asarray(image)
    out = []
    for k in range(count):
        if k == 0:
            out.append((data, fmt, pixels.shape[1], pixels.shape[0]))
            continue
        top, left = k % 5, (k // 5) % 5 + 1
        shifted = pixels[top:, left:].astype(np.int16) + ((k * 7) % 11 - 5)
        variant = Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        tag = f"inkloop-bench page {page} variant {k}"  # distinct bytes even if two crops coincided
        if not png_every or k % png_every:
            variant.save(buffer, "JPEG", quality=90, comment=tag.encode())
            out.append((buffer.getvalue(), "JPEG", variant.width, variant.height))
        else:
            info = PngImagePlugin.PngInfo()
            info.add_text("inkloop-bench", tag)
            variant.save(buffer, "PNG", compress_level=1, pnginfo=info)
            out.append((buffer.getvalue(), "PNG", variant.width, variant.height))
    return out


def _blank(seed: int) -> tuple[bytes, str, int, int]:
    from devtools.traffic import blank_page

    data = blank_page(seed, dark=seed % 2 == 1)
    with Image.open(io.BytesIO(data)) as image:
        return data, "JPEG", image.width, image.height


@dataclass(frozen=True)
class Logged:
    data: bytes
    fmt: str
    width: int
    height: int
    text: str
    kind: str  # page | blank


def ingest_traffic(pages: list[Page], requests: int, *, png_every: int) -> list[Logged]:
    """`requests` distinct images: variants of the pages and BLANK_SHARE blank pages, in a fixed shuffled order."""
    blanks = max(1, round(requests * BLANK_SHARE))
    page_requests = requests - blanks
    per_page = math.ceil(page_requests / len(pages))
    if per_page > MAX_VARIANTS:
        raise SystemExit(f"{page_requests} page requests from {len(pages)} pages is more than {MAX_VARIANTS} each")
    jobs, left = [], page_requests
    for index, page in enumerate(pages):
        if left <= 0:
            break
        jobs.append((page.data, index, min(per_page, left), png_every))
        left -= jobs[-1][2]
    traffic: list[Logged] = []
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        for (_, index, _, _), variants in zip(jobs, pool.imap(_encode_variant, jobs, chunksize=4), strict=True):
            traffic += [Logged(d, f, w, h, pages[index].text, "page") for d, f, w, h in variants]
        traffic += [Logged(d, f, w, h, "", "blank") for d, f, w, h in pool.map(_blank, range(5000, 5000 + blanks))]
    random.Random(SEED).shuffle(traffic)
    return traffic


def log_requests(
    store: Any,
    database_url: str,
    traffic: list[Logged],
    confidences: list[float],
    *,
    line_boxes: list[list[list[float]]] | None = None,
    block: int = 250,
) -> list[str]:
    """The request log as another serving stack writes it: images into the store first, then their rows (with
    `line_boxes`, one list per item, as inkloop's endpoint logs them). A block of images, then that block's rows
    in one transaction. Returns the store keys in order."""
    from db import repo
    from db.session import make_engine, session_factory, session_scope

    rng = random.Random(SEED + 1)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    keys: list[str] = []
    try:
        for start in range(0, len(traffic), block):
            chunk = traffic[start : start + block]
            # Puts wait on fsync, so a few at once, as several server workers would write.
            with ThreadPoolExecutor(4) as pool:
                chunk_keys = list(pool.map(lambda item: store.put(item.data), chunk))
            with session_scope(sessions) as session:
                for offset, (item, key) in enumerate(zip(chunk, chunk_keys, strict=True)):
                    confidence = confidences[start + offset]
                    lines = item.text.count("\n") + 1 if item.text else 0
                    repo.log_request(
                        session=session,
                        request_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        image_sha256=key,
                        image_bytes=len(item.data),
                        image_format=item.fmt,
                        image_width=item.width,
                        image_height=item.height,
                        model_version=MODEL_VERSION,
                        text=item.text,
                        confidence=confidence,
                        line_confidences=[confidence] * lines if lines else None,
                        line_boxes=[(x0, y0, x1, y1) for x0, y0, x1, y1 in line_boxes[start + offset]]
                        if line_boxes is not None
                        else None,
                        latency_ms=round(rng.uniform(150, 400), 1),
                        source="import",
                        created_at=datetime.now(UTC),
                    )
            keys += chunk_keys
    finally:
        engine.dispose()
    return keys


def known_features(database_url: str, keys: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """Features and perceptual hashes another installation's ingest already computed for these images."""
    from sqlalchemy import select

    from db.models import Image as ImageRow
    from db.session import make_engine, session_factory, session_scope

    engine = make_engine(database_url)
    found: dict[str, tuple[dict[str, Any], str]] = {}
    try:
        with session_scope(session_factory(engine)) as session:
            for start in range(0, len(keys), 500):
                query = select(ImageRow.sha256, ImageRow.features, ImageRow.phash).where(
                    ImageRow.sha256.in_(keys[start : start + 500]), ImageRow.phash.is_not(None)
                )
                found.update({sha: (features, phash) for sha, features, phash in session.execute(query)})
    finally:
        engine.dispose()
    return found


def mark_valid(store: Any, database_url: str, keys: list[str], known: dict[str, tuple[dict[str, Any], str]]) -> int:
    """What ingest leaves for an image it found valid: its row, features and perceptual hash
    (tests/flows/conftest.py `valid_image` does the same). Features ingest computed already (`known`, the same
    bytes) are reused; the rest are computed. Returns how many were computed."""
    from db import repo
    from db.session import make_engine, session_factory, session_scope
    from monitoring.features import compute_features

    missing = [key for key in keys if key not in known]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for key, found in zip(missing, pool.map(lambda k: compute_features(store.get(k)), missing), strict=True):
            if found.phash is None:  # every decodable image has one, and the bench's pages are all decodable
                raise SystemExit(f"image {key} has no perceptual hash: {found.error}")
            known[key] = (found.as_dict(), found.phash)
    engine = make_engine(database_url)
    try:
        with session_scope(session_factory(engine)) as session:
            for key in keys:
                features, phash = known[key]
                repo.upsert_image(session=session, sha256=key, source="production", byte_size=features["byte_size"])
                repo.set_image_validation(session=session, sha256=key, status="valid", features=features, phash=phash)
    finally:
        engine.dispose()
    return len(missing)


# --- installations, databases, services -------------------------------------------------------------------------


@dataclass
class Installation:
    home: Path
    database_url: str

    @property
    def store_folder(self) -> Path:
        return self.home / "store"


class Databases:
    """SQLite files, or fresh PostgreSQL databases on the `--database-url` server, dropped at the end."""

    def __init__(self, server_url: str | None, tmp: Path) -> None:
        self.server_url = server_url
        self.tmp = tmp
        self.created: list[str] = []
        self.tag = uuid.uuid4().hex[:10]

    def new(self, name: str) -> str:
        if not self.server_url:
            return f"sqlite:///{self.tmp / f'{name}.db'}"
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        database = f"inkloop_bench_{self.tag}_{name}"
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{database}"'))
        finally:
            admin.dispose()
        self.created.append(database)
        return make_url(self.server_url).set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.server_url or not self.created:  # databases are created on a server only
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                for database in self.created:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def describe(self, url: str) -> str:
        from sqlalchemy import text

        from db.session import make_engine

        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    return "sqlite " + connection.execute(text("select sqlite_version()")).scalar_one()
                return connection.execute(text("select version()")).scalar_one().split(" on ")[0]
        finally:
            engine.dispose()


def install(home: Path, database_url: str) -> Installation:
    from db.migrate import upgrade
    from inkloop.store import ImageStore

    home.mkdir(parents=True)
    ImageStore(str(home / "store")).ensure()
    upgrade(database_url)
    return Installation(home=home, database_url=database_url)


def activate(installation: Installation, *, label_studio_url: str, files_root: Path, project: str) -> None:
    """Point this process's INKLOOP_* settings at an installation, as `inkloop flow run` would find them."""
    os.environ.update(
        INKLOOP_HOME=str(installation.home),
        INKLOOP_DATABASE_URL=installation.database_url,
        INKLOOP_STORE_URL=str(installation.store_folder),
        INKLOOP_LABEL_STUDIO_URL=label_studio_url,
        INKLOOP_LABEL_STUDIO_TOKEN=TOKEN,
        INKLOOP_LABEL_STUDIO_FILES_ROOT=str(files_root),
        INKLOOP_LABEL_STUDIO_PROJECT=project,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_label_studio(venv: Path, root: Path, document_root: Path, cache: Path) -> tuple[Any, dict[str, Any]]:
    """A local Label Studio on a free port. Its fresh database (admin user with TOKEN) is cached after the first
    start (about 30 s), so later runs start in about 5 s."""
    import hashlib

    from devtools import labelstudio as server

    if not server.is_installed(venv):
        raise SystemExit(f"no Label Studio installed in {venv}: run `make labelstudio` (or pass --labelstudio-venv)")
    ls = server.LocalLabelStudio(
        url=f"http://127.0.0.1:{free_port()}", token=TOKEN, venv=venv, root=root, document_root=document_root
    )
    template = (
        cache / f"labelstudio-{server.LABEL_STUDIO_VERSION}-{hashlib.sha256(TOKEN.encode()).hexdigest()[:12]}.sqlite3"
    )
    database = ls.data_dir / "label_studio.sqlite3"
    from_template = template.is_file()
    if from_template:
        ls.data_dir.mkdir(parents=True)
        shutil.copyfile(template, database)
    started = time.perf_counter()
    server.up(ls, timeout_s=300)
    seconds = time.perf_counter() - started
    if not from_template:
        import sqlite3

        source, target = sqlite3.connect(database), sqlite3.connect(template.with_suffix(".partial"))
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        template.with_suffix(".partial").replace(template)
    return ls, {"version": server.LABEL_STUDIO_VERSION, "database": "sqlite (its own)", "start_s": round(seconds, 1)}


# --- the three measurements -------------------------------------------------------------------------------------


def log_ingest_traffic(installation: Installation, traffic: list[Logged]) -> dict[str, Any]:
    """Setup of the ingest measurement: the request log, and what the traffic is made of."""
    from inkloop.store import ImageStore
    from monitoring.features import compute_features

    store = ImageStore(str(installation.store_folder))
    rng = random.Random(SEED + 2)
    confidences = [round(rng.uniform(0.3, 1.0), 4) if t.kind == "page" else 0.0 for t in traffic]
    say(f"logging {len(traffic)} requests (store + request rows)")
    started = time.perf_counter()
    keys = log_requests(store, installation.database_url, traffic, confidences)
    log_seconds = time.perf_counter() - started
    # What one image costs by format, on one thread: the format mix moves the ingest rate.
    sample: dict[str, list[float]] = defaultdict(list)
    for item in traffic:
        if item.kind == "page" and len(sample[item.fmt]) < 30:
            started = time.perf_counter()
            compute_features(item.data)
            sample[item.fmt].append(1000 * (time.perf_counter() - started))
    return {
        "requests_logged": len(traffic),
        "distinct_images": len(set(keys)),
        "blank_pages": sum(t.kind == "blank" for t in traffic),
        "formats": {f: sum(t.fmt == f for t in traffic) for f in sorted({t.fmt for t in traffic})},
        "mean_image_kb": round(statistics.fmean(len(t.data) for t in traffic) / 1024, 1),
        "features_ms_per_page_one_thread": {fmt: median(ms) for fmt, ms in sorted(sample.items())},
        "log_write": {
            "includes": "setup, not ingest: ImageStore.put (fsync'd, 4 at a time) of each image, then its requests "
            "row (250 rows per transaction)",
            "seconds": round(log_seconds, 1),
            "requests_per_s": round(len(traffic) / log_seconds, 1),
        },
    }


def bench_ingest(traffic_info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import flows.ingest as ingest_module
    from flows.ingest import IngestParams, ingest

    phases = ["read_batch", "image_features", "validation_frame", "validate_batch", "decide", "commit_batch"]
    probe = Probe()
    targets = [(ingest_module, name, "call") for name in [*phases, "write_data_docs"]]
    say(f"ingest flow over {traffic_info['requests_logged']} requests (batch size {args.batch_size})")
    with probing(probe, targets):
        started = time.perf_counter()
        summary = ingest(IngestParams(batch_size=args.batch_size))
        wall = time.perf_counter() - started
    batches = summary.batches
    per_batch = []
    for index in range(batches):
        row = {name: round(probe.calls[name][index], 3) for name in phases}
        row["sum_s"] = round(sum(row.values()), 3)
        per_batch.append(row)
    inside = probe.total(*phases, "write_data_docs")
    idle = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ingest(IngestParams(batch_size=args.batch_size))
        idle.append(time.perf_counter() - started)
    images = summary.new_images
    return {
        "includes": "one ingest flow run under Prefect (local API): read the log past the watermark, fetch and "
        "hash-check each image from the store, compute its features, validate each batch with Great Expectations, "
        "commit images + watermark per batch, write Data Docs; wall clock around the flow call",
        **traffic_info,
        "wall_s": round(wall, 2),
        "images_per_s": round(images / wall, 1),
        "flow_seconds": summary.seconds,
        "flow_images_per_s": summary.images_per_s,
        "summary": summary.model_dump(mode="json"),
        "breakdown_s": {
            **{name: round(probe.total(name), 2) for name in phases},
            "write_data_docs": round(probe.total("write_data_docs"), 2),
            "prefect_and_other_s": round(wall - inside, 2),
        },
        "per_batch_median_s": {name: median([row[name] for row in per_batch]) for name in [*phases, "sum_s"]}
        if per_batch
        else {},
        "per_batch": per_batch,
        "nothing_new_run_wall_s": {"median": median(idle), "runs": [round(s, 2) for s in idle]},
    }


def bench_route(
    installation: Installation,
    pages: list[Page],
    predictions: list[dict[str, Any]],
    ls_url: str,
    ingested: Installation,
    args: argparse.Namespace,
    *,
    lines_logged: bool,
    ceiling: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One route flow run. `lines_logged`: the requests carry the line boxes inkloop's endpoint logs (else the flow
    segments each page, as for a request logged without them). `ceiling`: also import the flow's payloads
    straight into Label Studio."""
    import flows.route as route_module
    from annotation.client import LabelStudioClient
    from flows.route import RouteParams, route
    from inkloop.store import ImageStore

    store = ImageStore(str(installation.store_folder))
    chosen = pages[: args.tasks]
    traffic = []
    for page, predicted in zip(chosen, predictions, strict=False):
        with Image.open(io.BytesIO(page.data)) as image:
            traffic.append(
                Logged(page.data, image.format or "PNG", image.width, image.height, predicted["text"], "page")
            )
    boxes = [predicted["line_boxes"] for predicted in predictions[: len(traffic)]] if lines_logged else None
    # Distinct confidences below the threshold, so every page is a low-confidence candidate.
    confidences = [round(0.05 + 0.9 * i / len(traffic), 4) for i in range(len(traffic))]
    say(f"route: {len(traffic)} valid images, line boxes {'logged' if lines_logged else 'not logged'}")
    started = time.perf_counter()
    keys = log_requests(store, installation.database_url, traffic, confidences, line_boxes=boxes)
    computed = mark_valid(store, installation.database_url, keys, known_features(ingested.database_url, keys))
    setup_seconds = time.perf_counter() - started

    probe = Probe()
    captured: list[dict[str, Any]] = []
    original_payloads_for = route_module.payloads_for

    def capturing_payloads_for(context: Any, tasks: Any) -> list[dict[str, Any]]:
        payloads = original_payloads_for(context, tasks)
        captured.extend(payloads)  # the client copies what it sends; these stay as built
        return payloads

    targets = [
        (route_module, "choose", "call"),
        (route_module, "queued_tasks", "call"),
        (route_module, "confirm", "call"),
        (route_module, "page_lines", "call"),
        (ImageStore, "get", "call"),
        (LabelStudioClient, "ensure_project", "call"),
        (LabelStudioClient, "task_ids_by_uid", "call"),
        (LabelStudioClient, "import_tasks", "call"),
    ]
    params = RouteParams(budget=args.tasks, threshold=1.0, audit_rate=0.0, near_duplicate_distance=0)
    say(f"route flow: {args.tasks} tasks into Label Studio")
    with (
        mock.patch.object(route_module, "payloads_for", capturing_payloads_for),
        probing(probe, [(route_module, "payloads_for", "call"), *targets]),
    ):
        started = time.perf_counter()
        summary = route(params)
        wall = time.perf_counter() - started
    if summary.created != args.tasks:
        raise SystemExit(f"the route flow created {summary.created} tasks, not {args.tasks}: {summary}")
    segmentation = probe.total("page_lines")
    store_reads = probe.total("get")
    payload_rest = probe.total("payloads_for") - segmentation - store_reads
    label_studio = probe.total("ensure_project", "task_ids_by_uid", "import_tasks")
    database = probe.total("choose", "queued_tasks", "confirm")
    inside = segmentation + store_reads + payload_rest + label_studio + database

    idle = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        again = route(params)
        idle.append(time.perf_counter() - started)
        if again.created:
            raise SystemExit(f"a second route run created tasks: {again}")

    # The ceiling: the same payloads, straight into fresh projects of the same Label Studio.
    bulk: list[float] = []
    chunked: list[float] = []
    with LabelStudioClient(ls_url, TOKEN) as client:
        for repeat in range(args.repeats if ceiling else 0):
            for label, size, into in (("bulk", len(captured), bulk), ("chunks", params.chunk_size, chunked)):
                project = client.ensure_project(
                    f"bench raw {label} {repeat} {uuid.uuid4().hex[:6]}", model_version=None
                )
                started = time.perf_counter()
                created = client.import_tasks(project, captured, chunk_size=size, show_predictions=label == "chunks")
                into.append(time.perf_counter() - started)
                if len(created) != len(captured):
                    raise SystemExit(f"raw import created {len(created)} of {len(captured)} tasks")
    tasks = summary.created
    report: dict[str, Any] = {
        "includes": "one route flow run under Prefect (local API): Label Studio project check, choose within the "
        "budget and record tasks as queued, then per chunk of 100: ask Label Studio which uids it has, build the "
        "payloads (line boxes as logged with the request, or else read the image from the store and segment it: "
        "page_lines), import the chunk, record the task ids; wall clock around the flow call",
        "line_boxes": "logged with the requests (as the endpoint does)"
        if lines_logged
        else "not logged: the flow segments each page",
        "params": params.model_dump(),
        "setup_s": round(setup_seconds, 1),
        "setup_features_computed": computed,
        "tasks": tasks,
        "wall_s": round(wall, 2),
        "tasks_per_s": round(tasks / wall, 1),
        "flow_seconds": summary.seconds,
        "summary": summary.model_dump(mode="json"),
        "breakdown_s": {
            "segmentation_page_lines": round(segmentation, 2),
            "store_reads": round(store_reads, 2),
            "payload_building_and_request_query": round(payload_rest, 2),
            "label_studio": round(label_studio, 2),
            "label_studio_import_tasks": round(probe.total("import_tasks"), 2),
            "label_studio_task_ids_by_uid": round(probe.total("task_ids_by_uid"), 2),
            "label_studio_ensure_project": round(probe.total("ensure_project"), 2),
            "database_choose_queued_confirm": round(database, 2),
            "prefect_and_other_s": round(wall - inside, 2),
        },
        "segmentation_ms_per_page": round(1000 * segmentation / max(probe.count("page_lines"), 1), 1),
        "nothing_new_run_wall_s": {"median": median(idle), "runs": [round(s, 2) for s in idle]},
    }
    if ceiling:
        report["raw_import_ceiling"] = {
            "includes": "LabelStudioClient.import_tasks of the route flow's own payloads into a fresh project: no "
            "database, segmentation or bookkeeping; `bulk` is one request, `chunks_of_100` is the flow's chunking "
            "(plus its model-version check); median of repeats",
            "tasks": len(captured),
            "bulk_s": median(bulk),
            "bulk_tasks_per_s": round(len(captured) / statistics.median(bulk), 1),
            "chunks_of_100_s": median(chunked),
            "chunks_of_100_tasks_per_s": round(len(captured) / statistics.median(chunked), 1),
            "runs_bulk_s": [round(s, 2) for s in bulk],
            "runs_chunks_s": [round(s, 2) for s in chunked],
        }
        report["flow_vs_ceiling"] = round((tasks / wall) / report["raw_import_ceiling"]["bulk_tasks_per_s"], 3)
    return report, captured


def _lines_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The prediction's line boxes and texts, as an annotator who keeps the pre-filled regions submits them."""
    lines = []
    for item in payload["predictions"][0]["result"]:
        value = item["value"]
        if item["type"] == "textarea" and "x" in value:
            lines.append({"text": value["text"][0], "box": (value["x"], value["y"], value["width"], value["height"])})
    return lines


def bench_sync(
    installation: Installation, payloads: list[dict[str, Any]], ls_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import select

    import flows.sync as sync_module
    from annotation.client import LabelStudioClient
    from annotation.labeling import UID_KEY, annotation_result
    from db.models import AnnotationTask
    from db.session import make_engine, session_factory, session_scope
    from devtools.annotators import SimulatedAnnotator
    from flows.sync import sync

    engine = make_engine(installation.database_url)
    try:
        with session_scope(session_factory(engine)) as session:
            query = select(AnnotationTask.uid, AnnotationTask.ls_task_id)
            ids: dict[str, int | None] = {uid: task_id for uid, task_id in session.execute(query)}
    finally:
        engine.dispose()
    answers = []
    for payload in payloads[: args.annotations]:
        lines = _lines_of(payload)
        text = payload["predictions"][0]["result"][-1]["value"]["text"][0]
        corrected = text[:-1] + "." if text else "unreadable scribble"  # an annotator's small correction
        answers.append((ids[payload["data"][UID_KEY]], annotation_result(paragraph=corrected, lines=lines)))

    say(f"sync: {len(answers)} annotations by an annotator account")
    with LabelStudioClient(ls_url, TOKEN) as admin:
        annotator = SimulatedAnnotator.sign_up(admin, ANNOTATOR[0], password=ANNOTATOR[1])
    workers = 4
    started = time.perf_counter()
    with annotator, ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda a: annotator.submit(a[0], result=a[1], lead_time=12.5), answers))
    annotate_seconds = time.perf_counter() - started

    probe = Probe()
    targets = [
        (LabelStudioClient, "find_project", "call"),
        (LabelStudioClient, "server_time", "call"),
        (LabelStudioClient, "annotated_tasks", "iter"),
        (sync_module, "store_page", "call"),
        (sync_module, "parse_annotation", "call"),
    ]
    say("sync flow")
    with probing(probe, targets):
        started = time.perf_counter()
        summary = sync()
        wall = time.perf_counter() - started
    stored = summary.new_annotations + summary.new_revisions
    if stored != len(answers):
        raise SystemExit(f"the sync flow stored {stored} annotations, not {len(answers)}: {summary}")
    label_studio = probe.total("find_project", "server_time", "annotated_tasks")
    parsing = probe.total("parse_annotation")
    database = probe.total("store_page") - parsing
    idle: list[float] = []
    idle_summary: dict[str, Any] = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        again = sync()
        idle.append(time.perf_counter() - started)
        idle_summary = again.model_dump(mode="json")
        if again.new_annotations or again.new_revisions:
            raise SystemExit(f"a sync with nothing new stored annotations: {again}")
    return {
        "includes": "one sync flow run under Prefect (local API): find the project, poll Label Studio for annotated "
        "tasks (two listings, pages of 100, every field), parse each annotation, store new revisions and task "
        "states a page per transaction, move the watermark; wall clock around the flow call",
        "annotations": len(answers),
        "annotating": {
            "includes": "setup, not sync: the annotator's POST /api/tasks/<id>/annotations/ with line boxes, "
            f"{workers} at a time",
            "seconds": round(annotate_seconds, 1),
            "annotations_per_s": round(len(answers) / annotate_seconds, 1),
        },
        "wall_s": round(wall, 2),
        "annotations_per_s": round(stored / wall, 1),
        "flow_seconds": summary.seconds,
        "summary": summary.model_dump(mode="json"),
        "breakdown_s": {
            "label_studio_listing": round(label_studio, 2),
            "parse_annotation": round(parsing, 2),
            "database_store_page": round(database, 2),
            "prefect_and_other_s": round(wall - label_studio - probe.total("store_page"), 2),
        },
        "nothing_new": {
            "includes": "the idempotent poll: every task updated within the 5-minute overlap is read again and found "
            "unchanged",
            "wall_s_median": median(idle),
            "runs": [round(s, 2) for s in idle],
            "summary": idle_summary,
        },
    }


# --- main -------------------------------------------------------------------------------------------------------


class Background:
    """A function run in a thread; get() waits for it and re-raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.result = fn(*args)
        except BaseException as exc:  # handed to get()
            self.error = exc

    def get(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


def _nothing() -> None:
    """The warm-up flow: starts Prefect's local API outside the timed runs."""


def prefect_environment(tmp: Path) -> None:
    """Prefect's embedded local API with its files in the temporary folder; set before prefect is imported."""
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Keep the flows' per-batch INFO lines off stderr.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="Distinct logged images for ingest.")
    parser.add_argument("--tasks", type=int, default=1_000, help="Tasks the route flow creates.")
    parser.add_argument("--annotations", type=int, default=1_000, help="Annotations the sync flow brings back.")
    parser.add_argument("--batch-size", type=int, default=500, help="Ingest batch size (the flow's default).")
    parser.add_argument("--repeats", type=int, default=3, help="Repeats of the cheap parts (medians quoted).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 500 requests, 100 tasks, 100 annotations.")
    parser.add_argument(
        "--database-url",
        help="A PostgreSQL server (any database on it, e.g. .../postgres): the bench creates its databases there "
        "and drops them afterwards. Default: SQLite files.",
    )
    parser.add_argument(
        "--png-every",
        type=int,
        default=0,
        help="Every Nth re-encoded variant is a PNG instead of a JPEG (0: none; the original pages stay PNG).",
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "bench-pages", help="Generated pages (reused).")
    parser.add_argument("--labelstudio-venv", type=Path, default=ROOT / ".venv-labelstudio")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (its path goes to stderr).")
    parser.add_argument("--out", type=Path, help="Also write the JSON report to this file.")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.tasks, args.annotations = 500, 100, 100
    args.annotations = min(args.annotations, args.tasks)
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error(f"--database-url must be a PostgreSQL URL, not {args.database_url!r}")

    run_started = time.perf_counter()
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure: reported
    tmp = Path(tempfile.mkdtemp(prefix="inkloop-flows-bench-")).resolve()
    prefect_environment(tmp)
    databases = Databases(args.database_url, tmp)
    label_studio: Background | None = None
    try:
        page_count = max(args.tasks, math.ceil(args.requests / MAX_VARIANTS))
        pages, page_info = load_pages(args.cache.resolve(), page_count)
        say(f"{len(pages)} pages; encoding {args.requests} distinct variants")
        started = time.perf_counter()
        # Forks worker processes: before any thread, engine or service of this process exists.
        traffic = ingest_traffic(pages, args.requests, png_every=args.png_every)
        variants_seconds = time.perf_counter() - started
        predictions, predictions_info = served_predictions(pages[: args.tasks], Path(page_info["folder"]))

        say("starting Label Studio (in the background, during the setup)")
        label_studio = Background(
            start_label_studio, args.labelstudio_venv.resolve(), tmp / "labelstudio", tmp, args.cache.resolve()
        )
        ingest_home = install(tmp / "ingest", databases.new("ingest"))
        route_home = install(tmp / "route", databases.new("route"))
        segmenting_home = install(tmp / "route-segmenting", databases.new("segmenting"))
        database = databases.describe(ingest_home.database_url)
        traffic_info = log_ingest_traffic(ingest_home, traffic)
        del traffic

        import prefect
        from prefect import flow
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            say("starting Prefect's local API (a warm-up flow)")
            started = time.perf_counter()
            flow(name="bench-warm-up")(_nothing)()
            prefect_start = time.perf_counter() - started
            ls, ls_info = label_studio.get()  # up before anything is timed

            project = f"bench {uuid.uuid4().hex[:8]}"
            activate(ingest_home, label_studio_url=ls.url, files_root=tmp, project=project)
            ingest_report = bench_ingest(traffic_info, args)
            activate(route_home, label_studio_url=ls.url, files_root=tmp, project=project)
            route_report, payloads = bench_route(
                route_home, pages, predictions, ls.url, ingest_home, args, lines_logged=True, ceiling=True
            )
            activate(segmenting_home, label_studio_url=ls.url, files_root=tmp, project=f"{project} segmenting")
            segmenting_report, _ = bench_route(
                segmenting_home, pages, predictions, ls.url, ingest_home, args, lines_logged=False, ceiling=False
            )
            activate(route_home, label_studio_url=ls.url, files_root=tmp, project=project)  # sync: the first route's
            sync_report = bench_sync(route_home, payloads, ls.url, args)

        report = {
            "benchmark": "flows",
            "machine": {
                **machine(),
                "database": database,
                "database_backend": "postgresql" if args.database_url else "sqlite",
                "prefect": prefect.__version__,
                "prefect_api": "embedded local API (ephemeral server subprocess, same machine), heartbeats off",
                "label_studio": ls_info,
                "load_average_1m_at_start_and_end": [load_at_start, round(os.getloadavg()[0], 2)],
            },
            "sizes": {
                "requests": args.requests,
                "tasks": args.tasks,
                "annotations": args.annotations,
                "batch_size": args.batch_size,
                "repeats": args.repeats,
                "quick": args.quick,
                "png_every": args.png_every,
            },
            "setup": {
                "pages": page_info,
                "variants_s": round(variants_seconds, 1),
                "served_predictions": predictions_info,
                "prefect_local_api_start_s": round(prefect_start, 1),
            },
            "ingest": ingest_report,
            "route": route_report,
            "route_segmenting": segmenting_report,
            "sync": sync_report,
            "total_wall_s": round(time.perf_counter() - run_started, 1),
        }
    finally:
        say("tearing down: Label Studio, databases, temporary folder")
        if label_studio is not None:
            label_studio.thread.join()
            if label_studio.result is not None:
                from devtools import labelstudio as server

                started = time.perf_counter()
                server.down(label_studio.result[0])
                say(f"Label Studio stopped in {time.perf_counter() - started:.1f} s")
        databases.drop_all()
        started = time.perf_counter()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        say(f"torn down (databases and folder: {time.perf_counter() - started:.1f} s)")
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
