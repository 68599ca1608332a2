"""Waiting for a started `inkloop serve` process to answer /healthz (the demo and the tests start real servers)."""

from __future__ import annotations

import subprocess
import time

import httpx


class NotHealthyError(Exception):
    """The server exited, or did not answer /healthz in time; the message says which."""


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Return once `url`/healthz answers 200; raise NotHealthyError if `process` exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotHealthyError(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise NotHealthyError(f"the server did not answer /healthz within {timeout_s:.0f} s")
