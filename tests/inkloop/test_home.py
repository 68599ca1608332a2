"""INKLOOP_HOME's layout (inkloop/home.py): every path named once, under the home, and the embedded defaults
that Settings derives from it agree with it."""

from __future__ import annotations

from pathlib import Path

from inkloop.home import HomeLayout, described_paths
from inkloop.settings import load_settings


def test_every_path_is_under_home_named_once_and_described(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path)
    described = described_paths(layout)
    names = [name for name, _, _ in described]
    paths = [path for _, path, _ in described]
    assert "root" not in names and {"database", "store", "models", "reports", "cache"} <= set(names)
    assert len(set(paths)) == len(paths)  # no two names for one path
    assert all(path.is_relative_to(tmp_path) and path != tmp_path for path in paths)
    assert all(what and what.endswith((".", ")")) for _, _, what in described)


def test_settings_defaults_follow_the_layout(inkloop_home: Path) -> None:
    settings = load_settings()
    paths = settings.paths
    assert paths == HomeLayout(inkloop_home.resolve())
    assert settings.database_url == f"sqlite:///{paths.database}"
    assert settings.store_url == str(paths.store)
    assert settings.label_studio_venv == paths.labelstudio_venv
    # One place for unpacked artifacts, for the endpoint and the flows alike: a model is fetched once per home.
    assert paths.models.parent == paths.cache
    assert paths.gate_reports.parent == paths.drift_reports.parent == paths.reports
