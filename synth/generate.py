"""Write a synthetic dataset: N paragraph images (PNG) and `labels.jsonl`, the format the recognizer's DataModule
reads. Sample i depends only on (seed, i), so output is identical for a seed whatever the number of workers.

The folder is built under a temporary name and renamed into place when complete: an interrupted run leaves no
half-written dataset behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inkloop import __version__
from inkloop.errors import InkloopError
from inkloop.labels import LABELS, read_labels
from inkloop.text import DEFAULT_CHARSET, OutOfCharset
from synth.augment import PageStyle, compose
from synth.corpus import SHIPPED_CORPUS, Corpus
from synth.fonts import Font, FontSet, discover
from synth.render import Handwriting, render, wrap
from synth.stitch import LineCrop, stitch_random
from synth.strokes import Writer, render_strokes, wrap_strokes

MANIFEST = "manifest.json"


class SynthError(InkloopError):
    """Bad synthesis parameters or output folder."""


@dataclass(frozen=True)
class SynthOptions:
    count: int
    seed: int = 0
    font_set: FontSet = FontSet.train
    font_dirs: tuple[Path, ...] = ()
    corpus: Path = SHIPPED_CORPUS
    charset: str = DEFAULT_CHARSET
    policy: OutOfCharset = OutOfCharset.fold
    color: bool = False
    dark_share: float = 0.2  # share of light-on-dark pages
    max_lines: int = 12
    handwriting_share: float = 0.7  # share of pages in handwriting (not printed) fonts
    caps_share: float = 0.0  # share of pages written in block capitals (forms, notes), whatever the font
    realism: float = 0.0  # share of pages with what real pages add (squared paper, pencil, shadows, steep angles)
    strokes_share: float = 0.0  # share of pages drawn as pen strokes by a sampled writer (synth/strokes.py)
    families: tuple[str, ...] = ()  # only these font families (case-insensitive; empty: every family of the set)
    lines_from: Path | None = None  # stitch paragraphs from this folder's line crops instead of rendering

    def validate(self) -> None:
        if self.count < 1:
            raise SynthError(f"count must be at least 1, got {self.count}")
        if not 0 <= self.dark_share <= 1:
            raise SynthError(f"dark share must be in [0, 1], got {self.dark_share}")
        if not 0 <= self.caps_share <= 1:
            raise SynthError(f"caps share must be in [0, 1], got {self.caps_share}")
        if not 0 <= self.realism <= 1:
            raise SynthError(f"realism must be in [0, 1], got {self.realism}")
        if not 0 <= self.strokes_share <= 1:
            raise SynthError(f"strokes share must be in [0, 1], got {self.strokes_share}")
        if not 1 <= self.max_lines <= 30:
            raise SynthError(f"max lines must be in 1..30, got {self.max_lines}")


class Generator:
    """Holds what every sample needs (fonts, corpus, line crops); built once per worker process."""

    def __init__(self, options: SynthOptions) -> None:
        self.options = options
        self.lines: list[LineCrop] = []
        if options.lines_from is not None:
            self.lines = [
                LineCrop(Image.open(path).convert("L"), text) for path, text in read_labels(options.lines_from)
            ]
            if not self.lines:
                raise SynthError(f"{options.lines_from} has no line crops")
            return
        self.fonts = discover(options.charset, options.font_set, options.font_dirs)
        if options.families:
            wanted = {f.casefold() for f in options.families}
            self.fonts = [f for f in self.fonts if f.family.casefold() in wanted]
            found = {f.family.casefold() for f in self.fonts}
            if missing := sorted(wanted - found):
                raise SynthError(
                    f"no {options.font_set.value} font of the families {', '.join(missing)} "
                    '(a family is named as in its font file, e.g. "Loved by the King")'
                )
        self.handwriting = [f for f in self.fonts if f.handwriting]
        self.corpus = Corpus.from_file(options.corpus, options.charset, options.policy)

    def _font_for(self, rng: np.random.Generator, words: list[str]) -> Font:
        chars = set("".join(words))
        pool = self.handwriting if self.handwriting and rng.random() < self.options.handwriting_share else self.fonts
        covering = [f for f in pool if f.covers("".join(chars)) and f.covers("".join(chars).upper())]
        if not covering:
            covering = [f for f in self.fonts if f.covers("".join(chars))] or self.fonts
        return covering[int(rng.integers(len(covering)))]

    def sample(self, index: int) -> tuple[Image.Image, str, dict[str, Any]]:
        rng = np.random.default_rng([self.options.seed, index])
        dark = bool(rng.random() < self.options.dark_share)
        if self.lines:
            image, text = stitch_random(self.lines, rng, self.options.max_lines)
            if dark:
                image = Image.fromarray(255 - np.asarray(image))
            return image, text, {"generator": "stitch", "dark_background": dark}
        n_lines = int(rng.integers(1, self.options.max_lines + 1))
        words = self.corpus.sample_words(rng, n_lines * 14 + 8)
        # Streams of their own, so that pages of a seed written before strokes existed stay the same.
        pen = np.random.default_rng([self.options.seed, index, 3])
        if self.options.strokes_share and pen.random() < self.options.strokes_share:
            return self._strokes_sample(words, n_lines, dark, pen, index)
        font = self._font_for(rng, words)
        # A stream of its own, so that pages of a seed written before caps_share existed stay the same.
        block_capitals = bool(np.random.default_rng([self.options.seed, index, 1]).random() < self.options.caps_share)
        if font.caps_only or block_capitals:
            words = [w.upper() for w in words]
        style = Handwriting.sample(rng, font.handwriting)
        max_width = float(rng.uniform(12, 40)) * style.size
        lines = wrap(words, font, style, max_width, n_lines)
        rendered = render(lines, font, style, rng)
        page = PageStyle.sample(rng, dark)
        extras = np.random.default_rng([self.options.seed, index, 2])  # its own stream, as for caps_share
        if self.options.realism and extras.random() < self.options.realism:
            page = PageStyle.sample_realism(page, extras)
        image = compose(rendered.mask, rendered.baselines, rendered.line_height, page, rng, self.options.color)
        meta = {
            "generator": "font",
            "font": font.name,
            "font_family": font.family,
            "font_file": font.path.name,
            "handwriting": font.handwriting,
            "block_capitals": block_capitals,
            "dark_background": dark,
            "style": style.as_dict(),
            "page": page.as_dict(),
        }
        return image, "\n".join(lines), meta

    def _strokes_sample(
        self, words: list[str], n_lines: int, dark: bool, rng: np.random.Generator, index: int
    ) -> tuple[Image.Image, str, dict[str, Any]]:
        """A page in a sampled writer's hand, drawn as pen strokes (synth/strokes.py), on the same paper and
        camera as font pages."""
        writer = Writer.sample(rng)
        block_capitals = bool(np.random.default_rng([self.options.seed, index, 1]).random() < self.options.caps_share)
        if block_capitals:
            words = [w.upper() for w in words]
        lines = wrap_strokes(words, writer, float(rng.uniform(12, 40)) * writer.size, n_lines)
        rendered = render_strokes(lines, writer, rng)
        page = PageStyle.sample(rng, dark)
        extras = np.random.default_rng([self.options.seed, index, 2])
        if self.options.realism and extras.random() < self.options.realism:
            page = PageStyle.sample_realism(page, extras)
        image = compose(rendered.mask, rendered.baselines, rendered.line_height, page, rng, self.options.color)
        meta = {
            "generator": "strokes",
            "writer": writer.as_dict(),
            "handwriting": True,
            "block_capitals": block_capitals,
            "dark_background": dark,
            "page": page.as_dict(),
        }
        return image, "\n".join(lines), meta


_worker: Generator | None = None


def _init_worker(options: SynthOptions) -> None:
    global _worker
    _worker = Generator(options)


def _write_sample(job: tuple[int, str]) -> dict[str, Any]:
    index, folder = job
    assert _worker is not None
    image, text, meta = _worker.sample(index)
    name = f"{index:06d}.png"
    image.save(Path(folder) / name, compress_level=3)
    return {"file": name, "text": text, "index": index, "width": image.width, "height": image.height, **meta}


def generate(
    out: Path,
    options: SynthOptions,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write `options.count` samples to the folder `out` (which must not exist, or be empty). Returns `out`."""
    options.validate()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SynthError(f"{out} already exists and is not an empty folder; choose another --out")
    Generator(options)  # fail fast (no fonts, bad corpus) before starting workers
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        jobs = [(i, str(staging)) for i in range(options.count)]
        with open(staging / LABELS, "w", encoding="utf-8") as labels:
            for record in _run(jobs, options, workers):
                labels.write(json.dumps(record, ensure_ascii=False) + "\n")
                if progress:
                    progress(1)
        manifest = {
            "count": options.count,
            "seed": options.seed,
            "font_set": options.font_set.value,
            "font_dirs": [str(d) for d in options.font_dirs],
            "corpus": str(options.corpus),
            "charset": options.charset,
            "color": options.color,
            "dark_share": options.dark_share,
            "caps_share": options.caps_share,
            "realism": options.realism,
            "families": list(options.families),
            "lines_from": str(options.lines_from) if options.lines_from else None,
            "inkloop_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _run(jobs: Sequence[tuple[int, str]], options: SynthOptions, workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        _init_worker(options)
        yield from map(_write_sample, jobs)
        return
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(options,)) as pool:
        yield from pool.imap(_write_sample, jobs, chunksize=4)
        # Let the workers exit on their own: the pool's exit would SIGTERM them, and forked from a Prefect flow
        # they carry its SIGTERM handler, which prints a traceback for each.
        pool.close()
        pool.join()
