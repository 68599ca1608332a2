"""The dependency rule, enforced: every import of every module is read (with ast, lazy imports inside functions
included) and none may run from a lower layer to a higher one.

    inkloop (the kernel)  <  db  <  synth | model | annotation | monitoring  <  flows  <  serving
                                                                            <  devtools  <  cli

The four middle packages never import each other. Of `model`, serving may import inference (model.recognizer)
and the registry (model.registry) only. devtools (the simulated annotators, the traffic generator, the demo, the
local-service supervisors) may use every production package, and no production package uses it: only the CLI,
the tests and the benchmarks do. Nothing imports the CLI, the composition root. bench/ and tests/ stand outside
the layers, and bench/ imports nothing from tests/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

CLI = "cli"
DEVTOOLS = "devtools"
RANK = {
    "inkloop": 0,
    "db": 1,
    "synth": 2,
    "model": 2,
    "annotation": 2,
    "monitoring": 2,
    "flows": 3,
    "serving": 4,
    DEVTOOLS: 5,
    CLI: 6,
}
SERVING_MAY_USE_OF_MODEL = ("model.recognizer", "model.registry")


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def layer(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None (the standard library, third parties, bench, tests)."""
    top = module.split(".", 1)[0]
    return top if top in RANK else None


def imports(source: str, module: str, is_package: bool) -> Iterator[tuple[int, list[str]]]:
    """For every import statement in `source`: its line and the absolute dotted names it imports (`from x import
    y, z` gives x.y and x.z: y may be a module or a name in x, and the layer is the same either way)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, [f"{base}.{alias.name}" for alias in node.names]


def check(module: str, source: str, is_package: bool = False) -> list[Violation]:
    own = layer(module)
    if own is None:
        return []
    found = []
    for line, names in imports(source, module, is_package):
        for name in names:
            other = layer(name)
            if other is None or other == own:
                continue
            if other == CLI:
                why = "nothing imports the CLI"
            elif RANK[other] > RANK[own]:
                why = "production code never imports devtools" if other == DEVTOOLS else f"{own} is below {other}"
            elif RANK[other] == RANK[own]:
                why = f"{own} and {other} never import each other"
            elif own == "serving" and other == "model" and not name.startswith(SERVING_MAY_USE_OF_MODEL):
                why = "serving uses only model.recognizer and model.registry"
            else:
                continue
            found.append(Violation(module, line, name, why))
    return found


def project_modules() -> Iterator[tuple[str, Path]]:
    for top in RANK:
        if "." in top:
            continue
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_import_runs_upward() -> None:
    modules = list(project_modules())
    assert len(modules) > 60 and {layer(name) for name, _ in modules} == set(RANK)
    violations = [
        str(v)
        for name, path in modules
        for v in check(name, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
    ]
    assert violations == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("inkloop.store", "from db import repo", "inkloop is below db"),
        ("inkloop.text", "def f():\n    import model.recognizer\n", "inkloop is below model"),
        ("db.repo", "from flows.common import FlowContext", "db is below flows"),
        ("model.train", "from synth.generate import generate", "model and synth never import each other"),
        ("annotation.routing", "import monitoring.features", "annotation and monitoring never import each other"),
        ("flows.route", "from serving.app import create_app", "flows is below serving"),
        ("serving.app", "from model.train import train", "serving uses only model.recognizer and model.registry"),
        ("serving.app", "from cli import app", "nothing imports the CLI"),
        ("inkloop.settings", "from cli.common import group", "nothing imports the CLI"),
        ("devtools.demo", "from cli.models import render_show", "nothing imports the CLI"),
        ("flows.loop", "from devtools.traffic import production_pages", "production code never imports devtools"),
        ("serving.app", "import devtools.processes", "production code never imports devtools"),
        ("annotation.labeling", "from devtools import annotators", "production code never imports devtools"),
        ("db.session", "from ..flows import runner", "db is below flows"),
    ],
)
def test_an_upward_import_is_caught(module: str, source: str, why: str) -> None:
    assert [v.why for v in check(module, source)] == [why]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("cli.demo", "from flows.ingest import ingest\nfrom serving.health import wait_until_healthy"),
        ("serving.models", "from model.registry import materialize\nfrom model.recognizer import Recognizer"),
        ("flows.route", "from annotation.client import LabelStudioClient\nfrom db import repo"),
        ("model.registry", "from db import repo\nfrom inkloop.card import ModelCard"),
        ("cli.app", "from cli import admin\nfrom . import common"),
        ("cli.labelstudio", "from devtools import labelstudio"),
        ("devtools.demo", "from flows.loop import loop\nfrom serving.health import wait_until_healthy"),
    ],
)
def test_allowed_imports_pass(module: str, source: str) -> None:
    assert check(module, source, is_package=False) == []


def test_tests_share_code_only_through_tests_support() -> None:
    """A test module imports helpers from tests/support, never from a conftest or another test module (a fixture
    reaches it through `pytest_plugins`)."""
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for line, names in imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and any(p == "conftest" or p.startswith("test_") for p in parts[1:]):
                    found.append(f"{module}:{line} imports {name}")
    assert found == []


def test_benchmarks_import_nothing_from_tests() -> None:
    """What a benchmark shares with the tests (pages with known text, reference kernels) lives in devtools/."""
    found = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / "bench").rglob("*.py"))
        for line, names in imports(path.read_text(encoding="utf-8"), f"bench.{path.stem}", False)
        for name in names
        if name.split(".")[0] == "tests"
    ]
    assert found == []


def project_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each project module -> the project modules it imports (`from a import b` counts as a.b when that is a
    module, else as a)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for _, names in imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py"):
            for imported in names:
                target = imported if imported in modules else imported.rpartition(".")[0]
                if target in modules and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in order:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], order[other])
        if low[node] == order[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def test_no_two_modules_import_each_other() -> None:
    """Within a layer too: a cycle (db.session and db.migrate once imported each other, lazily) means neither
    module can be read, tested or moved without the other."""
    graph = project_imports(dict(project_modules()))
    assert graph["db.ready"] >= {"db.migrate", "db.session"}
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    graph = {
        "db.session": {"db.migrate"},
        "db.migrate": {"db.schema"},
        "db.schema": {"db.session"},
        "x": {"db.session"},
    }
    assert cycles(graph) == [["db.migrate", "db.schema", "db.session"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# What a module outside db/ may take from SQLAlchemy: types to annotate with, and errors to tell apart.
SQLALCHEMY_OUTSIDE_DB = {"sqlalchemy.Engine", "sqlalchemy.orm.Session", "sqlalchemy.orm.sessionmaker"}
QUERY_METHODS = {"execute", "scalar", "scalars", "query"}


def sql_outside_db(module: str, source: str) -> list[str]:
    """Queries written outside db/: SQLAlchemy's statement builders imported, or a session or connection asked to
    run one (`.execute`, `.scalar`, `.scalars`, `.query`)."""
    found = []
    for line, names in imports(source, module, False):
        for name in names:
            if name.startswith("sqlalchemy") and not (
                name in SQLALCHEMY_OUTSIDE_DB or name.startswith(("sqlalchemy.exc.", "sqlalchemy.engine.make_url"))
            ):
                found.append(f"{module}:{line} imports {name}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
            found.append(f"{module}:{node.lineno} calls .{node.func.attr}()")
    return found


def test_sql_lives_in_db() -> None:
    found = [
        problem
        for name, path in project_modules()
        if layer(name) != "db"
        for problem in sql_outside_db(name, path.read_text(encoding="utf-8"))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select",
        "from sqlalchemy import func, text",
        "def f(session):\n    return session.scalar(q)",
        "def f(engine):\n    with engine.connect() as c:\n        c.execute(q)",
    ],
)
def test_sql_outside_db_is_found(source: str) -> None:
    assert sql_outside_db("flows.gate", source) != []
    assert (
        sql_outside_db("flows.gate", "from sqlalchemy.orm import Session\nfrom sqlalchemy.exc import DBAPIError") == []
    )
