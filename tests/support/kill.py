"""Killing a process at a chosen point: the tests that show a killed flow reruns to the same end as an uninterrupted
one run it as a script that writes a marker file where it should die, then hangs there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import REPO


def kill_at_marker(script: str, marker: Path, *, what: str, timeout_s: float = 120) -> None:
    """Run `script` (Python source, with the repository importable) and SIGKILL it once `marker` exists. Fails if
    it ends before, or does not get there within `timeout_s`; `what` names the point in those messages."""
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert process.poll() is None, f"the process ended before {what}"
            assert time.monotonic() < deadline, f"the process never reached {what}"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
