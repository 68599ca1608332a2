"""wait_until: returns what the check found, retries only what it is told to, and says what it waited for."""

from __future__ import annotations

import time

import pytest

from inkloop.wait import WaitTimeoutError, wait_until


def test_returns_the_first_truthy_result() -> None:
    answers = iter([None, 0, "ready"])
    assert wait_until(lambda: next(answers), timeout_s=5, interval_s=0.01, what="the answer") == "ready"


def test_retried_errors_are_quoted_when_time_runs_out() -> None:
    def refuse() -> bool:
        raise ConnectionRefusedError("connection refused by 127.0.0.1:1")

    started = time.monotonic()
    with pytest.raises(WaitTimeoutError, match=r"a connection did not happen within 0.2 s: connection refused") as e:
        wait_until(refuse, timeout_s=0.2, interval_s=0.05, what="a connection", retry_on=(ConnectionError,))
    assert 0.2 <= time.monotonic() - started < 2
    assert isinstance(e.value.last_error, ConnectionRefusedError)


def test_other_errors_end_the_wait_at_once() -> None:
    def gone() -> bool:
        raise ProcessLookupError("the server exited")

    started = time.monotonic()
    with pytest.raises(ProcessLookupError):
        wait_until(gone, timeout_s=30, what="the server", retry_on=(ConnectionError,))
    assert time.monotonic() - started < 1


def test_a_zero_timeout_still_checks_once() -> None:
    assert wait_until(lambda: True, timeout_s=0, what="x") is True
    with pytest.raises(WaitTimeoutError, match="x did not happen within 0 s"):
        wait_until(lambda: False, timeout_s=0, what="x")
