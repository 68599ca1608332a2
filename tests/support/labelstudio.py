"""The `label_studio` session fixture: one real Label Studio for the whole test run, started by devtools.labelstudio.
Every test that uses it is marked `labelstudio` (tests/conftest.py).

It runs from the virtualenv `make labelstudio` installs (INKLOOP_LABEL_STUDIO_VENV, default <repo>/.venv-labelstudio);
without one the fixture FAILS, never skips. It listens on a free port with its data in a temporary folder, and its
LOCAL_FILES_DOCUMENT_ROOT is pytest's base temporary folder, so a store under any test's tmp_path can be served.

A first start spends ~30 s creating Label Studio's database. The fixture keeps a copy of that fresh database (no
projects, just the admin user with TOKEN) next to the virtualenv and starts later sessions from it in ~5 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devtools import labelstudio as server
from tests.support.paths import REPO
from tests.support.ports import free_port

if TYPE_CHECKING:  # the SDK takes a second to import; only tests that talk to Label Studio pay for it
    from annotation.client import LabelStudioClient
    from devtools.annotators import SimulatedAnnotator

TOKEN = "inkloop-test-suite-token-0123456789"
# Named after the token it was made with: a template made with another token would be refused at start.
_TEMPLATE = f"test-database-{hashlib.sha256(TOKEN.encode()).hexdigest()[:12]}.sqlite3"


@dataclass(frozen=True)
class LabelStudioHandle:
    """A running Label Studio: where it is, its admin login, and clients for it."""

    url: str
    token: str
    username: str
    password: str
    document_root: Path
    venv: Path
    server: server.LocalLabelStudio

    def client(self, token: str | None = None) -> LabelStudioClient:
        """A client with the admin token (or `token`); close it, or use it in a `with` block."""
        from annotation.client import LabelStudioClient

        return LabelStudioClient(self.url, token or self.token)

    def annotator(self) -> SimulatedAnnotator:
        """The admin user acting as an annotator; close it, or use it in a `with` block."""
        from devtools.annotators import SimulatedAnnotator

        return SimulatedAnnotator(self.client())

    def env(self) -> dict[str, str]:
        """INKLOOP_* variables pointing inkloop at this Label Studio."""
        return {"INKLOOP_LABEL_STUDIO_URL": self.url, "INKLOOP_LABEL_STUDIO_TOKEN": self.token}


def label_studio_venv() -> Path:
    return Path(os.environ.get("INKLOOP_LABEL_STUDIO_VENV") or REPO / ".venv-labelstudio").resolve()


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, even of one a running server is using."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioHandle]:
    venv = label_studio_venv()
    if not server.is_installed(venv):
        pytest.fail(f"no Label Studio installed in {venv}: run `make labelstudio` (or set INKLOOP_LABEL_STUDIO_VENV)")
    ls = server.LocalLabelStudio(
        url=f"http://127.0.0.1:{free_port()}",
        token=TOKEN,
        venv=venv,
        root=tmp_path_factory.mktemp("labelstudio"),
        document_root=tmp_path_factory.getbasetemp().resolve(),
    )
    template = venv / _TEMPLATE
    database = ls.data_dir / "label_studio.sqlite3"
    if template.is_file():
        ls.data_dir.mkdir(parents=True)
        shutil.copyfile(template, database)
    server.up(ls, timeout_s=300)
    try:
        if not template.is_file():
            copy_database(database, template.with_suffix(".partial"))
            template.with_suffix(".partial").replace(template)
        yield LabelStudioHandle(
            url=ls.url,
            token=ls.token,
            username=ls.username,
            password=ls.password,
            document_root=Path(str(ls.document_root)),
            venv=venv,
            server=ls,
        )
    finally:
        server.down(ls)


def answer_texts(result: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every non-empty text of a Label Studio answer (or pre-annotation) by the field it is in: what a reviewer
    reads on the completed task."""
    found: dict[str, list[str]] = {}
    for item in result:
        texts = [t for t in item["value"].get("text", []) if t.strip()]
        if item.get("type") == "textarea" and texts:
            found.setdefault(item["from_name"], []).extend(texts)
    return found
