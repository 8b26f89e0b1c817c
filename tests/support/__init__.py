"""Helpers shared by the unit and integration suites: polling with a deadline, free ports, real servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def wait_until(
    predicate: Callable[[], _T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition was not met",
) -> _T:
    """Poll `predicate` until it returns something truthy and return that; AssertionError at the deadline.

    Use this instead of sleeping: the test goes on as soon as the condition holds, and a slow machine
    gets the whole timeout rather than a guessed pause.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {message}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
