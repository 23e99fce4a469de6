"""Priming (flushing) the water line (`rig prime`): several seconds of opening as a train of pulses, each
no longer than the valve's max_open_ms and each hardware-timed by the valve, with closed gaps between.

The valve's own limit is never lifted: a line is filled by many openings, not by one long one, so the
device's cap keeps protecting the animal whatever crashes. Only outside sessions (the CLI holds the
rig's lock) and logged in the rig's history (rig.lab.rig_history).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from drivers.registry import Registry
from rig.config import RigConfig
from rig.runner.clock import SessionClock
from rig.setup.calibrate import MIN_GAP_MS
from rig.setup.checks import check_clock, open_drivers

MAX_PRIME_S = 300.0  # five minutes of opening fills any line; more is a typo
DEFAULT_GAP_MS = 50.0


@dataclass(frozen=True)
class PrimePlan:
    seconds: float  # total opening time
    pulse_ms: float
    gap_ms: float

    @classmethod
    def make(cls, seconds: float, max_open_ms: float, pulse_ms: float | None = None,
             gap_ms: float = DEFAULT_GAP_MS) -> PrimePlan:
        """A checked plan; ValueError says what is wrong before the valve is touched."""
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_PRIME_S):
            raise ValueError(f"--seconds must be > 0 and at most {MAX_PRIME_S:g}, got {seconds:g}")
        pulse = max_open_ms if pulse_ms is None else pulse_ms
        if not (math.isfinite(pulse) and 0 < pulse <= max_open_ms):
            raise ValueError(f"--pulse-ms must be > 0 and at most the valve's max_open_ms {max_open_ms:g}, "
                             f"got {pulse:g}")
        if not (math.isfinite(gap_ms) and gap_ms >= MIN_GAP_MS):
            raise ValueError(f"--gap-ms must be at least {MIN_GAP_MS:g} (the valve closes and settles), got {gap_ms:g}")
        return cls(float(seconds), float(pulse), float(gap_ms))

    def pulses(self) -> list[float]:
        """The openings (ms): full pulses, the last one shorter so that they add up to `seconds`."""
        total = self.seconds * 1000.0
        n = math.ceil(total / self.pulse_ms - 1e-9)
        last = total - (n - 1) * self.pulse_ms
        return [self.pulse_ms] * (n - 1) + [last]

    @property
    def wall_s(self) -> float:
        return (self.seconds * 1000.0 + (len(self.pulses()) - 1) * self.gap_ms) / 1000.0


@dataclass(frozen=True)
class PrimeResult:
    plan: PrimePlan
    pulses: int  # openings made
    open_s: float
    complete: bool
    reason: str


def prime(config: RigConfig, plan: PrimePlan, *, registry: Registry | None = None,
          clock: SessionClock | None = None, stop: Callable[[], bool] = lambda: False,
          say: Callable[[str], None] = lambda _msg: None) -> PrimeResult:
    """Run the plan on the config's valve; `stop()` true (a signal) ends it after the current opening."""
    clock = clock or check_clock(config)
    done, open_ms, reason = 0, 0.0, "complete"
    pulses = plan.pulses()
    with open_drivers(config, ["valve"], clock, registry=registry) as drivers:
        valve = drivers["valve"]
        if plan.pulse_ms > valve.max_open_ms:  # the driver's limit, should the config and driver disagree
            raise ValueError(f"pulse {plan.pulse_ms:g} ms exceeds the valve's max_open_ms {valve.max_open_ms:g}")
        say(f"priming: {len(pulses)} opening(s) of up to {plan.pulse_ms:g} ms, {plan.gap_ms:g} ms apart "
            f"({plan.seconds:g} s open, about {plan.wall_s:.1f} s)")
        clock.restart()
        t = 0.0
        try:
            for ms in pulses:
                if stop():
                    reason = "stopped by a signal"
                    break
                clock.wait_until(t)
                valve.pulse(ms)
                done, open_ms = done + 1, open_ms + ms
                t += (ms + plan.gap_ms) / 1000.0
            clock.wait_until(t - plan.gap_ms / 1000.0)  # the last opening has ended
        except KeyboardInterrupt:
            reason = "interrupted"
        # open_drivers closes the valve (first) on the way out, whatever happened
    return PrimeResult(plan, done, round(open_ms / 1000.0, 6), done == len(pulses) and reason == "complete", reason)
