"""Cost of the simulated rig: the virtual mouse alone, and every sim driver read plus the world behind them.

Run: python benchmarks/bench_sim.py [--seconds S] [--ball-rate HZ] [--repeat N]
Prints, per ball rate, microseconds per simulated second (and per 60 Hz frame) for
- mouse: rig.sim.mouse.VirtualMouse alone, driven frame by frame (run_until, the distance at that
  frame's ball samples, take_licks, see), with a cue and a drop of water every 10 s;
- sim: the six sim drivers reading the shared world each frame, as a --fast session does.
Times are this process's CPU time (time.process_time), best of --repeat runs, so that other load on a
shared machine distorts them less than wall time would. A --fast session must reach 2000x real time per
core for the behaviour cohort (issue 14), i.e. about 500 us per simulated second (8.3 us per frame) for
the whole loop: drivers, world, engine and log.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from drivers.base import View
from drivers.registry import DriverContext, default_registry
from rig.config import SimMouse
from rig.sim.mouse import VirtualMouse
from rig.sim.world import SimulatedWorld


class SteppedClock:
    """Session time set by the benchmark loop: a virtual clock (drivers.base.Clock)."""

    virtual = True

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def run_mouse(seconds: float, ball_rate_hz: float, frame_rate_hz: float = 60.0) -> float:
    """Seconds of wall time per frame for the mouse alone."""
    mouse = VirtualMouse(SimMouse(expertise=0.8), seed=1)
    n = int(seconds * frame_rate_hz)
    period = 1.0 / frame_rate_hz
    next_sample = 1
    pos = 0.0
    trial = 0
    start = time.process_time()
    for i in range(1, n + 1):
        t = i * period
        mouse.run_until(t)
        last = math.floor(t * ball_rate_hz)
        if last >= next_sample:
            d = mouse.distance_at(np.arange(next_sample, last + 1) / ball_rate_hz)
            next_sample = last + 1
            pos += float(d[-1] - d[0]) * 2.4
        mouse.take_licks(t)
        if pos >= 600.0:
            pos -= 600.0
            trial += 1
        if i % 600 == 0:
            mouse.hear_cue(t)
            mouse.give_water(t, 40.0)
        rewarded = trial % 2 == 1
        mouse.see(View(t, trial, "leaf1" if rewarded else "circle1", pos, pos >= 400.0, rewarded))
    return (time.process_time() - start) / n


def run(seconds: float, ball_rate_hz: float, frame_rate_hz: float = 60.0) -> float:
    """Seconds of wall time per frame for the sim drivers and the world."""
    clock = SteppedClock()
    world = SimulatedWorld(VirtualMouse(SimMouse(expertise=0.8), seed=1), seed=1)
    ctx = DriverContext(clock, world)
    reg = default_registry()

    def make(role: str, **params: float) -> Any:  # the role's sim driver class (the registry is untyped)
        spec = reg.spec(role, "sim")
        return spec.cls(spec.params(**params), ctx)

    ball = make("ball", sample_rate_hz=ball_rate_hz)
    lick, valve, cue, fc, display = (make(r) for r in ("lick", "valve", "cue", "frame_clock", "display"))
    devices = [ball, lick, valve, cue, fc, display]
    for d in devices:
        d.open()
    n = int(seconds * frame_rate_hz)
    period = 1.0 / frame_rate_hz
    pos = 0.0
    trial = 0
    start = time.process_time()
    for i in range(1, n + 1):
        clock.t = i * period
        samples = ball.read()
        lick.read()
        fc.read()
        pos += float(samples.counts.sum()) / ball.counts_per_cm * 2.4  # roughly the gated 60 cm/s
        if pos >= 600.0:
            pos -= 600.0
            trial += 1
        if i % 600 == 0:  # a cue and a reward now and then, as in a task
            cue.play(200.0, 4000.0)
            valve.pulse(40.0)
        rewarded = trial % 2 == 1
        display.show(View(clock.t, trial, "leaf1" if rewarded else "circle1", pos, pos >= 400.0, rewarded))
    elapsed = time.process_time() - start
    for d in devices:
        d.close()
    return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="simulated seconds per run")
    ap.add_argument("--ball-rate", type=float, action="append", help="ball sample rate(s) to measure")
    ap.add_argument("--repeat", type=int, default=3, help="runs per rate; the fastest is reported")
    args = ap.parse_args()
    for rate in args.ball_rate or [1000.0, 250.0, 100.0]:
        for label, fn in (("mouse", run_mouse), ("sim", run)):
            per_frame = min(fn(args.seconds, rate) for _ in range(args.repeat))  # best of: the machine is shared
            print(
                f"ball {rate:6.0f} Hz, {label:5s}: {per_frame * 60e6:7.1f} us per simulated s "
                f"({per_frame * 1e6:5.2f} us per 60 Hz frame; alone it would run {1 / 60 / per_frame:,.0f}x real time)"
            )


if __name__ == "__main__":
    main()
