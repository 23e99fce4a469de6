"""Typed interfaces every hardware driver implements, and the records they return.

Drivers know nothing of the engine or the GUI. Every timestamp a driver returns is in that device's
own clock (seconds); `Device.clock` maps it onto the session timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, overload, runtime_checkable

import numpy as np

# The roles a rig config fills with drivers; every rig has the required ones.
ROLES = ("ball", "lick", "valve", "cue", "frame_clock", "display")
OPTIONAL_ROLES = ("sync",)  # the sync output to the mesoscope's aux trigger
ALL_ROLES = ROLES + OPTIONAL_ROLES


class Clock(Protocol):
    """The session timeline: seconds since the session clock started. A virtual clock (a --fast run)
    moves only when the loop advances it: its times cannot be compared with any other process's."""

    virtual: bool

    def now(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ClockMap:
    """Linear map from a device clock to the session timeline: t_session = offset + scale * t_device."""

    offset: float = 0.0
    scale: float = 1.0

    @overload
    def to_session(self, t_device: float) -> float: ...

    @overload
    def to_session(self, t_device: np.ndarray) -> np.ndarray: ...

    def to_session(self, t_device: float | np.ndarray) -> float | np.ndarray:
        return self.offset + self.scale * t_device


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One pre-session self-test result."""

    name: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class BallSamples:
    """Encoder increments: counts[i] is the change since the previous sample, at device time t[i]."""

    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class LickEdge:
    t: float
    onset: bool  # True = tongue touches the spout, False = releases


@dataclass(frozen=True, slots=True)
class View:
    """What the display is asked to show this frame."""

    t: float
    trial: int
    corridor: str
    position_cm: float
    in_grey: bool
    corridor_rewarded: bool
    ahead_corridor: str | None = None  # the next trial's corridor, drawn beyond this one (None: grey ahead)


@runtime_checkable
class Device(Protocol):
    clock: ClockMap

    def open(self) -> None: ...

    def close(self) -> None: ...

    def self_test(self) -> list[CheckResult]: ...


@runtime_checkable
class BallEncoder(Device, Protocol):
    counts_per_cm: float

    def read(self) -> BallSamples:
        """All samples since the previous read; never blocks."""
        ...


@runtime_checkable
class LickSensor(Device, Protocol):
    def read(self) -> list[LickEdge]:
        """All edges since the previous read, ascending; never blocks."""
        ...


@runtime_checkable
class Valve(Device, Protocol):
    max_open_ms: float  # the device refuses (or cuts) any opening longer than this

    def pulse(self, duration_ms: float) -> None:
        """Open for exactly duration_ms (hardware-timed where the device can); never blocks."""
        ...

    def open_valve(self) -> None:
        """Open for flushing; the device closes it by itself after max_open_ms."""
        ...

    def close_valve(self) -> None: ...


@runtime_checkable
class CueOutput(Device, Protocol):
    def play(self, duration_ms: float, frequency_hz: float) -> None: ...


@runtime_checkable
class FrameClock(Device, Protocol):
    def read(self) -> np.ndarray:
        """Device times of imaging-frame edges since the previous read; never blocks."""
        ...


@runtime_checkable
class Display(Device, Protocol):
    def show(self, view: View) -> float:
        """Draw the view and return the session time at which the buffer swap returned."""
        ...


class SimWorld(Protocol):
    """The simulated animal and its surroundings, shared by the simulated drivers (rig.sim provides it)."""

    def advance(self, t: float) -> tuple[np.ndarray, np.ndarray, list[LickEdge]]:
        """Move the world on to session time t; returns (ball sample times, ball cm increments, lick edges)."""
        ...

    def see(self, view: View) -> None: ...

    def hear_cue(self, t: float) -> None: ...

    def give_water(self, t: float, duration_ms: float) -> None: ...

    def frame_edges(self, t: float) -> np.ndarray:
        """Imaging frame-clock edges up to session time t not yet returned."""
        ...


@runtime_checkable
class SyncOutput(Device, Protocol):
    """Sync pulses to the mesoscope's aux trigger input (optional role `sync`).

    The session schedules the pulses at random intervals in [min_interval_s, max_interval_s] (the
    pyControl scheme) and calls `pulse()` for each; the random intervals let both sides' pulse lists be
    matched offline without knowing the clock offset.
    """

    min_interval_s: float
    max_interval_s: float

    def pulse(self) -> object:
        """Emit one pulse now; never blocks. The return value (if any) is driver-specific."""
        ...

    def read(self) -> np.ndarray:
        """Device times of the pulses emitted since the previous read (as the device saw them)."""
        ...
