"""Waiting for a started `inkloop serve` process to answer /healthz (the demo and the tests start real servers)."""

from __future__ import annotations

import subprocess

import httpx

from inkloop.errors import InkloopError
from inkloop.wait import WaitTimeoutError, wait_until


class NotHealthyError(InkloopError):
    """The server exited, or did not answer /healthz in time; the message says which."""


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Return once `url`/healthz answers 200; raise NotHealthyError if `process` exits or time runs out first."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise NotHealthyError(f"the server exited with code {process.returncode}")
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200

    try:
        wait_until(healthy, timeout_s=timeout_s, interval_s=0.25, what="/healthz", retry_on=(httpx.TransportError,))
    except WaitTimeoutError:
        raise NotHealthyError(f"the server did not answer /healthz within {timeout_s:.0f} s") from None
