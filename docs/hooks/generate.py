"""MkDocs hook: the reference pages, generated from the code at every build so they cannot drift from it.

- configuration.md from `inkloop.settings.Settings` (every field: its variable, default, type and description)
  and `inkloop.home.HomeLayout` (every path under INKLOOP_HOME);
- cli.md from the typer app `cli.app:app` (every group and command: usage, help, arguments and options);
- http-api.md from the OpenAPI schema of `serving.app.create_app` (routes only: no database, no model);
- changelog.md is the repository's CHANGELOG.md, as it is.

Nothing here is committed as Markdown: `on_files` adds the three pages as generated files before the navigation
is built. A hand-written file of the same name in docs/ is an error, so nobody edits a copy that the next build
would overwrite. The project's packages are imported inside the builders, so a broken import fails the build with
its own traceback.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

# --------------------------------------------------------------------------------------------------------------
# Markdown helpers


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _prose(text: str) -> str:
    """Text from a docstring or a help string as Markdown: `<` and `>` escaped outside code spans, so a
    placeholder such as <key> shows instead of vanishing as an unknown HTML tag."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else html.escape(part, quote=False) for part in parts)


def _code(text: str) -> str:
    """An inline code span for `text`, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# --------------------------------------------------------------------------------------------------------------
# configuration.md

# The home used to show derived defaults; it is replaced by `$INKLOOP_HOME` in what the page prints.
_HOME_SENTINEL = Path("/INKLOOP_HOME_PLACEHOLDER")

CONFIGURATION_INTRO = """\
# Configuration

inkloop reads its configuration from `INKLOOP_*` environment variables, through one settings class
(`inkloop/settings.py`). Every variable has an embedded default, so a fresh checkout runs with none set: a
SQLite file and an image store folder under `INKLOOP_HOME`, a local Label Studio, a local Prefect server.

A malformed value, or a misspelt `INKLOOP_` variable, stops every command with one line that names it:

```
$ INKLOOP_CONFIDENCE_THRESHOLD=high inkloop status
inkloop: error: invalid setting INKLOOP_CONFIDENCE_THRESHOLD='high': Input should be a valid number, ...
$ INKLOOP_DATABSE_URL=sqlite:///x.db inkloop status
inkloop: error: unknown setting INKLOOP_DATABSE_URL (did you mean INKLOOP_DATABASE_URL?); known: ...
```

This page is generated from the code when the documentation is built: the table below is `Settings`, field by
field, and the layout of `INKLOOP_HOME` further down is `inkloop.home.HomeLayout`.
"""

CONFIGURATION_OUTRO = """\
## Other variables inkloop reads

These belong to the tools inkloop uses, not to `Settings`:

- `PREFECT_API_URL`: the Prefect server flow runs report to. Unset, `inkloop flow run` uses the local server
  under `INKLOOP_HOME/prefect`, starting it on first use (`--no-server`: a temporary API for that run alone;
  [Data flows](data-flows.md#where-the-runs-go)).
- `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`: the credentials and
  endpoint of an `s3://` store ([Architecture](architecture.md#image-store)).
- `OMP_NUM_THREADS`: torch threads per server process. Unset, `inkloop serve --workers N` gives each worker
  cores / N.
- `TEST_POSTGRES_URL`: the PostgreSQL server the test suite uses ([Development](development.md)).

## PostgreSQL instead of SQLite

```bash
export INKLOOP_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/inkloop
.venv/bin/inkloop init && .venv/bin/inkloop status --json
```

`inkloop init` refuses to touch a database that has tables but no inkloop schema revision. It is safe to run
from several replicas at once: on PostgreSQL the migration holds an advisory lock, and the others then find the
schema at head. A malformed URL is one line naming the problem, its password masked: with
`INKLOOP_DATABASE_URL=postgresql+psycopg://u:secret@db:abc/inkloop`, every command answers
`inkloop: error: invalid setting INKLOOP_DATABASE_URL='postgresql+psycopg://u:***@db:abc/inkloop': the port 'abc'
is not a number; write host:5432`.
"""


def _type_name(annotation: Any) -> str:
    """A field's type as a user reads it: `float`, `path`, `one of a, b`."""
    from pydantic import SecretStr

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(_code(str(value)) for value in typing.get_args(annotation))
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin is not None and len(args) == 1:  # Optional[X]
        return _type_name(args[0])
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _limits(metadata: list[Any]) -> str:
    """Bounds from a field's constraints (ge=0, le=1, min_length=1, ...) as `≥ 0, ≤ 1`."""
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    found = []
    for item in metadata:
        for name, symbol in symbols.items():
            value = getattr(item, name, None)
            if value is not None:
                found.append(f"{symbol} {value:g}" if isinstance(value, float) else f"{symbol} {value}")
    return ", ".join(found)


def _shown_default(name: str, declared: Any, resolved: Any) -> str:
    """The default as a user sees it: derived paths under `$INKLOOP_HOME`, secrets not shown, booleans as the
    environment writes them."""
    from pydantic import SecretStr

    if isinstance(declared, SecretStr):
        return "*(a secret: not shown)*"
    if name == "home" and isinstance(declared, Path):
        return _code(str(declared) if declared.is_absolute() else f"./{declared}")
    value = resolved if resolved is not None else declared
    if value is None:
        return "*(none)*"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, float):
        return _code(f"{value:g}")
    text = str(value).replace(str(_HOME_SENTINEL), "$INKLOOP_HOME")
    return _code(text) if text else "*(empty)*"


def configuration_page() -> str:
    from inkloop.settings import Settings, env_var

    fields = Settings.model_fields
    declared = {name: field.get_default(call_default_factory=True) for name, field in fields.items()}
    # Every field is passed explicitly, so the environment of whoever builds the docs never shows as a default.
    resolved = Settings(**{**declared, "home": _HOME_SENTINEL})
    lines = [CONFIGURATION_INTRO, "| variable | default | what it does |", "|---|---|---|"]
    for name, field in fields.items():
        kind = _type_name(field.annotation)
        limits = _limits(list(field.metadata))
        if limits:
            kind = f"{kind}, {limits}"
        shown = _shown_default(name, declared[name], getattr(resolved, name))
        lines.append(
            f"| `{env_var(name)}` | {_cell(shown)} | {_cell(_prose(field.description or ''))} *({_cell(kind)})* |"
        )
    lines += ["", _home_layout_section(resolved), CONFIGURATION_OUTRO]
    return "\n".join(lines)


def _home_layout_section(settings: Any) -> str:
    import inkloop.home

    layout = settings.paths
    module_doc = " ".join((inkloop.home.__doc__ or "").split())
    lines = [
        "## INKLOOP_HOME",
        "",
        _prose(module_doc),
        "",
        "| path | under INKLOOP_HOME | what it holds |",
        "|---|---|---|",
    ]
    for name, path, doc in inkloop.home.described_paths(layout):
        where = Path(path).relative_to(_HOME_SENTINEL).as_posix() if path != _HOME_SENTINEL else "."
        lines.append(f"| `{name}` | `{where}` | {_cell(_prose(doc))} |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# cli.md

CLI_INTRO = """\
# Command line

`inkloop` is the one command: it builds the engines, clients and stores from the
[configuration](configuration.md) and calls the rest of the code (the `cli/` package, one module per command
group). Every command has `--help`.

Errors are one line on stderr with exit code 1, and a command checks what it was given before it loads anything
heavy (`inkloop predict /nonexistent.png` answers before torch is imported):

```
$ inkloop store get ../../etc/passwd
inkloop: error: invalid store key '../../etc/passwd': a key is the 64-character lowercase hex sha256 of the bytes
$ inkloop train --data /nonexistent
inkloop: error: --data /nonexistent: no such folder (a folder of images and a labels.jsonl)
$ inkloop serve --port 8080     # Label Studio has it
inkloop: error: port 8080 on 127.0.0.1 is already in use; choose another with --port
```

A usage error (an unknown option or command, a value of the wrong type or out of range) is one line too, saying
where the help is, with exit code 2, the convention for a command line that could not be parsed:

```
$ inkloop serve --workers 0
inkloop: error: Invalid value for '--workers': Input should be greater than or equal to 1 (see inkloop serve --help)
```

`--debug` (or `INKLOOP_DEBUG=1`) shows the traceback instead.

This page is generated from the command line itself (the typer app `cli.app:app`) when the documentation is
built: every group and command, its usage, help, arguments and options with their defaults, exactly as
`--help` gives them.
"""


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


def _walk(command: Any, path: list[str], parent: Any = None) -> Iterator[tuple[list[str], Any, Any]]:
    """(words, command, context) for the command and everything under it, in the order the app registers them.
    (typer vendors its own click, so commands are recognised by what they do, not by their class.)"""
    import typer

    context = typer.Context(command, info_name=path[-1], parent=parent)
    yield path, command, context
    if _is_group(command):
        for name in command.list_commands(context):
            child = command.get_command(context, name)
            if child is not None and not getattr(child, "hidden", False):
                yield from _walk(child, [*path, name], context)


def _argument_name(parameter: Any) -> str:
    name = (parameter.metavar or parameter.name or "").upper()
    return f"{name}..." if parameter.nargs == -1 else name


def _usage(words: list[str], command: Any) -> str:
    pieces = [" ".join(words)]
    parameters = [p for p in command.params if not getattr(p, "hidden", False)]
    if any(p.param_type_name == "option" for p in parameters):
        pieces.append("[OPTIONS]")
    for parameter in parameters:
        if parameter.param_type_name == "argument":
            name = _argument_name(parameter)
            pieces.append(name if parameter.required else f"[{name}]")
    if _is_group(command):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _split_extra(help_text: str) -> tuple[str, str]:
    """typer's help record ends with `  [default: 0; x>=0]`: the help and that bracket apart."""
    match = re.match(r"(?s)(.*?)\s*\[([^\[\]]*)\]\s*$", help_text)
    return (match.group(1), match.group(2)) if match else (help_text, "")


def _parameter_rows(command: Any, context: Any) -> list[str]:
    rows = []
    for parameter in command.params:
        if getattr(parameter, "hidden", False):
            continue
        if parameter.param_type_name == "argument":
            extra = "required" if parameter.required else ""
            rows.append(
                f"| {_code(_argument_name(parameter))} | {_cell(_prose(parameter.help or ''))} | {_cell(extra)} |"
            )
            continue
        record = parameter.get_help_record(context)
        if record is None:
            continue
        declaration, help_text = record
        text, extra = _split_extra(help_text)
        rows.append(f"| {_code(declaration)} | {_cell(_prose(text))} | {_cell(_prose(extra))} |")
    return rows


def cli_page() -> str:
    import typer

    from cli.app import app

    root = typer.main.get_command(app)
    lines = [CLI_INTRO]
    for words, command, context in _walk(root, ["inkloop"]):
        heading = "##" if len(words) <= 2 else "###"  # a group's commands sit under the group
        lines += [f"{heading} {' '.join(words)}", ""]
        help_text = (command.help or "").split("\f", 1)[0].strip()
        if help_text:
            lines += [_prose(help_text), ""]
        lines += ["```", _usage(words, command), "```", ""]
        rows = _parameter_rows(command, context)
        if rows:
            lines += ["| argument or option | what it does | default, limits |", "|---|---|---|", *rows, ""]
        if _is_group(command) and len(words) > 1:
            children = list(command.list_commands(context))
            lines += ["Commands: " + ", ".join(f"`{' '.join([*words, name])}`" for name in children) + ".", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# http-api.md

HTTP_INTRO = """\
# HTTP API

`inkloop serve` answers on http://127.0.0.1:8000 by default ([Serving](serving.md) says how to run it). Besides
the operations below it serves the web page at `/` and its files under `/static/`, and the interactive OpenAPI
documentation at `/docs` (the schema itself at `/openapi.json`). A method a path does not allow is answered 405
with an `Allow` header.

Every refusal is JSON of one shape, `{"error": {"code": "...", "message": "..."}}`: the code is stable (clients
and the rejection log key on it), the message says what was wrong. Bad input gets a 4xx, never a 500, and leaves
no request row and no stored object.

This page is generated from the app's OpenAPI schema (`serving.app.create_app(...).openapi()`) when the
documentation is built.
"""


def _resolve(schema: Mapping[str, Any], document: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _schema_type(schema: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        target = _resolve(schema, document)
        if "enum" in target:
            return "one of " + ", ".join(_code(json.dumps(value)) for value in target["enum"])
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        kinds = [_schema_type(option, document) for option in schema["anyOf"]]
        return " or ".join(kind for kind in kinds if kind)
    if "enum" in schema:
        return "one of " + ", ".join(_code(json.dumps(value)) for value in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}), document)}"
    if kind == "string" and schema.get("contentMediaType") == "application/octet-stream":
        return "file"
    return kind


def _byte_limits(schema: Mapping[str, Any]) -> str:
    """A file part's length limits, which count its bytes: "1 to 20,000,000 bytes"."""
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and high is not None:
        return f"{low:,} to {high:,} bytes"
    if high is not None:
        return f"at most {high:,} bytes"
    return f"at least {low:,} bytes" if low is not None else ""


def _constraints(schema: Mapping[str, Any]) -> str:
    if schema.get("contentMediaType") == "application/octet-stream":
        return _byte_limits(schema)
    found = []
    options = [schema, *schema.get("anyOf", [])]
    for option in options:
        for key, label in (
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("pattern", "pattern"),
        ):
            if key in option:
                value = option[key]
                found.append(f"{label} {_code(str(value)) if key == 'pattern' else value}")
    return ", ".join(found)


def _fields_table(schema: Mapping[str, Any], document: Mapping[str, Any]) -> list[str]:
    target = _resolve(schema, document)
    properties = target.get("properties", {})
    if not properties:
        return []
    required = set(target.get("required", []))
    rows = ["| field | type | required | what it is |", "|---|---|---|---|"]
    for name, field in properties.items():
        kind = _schema_type(field, document)
        limits = _constraints(field)
        if limits:
            kind = f"{kind} ({limits})"
        described = field.get("description", "")
        rows.append(
            f"| `{name}` | {_cell(kind)} | {'yes' if name in required else 'no'} | {_cell(_prose(described))} |"
        )
    if target.get("additionalProperties") is False:
        rows.append("")
        rows.append("Other fields are refused.")
    return rows


def _referenced(schema: Any) -> Iterator[str]:
    """Names of the component schemas a schema refers to, at any depth of its own definition."""
    if isinstance(schema, Mapping):
        if "$ref" in schema:
            yield str(schema["$ref"]).rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _referenced(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _referenced(value)


def _body_name(content: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    for media_type, entry in content.items():
        return media_type, entry.get("schema")
    return "", None


def _operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def http_page() -> str:
    from inkloop.settings import Settings
    from serving.app import create_app

    with tempfile.TemporaryDirectory() as home:  # the app reads settings only; nothing is written there
        document = create_app(Settings(home=Path(home))).openapi()
    lines = [HTTP_INTRO]
    info = document.get("info", {})
    if info.get("summary"):
        lines += [f"*{_prose(info['summary'])}* (API version {info.get('version', '?')})", ""]
    lines += ["| operation | what it does |", "|---|---|"]
    for path, method, operation in _operations(document):
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
        lines.append(f"| [`{method} {path}`](#{anchor}) | {_cell(_prose(operation.get('description', '')))} |")
    lines.append("")
    schemas_shown: list[str] = []
    for path, method, operation in _operations(document):
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
        lines += [f"## `{method} {path}` {{#{anchor}}}", ""]
        if operation.get("description"):
            lines += [_prose(operation["description"]), ""]
        body = operation.get("requestBody")
        if body:
            media_type, schema = _body_name(body.get("content", {}))
            lines += [f"**Request body** ({_code(media_type)}{', required' if body.get('required') else ''}):", ""]
            if schema is not None:
                lines += [*_fields_table(schema, document), ""]
                schemas_shown += list(_referenced(_resolve(schema, document)))
        lines += ["**Responses:**", "", "| status | when | body |", "|---|---|---|"]
        for status, response in operation.get("responses", {}).items():
            media_type, schema = _body_name(response.get("content", {}))
            shown = ""
            if schema is not None and "$ref" in schema:
                shown = _schema_type(schema, document)
                schemas_shown.append(str(schema["$ref"]).rsplit("/", 1)[-1])
            elif schema:
                shown = _schema_type(schema, document)
            elif media_type:
                shown = media_type
            lines.append(f"| {status} | {_cell(_prose(response.get('description', '')))} | {shown} |")
        lines.append("")
    components = document.get("components", {}).get("schemas", {})
    pending, bodies = list(schemas_shown), []
    while pending:  # the response bodies and every object schema they refer to, each once
        name = pending.pop(0)
        if name in bodies or not components.get(name, {}).get("properties"):
            continue
        bodies.append(name)
        pending += list(_referenced(components[name]))
    if bodies:
        lines += ["## Bodies", ""]
        for name in bodies:
            schema = components[name]
            lines += [f"### {name} {{#{name.lower()}}}", ""]
            if schema.get("description"):
                lines += [_prose(schema["description"]), ""]
            lines += [*_fields_table(schema, document), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# the hook

GENERATED: dict[str, Callable[[], str]] = {
    "configuration.md": configuration_page,
    "cli.md": cli_page,
    "http-api.md": http_page,
}


# Pages whose source lives outside docs/ (a reader of the repository finds them at its root).
INCLUDED = {"changelog.md": "CHANGELOG.md"}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).resolve().parent
    for name, build in GENERATED.items():
        if files.get_file_from_path(name) is not None:
            raise PluginError(f"docs/{name} is generated by docs/hooks/generate.py: delete the file in docs/")
        files.append(File.generated(config, name, content=build()))
    for name, source in INCLUDED.items():
        files.append(File.generated(config, name, abs_src_path=str(root / source)))
    return files
