"""INKLOOP_HOME's layout: every path under it, named once. `Settings.paths` gives it; nothing else in inkloop
joins a name onto the home folder.

The home holds the embedded defaults (a SQLite database, the store folder), what inkloop writes for people to read
(reports), what it can rebuild from the store and the database (cache/), and the files of the local services it
starts (Label Studio, Prefect). Everything under `cache/` may be deleted while nothing runs: it comes back, the
same, on the next run that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HomeLayout:
    """The folders and files under one INKLOOP_HOME (`root`, absolute)."""

    root: Path

    @property
    def database(self) -> Path:
        """The SQLite database of the embedded default (INKLOOP_DATABASE_URL's default)."""
        return self.root / "inkloop.db"

    @property
    def store(self) -> Path:
        """The content-addressed image and artifact store of the embedded default (INKLOOP_STORE_URL's default)."""
        return self.root / "store"

    @property
    def reports(self) -> Path:
        """HTML reports a person opens: the gates', drift's and the validation Data Docs."""
        return self.root / "reports"

    @property
    def gate_reports(self) -> Path:
        """One HTML page per gate run (`<candidate>-<time>.html`)."""
        return self.reports / "gates"

    @property
    def drift_reports(self) -> Path:
        """One HTML page per drift report, and `index.html` over all of them."""
        return self.reports / "drift"

    @property
    def data_docs(self) -> Path:
        """Great Expectations' Data Docs site of the ingest flow's validations."""
        return self.reports / "data_docs"

    @property
    def cache(self) -> Path:
        """What inkloop rebuilds when it is missing: unpacked models, cropped lines, rendered page sets."""
        return self.root / "cache"

    @property
    def models(self) -> Path:
        """Model artifacts fetched from the store (`<key>.pt`), once, for the endpoint and the flows alike."""
        return self.cache / "models"

    @property
    def line_cache(self) -> Path:
        """Line crops of training pages, keyed by page and input size, so a rerun does not segment again."""
        return self.cache / "lines"

    @property
    def replay(self) -> Path:
        """Pages of the base recipe's kind that a retrain trains on beside the new labels (by count and seed)."""
        return self.cache / "replay"

    @property
    def gate_sets(self) -> Path:
        """The gates' frozen held-out synthetic pages (by count and seed)."""
        return self.cache / "gates"

    @property
    def runs(self) -> Path:
        """One folder per training run: exported data, checkpoints, the artifact."""
        return self.root / "runs"

    @property
    def tensorboard(self) -> Path:
        """Every training run's curves (`inkloop tensorboard`)."""
        return self.root / "tensorboard"

    @property
    def evidently(self) -> Path:
        """The Evidently workspace of the drift reports' history (`inkloop drift ui`)."""
        return self.root / "evidently"

    @property
    def labelstudio(self) -> Path:
        """The local Label Studio's data, log and pid file (`inkloop labelstudio up`)."""
        return self.root / "labelstudio"

    @property
    def labelstudio_venv(self) -> Path:
        """The local Label Studio's own virtualenv (INKLOOP_LABEL_STUDIO_VENV's default)."""
        return self.labelstudio / "venv"

    @property
    def prefect(self) -> Path:
        """PREFECT_HOME: the local Prefect server's database, UI files, log and pid file (`inkloop prefect up`)."""
        return self.root / "prefect"

    @property
    def demo(self) -> Path:
        """`inkloop demo`'s traffic pages and its endpoint's log."""
        return self.root / "demo"


def described_paths(layout: HomeLayout) -> list[tuple[str, Path, str]]:
    """(name, path, what it holds) for every path of the layout, in the order above: for the docs and `inkloop
    init`'s listing."""
    return [
        (name, getattr(layout, name), " ".join((member.__doc__ or "").split()))
        for name, member in vars(HomeLayout).items()
        if isinstance(member, property)
    ]
