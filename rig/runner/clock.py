"""Session clocks: the real monotonic clock for live runs and a virtual clock for --fast runs."""

from __future__ import annotations

import time


class RealClock:
    """Seconds since construction on the monotonic performance counter."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def restart(self) -> None:
        """Make now() zero again; called once, just before the loop starts."""
        self._t0 = time.perf_counter()

    def wait_until(self, t: float) -> None:
        """Sleep until session time t; the last millisecond is spun for precision."""
        while True:
            remaining = t - self.now()
            if remaining <= 0:
                return
            if remaining > 0.002:
                time.sleep(remaining - 0.0015)


class VirtualClock:
    """A clock that only moves when told to: a simulated rig runs as fast as the machine allows."""

    def __init__(self) -> None:
        self._t = 0.0

    def now(self) -> float:
        return self._t

    def restart(self) -> None:
        self._t = 0.0

    def wait_until(self, t: float) -> None:
        if t > self._t:
            self._t = t
