"""Real server processes (`inkloop serve`) on SQLite and PostgreSQL, and what tests need to inspect them."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from db.models import Request, UploadRejection
from db.session import make_engine, session_factory
from inkloop.store import ImageStore
from serving.health import NotHealthyError, wait_until_healthy
from tests.support.databases import BACKENDS, database_for, drop_postgres_database
from tests.support.paths import INKLOOP
from tests.support.ports import free_port


def inkloop_process(*args: str, home: Path) -> subprocess.Popen[str]:
    """`inkloop ARGS` as a real process on its own INKLOOP_HOME (the machine's other INKLOOP_* variables left out),
    stdout and stderr piped as text."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INKLOOP_")}, "INKLOOP_HOME": str(home)}
    return subprocess.Popen(
        [INKLOOP, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@dataclass
class LiveServer:
    """One `inkloop serve` process with its own home, database and store."""

    home: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("INKLOOP_")}
        return {
            **clean,
            "INKLOOP_HOME": str(self.home),
            "INKLOOP_DATABASE_URL": self.database_url,
            "INKLOOP_MODEL_REFRESH_SECONDS": "0.5",
            "INKLOOP_MAX_UPLOAD_BYTES": "2000000",
            **self.extra_env,
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [INKLOOP, *args], env=self.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        assert result.returncode == 0, f"inkloop {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, timeout: float = 90.0) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("init")
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 (the process owns it)
        self.process = subprocess.Popen(
            [INKLOOP, "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until_healthy(self.url, self.process, timeout_s=timeout)
        except NotHealthyError as exc:
            raise AssertionError(f"{exc}:\n{self.log_tail()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def log_tail(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def store(self) -> ImageStore:
        return ImageStore(str(self.home / "store"))

    def rows(self) -> list[Request]:
        engine = make_engine(self.database_url)
        try:
            with session_factory(engine)() as session:
                query = select(Request).options(selectinload(Request.feedback)).order_by(Request.id)
                return list(session.scalars(query))
        finally:
            engine.dispose()

    def rejections(self) -> int:
        engine = make_engine(self.database_url)
        try:
            with session_factory(engine)() as session:
                return int(session.scalar(select(func.count()).select_from(UploadRejection)) or 0)
        finally:
            engine.dispose()


@pytest.fixture(params=BACKENDS)
def server_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Makes servers on this test's database (SQLite, then PostgreSQL); stops them and drops the database."""
    url, pg_server = database_for(request.param, tmp_path, request)
    made: list[LiveServer] = []

    def make(**extra_env: str) -> LiveServer:
        server = LiveServer(home=tmp_path / "home", database_url=url, extra_env=extra_env)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop(signal.SIGKILL)
        if pg_server is not None:
            drop_postgres_database(pg_server, url)


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server shared by a module's tests (which must not change its champion), on each database."""
    tmp = tmp_path_factory.mktemp(f"live-{request.param}")
    url, pg_server = database_for(request.param, tmp, request)
    server = LiveServer(home=tmp / "home", database_url=url)
    try:
        yield server.start()
    finally:
        server.stop(signal.SIGKILL)
        if pg_server is not None:
            drop_postgres_database(pg_server, url)
