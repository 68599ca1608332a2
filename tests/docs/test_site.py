"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing page, image or anchor fails
it), and its three generated pages say what the code says: every setting on the configuration page (and every
path of INKLOOP_HOME's layout), every command and option of the command line on the CLI page, every operation of
the OpenAPI schema on the HTTP page."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.app import app
from inkloop.home import HomeLayout
from inkloop.settings import Settings, env_var
from serving.app import create_app
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # about 15 s: the build imports the CLI, the app and the settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
        + ["--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page(site: Path, name: str) -> str:
    """A built page's HTML, entities unescaped (a page's `&lt;` reads as `<` here)."""
    return html.unescape(raw_page(site, name))


def raw_page(site: Path, name: str) -> str:
    path = site / name
    assert path.is_file(), f"{name} was not built"
    return path.read_text(encoding="utf-8")


def page_text(site: Path, name: str) -> str:
    """A built page's text: tags removed, then entities unescaped, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", raw_page(site, name))).split())


def test_every_page_of_the_navigation_is_built(site: Path) -> None:
    for name in ("index.html", "architecture.html", "benchmarks.html", "development.html", "changelog.html"):
        assert (site / name).is_file(), name
    assert not (site / "hooks").exists(), "the hook is build code, not a page"


def test_the_configuration_page_has_every_setting_and_home_path(site: Path) -> None:
    text = page(site, "configuration.html")
    missing = [env_var(name) for name in Settings.model_fields if env_var(name) not in text]
    assert missing == []
    plain = page_text(site, "configuration.html")
    for name, member in vars(HomeLayout).items():
        if isinstance(member, property):
            relative = getattr(HomeLayout(Path("/home")), name).relative_to("/home").as_posix()
            assert f"<code>{relative}</code>" in text, (name, relative)
            assert " ".join((member.__doc__ or "").replace("`", "").split()) in plain, name


def commands(command: Any, words: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command and group of the app, with the words that name it. (typer vendors its own click, so a group
    is recognised by its `commands`, not by its class.)"""
    yield words, command
    for name, child in (getattr(command, "commands", None) or {}).items():
        if not child.hidden:
            yield from commands(child, [*words, name])


def test_the_cli_page_has_every_command_and_option(site: Path) -> None:
    text = page(site, "cli.html")
    found = list(commands(typer.main.get_command(app), ["inkloop"]))
    assert len(found) > 40  # 18 commands and groups at the top, their subcommands below
    for words, command in found:
        assert f'id="{"-".join(words)}"' in text, " ".join(words)
        for parameter in command.params:
            for option in parameter.opts if parameter.param_type_name == "option" else []:
                assert option in text, f"{' '.join(words)} {option}"


def test_the_http_page_has_every_operation(site: Path) -> None:
    text = page(site, "http-api.html")
    schema = create_app(Settings()).openapi()  # builds routes only: no database, no model
    operations = [(method, path) for path, methods in schema["paths"].items() for method in methods]
    assert len(operations) >= 4
    for method, path in operations:
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")  # POST /v1/predict: post-v1-predict
        assert f'id="{anchor}"' in text, (method, path)
        assert f"{method.upper()} {path}" in text
        for status in schema["paths"][path][method]["responses"]:
            assert f"<td>{status}</td>" in text, (method, path, status)
