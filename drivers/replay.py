"""Replay drivers: recorded inputs fed back through the live runner, and simulated outputs.

The input drivers (ball, lick, frame clock) are given plain arrays: the recorded samples and, for each
sample, a release time on the session timeline. A read() returns every sample released at or before
the session clock's now() that it has not returned yet, so the runner consumes the recordings on the
same frames (or at the same times) as the original session. The output drivers (valve, cue, display)
only record what they were asked to do, like a rig with the hardware unplugged.

These drivers need arrays, not config parameters, so they are built directly (rig.replay.live does) rather
than through the type registry. They import nothing from rig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivers.base import BallSamples, Clock, ClockMap, LickEdge, View
from drivers.soft_device import SoftDevice


def _release_order(release_t: np.ndarray, n: int, what: str) -> np.ndarray:
    release_t = np.asarray(release_t, dtype=np.float64)
    if release_t.shape != (n,):
        raise ValueError(f"replay {what}: {len(release_t)} release times for {n} samples")
    if n > 1 and np.any(np.diff(release_t) < 0):
        raise ValueError(f"replay {what}: release times must be non-decreasing")
    return release_t


class _ReplayDevice(SoftDevice):
    """Replay drivers: the identity clock map (recorded times are already on the session timeline)."""

    family = "replay"

    def __init__(self, clock: Clock) -> None:
        self.clock = ClockMap()
        self._session_clock = clock
        self._open = False

    def _describe(self) -> str:
        return "replayed from a log"


class _Released(_ReplayDevice):
    """A recorded stream handed out by release time."""

    def __init__(self, clock: Clock, release_t: np.ndarray, n: int) -> None:
        super().__init__(clock)
        self._release = _release_order(release_t, n, self.role)
        self._next = 0

    @property
    def remaining(self) -> int:
        """Recorded samples not handed out yet."""
        return len(self._release) - self._next

    def _take(self) -> tuple[int, int]:
        self._need_open()
        a = self._next
        b = int(np.searchsorted(self._release, self._session_clock.now(), side="right"))
        if b < a:
            b = a
        self._next = b
        return a, b


class ReplayBall(_Released):
    """Ball encoder replaying recorded count increments (with their recorded sample times)."""

    role = "ball"

    def __init__(
        self, clock: Clock, t: np.ndarray, counts: np.ndarray, release_t: np.ndarray, counts_per_cm: float
    ) -> None:
        if not (counts_per_cm > 0 and math.isfinite(counts_per_cm)):
            raise ValueError(f"replay ball: counts_per_cm must be a positive number, got {counts_per_cm!r}")
        n = len(t)
        if len(counts) != n:
            raise ValueError(f"replay ball: {n} times but {len(counts)} counts")
        super().__init__(clock, release_t, n)
        self.counts_per_cm = float(counts_per_cm)
        self._t = np.ascontiguousarray(t, dtype=np.float64)
        self._counts = np.ascontiguousarray(counts, dtype=np.int64)

    def read(self) -> BallSamples:
        a, b = self._take()
        return BallSamples(self._t[a:b], self._counts[a:b])

    def _describe(self) -> str:
        return f"replayed encoder: {len(self._t)} samples, {self.counts_per_cm:g} counts/cm"


class ReplayLick(_Released):
    """Lick sensor replaying recorded edges (onsets and releases)."""

    role = "lick"

    def __init__(self, clock: Clock, t: np.ndarray, onset: np.ndarray, release_t: np.ndarray) -> None:
        n = len(t)
        if len(onset) != n:
            raise ValueError(f"replay lick: {n} times but {len(onset)} onset flags")
        super().__init__(clock, release_t, n)
        self._edges = [LickEdge(float(tt), bool(on)) for tt, on in zip(t, onset, strict=True)]

    def read(self) -> list[LickEdge]:
        a, b = self._take()
        return self._edges[a:b]

    def _describe(self) -> str:
        return f"replayed lick sensor: {len(self._edges)} edges"


class ReplayFrameClock(_Released):
    """Imaging frame clock replaying recorded edge times."""

    role = "frame_clock"

    def __init__(self, clock: Clock, t: np.ndarray, release_t: np.ndarray) -> None:
        super().__init__(clock, release_t, len(t))
        self._t = np.ascontiguousarray(t, dtype=np.float64)

    def read(self) -> np.ndarray:
        a, b = self._take()
        return self._t[a:b]

    def _describe(self) -> str:
        return f"replayed frame clock: {len(self._t)} edges"


@dataclass(frozen=True, slots=True)
class Pulse:
    t: float
    duration_ms: float


class ReplayValve(_ReplayDevice):
    """A valve that delivers nothing: it records each pulse (cut at max_open_ms, as a real valve is)."""

    role = "valve"

    def __init__(self, clock: Clock, max_open_ms: float = 1000.0) -> None:
        if not max_open_ms > 0:
            raise ValueError(f"replay valve: max_open_ms must be > 0, got {max_open_ms!r}")
        super().__init__(clock)
        self.max_open_ms = float(max_open_ms)
        self.pulses: list[Pulse] = []
        self.held_open = False

    def pulse(self, duration_ms: float) -> None:
        self._need_open()
        if not (math.isfinite(duration_ms) and duration_ms >= 0):
            raise ValueError(f"valve pulse duration must be a finite number >= 0 ms, got {duration_ms}")
        self.pulses.append(Pulse(self._session_clock.now(), min(duration_ms, self.max_open_ms)))

    def open_valve(self) -> None:
        self._need_open()
        self.held_open = True

    def close_valve(self) -> None:
        self.held_open = False

    def _describe(self) -> str:
        return "simulated valve (replay: no water)"


class ReplayCue(_ReplayDevice):
    """A silent speaker: it records each cue."""

    role = "cue"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.played: list[tuple[float, float, float]] = []  # (t, duration_ms, frequency_hz)

    def play(self, duration_ms: float, frequency_hz: float) -> None:
        self._need_open()
        self.played.append((self._session_clock.now(), float(duration_ms), float(frequency_hz)))

    def _describe(self) -> str:
        return "simulated speaker (replay)"


class ReplayDisplay(_ReplayDevice):
    """A display with no screen: it keeps the last view; the swap returns at once."""

    role = "display"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.last_view: View | None = None
        self.frames = 0

    def show(self, view: View) -> float:
        self._need_open()
        self.last_view = view
        self.frames += 1
        return self._session_clock.now()

    def _describe(self) -> str:
        return "simulated display (replay)"
