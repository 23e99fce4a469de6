"""Session clocks: one interface, three implementations.

`RealClock` is the monotonic performance counter (live sessions); `ScaledClock` runs the session timeline
`speed` times faster than it (replays at X times real time); `VirtualClock` only moves when the loop asks
it to (`--fast`: a simulated rig as fast as the machine allows). Drivers see only `drivers.base.Clock`
(`now()`, `virtual`); the loop also waits on the clock and restarts it when the session begins.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from drivers.base import Clock

__all__ = ["Clock", "RealClock", "ScaledClock", "SessionClock", "VirtualClock", "make_clock"]

SPIN_S = 0.0015  # the last part of a wait is spun: sleep() can overshoot by about a millisecond


class SessionClock(Clock, Protocol):
    """The session timeline as the loop uses it: seconds since `restart()`."""

    def wait_until(self, t: float) -> None:
        """Return once session time t has come (at once for a virtual clock, which jumps there)."""
        ...

    def restart(self) -> None:
        """Make now() zero again; called once, when the drivers are open and the loop begins."""
        ...


class ScaledClock:
    """Session time = `speed` x seconds of the monotonic performance counter since restart()."""

    virtual = False

    def __init__(self, speed: float = 1.0) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"clock speed must be a positive number, got {speed!r}")
        self.speed = float(speed)
        self._t0 = time.perf_counter()

    def now(self) -> float:
        return (time.perf_counter() - self._t0) * self.speed

    def restart(self) -> None:
        self._t0 = time.perf_counter()

    def wait_until(self, t: float) -> None:
        while True:
            remaining = (t - self.now()) / self.speed  # in wall seconds
            if remaining <= 0:
                return
            if remaining > SPIN_S + 0.0005:
                time.sleep(remaining - SPIN_S)


class RealClock(ScaledClock):
    """Seconds on the monotonic performance counter since restart(): the live session's timeline."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def now(self) -> float:  # the hot path of every live iteration: skip the multiplication
        return time.perf_counter() - self._t0


class VirtualClock:
    """A clock that only moves when the loop waits on it."""

    virtual = True

    def __init__(self) -> None:
        self._t = 0.0

    def now(self) -> float:
        return self._t

    def restart(self) -> None:
        self._t = 0.0

    def wait_until(self, t: float) -> None:
        if t > self._t:
            self._t = t


def make_clock(*, virtual: bool, speed: float = 1.0) -> SessionClock:
    """The clock for a session: virtual (--fast), real time, or `speed` times real time."""
    if virtual:
        return VirtualClock()
    return RealClock() if speed == 1.0 else ScaledClock(speed)
