"""The README, the CHANGELOG and the documentation pages name only what exists: every repository path they give,
and every `inkloop` command. (The site's own links between pages are checked by `mkdocs build --strict`,
tests/docs/test_site.py.) And the README stays short.

Where names are looked for:
- inline code spans (`...`), table pipes written `\\|` read as `|`;
- link and image targets, `[text](target)`;
- command lines of fenced code blocks: every line of a block tagged bash, sh, shell or console (comments after
  `#` dropped), and in any other fenced block only the lines that start with a `$ ` prompt (the rest is output).

What counts as a repository path: a word with a `/` whose first segment is a folder at the root of this
repository that git tracks (`flows/gate.py`, `model/configs/`, `.venv/bin/...` is not one: `.venv` is not
tracked), or a bare root file name (`pyproject.toml`, `docker-compose.yml`, `Makefile`: the extensions .md, .toml,
.yml, .yaml, .ini, .cfg and the names Makefile, Dockerfile). Paths under INKLOOP_HOME (`reports/gates/`,
`cache/models`, `$INKLOOP_HOME/...`), under folders the Makefile creates (`data/`, `runs/`, `site/`), absolute
paths and URLs (anything with `://`) are not repository paths, because their first segment is not a tracked
root folder. A path is cut at its first segment holding a placeholder (`<rev>`, `{x}`, `*`, `$VAR`, `...`), and
the part before it must exist. A link in a docs page is resolved from docs/ (pages the build generates count as
existing); a link in the README or the CHANGELOG from the root.

What counts as an `inkloop` command: the word `inkloop` at the start of a code span or command line, after a
shell separator or a `/` (`.venv/bin/inkloop`), followed by a lowercase word. The words after it are resolved through
the typer app's click groups until a command that takes no subcommand, an option (`-x`), a placeholder (a word
with a capital letter or `<`, `[`, `{`, `...`) or a shell operator; `a|b` names alternatives, each checked.
`"inkloop paragraphs"` (quoted) or `inkloop-retrain` are names, not commands.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.app import app
from tests.support.paths import REPO

README_MAX_LINES = 250
SHELL_FENCES = {"bash", "sh", "shell", "console"}
ROOT_FILE = re.compile(r"^(?:[\w.-]+\.(?:md|toml|ya?ml|ini|cfg)|Makefile|Dockerfile)$")
PLACEHOLDER = re.compile(r"[<>{}*$…]|\.\.\.")
COMMAND = re.compile(r"(?:^|(?<=[\s;&|(/]))inkloop(?=[ \t]+[a-z])")
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@dataclass(frozen=True)
class Problem:
    where: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.what}"


@dataclass(frozen=True)
class Mention:
    kind: str  # "code" (a span or a command line) or "link"
    text: str
    line: int


def mentions(markdown: str) -> Iterator[Mention]:
    """Code spans, command lines of fenced blocks and link targets, with the line each starts on."""
    text = markdown.replace("\\|", "|")
    kept: list[str] = []  # the text outside fenced blocks, blanked blocks in between, so line numbers hold
    last = 0
    for block in FENCE.finditer(text):
        kept.append(text[last : block.start()])
        kept.append(re.sub(r"[^\n]", " ", block.group(0)))
        last = block.end()
        first_line = text.count("\n", 0, block.start("body")) + 1
        shell = (block.group("info").strip().split() or [""])[0].lower() in SHELL_FENCES
        for offset, line in enumerate(block.group("body").splitlines()):
            stripped = line.strip()
            if stripped.startswith("$ "):
                command = stripped[2:]
            elif shell and stripped and not stripped.startswith("#"):
                command = stripped
            else:
                continue
            command = re.split(r"\s#\s", command, maxsplit=1)[0]
            yield Mention("code", command, first_line + offset)
    kept.append(text[last:])
    prose = "".join(kept)
    for span in CODE_SPAN.finditer(prose):
        yield Mention("code", span.group(2).strip(), prose.count("\n", 0, span.start()) + 1)
    for link in LINK.finditer(prose):
        yield Mention("link", link.group(1), prose.count("\n", 0, link.start()) + 1)


@functools.cache
def tracked_root_folders() -> frozenset[str]:
    """The folders at the repository's root that git tracks files in."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    return frozenset(name.split("/", 1)[0] for name in listed if "/" in name)


def path_words(text: str) -> Iterator[str]:
    """The words of a code span or command line that may be paths: split on spaces and on the `=`, `:`, `,` and
    `@` that join a path to an option or a commit (`--out=docs/x`, `a90a67b:model/artifacts/base.pt`)."""
    for word in text.split():
        if "://" in word:
            continue
        for part in re.split(r"[=:,@]", word):
            part = part.strip("\"'`()[]").rstrip(".;").removeprefix("./")
            if part:
                yield part


def repository_path(word: str, root_folders: frozenset[str]) -> str | None:
    """The part of `word` to check as a path relative to the repository root, or None when it is not one."""
    if "/" not in word:
        return word if ROOT_FILE.match(word) else None
    segments = word.split("/")
    if segments[0] not in root_folders:
        return None
    kept: list[str] = []
    for segment in segments:
        if PLACEHOLDER.search(segment):
            return "/".join(kept) + "/"
        kept.append(segment)
    return "/".join(kept)


def command_words(text: str) -> Iterator[list[str]]:
    """For every `inkloop` command in a code span or command line: the words after it, up to the first option,
    placeholder or shell operator."""
    for found in COMMAND.finditer(text):
        words = []
        for raw in text[found.end() :].split():
            word = raw.strip("\"'`,.;:)")
            if not word or raw in ("|", "||", "&&", ";", ">", "#") or raw.startswith(("-", "#")):
                break
            if re.search(r"[A-Z<\[{…]|\.\.\.", word) or not re.fullmatch(r"[a-z0-9_|-]+", word):
                break
            words.append(word)
        yield words


@functools.cache
def root_command() -> Any:
    return typer.main.get_command(app)


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's subcommands by name; None for a command that takes none. (typer vendors its own click, so a
    group is recognised by what it has, not by its class.)"""
    found = getattr(command, "commands", None)
    return dict(found) if isinstance(found, dict) else None


def unknown_command(words: list[str]) -> str | None:
    """None when `inkloop WORDS...` names a real command (or group), else what is wrong."""
    node = root_command()
    path = ["inkloop"]
    for word in words:
        children = _subcommands(node)
        if children is None:
            return None  # a command: the rest are its arguments
        alternatives = word.split("|")
        missing = [name for name in alternatives if name not in children]
        if missing:
            return f"`{' '.join(path)} {word}`: no command {', '.join(missing)} (there are: {', '.join(children)})"
        if len(alternatives) > 1:
            return None
        node = children[word]
        path.append(word)
    return None


@functools.cache
def generated_pages() -> frozenset[str]:
    """The pages docs/hooks/generate.py adds to the site: a link to them from a docs page is a real link."""
    spec = importlib.util.spec_from_file_location("docs_hook_generate", REPO / "docs" / "hooks" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset([*module.GENERATED, *module.INCLUDED])


def check(markdown: str, *, where: str, links_from: Path, root: Path = REPO) -> list[Problem]:
    """Every problem with the paths and commands `markdown` names. `links_from` is the folder its relative links
    resolve from."""
    problems = []
    folders = tracked_root_folders()
    for mention in mentions(markdown):
        if mention.kind == "link":
            target = mention.text.split("#", 1)[0]
            if not target or "://" in target or target.startswith(("mailto:", "/")):
                continue
            resolved = (links_from / target).resolve()
            docs = (root / "docs").resolve()
            if resolved.is_relative_to(docs) and resolved.relative_to(docs).as_posix() in generated_pages():
                continue
            if not resolved.exists():
                problems.append(Problem(where, mention.line, f"link to {target}: no such file"))
            continue
        for word in path_words(mention.text):
            path = repository_path(word, folders)
            if path is not None and not (root / path).exists():
                problems.append(Problem(where, mention.line, f"{path}: no such path in the repository"))
        for words in command_words(mention.text):
            wrong = unknown_command(words)
            if wrong is not None:
                problems.append(Problem(where, mention.line, wrong))
    return problems


def documents() -> list[Path]:
    pages = sorted(path for path in (REPO / "docs").rglob("*.md") if "hooks" not in path.relative_to(REPO).parts)
    return [REPO / "README.md", REPO / "CHANGELOG.md", *pages]


def test_every_named_path_and_command_exists() -> None:
    found = documents()
    assert len(found) > 10, found  # the README, the CHANGELOG and the site's pages
    problems = []
    for path in found:
        links_from = path.parent if path.parent != REPO else REPO
        problems += check(path.read_text(encoding="utf-8"), where=str(path.relative_to(REPO)), links_from=links_from)
    assert [str(p) for p in problems] == []


def test_the_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


def _problems(markdown: str) -> list[str]:
    return [p.what for p in check(markdown, where="made-up.md", links_from=REPO)]


@pytest.mark.parametrize(
    "markdown",
    [
        "The gate flow is `flows/gate.py`; its configs in `model/configs/`.",
        "Reports land in `reports/gates/` and `cache/models` under home, `$INKLOOP_HOME/reports/drift/index.html`.",
        "Open http://127.0.0.1:8000/docs or `https://example.org/flows/missing.py`.",
        "Data under `data/heldout` and `runs/base/model.pt` is made by make; the site goes to `site/cli.html`.",
        "Migrations: `db/migrations/versions/<rev>_what_changed.py`.",
        "`git show a90a67b:model/artifacts/base.pt > base-2.pt` and `curl -F image=@model/golden/000000.png`.",
        "Settings live in `pyproject.toml` and `docker-compose.yml`; see `labels.jsonl` and `card.json`.",
        "`inkloop models promote V` then `.venv/bin/inkloop flow run ingest -p batch_size=5`.",
        "`inkloop labelstudio up|down|status` and `inkloop store put|get|verify`.",
        'The project is `"inkloop paragraphs"`; the deployment `inkloop-retrain`; the package `inkloop/`.',
        "| `inkloop models list\\|show` | the registry |",
        "```\ninkloop flow runs nothing here: this is output\n$ inkloop lineage REQUEST_ID\n```",
        "```bash\n.venv/bin/inkloop init && .venv/bin/inkloop status --json   # where things are\n```",
        "`inkloop lineage REQUEST_ID [--json]`, `inkloop flow run NAME`.",
        "See [the changelog](CHANGELOG.md#base-4) and ![loop](docs/images/loop.svg).",
    ],
)
def test_what_exists_passes(markdown: str) -> None:
    assert _problems(markdown) == []


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("The gate flow is `flows/gates_flow.py`.", "flows/gates_flow.py: no such path in the repository"),
        ("Its configs: `model/no-such-folder/`.", "model/no-such-folder/: no such path in the repository"),
        ("`db/nowhere/<rev>.py`", "db/nowhere/: no such path in the repository"),
        ("`CHANGES.md`", "CHANGES.md: no such path in the repository"),
        ("`inkloop frobnicate`", "`inkloop frobnicate`: no command frobnicate"),
        ("`inkloop models promot base-4`", "`inkloop models promot`: no command promot"),
        ("`inkloop labelstudio up|sideways`", "`inkloop labelstudio up|sideways`: no command sideways"),
        ("```bash\n.venv/bin/inkloop prefect upp\n```", "`inkloop prefect upp`: no command upp"),
        ("```\n$ inkloop nope\nnope: not printed by inkloop\n```", "`inkloop nope`: no command nope"),
        ("[the docs](docs/missing-page.md)", "link to docs/missing-page.md: no such file"),
        ("`cd flows && inkloop synth-it`", "`inkloop synth-it`: no command synth-it"),
    ],
)
def test_what_is_missing_is_caught(markdown: str, expected: str) -> None:
    found = _problems(markdown)
    assert len(found) == 1 and found[0].startswith(expected), found
