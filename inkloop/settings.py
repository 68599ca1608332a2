"""Infrastructure settings: one pydantic-settings class read from INKLOOP_* environment variables.

Every setting has an embedded default so a fresh checkout runs with no configuration: a SQLite file and a store
folder under INKLOOP_HOME, a local Label Studio, Prefect's local API. `load_settings()` is the only way the rest
of the code reads them; it turns a malformed or misspelt variable into a SettingsError that names it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import fsspec
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from inkloop.errors import SettingsError
from inkloop.home import HomeLayout
from inkloop.schedules import parse_schedules

ENV_PREFIX = "INKLOOP_"

# The token the local Label Studio (`inkloop labelstudio up`) is started with. It only guards a server bound to
# 127.0.0.1; anything reachable from elsewhere must set INKLOOP_LABEL_STUDIO_TOKEN.
LOCAL_LABEL_STUDIO_TOKEN = "inkloop-local-label-studio-token"


class Settings(BaseSettings):
    """What inkloop needs to know about its environment. Field `x` is read from `INKLOOP_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, validate_default=True)

    home: Path = Field(Path(".inkloop"), description="Folder for the embedded defaults (database, store, reports).")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Default: a SQLite file under home. PostgreSQL: "
        "postgresql+psycopg://user:password@host:5432/db (`postgres://` works too).",
    )
    store_url: str = Field(
        "",
        description="Image store: a folder, or any fsspec URL such as s3://bucket/prefix (s3 needs "
        "`pip install -e '.[s3]'`). Default: home/store.",
    )
    label_studio_url: str = Field("http://127.0.0.1:8080", description="Label Studio base URL.")
    label_studio_token: SecretStr = Field(
        SecretStr(LOCAL_LABEL_STUDIO_TOKEN),
        description="Label Studio API token (a user's legacy token; never printed). Default: the token the local "
        "Label Studio of `inkloop labelstudio up` is started with; set it for any other Label Studio.",
    )
    label_studio_venv: Path | None = Field(
        None,
        description="Virtualenv of the local Label Studio (`inkloop labelstudio`). Default: home/labelstudio/venv.",
    )
    label_studio_files_root: Path | None = Field(
        None,
        description="Label Studio's LOCAL_FILES_DOCUMENT_ROOT as inkloop sees it (it must contain the store). "
        "Default: the store folder.",
    )
    label_studio_project: str = Field(
        "inkloop paragraphs",
        min_length=1,
        max_length=128,
        description="Title of the Label Studio project the route flow fills (created when missing).",
    )
    prefect_port: int = Field(
        4200,
        ge=1,
        le=65535,
        description="Port of the local Prefect server (`inkloop prefect up`) on 127.0.0.1, its UI and API.",
    )
    confidence_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Predictions below this confidence are routed to annotators."
    )
    audit_rate: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Share of all valid traffic routed to annotators whatever its confidence: the unbiased "
        "production CER, and the control arm of routing.",
    )
    daily_label_budget: int = Field(200, ge=0, description="At most this many new annotation tasks per UTC day.")
    min_new_labels: int = Field(
        100,
        ge=1,
        description="The retrain flow trains only when the newest dataset version has at least this many train "
        "labels the champion never learnt from.",
    )
    max_upload_bytes: int = Field(20_000_000, gt=0, description="Largest accepted image upload, in bytes.")
    max_image_pixels: int = Field(
        40_000_000,
        gt=0,
        description="Largest accepted image, in pixels (guards against decompression bombs).",
    )
    model_refresh_seconds: float = Field(
        10.0, gt=0.0, description="How often a running server checks the registry for a new champion model."
    )
    inference_runtime: Literal["auto", "onnx-int8", "onnx", "torchscript"] = Field(
        "auto",
        description="How models run: onnx-int8 (the model's int8 graph in ONNX Runtime), onnx (its float graph), "
        "torchscript, or auto (the fastest the model has on CPU; torchscript on a GPU).",
    )
    serve_max_batch: int = Field(
        8, ge=1, le=64, description="Most pages one inference batch of the server reads (concurrent requests)."
    )
    request_log: bool = Field(
        True,
        description="Log every prediction (image + row). false only to measure the log's cost: nothing is kept.",
    )
    schedules: str = Field(
        "",
        description="When `inkloop flow serve` runs each flow, as `name=spec` pairs separated by `;`: `every 5m` "
        "(s, m, h, d), a five-field cron expression in UTC, or `off` (deployed, run by hand). Defaults: ingest and "
        "sync `every 5m`, route `every 15m`, dataset `0 1 * * *`, retrain `0 2 * * *` (it gates its candidate), "
        "drift `0 6 * * *`, synth and gate `off`.",
    )
    flow_concurrency: int = Field(
        1, ge=1, description="Runs of one scheduled flow at a time; more wait their turn in Prefect's queue."
    )
    retrain_pool: str = Field(
        "",
        description="A Prefect work pool (created as a process pool when missing) that takes the inkloop-retrain "
        "deployment on its schedule and limit (compose's GPU worker: inkloop-gpu); empty: `inkloop flow serve` "
        "runs it too.",
    )
    debug: bool = Field(False, description="Tracebacks instead of one-line errors.")

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        if not str(value).strip():
            raise ValueError("must not be empty")
        return value.expanduser().resolve()

    @field_validator("schedules", mode="after")
    @classmethod
    def _schedules(cls, value: str) -> str:
        parse_schedules(value)  # a ValueError names the bad pair
        return value

    @field_validator("label_studio_url", mode="after")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://127.0.0.1:8080")
        return value.strip().rstrip("/")

    @field_validator("label_studio_files_root", mode="before")
    @classmethod
    def _blank_files_root_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("label_studio_venv", mode="before")
    @classmethod
    def _blank_venv_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("label_studio_venv", mode="after")
    @classmethod
    def _label_studio_venv(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        home = info.data.get("home")
        if value is None:
            return None if home is None else HomeLayout(home).labelstudio_venv
        return value.expanduser().resolve()

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str, info: ValidationInfo) -> str:
        if value.strip():
            return _normalize_database_url(value.strip())
        home = info.data.get("home")
        if home is None:
            raise ValueError("no default without a valid INKLOOP_HOME")
        return _normalize_database_url(f"sqlite:///{HomeLayout(home).database}")

    @field_validator("store_url", mode="after")
    @classmethod
    def _store_url(cls, value: str, info: ValidationInfo) -> str:
        if value.strip():
            return _normalize_store_url(value.strip())
        home = info.data.get("home")
        if home is None:
            raise ValueError("no default without a valid INKLOOP_HOME")
        return _normalize_store_url(str(HomeLayout(home).store))

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def store_is_local(self) -> bool:
        return "://" not in self.store_url

    @property
    def paths(self) -> HomeLayout:
        """Every path under INKLOOP_HOME (inkloop/home.py)."""
        return HomeLayout(self.home)

    def masked_database_url(self) -> str:
        return mask_url(self.database_url)

    def masked_store_url(self) -> str:
        return mask_url(self.store_url)


def _normalize_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a database URL; write sqlite:///path/to/file.db or postgresql+psycopg://user@host/db"
        ) from None
    except ValueError:  # SQLAlchemy parses the port with int(): "invalid literal for int() with base 10: 'abc'"
        port = urlsplit(url).netloc.rpartition("@")[2].rpartition(":")[2]
        raise ValueError(f"the port {port!r} is not a number; write host:5432") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"the port {parsed.port} is out of range (1 to 65535)")
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "postgresql" and "+" not in parsed.drivername:
        # psycopg 3 is the driver inkloop installs; say so, so printed URLs are unambiguous.
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite" and backend != "postgresql":
        raise ValueError(f"must be sqlite:/// or postgresql+psycopg://, not {backend}://")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database would lose everything; name a file")
    return parsed.render_as_string(hide_password=False)


def _normalize_store_url(url: str) -> str:
    if "://" not in url:
        return str(Path(url).expanduser().resolve())
    protocol = url.split("://", 1)[0]
    if protocol == "file":
        return str(Path(url[len("file://") :]).expanduser().resolve())
    if protocol not in fsspec.available_protocols():
        raise ValueError(f"store protocol {protocol!r} is unknown; use a folder or a URL such as s3://bucket/prefix")
    return url.rstrip("/")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


def env_var(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def known_variables() -> set[str]:
    return {env_var(name) for name in Settings.model_fields}


def _check_unknown_variables(environ: os._Environ[str] | dict[str, str]) -> None:
    known = known_variables()
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"unknown setting {name}{hint}; known: {', '.join(sorted(known))}")


def _describe(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error.get("loc") else ""
    name = env_var(field) if field else "settings"
    value = error.get("input")
    secret = field == "label_studio_token"
    if field in ("database_url", "store_url") and isinstance(value, str):
        value = mask_url(value)  # a URL's password is never printed
    shown = "" if secret or isinstance(value, dict) else f"={value!r}"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{name}{shown}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (plus explicit overrides), or raise SettingsError naming the bad value."""
    _check_unknown_variables(os.environ)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())  # type: ignore[arg-type]
        raise SettingsError(f"invalid setting {problems}") from None
