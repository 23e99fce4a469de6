"""Simulated drivers (config `type: sim`): every role backed by a shared simulated world.

The world (rig.sim.world.SimulatedWorld in this project) arrives through DriverContext.world. Besides
drivers.base.SimWorld these drivers need its per-stream API (`SimStreams` below), so that the ball and
lick drivers each drain their own stream whatever order they read in. The rates live in the drivers'
Params and are handed to the world in open(). Device clocks are the session clock (identity ClockMap).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import BallSamples, CheckResult, ClockMap, LickEdge, SimWorld, View
from drivers.registry import DriverContext, register
from drivers.soft_device import SoftDevice

log = logging.getLogger(__name__)


@runtime_checkable
class SimStreams(Protocol):
    """What the sim drivers need from the world beyond drivers.base.SimWorld."""

    def see(self, view: View) -> None: ...

    def hear_cue(self, t: float) -> None: ...

    def give_water(self, t: float, duration_ms: float) -> None: ...

    def frame_edges(self, t: float) -> np.ndarray: ...

    def attach_ball(self, sample_rate_hz: float) -> float:
        """Start buffering ball samples; returns the cumulative distance (cm) already run."""
        ...

    def detach_ball(self) -> None: ...

    def take_ball(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples up to t not yet taken: (times, cumulative distance in cm at each)."""
        ...

    def take_ball_ahead(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """take_ball at each of times in turn, at once: (times, cumulative distance, ends per call)."""
        ...

    def frame_edges_ahead(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frame_edges at each of times in turn, at once: (edges, ends per call)."""
        ...

    def attach_licks(self) -> None: ...

    def detach_licks(self) -> None: ...

    def take_licks(self, t: float) -> list[LickEdge]: ...

    def attach_frames(self, rate_hz: float, jitter_ms: float, start_s: float) -> None: ...


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SimDevice(SoftDevice):
    """Lifecycle shared by the sim drivers: open/close (also as a context manager) and the world check."""

    family = "sim"
    # The device clock is the session clock and never refitted: the loop need not re-check the map.
    clock_static = True

    def __init__(self, params: BaseModel, context: DriverContext) -> None:
        world: SimWorld | None = context.world
        if world is None:
            raise ValueError(f"sim {self.role} driver needs a simulated world (DriverContext.world is None)")
        if not isinstance(world, SimStreams):
            raise TypeError(
                f"sim {self.role} driver needs a world with the per-stream API of drivers.sim.SimStreams, "
                f"got {type(world).__name__}"
            )
        self.params = params
        self.clock = ClockMap()
        self._session_clock = context.clock
        self._world: SimStreams = world
        self._open = False

    def _describe(self) -> str:
        return "simulated"


@register("ball", "sim")
class SimBall(_SimDevice):
    """Ball encoder: the distance the mouse runs, quantised to integer counts per sample; the fraction of
    a count not yet reported is carried to the next sample, so no distance is ever lost."""

    role = "ball"

    class Params(_Params):
        counts_per_cm: float = Field(100.0, gt=0, le=1e6)
        sample_rate_hz: float = Field(1000.0, gt=0, le=100_000)

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.counts_per_cm = float(params.counts_per_cm)
        self._rate = float(params.sample_rate_hz)
        self._whole = 0.0  # whole counts of the cumulative distance at the last sample handed out

    def read(self) -> BallSamples:
        self._need_open()
        ts, dist = self._world.take_ball(self._session_clock.now())
        return BallSamples(ts, self._counts(dist))

    def read_ahead(self, times: np.ndarray) -> tuple[BallSamples, np.ndarray]:
        """What read() would return if called when the session clock shows each of `times` (ascending) in
        turn, all at once: (every sample in order, ends), read j getting samples [ends[j - 1], ends[j]).
        A loop on a virtual clock reads the ball ahead like this, in chunks (the simulated running does
        not depend on the loop)."""
        self._need_open()
        ts, dist, ends = self._world.take_ball_ahead(times)
        return BallSamples(ts, self._counts(dist)), ends

    def _counts(self, dist: np.ndarray) -> np.ndarray:
        n = len(dist)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        # Whole counts of the cumulative distance, differenced against the last whole count handed
        # out: the fraction of a count not yet reported carries over, so no distance is lost.
        acc = np.empty(n + 1)
        acc[0] = self._whole
        np.multiply(dist, self.counts_per_cm, out=acc[1:])
        np.floor(acc[1:], out=acc[1:])
        self._whole = float(acc[-1])
        whole = acc.astype(np.int64)
        return whole[1:] - whole[:-1]

    def _attach(self) -> None:
        self._whole = math.floor(self._world.attach_ball(self._rate) * self.counts_per_cm)

    def _detach(self) -> None:
        self._world.detach_ball()

    def _describe(self) -> str:
        return f"simulated encoder, {self._rate:g} Hz, {self.counts_per_cm:g} counts/cm"


@register("lick", "sim")
class SimLick(_SimDevice):
    """Lick sensor: the virtual mouse's tongue contacts and releases."""

    role = "lick"

    class Params(_Params):
        pass

    def read(self) -> list[LickEdge]:
        if not self._open:  # _need_open, inline: read once per loop iteration
            self._need_open()
        return self._world.take_licks(self._session_clock.now())

    def _attach(self) -> None:
        self._world.attach_licks()

    def _detach(self) -> None:
        self._world.detach_licks()

    def _describe(self) -> str:
        return "simulated lick spout"


@dataclass(frozen=True, slots=True)
class ValveOpening:
    """One opening of the simulated valve, on the session timeline."""

    t_open: float
    t_close: float
    requested_ms: float  # what the caller asked for (inf for open_valve); longer ones were cut

    @property
    def duration_ms(self) -> float:
        return (self.t_close - self.t_open) * 1000.0

    @property
    def clamped(self) -> bool:
        return self.requested_ms > self.duration_ms + 1e-9


@register("valve", "sim")
class SimValve(_SimDevice):
    """Water valve: every opening is recorded and none lasts longer than max_open_ms; the mouse gets
    water when an opening starts."""

    role = "valve"

    class Params(_Params):
        max_open_ms: float = Field(500.0, gt=0, le=60_000)

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.max_open_ms = float(params.max_open_ms)
        self._openings: list[ValveOpening] = []
        self._held_since: float | None = None  # open_valve() time while held open

    @property
    def openings(self) -> tuple[ValveOpening, ...]:
        """Finished openings, in order (a held-open valve appears once it closes or times out)."""
        self._expire(self._session_clock.now())
        return tuple(self._openings)

    @property
    def held_open(self) -> bool:
        self._expire(self._session_clock.now())
        return self._held_since is not None

    def pulse(self, duration_ms: float) -> None:
        self._need_open()
        if not (math.isfinite(duration_ms) and duration_ms >= 0):
            raise ValueError(f"valve pulse duration must be a finite number >= 0 ms, got {duration_ms}")
        now = self._session_clock.now()
        self._end_hold(now)
        if duration_ms == 0:
            return
        open_ms = min(duration_ms, self.max_open_ms)
        if open_ms < duration_ms:
            log.warning("sim valve: pulse of %.1f ms cut to the maximum %.1f ms", duration_ms, open_ms)
        self._openings.append(ValveOpening(now, now + open_ms / 1000.0, duration_ms))
        self._world.give_water(now, open_ms)

    def open_valve(self) -> None:
        self._need_open()
        now = self._session_clock.now()
        self._expire(now)
        if self._held_since is None:
            self._held_since = now
            self._world.give_water(now, self.max_open_ms)

    def close_valve(self) -> None:
        # Allowed when closed too: shutting the valve must always work. It cuts a pulse under way.
        now = self._session_clock.now()
        self._end_hold(now)
        if self._openings and self._openings[-1].t_close > now:
            last = self._openings[-1]
            self._openings[-1] = ValveOpening(last.t_open, max(now, last.t_open), last.requested_ms)

    def _expire(self, now: float) -> None:
        start = self._held_since
        if start is not None and (now - start) * 1000.0 >= self.max_open_ms:
            self._end_hold(now)

    def _end_hold(self, now: float) -> None:
        start = self._held_since
        if start is None:
            return
        self._held_since = None
        t_close = min(now, start + self.max_open_ms / 1000.0)
        self._openings.append(ValveOpening(start, t_close, math.inf))

    def _detach(self) -> None:
        self._end_hold(self._session_clock.now())

    def _describe(self) -> str:
        return f"simulated valve, longest opening {self.max_open_ms:g} ms"


@register("cue", "sim")
class SimCue(_SimDevice):
    """Sound cue: the virtual mouse hears it at once."""

    role = "cue"

    class Params(_Params):
        pass

    def play(self, duration_ms: float, frequency_hz: float) -> None:
        self._need_open()
        if not (duration_ms > 0 and math.isfinite(duration_ms)):
            raise ValueError(f"cue duration must be a finite number > 0 ms, got {duration_ms}")
        if not (frequency_hz > 0 and math.isfinite(frequency_hz)):
            raise ValueError(f"cue frequency must be a finite number > 0 Hz, got {frequency_hz}")
        self._world.hear_cue(self._session_clock.now())

    def _describe(self) -> str:
        return "simulated speaker"


@register("frame_clock", "sim")
class SimFrameClock(_SimDevice):
    """Imaging frame clock: edges at rate_hz with a little Gaussian jitter, the first start_s after the
    session starts (a mesoscope's rate depends on its scan layout; 3.17 Hz is the paper's). By default
    imaging runs from session time 0, the start of the engine's pre-roll (rig.protocol.Imaging); a later
    start is added to the pre-roll when the session resolves it, so the frames before trial 0 stay."""

    role = "frame_clock"

    class Params(_Params):
        rate_hz: float = Field(3.17, gt=0, le=1000)
        jitter_ms: float = Field(0.1, ge=0, le=100)
        start_s: float = Field(0.0, ge=0, le=3600)

    params: Params

    def read(self) -> np.ndarray:
        self._need_open()
        return self._world.frame_edges(self._session_clock.now())

    def read_ahead(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What read() would return at each of `times` in turn, at once: (edges, ends), as SimBall's."""
        self._need_open()
        return self._world.frame_edges_ahead(times)

    def _attach(self) -> None:
        p = self.params
        self._world.attach_frames(p.rate_hz, p.jitter_ms, p.start_s)

    def _describe(self) -> str:
        return f"simulated frame clock, {self.params.rate_hz:g} Hz"


@register("display", "sim")
class SimDisplay(_SimDevice):
    """Display: the virtual mouse sees each view; the swap returns at once."""

    role = "display"

    class Params(_Params):
        pass

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.last_view: View | None = None

    def show(self, view: View) -> float:
        if not self._open:  # _need_open, inline: shown once per loop iteration
            self._need_open()
        self.last_view = view
        self._world.see(view)
        return self._session_clock.now()

    def _describe(self) -> str:
        return "simulated display"


@register("sync", "sim")
class SimSync:
    """Sync output to the mesoscope's aux trigger: records each pulse on the session timeline and, as
    the imaging side would have timestamped it, in a simulated ScanImage clock (offset, drift, jitter;
    `imaging_times()`), standing in for the `auxTrigger0` times of the imaging files. Needs no world."""

    class Params(_Params):
        min_interval_s: float = Field(0.1, gt=0, le=3600, description="shortest random interval between pulses")
        max_interval_s: float = Field(1.9, gt=0, le=3600, description="longest random interval between pulses")
        imaging_offset_s: float = Field(-2.0, ge=-1e6, le=1e6, description="imaging clock at session time 0")
        imaging_drift_ppm: float = Field(30.0, ge=-1e4, le=1e4, description="imaging clock rate error")
        imaging_jitter_ms: float = Field(0.05, ge=0, le=100, description="Gaussian timestamp jitter (SD)")
        seed: int = Field(0, ge=0, description="seed of the timestamp jitter")

        @model_validator(mode="after")
        def _ordered(self) -> SimSync.Params:
            if self.max_interval_s < self.min_interval_s:
                raise ValueError(f"max_interval_s={self.max_interval_s} must be >= "
                                 f"min_interval_s={self.min_interval_s}")
            return self

    def __init__(self, params: Params, context: DriverContext) -> None:
        self.params = params
        self.clock = ClockMap()
        self.min_interval_s = float(params.min_interval_s)
        self.max_interval_s = float(params.max_interval_s)
        self._session_clock = context.clock
        self._rng = np.random.default_rng(params.seed)
        self._emitted: list[float] = []
        self._imaging: list[float] = []
        self._read = 0  # how many of _emitted read() has handed out
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def __enter__(self) -> SimSync:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def self_test(self) -> list[CheckResult]:
        p = self.params
        return [CheckResult("sim sync", True, f"simulated aux-trigger output, intervals "
                                              f"{p.min_interval_s:g}-{p.max_interval_s:g} s")]

    def pulse(self) -> None:
        if not self._open:
            raise RuntimeError("sim sync driver is not open; call open() first")
        t = float(self._session_clock.now())
        p = self.params
        self._emitted.append(t)
        jitter = float(self._rng.normal(0.0, p.imaging_jitter_ms / 1000.0)) if p.imaging_jitter_ms else 0.0
        self._imaging.append(p.imaging_offset_s + (1.0 + p.imaging_drift_ppm * 1e-6) * t + jitter)

    def read(self) -> np.ndarray:
        out = np.asarray(self._emitted[self._read:], dtype=float)
        self._read = len(self._emitted)
        return out

    @property
    def emitted(self) -> np.ndarray:
        """Session times of every pulse emitted so far."""
        return np.asarray(self._emitted, dtype=float)

    def imaging_times(self) -> np.ndarray:
        """Every pulse as the simulated imaging side timestamped it (its own clock)."""
        return np.asarray(self._imaging, dtype=float)
