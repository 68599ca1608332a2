"""The local Label Studio of the embedded default: its own virtualenv, one detached process on 127.0.0.1.

Label Studio pins packages inkloop's environment cannot share (python-json-logger==2.0.4, redis<5.3, pytz<2023),
so it gets a virtualenv of its own, installed from the pinned requirements/labelstudio.txt. `inkloop labelstudio
up|down|status|install` and the test suite's session fixture both go through this module, so what the tests start
is what users start. A first start migrates Label Studio's SQLite database (about 30 s); later ones take ~4 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devtools.processes import Daemon, Echo, alive, quiet
from inkloop.errors import LabelStudioAuthError, LabelStudioError
from inkloop.settings import Settings
from inkloop.wait import WaitTimeoutError, wait_until

CONSTRAINTS_FILE = Path(__file__).resolve().parents[1] / "requirements" / "labelstudio.txt"


def _pinned_version(constraints: Path) -> str:
    """Label Studio's version, pinned once: the `label-studio==X` line of its requirements file (docker-compose's
    image tag is held to it by tests/deploy/test_compose.py)."""
    for line in constraints.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == "label-studio":
            return version.split("#", 1)[0].strip()
    raise RuntimeError(f"{constraints} pins no label-studio version")


LABEL_STUDIO_VERSION = _pinned_version(CONSTRAINTS_FILE)
# The local server's login. It is printed for the demo and guards only a server bound to 127.0.0.1.
DEFAULT_USERNAME = "annotator@inkloop.local"
DEFAULT_PASSWORD = "inkloop-annotator"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# Written last by install(): a virtualenv without it is a failed or interrupted install, and is rebuilt.
INSTALL_STAMP = ".inkloop-labelstudio-installed"
# Environment passed through to Label Studio; everything else is left out, because Label Studio reads unprefixed
# names such as HOST, PORT, DEBUG and USERNAME that a user's shell may set for other reasons.
_PASSED_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")


@dataclass(frozen=True)
class LocalLabelStudio:
    """Where one local Label Studio lives and how it is reached. `root` holds data/, the log and the pid file."""

    url: str
    token: str
    venv: Path
    root: Path
    document_root: Path | None  # LOCAL_FILES_DOCUMENT_ROOT; None turns local file serving off
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "label-studio.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "label-studio.pid"

    @property
    def daemon(self) -> Daemon:
        return Daemon("Label Studio", self.pid_file, self.log_file, marker=b"label_studio")

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def is_local(self) -> bool:
        return (urlsplit(self.url).hostname or "") in LOCAL_HOSTS


@dataclass(frozen=True)
class ServerStatus:
    """What `status` finds. `pid` is set only for a live process that inkloop started (its pid file)."""

    url: str
    pid: int | None
    healthy: bool
    version: str | None
    log_file: Path
    data_dir: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


def from_settings(settings: Settings, *, document_root: Path | None = None) -> LocalLabelStudio:
    """The local Label Studio that INKLOOP_* settings describe; its document root defaults to the image store."""
    if document_root is None and settings.store_is_local:
        document_root = Path(settings.store_url)
    return LocalLabelStudio(
        url=settings.label_studio_url,
        token=settings.label_studio_token.get_secret_value(),
        venv=settings.label_studio_venv or settings.paths.labelstudio_venv,
        root=settings.paths.labelstudio,
        document_root=document_root,
    )


# --- the virtualenv ---------------------------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _install_id(constraints: Path) -> str:
    digest = hashlib.sha256(constraints.read_bytes()).hexdigest()[:16]
    return f"label-studio=={LABEL_STUDIO_VERSION} constraints-sha256:{digest}"


def is_installed(venv: Path, *, constraints: Path = CONSTRAINTS_FILE) -> bool:
    """True when `venv` holds a complete install of this Label Studio from these constraints."""
    stamp = venv / INSTALL_STAMP
    try:
        return _venv_python(venv).exists() and stamp.read_text().strip() == _install_id(constraints)
    except OSError:
        return False


def _base_python() -> str:
    # Inside inkloop's virtualenv sys.executable is that venv's python; a venv made from it would inherit nothing,
    # but the base interpreter is the plain Python 3.11 that both venvs should share.
    return getattr(sys, "_base_executable", None) or sys.executable


def install(
    venv: Path,
    *,
    constraints: Path = CONSTRAINTS_FILE,
    echo: Echo = quiet,
    on_pip_line: Echo = quiet,
) -> bool:
    """Create `venv` with Label Studio in it, pinned by `constraints`. False when it was already there.

    pip's output goes line by line to `on_pip_line`; `echo` gets a few lines of progress. A failed or interrupted
    install removes the folder, so nothing half-installed is ever mistaken for a working one.
    """
    venv = venv.expanduser().resolve()
    if not constraints.is_file():
        raise LabelStudioError(f"no pinned requirements for Label Studio at {constraints}")
    if is_installed(venv, constraints=constraints):
        return False
    if venv.exists():
        if any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
            raise LabelStudioError(f"{venv} exists and is not a virtualenv; choose another INKLOOP_LABEL_STUDIO_VENV")
        echo(f"removing the incomplete Label Studio install at {venv}")
        shutil.rmtree(venv)
    started = time.monotonic()
    echo(f"installing Label Studio {LABEL_STUDIO_VERSION} into {venv} (pip; about 2 minutes)")
    try:
        _run_logged([_base_python(), "-m", "venv", str(venv)], "creating the virtualenv", on_pip_line)
        pip = [str(_venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
        _run_logged(
            [*pip, "--constraint", str(constraints), f"label-studio=={LABEL_STUDIO_VERSION}"],
            "pip install label-studio",
            on_pip_line,
        )
        (venv / INSTALL_STAMP).write_text(_install_id(constraints) + "\n")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    echo(f"installed Label Studio {LABEL_STUDIO_VERSION} in {time.monotonic() - started:.0f} s")
    return True


def _run_logged(command: list[str], what: str, on_line: Echo) -> None:
    tail: deque[str] = deque(maxlen=25)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line.rstrip())
            on_line(line.rstrip())
        code = process.wait()
    if code != 0:
        shown = "\n".join(tail)
        raise LabelStudioError(f"{what} failed (exit code {code}); nothing was left behind. Its last lines:\n{shown}")


# --- the process ------------------------------------------------------------------------------------------------


def require_local(ls: LocalLabelStudio) -> None:
    if not ls.is_local:
        raise LabelStudioError(
            f"INKLOOP_LABEL_STUDIO_URL points at {ls.url}; inkloop only starts a local one on 127.0.0.1/localhost "
            "(unset it, or run that Label Studio yourself)"
        )


def _environment(ls: LocalLabelStudio) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENVIRONMENT if name in os.environ}
    env.update(
        {
            # The admin account and its API token; the token is applied when the account is first created.
            "LABEL_STUDIO_USERNAME": ls.username,
            "LABEL_STUDIO_PASSWORD": ls.password,
            "LABEL_STUDIO_USER_TOKEN": ls.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # Annotators join through the organization's invite link, never by open sign-up.
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # Offline: no version check, analytics, error reporting or converter downloads.
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "CONVERTER_DOWNLOAD_RESOURCES": "false",
            # Webhooks go to inkloop on 127.0.0.1, which the default SSRF guard would refuse.
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            # Also read while Label Studio's modules load, before --data-dir is parsed: without it they would
            # create ~/.local/share/label-studio.
            "LABEL_STUDIO_BASE_DATA_DIR": str(ls.data_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if ls.document_root is not None:
        env["LOCAL_FILES_SERVING_ENABLED"] = "true"
        env["LOCAL_FILES_DOCUMENT_ROOT"] = str(ls.document_root)
    else:
        env["LOCAL_FILES_SERVING_ENABLED"] = "false"
    return env


def _get(ls: LocalLabelStudio, path: str, *, timeout_s: float = 3.0, token: bool = False) -> httpx.Response:
    # Connection: close, because Label Studio's development server answers a kept-alive connection ~40 ms late.
    headers = {"Connection": "close"} | ({"Authorization": f"Token {ls.token}"} if token else {})
    return httpx.get(f"{ls.url}{path}", headers=headers, timeout=timeout_s)


def _healthy(ls: LocalLabelStudio) -> bool:
    try:
        return _get(ls, "/health/").status_code == 200
    except httpx.HTTPError:
        return False


def _version(ls: LocalLabelStudio) -> str | None:
    try:
        response = _get(ls, "/api/version", token=True)
        return str(response.json().get("release")) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def _port_taken(ls: LocalLabelStudio) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", ls.port), timeout=1.0):
            return True
    except OSError:
        return False


def log_tail(ls: LocalLabelStudio, lines: int = 20) -> str:
    return ls.daemon.log_tail(lines)


def status(ls: LocalLabelStudio) -> ServerStatus:
    """Whether the local Label Studio runs (pid file and live process), answers /health/, and which version."""
    healthy = _healthy(ls)
    return ServerStatus(
        url=ls.url,
        pid=ls.daemon.pid(),
        healthy=healthy,
        version=_version(ls) if healthy else None,
        log_file=ls.log_file,
        data_dir=ls.data_dir,
    )


def up(ls: LocalLabelStudio, *, timeout_s: float = 300.0, echo: Echo = quiet) -> tuple[ServerStatus, bool]:
    """Start the local Label Studio and wait until it answers; (status, False) when it was already running.

    Raises LabelStudioError, quoting the end of the log, when it exits or stays silent for `timeout_s`.
    """
    require_local(ls)
    if not 6 <= len(ls.token) <= 40:
        # Label Studio silently ignores a shorter token and cannot store a longer one.
        raise LabelStudioError("INKLOOP_LABEL_STUDIO_TOKEN must be 6 to 40 characters for the local Label Studio")
    record = ls.daemon.record()
    pid, started_for = (int(record["pid"]), record.get("url")) if record else (None, None)
    if pid is not None and started_for != ls.url:
        raise LabelStudioError(
            f"the Label Studio inkloop started for {started_for} still runs (pid {pid}); "
            "stop it with `inkloop labelstudio down` before changing INKLOOP_LABEL_STUDIO_URL"
        )
    if pid is not None:
        if not _healthy(ls):
            echo(f"Label Studio (pid {pid}) is starting; waiting for {ls.url}")
            _wait_healthy(ls, None, pid, timeout_s)
        _check_token(ls)
        return status(ls), False
    if _port_taken(ls):
        raise LabelStudioError(
            f"port {ls.port} of {ls.url} is in use by a program inkloop did not start "
            f"(no live process in {ls.pid_file}); stop it, or set INKLOOP_LABEL_STUDIO_URL to another port"
        )
    if not is_installed(ls.venv):
        raise LabelStudioError(f"no Label Studio installed in {ls.venv}; run `inkloop labelstudio install`")
    ls.data_dir.mkdir(parents=True, exist_ok=True)
    first = not (ls.data_dir / "label_studio.sqlite3").exists()
    echo(
        f"starting Label Studio {LABEL_STUDIO_VERSION} on {ls.url}"
        + (" (first start: creating its database, about 30 s)" if first else "")
    )
    command = [
        str(_venv_python(ls.venv)),
        "-m",
        "label_studio.server",
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(ls.port),
        "--data-dir",
        str(ls.data_dir),
    ]
    process = ls.daemon.start(command, env=_environment(ls), cwd=ls.root, url=ls.url)
    try:
        _wait_healthy(ls, process, process.pid, timeout_s)
        _check_token(ls)
    except BaseException:
        ls.daemon.stop(timeout_s=10.0)
        raise
    return status(ls), True


def _wait_healthy(ls: LocalLabelStudio, process: subprocess.Popen[bytes] | None, pid: int, timeout_s: float) -> None:
    def healthy() -> bool:
        if _healthy(ls):
            return True
        code = process.poll() if process is not None else None
        if code is not None or (process is None and not alive(pid, ls.daemon.marker)):
            shown = "" if code is None else f" (code {code})"
            raise LabelStudioError(
                f"Label Studio exited{shown} before answering {ls.url}/health/; "
                f"the end of {ls.log_file}:\n{log_tail(ls)}"
            )
        return False

    try:
        wait_until(healthy, timeout_s=timeout_s, interval_s=0.5, what=f"Label Studio answering {ls.url}/health/")
    except WaitTimeoutError:
        raise LabelStudioError(
            f"Label Studio did not answer {ls.url}/health/ within {timeout_s:.0f} s; "
            f"the end of {ls.log_file}:\n{log_tail(ls)}"
        ) from None


def _check_token(ls: LocalLabelStudio) -> None:
    response = _get(ls, "/api/current-user/whoami", token=True)
    if response.status_code in (401, 403):
        raise LabelStudioAuthError(
            f"Label Studio at {ls.url} is up but refuses INKLOOP_LABEL_STUDIO_TOKEN: its data folder {ls.data_dir} "
            "was created with another token (set that one, or remove the folder to start afresh)"
        )


def down(ls: LocalLabelStudio, *, timeout_s: float = 15.0) -> int | None:
    """Stop the Label Studio inkloop started (SIGTERM, then SIGKILL after `timeout_s`); its pid, or None."""
    return ls.daemon.stop(timeout_s=timeout_s)
