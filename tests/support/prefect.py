"""Prefect through its test harness: one temporary Prefect API for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the session; flow-run heartbeats off (each would cost about a second)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    settings = {PREFECT_HOME: home, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(settings), prefect_test_harness(server_startup_timeout=120):
        yield
