"""Local servers inkloop starts and leaves running (Label Studio, Prefect's server): a detached process with a pid
file, found again by later commands, stopped with its whole process group.

A pid file alone is not proof: after a reboot the pid may belong to something else. So a process counts as ours
only while it lives (not a zombie) and its command line contains the server's marker. Two commands that find no
server at once must not start two: whoever checks and starts holds the server's lock file (`Daemon.starting`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inkloop.errors import InkloopError
from inkloop.wait import WaitTimeoutError, wait_until

_LOG_ROTATE_BYTES = 20_000_000  # at a start, a longer log moves to <log>.1


# Progress lines of a starting server ("installing ...", "waiting ..."): the CLI prints them, library callers
# and tests pass nothing and get `quiet`.
Echo = Callable[[str], None]


def quiet(_: str) -> None:
    """An Echo that says nothing."""


@dataclass(frozen=True)
class Daemon:
    """One kind of local server: where its pid file and log are, and what its command line contains."""

    name: str  # for messages: "Label Studio"
    pid_file: Path
    log_file: Path
    marker: bytes  # a part of its command line, e.g. b"label_studio"

    def record(self) -> dict[str, Any] | None:
        """The pid file's record (pid, and what `start` stored with it) while its process lives; else None."""
        try:
            record = json.loads(self.pid_file.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if alive(pid, self.marker) else None

    def pid(self) -> int | None:
        record = self.record()
        return int(record["pid"]) if record else None

    @property
    def lock_file(self) -> Path:
        return self.pid_file.with_name(self.pid_file.name + ".lock")

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Hold the server's lock while inside: another process entering waits until this one has checked for a
        running server and started one (so it finds that one), or stopped it. The kernel drops the lock when its
        holder exits, however it exits, so a killed command never leaves it held."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(
        self, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, **details: Any
    ) -> subprocess.Popen[bytes]:
        """Start `command` in a session of its own (Ctrl-C in the terminal that started it does not stop it), its
        output appended to the log, and record its pid with `details`."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file.exists() and self.log_file.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))
        with self.log_file.open("ab") as log:
            log.write(f"\n=== inkloop: {' '.join(command)} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({"pid": process.pid, "started": time.time(), **details}) + "\n")
        return process

    def stop(self, *, timeout_s: float = 15.0) -> int | None:
        """Stop the running server (SIGTERM to its group, SIGKILL after `timeout_s`); its pid, or None."""
        pid = self.pid()
        if pid is not None:
            stop(pid, self.marker, timeout_s=timeout_s, name=self.name)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_file.open(errors="replace") as log:
                return "".join(list(log)[-lines:]).rstrip()
        except OSError:
            return "(no log)"


def alive(pid: int, marker: bytes) -> bool:
    """True for a live (not zombie) process whose command line contains `marker`."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # collect a child of this process that exited, so it is not a zombie
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # not Linux: the signal test is all there is
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return state != "Z" and marker in command


def stop(pid: int, marker: bytes, *, timeout_s: float, name: str = "the server") -> None:
    """SIGTERM to the process group `pid` leads, then SIGKILL; returns once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        # The process leads its own session: signal the group, so nothing it started stays behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        try:
            wait_until(lambda: not alive(pid, marker), timeout_s=wait_s, interval_s=0.1, what=f"{name} stopping")
            return
        except WaitTimeoutError:
            continue
    raise InkloopError(f"{name} (pid {pid}) did not stop after SIGTERM and SIGKILL")
