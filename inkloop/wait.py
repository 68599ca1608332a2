"""Waiting for something to become true: a database that is still starting, a server that is not answering yet,
a process that is shutting down. One poller, so every wait has a deadline and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from inkloop.errors import InkloopError, first_line

T = TypeVar("T")


class WaitTimeoutError(InkloopError):
    """The condition did not hold before the deadline. `last_error` is the last retried exception, if any."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


def wait_until(
    check: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.5,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check` until it returns something truthy, and return that.

    An exception of a type in `retry_on` counts as "not yet" (and is quoted if time runs out); any other
    exception ends the wait at once, so a check can give up early (a server process that exited will never
    answer). `check` runs at least once, even with timeout_s=0. Raises WaitTimeoutError("... did not happen
    within N s") naming `what`.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except retry_on as exc:
            last_error = exc
        else:
            if result:
                return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f": {first_line(last_error)}" if last_error is not None else ""
            raise WaitTimeoutError(f"{what} did not happen within {timeout_s:g} s{detail}", last_error)
        time.sleep(min(interval_s, remaining))
