"""The suite's fixtures live in tests/support and are registered here. Markers are derived from what a test
uses, so `-m` selects by the services a test needs: `labelstudio` (the session's real Label Studio), `postgres`
(the PostgreSQL server), plus `browser` and `slow`, which test modules set themselves."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.support.home",
    "tests.support.databases",
    "tests.support.labelstudio",
    "tests.support.servers",
    "tests.support.prefect",
    "tests.support.loop",
    "tests.support.pages",
    "tests.support.s3",
    "tests.support.browser",
    "tests.support.drift",
]

_MARK_BY_FIXTURE = {"label_studio": "labelstudio", "postgres_server_url": "postgres", "postgres_url": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, mark in _MARK_BY_FIXTURE.items():
            if fixture in used:
                item.add_marker(mark)
