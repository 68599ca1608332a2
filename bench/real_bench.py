"""inkloop against Tesseract 5 on real handwritten letters (../shared/data/real-handwriting): lines cut from the ground
truth's own polygons, the segmenter's lines against the ground truth's, and whole pages read as served.

    .venv/bin/python bench/real_bench.py [--data DIR] [--sets stanford-memorials,hooker] [--pages N]
        [--line-types Handwritten] [--no-tesseract] [--kraken FILE.jsonl] [--out real.json]

Per set, on its pages in sorted order (`--pages N`: the first N of each set):
- lines: each counted ground-truth line is cut along its polygon and levelled by its baseline
  (model.segment.polygon_lines) and read by inkloop (the shipped artifact, width-sorted batches) and by Tesseract
  (`--psm 7`, one text line, on the same crop saved as a PNG, dark ink on white). inkloop also reads the line cut
  along its polygon grown by GROW pixels, and cut by its polygon's bounding box (model.segment.box_lines), which is
  what polygon cutting is measured against (paired differences: the same lines resampled for both). CER is
  total edits over total characters with a 95% bootstrap interval over lines; seconds per line are the median over
  pages of (a page's seconds) / (its lines): cutting and reading for inkloop; for Tesseract, one process per page
  reading the page's line PNGs from a list file, so its start-up (about 0.09 s) is shared by the page's lines.
- detection: the segmenter's lines (`Line.percent_box` as a rectangle on the page; also the deskewed box it cuts,
  turned back onto the page) against every ground-truth line of the page, whatever its type or text (a segmenter
  cannot know types): precision and recall at IoU >= 0.5, the
  polygons rasterised with the page's longer side at DETECTION_SIDE pixels, matched one to one by greedy highest IoU.
  With `--kraken FILE.jsonl` (bench/kraken_lines.py's output) the same for kraken's blla polygons, with its seconds
  per page beside the segmenter's.
- pages: the page read as served (segmentation, then the lines read, joined with newlines), the page's ground-truth
  lines read (the same polygon crops as above, joined), and Tesseract `--psm 6` on the page image, each against the
  page's counted lines joined with newlines in reading order, after peer_bench's normalisation (lines stripped, empty
  lines dropped). CER with a 95% bootstrap interval over pages.
- by letter (Stanford, whose file names name letters: Page10-Lettre75-76--Lettre75 is letter 75): line CER per letter,
  in the JSON only.

Which lines count: those with text whose type contains one of `--line-types` (default Handwritten: SegmOnto's
`DefaultLine:Handwritten` and `InterlinearLine:Handwritten`); lines without a type (all of Hooker's) count. Two Hooker
files carry lines at a wrong scale: they are read with their bad lines skipped, and the skipped lines are counted.

inkloop runs with 2 torch threads (its ONNX Runtime session takes torch's thread count); Tesseract with one
(OMP_THREAD_LIMIT=1), as peer_bench runs it. Everything runs on the CPU. Progress goes to stderr, a line per page; a
summary table to stdout; the JSON to `--out` (to stdout when no `--out` is given). Hooker is CC BY-SA: this writes
numbers only, nothing derived from its images or text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_bench import cer_with_interval, normalise, tesseract_version  # noqa: E402
from store_bench import machine  # noqa: E402

from inkloop.groundtruth import GroundTruthError, GtLine, GtPage, parse  # noqa: E402
from inkloop.text import edit_distance  # noqa: E402
from model import segment as segment_module  # noqa: E402
from model.preprocess import line_input, to_grayscale  # noqa: E402
from model.recognizer import SHIPPED_MODEL, Recognizer, open_image  # noqa: E402
from model.segment import POLYGON_GROW, Line, box_lines, polygon_lines, segment, unrotate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-handwriting"
SETS = ("stanford-memorials", "hooker")
IOU_THRESHOLD = 0.5
# Baselines match when their shared horizontal stretch is at least half of the two together (BASELINE_OVERLAP) and,
# along it, the median vertical distance between them is at most BASELINE_TOLERANCE of the page's line spacing.
BASELINE_OVERLAP = 0.5
BASELINE_TOLERANCE = 0.3
DETECTION_SIDE = 1000  # polygons are rasterised with the page's longer side at this many pixels (a line: 10-40 rows)
TORCH_THREADS = 2
# Working pixels the grown variant widens each polygon by: Hooker's polygons are drawn tight round the x-height band
# and cut off the line's own ascenders and descenders (38 Hooker pages: CER 0.742 exact, 0.733 grown by 3, 0.724
# by 8, 0.723 by 12, box crops 0.731).
GROW = POLYGON_GROW  # what training and inkloop evaluate --lines cut with
LETTER = re.compile(r"--(Lettre\d+)")  # Stanford: Page10-Lettre75-76--Lettre76_1 is (a page of) letter 76

T = TypeVar("T")


# --- the pages --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthPage:
    name: str  # the file's stem
    image: Path
    page: GtPage
    document: str | None  # the letter, where file names name one

    @property
    def skipped(self) -> int:
        return len(self.page.skipped)


def load_pages(folder: Path, limit: int | None) -> list[TruthPage]:
    """The first `limit` pages of a set (all when None), in sorted order, with their images beside them."""
    files = sorted((folder / "pages").glob("*.xml"))
    if not files:
        raise SystemExit(f"no ground-truth files (*.xml) in {folder / 'pages'}")
    pages = []
    for xml in files[:limit]:
        data = xml.read_bytes()
        try:
            page = parse(data, file=xml.name)
        except GroundTruthError:
            # Two Hooker files hold a few lines at a wrong scale (outlines off the page): keep the rest, count these.
            page = parse(data, file=xml.name, skip_bad_lines=True)
        image = xml.with_suffix(".jpg")
        if not image.is_file():
            raise SystemExit(f"{xml}: no image {image.name} beside it")
        match = LETTER.search(xml.stem)
        pages.append(TruthPage(xml.stem, image, page, match.group(1) if match else None))
    return pages


def counts(line: GtLine, types: Sequence[str]) -> bool:
    """Whether a line is read and scored: it has text, and its type (if it has one) is one of `types`."""
    return bool(line.text) and (line.line_type is None or any(t in line.line_type for t in types))


def percent_box(line: GtLine, width: int, height: int) -> tuple[float, float, float, float]:
    left, top, right, bottom = line.box()
    return (100 * left / width, 100 * top / height, 100 * (right - left) / width, 100 * (bottom - top) / height)


def clean(text: str) -> str:
    """One line's reading as the truth spells lines: runs of whitespace (newlines too) as one space."""
    return " ".join(text.split())


# --- the readers ------------------------------------------------------------------------------------------------


def tesseract_env() -> dict[str, str]:
    # One thread, as one request in one server process gets; OMP would otherwise spread over every core.
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


def tesseract_page(path: Path) -> str:
    done = subprocess.run(
        ["tesseract", str(path), "stdout", "--psm", "6", "-l", "eng"],
        capture_output=True,
        text=True,
        env=tesseract_env(),
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tesseract failed on {path}: {done.stderr.strip()[-300:]}")
    return done.stdout


def tesseract_lines(crops: Sequence[np.ndarray], folder: Path) -> tuple[list[str], float]:
    """Tesseract `--psm 7` on each crop (empty crops read as ""), and the seconds its process took. The crops go to
    one process as a list file (Tesseract reads each as a page and separates their texts with a form feed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for n, crop in enumerate(crops):
        if crop.size:
            path = folder / f"line{n:04d}.png"
            Image.fromarray(np.round(255 * (1 - np.clip(crop, 0, 1))).astype(np.uint8)).save(path)
            paths.append(path)
    texts: list[str] = []
    seconds = 0.0
    if paths:
        listing = folder / "lines.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        start = time.perf_counter()
        done = subprocess.run(
            ["tesseract", str(listing), "stdout", "--psm", "7", "-l", "eng"],
            capture_output=True,
            text=True,
            env=tesseract_env(),
            timeout=600,
        )
        seconds = time.perf_counter() - start
        parts = done.stdout.split("\f")
        if done.returncode != 0 or len(parts) != len(paths):
            raise RuntimeError(
                f"tesseract read {len(parts)} texts for {len(paths)} line images in {folder} "
                f"(exit {done.returncode}): {done.stderr.strip()[-300:]}"
            )
        texts = parts
    read = iter(texts)
    return [clean(next(read)) if crop.size else "" for crop in crops], seconds


def served_text(recognizer: Recognizer, path: Path) -> str:
    """The page's text as inkloop serves it: decoded, segmented, its lines read and joined with newlines."""
    return recognizer.predict_images([open_image(path)])[0].text


def inkloop_lines(recognizer: Recognizer, crops: Sequence[np.ndarray]) -> list[str]:
    """The shipped reader on line crops (empty crops read as "")."""
    inputs = [line_input(c, recognizer.line_height, recognizer.max_line_width) for c in crops if c.size]
    decoded = iter(recognizer.read_lines(inputs))
    return [clean(next(decoded).text) if c.size else "" for c in crops]


# --- detection --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A line's outline rasterised at a reduced scale: its box's corner and its mask there."""

    left: int
    top: int
    mask: np.ndarray  # (h, w) bool
    area: int


def rasterise(polygon: Sequence[Sequence[float]], scale: float) -> Region | None:
    """None for an outline with no pixels at this scale (fewer than 3 points)."""
    if len(polygon) < 3:
        return None
    points = np.asarray(polygon, dtype=np.float64) * scale
    left, top = int(np.floor(points[:, 0].min())), int(np.floor(points[:, 1].min()))
    width = int(np.ceil(points[:, 0].max())) - left + 1
    height = int(np.ceil(points[:, 1].max())) - top + 1
    image = Image.new("1", (width, height), 0)
    ImageDraw.Draw(image).polygon([(float(x - left), float(y - top)) for x, y in points], fill=1, outline=1)
    mask = np.asarray(image, dtype=bool)
    return Region(left, top, mask, int(mask.sum()))


def iou(a: Region, b: Region) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right = min(a.left + a.mask.shape[1], b.left + b.mask.shape[1])
    bottom = min(a.top + a.mask.shape[0], b.top + b.mask.shape[0])
    if right <= left or bottom <= top:
        return 0.0
    window_a = a.mask[top - a.top : bottom - a.top, left - a.left : right - a.left]
    window_b = b.mask[top - b.top : bottom - b.top, left - b.left : right - b.left]
    inter = int(np.count_nonzero(window_a & window_b))
    return inter / (a.area + b.area - inter) if inter else 0.0


def one_to_one(pairs: Sequence[tuple[float, int, int]]) -> int:
    """How many (score, predicted, truth) pairs, taken best first in the order given, pair a predicted line with a
    truth line neither of which is paired yet."""
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def matched(predicted: Sequence[Region | None], truth: Sequence[Region | None]) -> int:
    """How many predicted lines pair one to one with a truth line at IoU >= IOU_THRESHOLD, taking the pairs by
    highest IoU first."""
    pairs = sorted(
        (
            (score, i, j)
            for i, p in enumerate(predicted)
            if p is not None
            for j, t in enumerate(truth)
            if t is not None and (score := iou(p, t)) >= IOU_THRESHOLD
        ),
        reverse=True,
    )
    return one_to_one(pairs)


class Baseline:
    """A line's baseline as a function y(x) over its horizontal extent (points sorted by x)."""

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        order = np.argsort(array[:, 0], kind="stable")
        self.xs, self.ys = array[order, 0], array[order, 1]
        self.left, self.right = float(self.xs[0]), float(self.xs[-1])

    @classmethod
    def of(cls, points: Sequence[Sequence[float]]) -> Baseline | None:
        """None for fewer than two points or no width (a vertical or empty baseline)."""
        if len(points) < 2:
            return None
        line = cls(points)
        return line if line.right - line.left >= 1.0 else None

    def y(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.xs, self.ys)

    def distance(self, other: Baseline) -> tuple[float, float]:
        """(shared stretch / both together, median vertical distance along the shared stretch); (0, inf) for none."""
        lo, hi = max(self.left, other.left), min(self.right, other.right)
        union = max(self.right, other.right) - min(self.left, other.left)
        if hi <= lo or union <= 0:
            return 0.0, float("inf")
        xs = np.linspace(lo, hi, 24)
        return (hi - lo) / union, float(np.median(np.abs(self.y(xs) - other.y(xs))))


def line_spacing(truth: Sequence[Baseline | None], fallback: float) -> float:
    """The page's line spacing: the median vertical distance from each truth baseline to the nearest one below it
    that shares some of its stretch; `fallback` on a page with no such pair."""
    gaps = []
    for line in truth:
        if line is None:
            continue
        below = [
            d
            for other in truth
            if other is not None and other is not line
            for share, d in [line.distance(other)]
            if share > 0 and float(np.mean(other.ys)) > float(np.mean(line.ys))
        ]
        if below:
            gaps.append(min(below))
    positive = [g for g in gaps if g > 0]
    return float(np.median(positive)) if positive else fallback


def baselines_matched(predicted: Sequence[Baseline | None], truth: Sequence[Baseline | None], tolerance: float) -> int:
    """How many predicted baselines pair one to one with a truth baseline (BASELINE_OVERLAP of their stretch shared,
    median distance along it within `tolerance` pixels), taking the closest pairs first."""
    pairs = sorted(
        (d, i, j)
        for i, p in enumerate(predicted)
        if p is not None
        for j, t in enumerate(truth)
        if t is not None
        for share, d in [p.distance(t)]
        if share >= BASELINE_OVERLAP and d <= tolerance
    )
    return one_to_one(pairs)


def rectangle(box: tuple[float, float, float, float], width: int, height: int) -> list[tuple[float, float]]:
    """A percent box (x, y, w, h) as the page-pixel corners of its rectangle."""
    x, y, w, h = box
    left, top, right, bottom = x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def turned_back(line: Line, width: int, height: int) -> list[tuple[float, float]]:
    """The segmenter's line as it cuts it (its box in the deskewed working image) turned back onto the page: a
    rectangle at the page's skew, where percent_box is the upright rectangle around that."""
    left, top, right, bottom = line.box
    corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)
    source = line.source_size if line.source_size != (0, 0) else line.page_size
    on_page = unrotate(corners, line.angle, line.page_size, source) * [width / source[0], height / source[1]]
    return [(float(x), float(y)) for x, y in on_page]


@dataclass
class Detections:
    """One segmenter's counts over a set's pages."""

    predicted: list[int] = field(default_factory=list)  # per page
    matched: list[int] = field(default_factory=list)
    truth: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    without_shape: int = 0  # predicted lines with no polygon (or baseline) to match

    def add(self, predicted: Sequence[Region | None], truth: Sequence[Region | None], seconds: float) -> None:
        self.predicted.append(len(predicted))
        self.truth.append(len(truth))
        self.matched.append(matched(predicted, truth))
        self.seconds.append(seconds)
        self.without_shape += sum(p is None for p in predicted)

    def add_baselines(
        self, predicted: Sequence[Baseline | None], truth: Sequence[Baseline | None], tolerance: float, seconds: float
    ) -> None:
        self.predicted.append(len(predicted))
        self.truth.append(len(truth))
        self.matched.append(baselines_matched(predicted, truth, tolerance))
        self.seconds.append(seconds)
        self.without_shape += sum(p is None for p in predicted)

    def report(self, rng: np.random.Generator) -> dict[str, object]:
        m, p, t = (np.array(x, dtype=float) for x in (self.matched, self.predicted, self.truth))
        draws = rng.integers(0, len(m), size=(2000, len(m)))
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = m[draws].sum(axis=1) / p[draws].sum(axis=1)
            recall = m[draws].sum(axis=1) / t[draws].sum(axis=1)
        return {
            "pages": len(m),
            "predicted_lines": int(p.sum()),
            "truth_lines": int(t.sum()),
            "matched": int(m.sum()),
            "precision": round(float(m.sum() / max(p.sum(), 1)), 4),
            "precision_interval": [round(float(np.nanpercentile(precision, q)), 4) for q in (2.5, 97.5)],
            "recall": round(float(m.sum() / max(t.sum(), 1)), 4),
            "recall_interval": [round(float(np.nanpercentile(recall, q)), 4) for q in (2.5, 97.5)],
            "s_per_page_median": round(statistics.median(self.seconds), 3),
            **({"lines_without_shape": self.without_shape} if self.without_shape else {}),
        }


def load_kraken(path: Path) -> dict[str, dict]:
    """bench/kraken_lines.py's records by image file name."""
    records = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip():
            record = json.loads(text)
            missing = {"image", "seconds", "width", "height", "lines"} - set(record)
            if missing:
                raise SystemExit(f"{path}:{number}: the record lacks {sorted(missing)}")
            records[Path(record["image"]).name] = record
    return records


def kraken_regions(record: dict, page: GtPage, scale: float) -> list[Region | None]:
    """kraken's line polygons on the page, rescaled if kraken saw the image at another size."""
    sx, sy = page.width / record["width"], page.height / record["height"]
    return [rasterise([(x * sx, y * sy) for x, y in line.get("polygon") or []], scale) for line in record["lines"]]


def kraken_baselines(record: dict, page: GtPage) -> list[Baseline | None]:
    """kraken's line baselines on the page, rescaled like kraken_regions."""
    sx, sy = page.width / record["width"], page.height / record["height"]
    return [Baseline.of([(x * sx, y * sy) for x, y in line.get("baseline") or []]) for line in record["lines"]]


# --- scoring ----------------------------------------------------------------------------------------------------


def interval(edits: Sequence[int], chars: Sequence[int], rng: np.random.Generator) -> dict[str, float] | None:
    return cer_with_interval(list(edits), list(chars), rng) if edits and sum(chars) else None


def paired_difference(
    edits_a: Sequence[int], edits_b: Sequence[int], chars: Sequence[int], rng: np.random.Generator
) -> dict[str, float] | None:
    """CER(a) - CER(b) on the same lines, with a 95% interval from resampling lines (both readers together)."""
    if not chars or not sum(chars):
        return None
    a, b, c = (np.array(x, dtype=float) for x in (edits_a, edits_b, chars))
    draws = rng.integers(0, len(c), size=(2000, len(c)))
    boot = (a[draws].sum(axis=1) - b[draws].sum(axis=1)) / c[draws].sum(axis=1)
    return {
        "difference": round(float((a.sum() - b.sum()) / c.sum()), 4),
        "low": round(float(np.percentile(boot, 2.5)), 4),
        "high": round(float(np.percentile(boot, 97.5)), 4),
    }


@dataclass
class Scores:
    """Per-item edits of each reader against one list of character counts (lines or pages)."""

    chars: list[int] = field(default_factory=list)
    edits: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    groups: list[str | None] = field(default_factory=list)

    def add(self, truth: str, readings: dict[str, str], group: str | None = None) -> None:
        self.chars.append(len(truth))
        self.groups.append(group)
        for reader, text in readings.items():
            self.edits[reader].append(edit_distance(text, truth))

    def report(self, rng: np.random.Generator, seconds: dict[str, list[float]], unit: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for reader, edits in self.edits.items():
            cell = interval(edits, self.chars, rng)
            if cell is not None and seconds.get(reader):
                cell[f"s_per_{unit}_median"] = round(statistics.median(seconds[reader]), 4)
            out[reader] = cell
        return out

    def by_group(self) -> dict[str, dict[str, object]]:
        totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for n, group in enumerate(self.groups):
            if group is None:
                continue
            totals[group]["lines"] += 1
            totals[group]["chars"] += self.chars[n]
            for reader, edits in self.edits.items():
                totals[group][reader] += edits[n]
        return {
            group: {
                "lines": t["lines"],
                "chars": t["chars"],
                **{reader: round(t[reader] / max(t["chars"], 1), 4) for reader in self.edits},
            }
            for group, t in sorted(totals.items(), key=lambda item: int(item[0].removeprefix("Lettre")))
        }


# --- one set ----------------------------------------------------------------------------------------------------


def timed(call: Callable[..., T], *args: object) -> tuple[T, float]:
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


def run_set(
    name: str,
    pages: list[TruthPage],
    recognizer: Recognizer,
    *,
    types: Sequence[str],
    use_tesseract: bool,
    kraken: dict[str, dict] | None,
    rng: np.random.Generator,
    scratch: Path,
) -> dict[str, object]:
    lines, page_scores, whole_pages = Scores(), Scores(), Scores()
    line_seconds: dict[str, list[float]] = defaultdict(list)
    page_seconds: dict[str, list[float]] = defaultdict(list)
    segmenter, deskewed, outlined, kraken_detections = Detections(), Detections(), Detections(), Detections()
    baselined, kraken_baselined = Detections(), Detections()
    ours_on_kraken_pages = {
        "inkloop": Detections(),
        "inkloop_deskewed_box": Detections(),
        "inkloop_outline": Detections(),
        "inkloop_baseline": Detections(),
    }
    kraken_missing: list[str] = []
    tally = {"lines_in_files": 0, "counted": 0, "empty_text": 0, "other_types": 0, "empty_crops": 0}
    outside_charset = 0
    for number, truth_page in enumerate(pages, start=1):
        started = time.perf_counter()
        page = truth_page.page
        image = open_image(truth_page.image)
        gray = to_grayscale(image)
        if (gray.shape[1], gray.shape[0]) != (page.width, page.height):
            raise SystemExit(
                f"{truth_page.image}: the image is {gray.shape[1]}x{gray.shape[0]}, its ground truth says "
                f"{page.width}x{page.height}"
            )
        chosen = [line for line in page.lines if counts(line, types)]
        tally["lines_in_files"] += len(page.lines)
        tally["counted"] += len(chosen)
        tally["empty_text"] += sum(not line.text for line in page.lines)
        tally["other_types"] += sum(bool(line.text) and not counts(line, types) for line in page.lines)
        outside_charset += sum(ch not in recognizer.charset for line in chosen for ch in line.text if ch != " ")

        # Lines: the same crops for inkloop and Tesseract; box crops for inkloop alone.
        readings: dict[str, list[str]] = {}
        if chosen:
            start = time.perf_counter()
            crops = polygon_lines(gray, chosen)
            readings["inkloop_polygon"] = inkloop_lines(recognizer, crops)
            line_seconds["inkloop_polygon"].append((time.perf_counter() - start) / len(chosen))
            tally["empty_crops"] += sum(not c.size for c in crops)
            start = time.perf_counter()
            readings["inkloop_polygon_grown"] = inkloop_lines(recognizer, polygon_lines(gray, chosen, grow=GROW))
            line_seconds["inkloop_polygon_grown"].append((time.perf_counter() - start) / len(chosen))
            start = time.perf_counter()
            boxes = [percent_box(line, page.width, page.height) for line in chosen]
            readings["inkloop_box"] = inkloop_lines(recognizer, box_lines(gray, boxes))
            line_seconds["inkloop_box"].append((time.perf_counter() - start) / len(chosen))
            if use_tesseract:
                tess_texts, tess_seconds = tesseract_lines(crops, scratch / f"{name}-{number:04d}")
                readings["tesseract"] = tess_texts
                line_seconds["tesseract"].append(tess_seconds / len(chosen))
            for n, line in enumerate(chosen):
                lines.add(line.text, {reader: texts[n] for reader, texts in readings.items()}, truth_page.document)

        # Detection: every ground-truth line is truth, whatever its type or text.
        scale = min(1.0, DETECTION_SIDE / max(page.width, page.height))
        truth_regions = [rasterise(line.polygon or _box_outline(line), scale) for line in page.lines]
        found, segment_seconds = timed(segment, gray)
        ours = {
            "inkloop": [rasterise(rectangle(line.percent_box(), page.width, page.height), scale) for line in found],
            "inkloop_deskewed_box": [rasterise(turned_back(line, page.width, page.height), scale) for line in found],
            "inkloop_outline": [rasterise(line.page_polygon((page.width, page.height)), scale) for line in found],
        }
        segmenter.add(ours["inkloop"], truth_regions, segment_seconds)
        deskewed.add(ours["inkloop_deskewed_box"], truth_regions, segment_seconds)
        outlined.add(ours["inkloop_outline"], truth_regions, segment_seconds)
        truth_baselines = [Baseline.of(line.baseline) for line in page.lines]
        tolerance = BASELINE_TOLERANCE * line_spacing(truth_baselines, fallback=0.03 * page.height)
        our_baselines = [Baseline.of(line.page_baseline((page.width, page.height))) for line in found]
        baselined.add_baselines(our_baselines, truth_baselines, tolerance, segment_seconds)
        if kraken is not None:
            record = kraken.get(truth_page.image.name)
            if record is None:
                kraken_missing.append(truth_page.image.name)
            else:
                seconds = float(record["seconds"])
                kraken_detections.add(kraken_regions(record, page, scale), truth_regions, seconds)
                kraken_baselined.add_baselines(kraken_baselines(record, page), truth_baselines, tolerance, seconds)
                for who, regions in ours.items():  # inkloop on the same pages, to compare like with like
                    ours_on_kraken_pages[who].add(regions, truth_regions, segment_seconds)
                ours_on_kraken_pages["inkloop_baseline"].add_baselines(
                    our_baselines, truth_baselines, tolerance, segment_seconds
                )

        # Pages: as served, from the ground-truth lines, and Tesseract on the page image.
        truth_text = "\n".join(line.text for line in chosen)
        served, served_seconds = timed(served_text, recognizer, truth_page.image)
        page_readings = {"inkloop_segmenter": normalise(served)}
        page_seconds["inkloop_segmenter"].append(served_seconds)
        if chosen:
            page_readings["inkloop_gt_lines"] = normalise("\n".join(readings["inkloop_polygon"]))
        if use_tesseract:
            tess_page, tess_page_seconds = timed(tesseract_page, truth_page.image)
            page_readings["tesseract"] = normalise(tess_page)
            page_seconds["tesseract"].append(tess_page_seconds)
        if chosen:
            every_line_counts = all(counts(line, types) for line in page.lines if line.text)
            page_scores.add(normalise(truth_text), page_readings)
            if every_line_counts:
                whole_pages.add(normalise(truth_text), page_readings)

        chars = max(sum(len(line.text) for line in chosen), 1)
        shown = "".join(
            f", {reader} {sum(map(edit_distance, texts, (line.text for line in chosen))) / chars:.2f}"
            for reader, texts in readings.items()
        )
        print(
            f"{name} {number}/{len(pages)} {truth_page.name}: {len(chosen)}/{len(page.lines)} lines counted, "
            f"{len(found)} found{shown} ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    truth_chars = sum(lines.chars)
    line_report = lines.report(rng, line_seconds, "line")
    if "inkloop_polygon" in lines.edits:
        for variant in ("polygon", "polygon_grown"):
            line_report[f"{variant}_minus_box"] = paired_difference(
                lines.edits[f"inkloop_{variant}"], lines.edits["inkloop_box"], lines.chars, rng
            )
    result: dict[str, object] = {
        "pages": len(pages),
        "lines": {
            "in_files": tally["lines_in_files"],
            "counted": tally["counted"],
            "without_text": tally["empty_text"],
            "other_types": tally["other_types"],
            "skipped_as_unreadable": sum(p.skipped for p in pages),
            "files_with_skipped_lines": {p.name: p.skipped for p in pages if p.skipped},
            "empty_crops": tally["empty_crops"],
            "truth_chars": truth_chars,
            "truth_share_outside_model_charset": round(outside_charset / max(truth_chars, 1), 4),
        },
        "line_cer": line_report,
        "detection": {
            "iou_threshold": IOU_THRESHOLD,
            "inkloop": segmenter.report(rng),
            "inkloop_deskewed_box": deskewed.report(rng),
            "inkloop_outline": outlined.report(rng),
            "baseline_overlap": BASELINE_OVERLAP,
            "baseline_tolerance_of_line_spacing": BASELINE_TOLERANCE,
            "inkloop_baseline": baselined.report(rng),
            **(
                {
                    "kraken": kraken_detections.report(rng) if kraken_detections.predicted else None,
                    "kraken_baseline": kraken_baselined.report(rng) if kraken_baselined.predicted else None,
                    "on_kraken_pages": {
                        who: detections.report(rng)
                        for who, detections in ours_on_kraken_pages.items()
                        if detections.predicted
                    },
                    "kraken_pages_missing": kraken_missing,
                }
                if kraken is not None
                else {}
            ),
        },
        "page_cer": {
            "pages": len(page_scores.chars),
            **page_scores.report(rng, page_seconds, "page"),
            "pages_with_every_line_counted": {
                "pages": len(whole_pages.chars),
                **whole_pages.report(rng, {}, "page"),
            },
        },
    }
    letters = lines.by_group()
    if letters:
        result["line_cer_by_letter"] = letters
    return result


def _box_outline(line: GtLine) -> list[tuple[int, int]]:
    left, top, right, bottom = line.box()
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


# --- the report -------------------------------------------------------------------------------------------------

ROWS = (
    ("line_cer", "inkloop_polygon", "inkloop, GT lines cut by polygon", "line"),
    ("line_cer", "inkloop_polygon_grown", f"inkloop, GT lines, polygon grown {GROW} px", "line"),
    ("line_cer", "inkloop_box", "inkloop, GT lines cut by box", "line"),
    ("line_cer", "tesseract", "Tesseract --psm 7, GT polygon lines", "line"),
    ("page_cer", "inkloop_segmenter", "inkloop page, its segmenter (served)", "page"),
    ("page_cer", "inkloop_gt_lines", "inkloop page, GT polygon lines", "page"),
    ("page_cer", "tesseract", "Tesseract --psm 6 page", "page"),
)

DETECTORS = (
    ("inkloop", "inkloop lines (percent_box) IoU>=.5"),
    ("inkloop_deskewed_box", "inkloop lines (deskewed box) IoU>=.5"),
    ("inkloop_outline", "inkloop lines (ink outline) IoU>=.5"),
    ("kraken", "kraken blla polygons IoU>=.5"),
    ("inkloop_baseline", "inkloop baselines"),
    ("kraken_baseline", "kraken blla baselines"),
)
# Where kraken ran on only some of a set's pages, inkloop's figure on those pages is shown beside each of kraken's.
SAME_PAGES = {
    "kraken": ("inkloop_outline", "inkloop ink outline"),
    "kraken_baseline": ("inkloop_baseline", "inkloop baselines"),
}


def summary(report: dict) -> str:
    out = [f"{'set':<19} {'reader':<38} {'CER':>6}  {'95% interval':<15} {'s/line':>7} {'s/page':>7}"]
    for name, figures in report["sets"].items():
        first = True
        for section, reader, label, unit in ROWS:
            cell = figures[section].get(reader)
            if not cell:
                continue
            seconds = cell.get(f"s_per_{unit}_median", "")
            columns = (f"{seconds:>7}", f"{'':>7}") if unit == "line" else (f"{'':>7}", f"{seconds:>7}")
            out.append(
                f"{name if first else '':<19} {label:<38} {cell['cer']:>6.3f}  "
                f"[{cell['low']:.3f}, {cell['high']:.3f}]  " + " ".join(columns)
            )
            first = False
        detection = figures["detection"]
        for who, label in DETECTORS:
            cell = detection.get(who)
            ours, our_label = SAME_PAGES.get(who, ("", ""))
            same_pages = detection.get("on_kraken_pages", {}).get(ours)
            if cell and same_pages:
                pages = f"{cell['pages']} pages"
                rows = [(f"{label.split(' IoU')[0]}, {pages}", cell), (f"{our_label}, {pages}", same_pages)]
            else:
                rows = [(label, cell)] if cell else []
            for label, cell in rows:
                out.append(
                    f"{'':<19} {label:<38} P {cell['precision']:.3f} "
                    f"R {cell['recall']:.3f} ({cell['matched']}/{cell['predicted_lines']} found, "
                    f"{cell['truth_lines']} true){'':>1} {cell['s_per_page_median']:>7}"
                )
        for variant, label in (("polygon", "polygon - box CER (paired)"), ("polygon_grown", "grown - box CER")):
            difference = figures["line_cer"].get(f"{variant}_minus_box")
            if difference:
                out.append(
                    f"{'':<19} {label:<38} {difference['difference']:>+6.3f}  "
                    f"[{difference['low']:+.3f}, {difference['high']:+.3f}]"
                )
    return "\n".join(out)


NOTES = {
    "which_lines": "Line and page CER count the lines with text whose type contains one of line_types; lines with "
    "no type (all of Hooker's) count. Stanford types are SegmOnto labels (DefaultLine:Handwritten, "
    "InterlinearLine:Handwritten, DefaultLine:Signature, DefaultLine:Typewritten, DefaultLine:Print).",
    "detection_truth": "Detection counts every ground-truth line of the page as truth, of every type, with or "
    "without text: a segmenter cannot know a line's type. IoU against the truth polygons rasterised with the page's "
    "longer side at detection_side pixels; greedy one-to-one matching by highest IoU; intervals resample pages.",
    "detection_regions": "inkloop: each line's Line.percent_box as an upright rectangle on the page (what the API "
    "and Label Studio show). On a page written at a slant that rectangle is taller than the line (a 1,000-px line "
    "at 4 degrees adds 70 px), so it overlaps the lines above and below; inkloop_deskewed_box is the box the "
    "segmenter actually cuts (in the deskewed image) turned back onto the page; inkloop_outline is the line's ink "
    "outline (Line.page_polygon: the envelope of the ink touching its x-height band), the counterpart of a PAGE or "
    "ALTO polygon. kraken: its line polygons.",
    "detection_baselines": "Polygon IoU depends on how far a transcription tool draws a line's polygon past its ink "
    "(Stanford's reach well into the space between lines; inkloop's outline hugs the ink, so a line found exactly "
    "can still score IoU 0.3-0.5), so lines are also matched by baseline, as the cBAD baseline-detection contests "
    "do: a predicted and a true baseline match when the horizontal stretch they share is at least baseline_overlap "
    "of the two together and, along it, their median vertical distance is at most "
    "baseline_tolerance_of_line_spacing of the page's line spacing (the median distance from each true baseline to "
    "the nearest one below it). inkloop's baseline is the bottom of its x-height band from its first inked column "
    "to its last (Line.page_baseline); kraken's is its own. One to one, closest pairs first.",
    "page_truth": "Page truth is the page's counted lines joined with newlines in reading order. On Stanford pages "
    "that also hold typewritten, printed or signature lines the truth has only the handwritten ones, so what a page "
    "reader writes for the others counts against it (as insertions): pages_with_every_line_counted restricts to "
    "pages where every line with text counts. Pages without a counted line (Stanford's typewritten letters) have no "
    "page CER; their seconds are in the page medians.",
    "transcription_conventions": "The truth is compared as transcribed (whitespace collapsed): Stanford's CATMuS "
    "marks (^ before superscript text, the brackets around struck-out text) and every character outside the "
    "model's character set are errors the model cannot avoid (truth_share_outside_model_charset).",
    "timing": "seconds are wall time on this machine's CPU: inkloop with 2 torch threads (ONNX Runtime takes "
    "torch's count), Tesseract with OMP_THREAD_LIMIT=1. Line seconds are the median over pages of a page's seconds "
    "over its counted lines: inkloop's cover cutting and reading (width-sorted batches), Tesseract's one process per "
    "page reading that page's line PNGs from a list file (its start-up, about 0.09 s, shared by the page's lines); "
    "page seconds cover the whole page as served, image decoding included. kraken's seconds are those "
    "bench/kraken_lines.py wrote (its own process, 2 torch threads).",
    "letters": "Stanford file names name letters (Page10-Lettre75-76--Lettre76_1: letter 76); line_cer_by_letter "
    "groups lines by letter. Hooker is one writer.",
    "licences": "Stanford memorials CC BY 4.0; Hooker CC BY-SA 4.0: this file holds numbers only.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real-handwriting folder")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated sets (folders of --data)")
    parser.add_argument("--pages", type=int, default=None, help="the first N pages of each set (default: all)")
    parser.add_argument("--line-types", default="Handwritten", help="comma-separated parts of line types that count")
    parser.add_argument("--no-tesseract", action="store_true", help="inkloop only")
    parser.add_argument("--kraken", type=Path, help="bench/kraken_lines.py's JSON lines, to score kraken's segmenter")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="artifact to read with (default: shipped)")
    parser.add_argument("--out", type=Path, help="write the JSON here (else it is printed after the table)")
    args = parser.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    types = [t.strip() for t in args.line_types.split(",") if t.strip()]
    for name in names:
        if not (args.data / name / "pages").is_dir():
            raise SystemExit(f"no set {name!r}: {args.data / name / 'pages'} is not a folder")
    if args.pages is not None and args.pages < 1:
        raise SystemExit(f"--pages must be at least 1, not {args.pages}")
    use_tesseract = not args.no_tesseract
    if use_tesseract and shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed: run `make tesseract` (Debian's tesseract-ocr), or pass --no-tesseract")
    kraken = load_kraken(args.kraken) if args.kraken else None

    torch.set_num_threads(TORCH_THREADS)  # before loading: the ONNX Runtime session takes torch's thread count
    recognizer = Recognizer.load(args.model)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    load = {"start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="inkloop-real-bench-") as tmp:
        results = {
            name: run_set(
                name,
                load_pages(args.data / name, args.pages),
                recognizer,
                types=types,
                use_tesseract=use_tesseract,
                kraken=kraken,
                rng=rng,
                scratch=Path(tmp),
            )
            for name in names
        }
    load["end"] = round(os.getloadavg()[0], 2)
    report = {
        "benchmark": "real",
        "command": shlex.join([".venv/bin/python", "bench/real_bench.py", *sys.argv[1:]]),
        # Other work on the machine slows every reader alike; the load average says how much there was.
        "machine": {**machine(), "torch": torch.__version__, "threads": TORCH_THREADS, "load_average": load},
        "model": recognizer.version,
        "runtime": recognizer.runtime.value,
        # The segmenter as it was read: its VERSION and a digest of its source (the file changes between commits).
        "segmenter": {
            "version": segment_module.VERSION,
            "source_sha256": hashlib.sha256(Path(segment_module.__file__).read_bytes()).hexdigest()[:16],
        },
        "tesseract": (tesseract_version() + " (eng, OMP_THREAD_LIMIT=1; lines --psm 7, pages --psm 6)")
        if use_tesseract
        else None,
        "kraken": str(args.kraken) if args.kraken else None,
        "data": str(args.data),
        "pages_per_set": args.pages,
        "line_types": types,
        "detection_side": DETECTION_SIDE,
        "sets": results,
        "notes": NOTES,
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    print(summary(report))
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
