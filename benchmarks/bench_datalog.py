"""Per-iteration cost of the session writer (microseconds per frame() and per full loop iteration), and the
time Session.open takes to read (and check) what it wrote.

Run: python benchmarks/bench_datalog.py [--frames N]
A 60-minute session at 60 Hz is 216,000 iterations and must run at >= 500x real time overall, so the
writer should cost a few microseconds per iteration. Its folder (3.5 M ball samples, 1,800 events) is then
opened a few times: the reader decodes and validates every record, and must stay well under a second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rig.datalog.header import SessionFacts
from rig.datalog.reader import Session
from rig.datalog.writer import SessionWriter
from rig.engine.records import Command, Event, State

FACTS = SessionFacts(animal="bench", protocol={"name": "bench", "kind": "task", "corridors": [{"name": "c"}] * 3},
                     protocol_yaml="", protocol_sha256="", config={}, seed=0, fast=True, frame_rate_hz=60.0)


def _state(k: int) -> State:
    t = k / 60.0
    return State(
        t=t, trial=k // 600, corridor=k % 3, stage=0, position_cm=(k % 600) * 0.5, position_cum_cm=k * 0.5,
        ball_speed_cm_s=30.0, virtual_speed_cm_s=30.0, moving=True, in_grey=False, cue_position_cm=120.0,
        cue_played=k % 600 > 240, zone_start_cm=float("nan"), rewards_in_trial=0, done=False,
    )  # fmt: skip


class _NullWriter:
    """Same calls, no work: measures the benchmark loop itself."""

    def __getattr__(self, name: str):
        return lambda *a, **k: None


def _loop(w, n: int, states: list[State], ball_t, ball_counts, ball_cm) -> float:
    """A runner-like iteration: every stream, 16 ball samples, 30 Hz imaging, tick; us per iteration."""
    ev = (Event(t=1.0, kind="lick", trial=3, position_cm=12.5),)
    cmd = (Command(t=1.0, kind="valve", duration_ms=40.0, volume_ul=2.5),)
    no_licks: tuple = ()
    frame, ball, licks, frame_clock, timing, tick = w.frame, w.ball, w.licks, w.frame_clock, w.timing, w.tick
    perf = time.perf_counter
    t0 = perf()
    for k in range(n):
        t = k / 60.0
        frame(k, states[k % len(states)])
        ball(k, ball_t + t, ball_counts, ball_cm)
        if k % 30 == 0:
            licks(k, (t,), (True,))
        else:
            licks(k, no_licks, no_licks)
        if k % 2 == 0:
            frame_clock(k, np.array([t]))
        if k % 120 == 0:
            w.events(k, ev)
            w.commands(k, cmd)
        timing(k, t, 0.001, 0.01)
        tick(perf())
    return (perf() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=216_000)
    n = ap.parse_args().frames
    states = [_state(k) for k in range(n)]  # every t its own: the reader checks a session is as long as it says
    ball_t = np.linspace(0, 1 / 60, 16)
    ball_counts = np.ones(16, dtype=np.int64)
    ball_cm = np.full(16, 0.03)
    with tempfile.TemporaryDirectory() as tmp:
        w = SessionWriter.create(Path(tmp), FACTS, min_free_mb=0)
        t0 = time.perf_counter()
        for k in range(n):
            w.frame(k, states[k % len(states)])
        frame_us = (time.perf_counter() - t0) / n * 1e6
        w.flush()

        w.close(True, "bench")
        w2 = SessionWriter.create(Path(tmp), FACTS, min_free_mb=0)
        loop_us = _loop(w2, n, states, ball_t, ball_counts, ball_cm)
        w2.close(True, "bench")
        walls, cpus = [], []
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            s = Session.open(w2.path)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    base_us = _loop(_NullWriter(), n, states, ball_t, ball_counts, ball_cm)  # the loop's own overhead
    print(f"frame():                  {frame_us:6.2f} us per call  ({n} calls)")
    writer_us = loop_us - base_us
    print(f"full iteration (all logs, 16 ball samples, tick): {writer_us:6.2f} us in the writer "
          f"({loop_us:.2f} us with the benchmark loop's own {base_us:.2f} us)")
    print(f"writer time for a 60-min 60 Hz session: {writer_us * 216_000 / 1e6:.2f} s "
          f"(budget at 500x real time: 7.2 s for everything)")
    print(f"Session.open of it ({len(s.frames)} frames, {len(s.ball)} ball samples, {len(s.events)} events): median "
          f"{statistics.median(walls) * 1e3:.0f} ms wall, {statistics.median(cpus) * 1e3:.0f} ms CPU (5 runs)")


if __name__ == "__main__":
    main()
