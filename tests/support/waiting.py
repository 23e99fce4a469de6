"""Waiting on real devices in tests: a monotonic session clock and a bounded wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable


class MonoClock:
    """The driver context's clock: monotonic seconds from when it was made (as a session clock is)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0


def wait_until(pred: Callable[[], object], timeout: float = 3.0, what: str = "condition",
               poll_s: float = 0.005) -> None:
    """Return once `pred()` is true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)
