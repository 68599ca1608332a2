"""Data for training: folders of paragraph PNGs + labels.jsonl (synthetic or exported annotations), cut into
text lines by the same segmenter as at inference and augmented on the fly. A later issue feeds dataset versions
from the database through the same interface: anything that yields (image path, paragraph text) pairs.

A page trains only when the segmenter finds as many lines as its text has; the share of pages that agree is
logged (it is the segmenter's accuracy on that data). A page whose record gives a box per line (annotated in Label
Studio) is cut along those boxes instead, and one whose lines carry polygons (ground truth imported from PAGE XML
or ALTO) along its polygons, so a real letter with a letterhead or marginalia trains on every transcribed line.
Segmenting is the slow part of loading, so the line crops of each folder are cached in a folder the caller names
(the CLI: INKLOOP_HOME/cache/lines), keyed by the labels, the segmenter's version and the line height.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset, Sampler

from inkloop.errors import InkloopError
from inkloop.files import atomic_write
from inkloop.labels import read_labels, read_records
from inkloop.text import OutOfCharset, log_dropped
from model.charset import Charset
from model.config import AugmentConfig, TrainConfig
from model.nets.lines import LineNet
from model.preprocess import line_input, to_grayscale
from model.segment import POLYGON_GROW, box_lines, polygon_line, segment
from model.segment import VERSION as SEGMENTER_VERSION

log = logging.getLogger(__name__)


class TrainingDataError(InkloopError):
    """The training folders give nothing to train on."""


LineItem = tuple[np.ndarray, str]  # uint8 line crop (ink = 255) at the configured height, its text


Boxes = tuple[tuple[float, float, float, float], ...]  # a page's annotated line boxes, percent of the page
Points = tuple[tuple[int, int], ...]
# Each line's polygon and baseline in the page's pixels, where its ground truth was imported (PAGE XML, ALTO).
Outlines = tuple[tuple[Points, Points], ...]


class Page(NamedTuple):
    """A labelled page: its image, its text, and the annotated box of each line of the text when it has them;
    imported pages also the outline of each line (then lines are cut along their polygons)."""

    path: Path
    text: str
    boxes: Boxes | None = None
    outlines: Outlines | None = None


def read_pages(folder: Path) -> list[Page]:
    """The pages of a labels folder. A record's "lines" ([{"text", "box"}], as `inkloop datasets export` writes)
    give its boxes when there is one per line of the text, each with that line's text: then training crops what
    the annotator drew instead of re-segmenting, so a page the segmenter gets wrong still teaches the reader."""
    pages = []
    for record in read_records(folder):
        text, lines = record["text"], record.get("lines") or []
        rows = text.split("\n")
        usable = (
            len(lines) == len(rows)
            and all(isinstance(line, dict) and line.get("text") == row for line, row in zip(lines, rows, strict=True))
            and all(isinstance(line.get("box"), list | tuple) and len(line["box"]) == 4 for line in lines)
        )
        boxes = tuple(tuple(float(v) for v in line["box"]) for line in lines) if usable else None
        outlines = None
        if usable and all(len(line.get("polygon") or ()) >= 3 for line in lines):
            outlines = tuple(
                (
                    tuple((int(x), int(y)) for x, y in line["polygon"]),
                    tuple((int(x), int(y)) for x, y in line.get("baseline") or ()),
                )
                for line in lines
            )
        pages.append(Page(record["path"], text, boxes, outlines))  # type: ignore[arg-type]
    return pages


def _page_lines(args: tuple[Page, int, int]) -> tuple[int, int, list[LineItem]]:
    page, height, max_width = args
    with Image.open(page.path) as image:
        gray = to_grayscale(image)
    texts = page.text.split("\n")
    if page.outlines is not None:  # imported ground truth: each line along its polygon, levelled by its baseline
        crops = [crop for crop in (polygon_line(gray, p, b, grow=POLYGON_GROW) for p, b in page.outlines) if crop.size]
    elif page.boxes is not None:
        crops = [crop for crop in box_lines(gray, page.boxes) if crop.size]
    else:
        crops = [line.crop for line in segment(gray)]
    if len(crops) != len(texts):
        return len(crops), len(texts), []
    items = [
        (np.round(line_input(crop, height, max_width) * 255).astype(np.uint8), t)
        for crop, t in zip(crops, texts, strict=True)
    ]
    return len(crops), len(texts), items


def _cache_path(cache_dir: Path, pages: Sequence[Page], height: int, max_width: int) -> Path:
    digest = hashlib.sha256(f"{SEGMENTER_VERSION}/{height}/{max_width}".encode())
    for path, text, boxes, outlines in pages:
        digest.update(f"{path.resolve()}\0{path.stat().st_mtime_ns}\0{text}\0{boxes}\0{outlines}\0".encode())
    return cache_dir / f"{digest.hexdigest()[:24]}.pkl"


def load_lines(
    items: Sequence[Page | tuple[Path, str]],
    height: int,
    max_width: int,
    workers: int = 0,
    cache_dir: Path | None = None,
) -> list[LineItem]:
    """Line crops and texts of every page whose lines (annotated boxes, else the segmenter's) agree with its text
    (cached in `cache_dir`)."""
    pages = [item if isinstance(item, Page) else Page(*item) for item in items]
    cache = _cache_path(cache_dir, pages, height, max_width) if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with open(cache, "rb") as f:
            return pickle.load(f)
    jobs = [(page, height, max_width) for page in pages]
    workers = workers or min(len(jobs) // 64 + 1, os.cpu_count() or 1)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_page_lines, jobs, chunksize=32)
    else:
        results = [_page_lines(job) for job in jobs]
    agreed = sum(1 for found, wanted, _ in results if found == wanted)
    if agreed < len(results):
        log.warning(
            "the line crops (annotated boxes, else the segmenter's) agree with the text's line count on %d of %d "
            "pages (%.1f%%); the others are left out",
            agreed,
            len(results),
            100 * agreed / max(len(results), 1),
        )
    lines = [item for _, _, crops in results for item in crops]
    if cache is not None:
        with atomic_write(cache) as tmp, open(tmp, "wb") as f:
            pickle.dump(lines, f, protocol=pickle.HIGHEST_PROTOCOL)
    return lines


class LineDataset(Dataset[tuple[torch.Tensor, torch.Tensor, str]]):
    """(line image (1, H, W) float, token ids, text) for each line of the agreeing pages."""

    def __init__(self, lines: Sequence[LineItem], charset: Charset, config: TrainConfig, train: bool) -> None:
        self.config = config
        self.train = train and config.augment_enabled
        dropped: Counter[str] = Counter()
        policy = OutOfCharset(config.charset_policy)
        cleaned = [(crop, charset.clean(text, policy, dropped)) for crop, text in lines]
        log_dropped(dropped, "training labels")
        # CTC needs a frame per character plus one between repeated characters; a line squeezed so hard that its
        # text cannot fit would train on an infinite loss (zeroed), so it is left out, loudly.
        self.items = [(c, t) for c, t in cleaned if ctc_frames_needed(t) <= LineNet.frames(c.shape[1])]
        if len(self.items) < len(cleaned):
            left_out = len(cleaned) - len(self.items)
            log.warning("%d of %d lines are too narrow for their text; left out", left_out, len(cleaned))
        self.targets = [torch.tensor(charset.encode(t), dtype=torch.long) for _, t in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def width(self, index: int) -> int:
        return self.items[index][0].shape[1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        crop, text = self.items[index]
        pixels = crop.astype(np.float32) / 255.0
        if self.train:
            pixels = augment(pixels, self.config.augment, np.random.default_rng(), self.config.max_line_width)
            if ctc_frames_needed(text) > LineNet.frames(pixels.shape[1]):
                pixels = crop.astype(np.float32) / 255.0
        return torch.from_numpy(pixels)[None], self.targets[index], text


def ctc_frames_needed(text: str) -> int:
    return len(text) + sum(a == b for a, b in zip(text, text[1:], strict=False))


def augment(line: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, max_width: int) -> np.ndarray:
    height, width = line.shape
    # Margins: shift the crop up or down and change how much space it has above and below, as a segmenter that
    # cut a little differently would.
    top, bottom = (int(rng.uniform(-cfg.margin, cfg.margin) * height) for _ in range(2))
    padded = np.pad(line, ((max(-top, 0), max(-bottom, 0)), (0, 0)))
    rows = padded[max(top, 0) : padded.shape[0] - max(bottom, 0)]
    new_width = int(min(max(width * rng.uniform(*cfg.stretch) * height / max(rows.shape[0], 1), 8), max_width))
    ink = np.asarray(Image.fromarray(rows).resize((new_width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    if rng.random() < cfg.blur:
        ink = ndimage.gaussian_filter(ink, float(rng.uniform(0.3, 0.9)))
    ink = ink * float(rng.uniform(*cfg.contrast))
    if cfg.noise:
        ink = ink + rng.normal(0, float(rng.uniform(0, cfg.noise)), ink.shape).astype(np.float32)
    return np.clip(ink, 0.0, 1.0).astype(np.float32)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict[str, object]:
    """Pad lines on the right to the widest (rounded up to the network's stride)."""
    images, targets, texts = zip(*batch, strict=True)
    stride = LineNet.STRIDE
    width = max(-(-image.shape[-1] // stride) * stride for image in images)
    padded = torch.zeros(len(images), 1, images[0].shape[1], width)
    for i, image in enumerate(images):
        padded[i, :, :, : image.shape[-1]] = image
    return {
        "images": padded,
        "frames": torch.tensor([LineNet.frames(image.shape[-1]) for image in images], dtype=torch.long),
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
        "texts": list(texts),
    }


class WidthBuckets(Sampler[list[int]]):
    """Batches of lines of similar width (little padding), in random order, a fresh grouping every epoch."""

    def __init__(self, widths: Sequence[int], batch_size: int, seed: int) -> None:
        self.widths, self.batch_size, self.epoch, self.seed = np.asarray(widths), batch_size, 0, seed

    def __len__(self) -> int:
        return max(len(self.widths) // self.batch_size, 1)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        jitter = rng.uniform(0, 0.15 * max(float(self.widths.mean()), 1.0), len(self.widths))
        order = np.argsort(self.widths + jitter)
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        for i in rng.permutation(len(batches)):
            yield batches[i]


def _held_for_validation(path: Path, fraction: float) -> bool:
    """A stable split: the same file always lands on the same side, whatever the order or machine."""
    digest = hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class FolderDataModule(pl.LightningDataModule):
    def __init__(
        self,
        train_dirs: Sequence[Path],
        val_dirs: Sequence[Path],
        charset: Charset,
        config: TrainConfig,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.train_dirs, self.val_dirs = [Path(d) for d in train_dirs], [Path(d) for d in val_dirs]
        self.charset, self.config, self.cache_dir = charset, config, cache_dir
        self.val_pages: list[Page] = []

    def texts(self) -> list[str]:
        return [text for folder in self.train_dirs + self.val_dirs for _, text in read_labels(folder)]

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "train_set", None) is not None:
            return
        train_items = [item for folder in self.train_dirs for item in read_pages(folder)]
        if self.val_dirs:
            val_items = [item for folder in self.val_dirs for item in read_pages(folder)]
        else:
            val_items = [item for item in train_items if _held_for_validation(item[0], self.config.val_fraction)]
            train_items = [item for item in train_items if not _held_for_validation(item[0], self.config.val_fraction)]
        if not train_items:
            raise TrainingDataError("no training pages")
        if not val_items:
            log.warning(
                "no validation pages (no --val and val_fraction %s): validating on 8 training pages, so "
                "val/cer and the confidence calibration measure memory, not generalisation",
                self.config.val_fraction,
            )
            val_items = train_items[:8]
        self.val_pages = val_items
        height, width = self.config.line_height, self.config.max_line_width
        train_lines = load_lines(train_items, height, width, cache_dir=self.cache_dir)
        val_lines = load_lines(val_items, height, width, cache_dir=self.cache_dir)
        self.train_set = LineDataset(train_lines, self.charset, self.config, train=True)
        self.val_set = LineDataset(val_lines, self.charset, self.config, train=False)
        if not len(self.train_set):
            raise TrainingDataError(
                "no training lines: on no page did the segmenter find as many lines as the text has "
                "(blank or unreadable images, or labels whose line breaks do not match the image)"
            )
        log.info("training on %d lines, validating on %d", len(self.train_set), len(self.val_set))

    def train_dataloader(self) -> DataLoader:
        widths = [self.train_set.width(i) for i in range(len(self.train_set))]
        return DataLoader(
            self.train_set,
            batch_sampler=WidthBuckets(widths, self.config.batch_size, self.config.seed),
            num_workers=self.config.num_workers,
            collate_fn=collate,
            persistent_workers=self.config.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        order = sorted(range(len(self.val_set)), key=self.val_set.width)
        batches = [order[i : i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]
        return DataLoader(
            self.val_set,
            batch_sampler=batches,
            num_workers=self.config.num_workers,
            collate_fn=collate,
            persistent_workers=self.config.num_workers > 0,
        )
