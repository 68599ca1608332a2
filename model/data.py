"""Data for training: folders of PNG + labels.jsonl (synthetic or exported annotations), preprocessed exactly as
at inference and augmented on the fly. A later issue feeds dataset versions from the database through the same
`PageDataset` interface: anything that yields (PIL image, text) pairs."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from inkloop.labels import read_labels
from inkloop.text import OutOfCharset, log_dropped
from model.charset import Charset
from model.config import AugmentConfig, TrainConfig
from model.nets.paragraph import ParagraphNet
from model.preprocess import fit, normalize, to_grayscale

log = logging.getLogger(__name__)


class PageDataset(Dataset[tuple[torch.Tensor, torch.Tensor, str]]):
    """(image (1, H, W) float, token ids, text) for each (path, text) pair."""

    def __init__(self, items: Sequence[tuple[Path, str]], charset: Charset, config: TrainConfig, train: bool) -> None:
        self.charset = charset
        self.config = config
        self.train = train and config.augment_enabled
        dropped: Counter[str] = Counter()
        policy = OutOfCharset(config.charset_policy)
        cleaned = [(path, charset.clean(text, policy, dropped)) for path, text in items]
        log_dropped(dropped, "training labels")
        # CTC needs a frame per character plus one between repeated characters; a page whose text cannot fit the
        # grid would train on an infinite loss (zeroed), so it is left out, loudly.
        rows, columns = ParagraphNet.grid(config.input_height, config.input_width)
        self.items = [(p, t) for p, t in cleaned if ctc_frames_needed(t) <= rows * columns]
        if len(self.items) < len(cleaned):
            log.warning(
                "%d of %d pages have more text than the %dx%d output grid can hold; left out",
                len(cleaned) - len(self.items),
                len(cleaned),
                rows,
                columns,
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        path, text = self.items[index]
        with Image.open(path) as image:
            gray = to_grayscale(image)
        h, w = self.config.input_height, self.config.input_width
        if self.train:
            rng = np.random.default_rng()
            pixels = augment(gray, self.config.augment, rng, h, w)
        else:
            pixels = fit(normalize(gray), h, w)
        return torch.from_numpy(pixels)[None], torch.tensor(self.charset.encode(text), dtype=torch.long), text


def ctc_frames_needed(text: str) -> int:
    return len(text) + sum(a == b for a, b in zip(text, text[1:], strict=False))


def augment(gray: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    if rng.random() < cfg.invert:
        gray = 255.0 - gray
    if cfg.rotation:
        image = Image.fromarray(gray.astype(np.uint8))
        paper = int(np.median(gray))
        gray = np.asarray(
            image.rotate(float(rng.uniform(-cfg.rotation, cfg.rotation)), Image.BILINEAR, expand=True, fillcolor=paper),
            dtype=np.float32,
        )
    ink = normalize(gray)
    ink = fit(ink, height, width, float(rng.uniform(*cfg.scale)), (float(rng.random()), float(rng.random())))
    ink = ink * float(rng.uniform(*cfg.contrast))
    if cfg.noise:
        ink = ink + rng.normal(0, float(rng.uniform(0, cfg.noise)), ink.shape).astype(np.float32)
    return np.clip(ink, 0.0, 1.0).astype(np.float32)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict[str, object]:
    images, targets, texts = zip(*batch, strict=True)
    return {
        "images": torch.stack(images),
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
        "texts": list(texts),
    }


def _held_for_validation(path: Path, fraction: float) -> bool:
    """A stable split: the same file always lands on the same side, whatever the order or machine."""
    digest = hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class FolderDataModule(pl.LightningDataModule):
    def __init__(
        self, train_dirs: Sequence[Path], val_dirs: Sequence[Path], charset: Charset, config: TrainConfig
    ) -> None:
        super().__init__()
        self.train_dirs, self.val_dirs = [Path(d) for d in train_dirs], [Path(d) for d in val_dirs]
        self.charset, self.config = charset, config

    def texts(self) -> list[str]:
        return [text for folder in self.train_dirs + self.val_dirs for _, text in read_labels(folder)]

    def setup(self, stage: str | None = None) -> None:
        train_items = [item for folder in self.train_dirs for item in read_labels(folder)]
        if self.val_dirs:
            val_items = [item for folder in self.val_dirs for item in read_labels(folder)]
        else:
            val_items = [item for item in train_items if _held_for_validation(item[0], self.config.val_fraction)]
            train_items = [item for item in train_items if not _held_for_validation(item[0], self.config.val_fraction)]
        if not train_items:
            raise ValueError("no training pages")
        self.train_set = PageDataset(train_items, self.charset, self.config, train=True)
        if not val_items:
            log.warning(
                "no validation pages (no --val and val_fraction %s): validating on 8 training pages, so "
                "val/cer and the confidence calibration measure memory, not generalisation",
                self.config.val_fraction,
            )
            val_items = train_items[:8]
        self.val_set = PageDataset(val_items, self.charset, self.config, train=False)
        log.info("training on %d pages, validating on %d", len(self.train_set), len(self.val_set))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            ConcatDataset([self.train_set]),
            batch_size=self.config.batch_size,
            shuffle=True,
            drop_last=len(self.train_set) > self.config.batch_size,
            num_workers=self.config.num_workers,
            collate_fn=collate,
            persistent_workers=self.config.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            num_workers=self.config.num_workers,
            collate_fn=collate,
            persistent_workers=self.config.num_workers > 0,
        )
