"""Where a --fast session's time goes: microseconds (or instructions) per 60 Hz iteration, per phase.

    python benchmarks/bench_phases.py                      # CPU time, best of --repeat, 10 simulated minutes
    python benchmarks/bench_phases.py --instructions       # valgrind (callgrind) instruction counts instead

One --fast session (the protocol's own loop, drivers and log) is run and timed whole; then the parts it is
made of are run again alone on what that session did, each as the runner calls it:
- sim: the sim drivers, the world and the virtual mouse (ball, lick and frame-clock reads, the valve's
  and the cue's commands, the display's show), fed the session's own views;
- engine: Engine.step on the session's logged inputs;
- writer: every SessionWriter call the runner makes, with the session's own records;
- loop: the rest (the whole session minus the three parts): the runner's phases, the valve guard, the
  records it builds, clock-map checks, session setup and teardown.
The parts replay the per-iteration calls of the live loop (a driver read and a writer call per input per
iteration). A --fast session on the simulated rig reads the ball and the frame clock ahead in chunks
(rig.runner.readahead), so its sim and writer work is smaller than these parts and `loop` (the
difference) can come out negative; benchmarks/bench_fast.py gives the --fast figures.
Each part checks that it reproduces the session (same ball counts and licks, same engine state, same
bytes on disk), so the figures are for the work the session really did. CPU time (time.process_time)
is used, not wall time: the machine may be shared. With --instructions each measurement runs under
valgrind's callgrind twice (a short and a long run; the difference per extra iteration is reported), so
start-up and imports cancel out; instruction counts do not depend on other load at all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.base import View  # noqa: E402
from rig import api  # noqa: E402
from rig.datalog.reader import BINARY_FIELDS, WALL_CLOCK_FILES, Session  # noqa: E402
from rig.datalog.writer import SessionWriter  # noqa: E402
from rig.engine.machine import Engine  # noqa: E402
from rig.engine.records import Command, Event, EventKind, Inputs, State  # noqa: E402
from rig.protocol import Protocol  # noqa: E402
from rig.replay.inputs import group_sums  # noqa: E402
from rig.runner.clock import VirtualClock  # noqa: E402
from rig.runner.devices import Devices  # noqa: E402
from rig.runner.session import make_world  # noqa: E402
from tests.support.headers import facts  # noqa: E402

PHASES = ("session", "sim", "engine", "writer")
PROTOCOL = "train1_task"
CONFIG = "sim.yaml"
SEED = 1


def protocol_for(seconds: float) -> Protocol:
    return api.modify(api.load_protocol(REPO / "protocols" / f"{PROTOCOL}.yaml"),
                      end={"max_trials": None, "max_duration_s": seconds})


def record_session(seconds: float, data: Path) -> Path:
    """The reference session: what every part is replayed from."""
    return api.run(protocol_for(seconds), REPO / "config" / CONFIG, animal="phases", seed=SEED, fast=True,
                   data_dir=data)


# ---- what the session did, per iteration -------------------------------------------------------------

def _split(i_col: np.ndarray, n: int, *cols: np.ndarray) -> list[list[np.ndarray | None]]:
    """Per iteration 0..n, each column's rows of that iteration (None when it had none)."""
    out: list[list[np.ndarray | None]] = [[None] * len(cols) for _ in range(n + 1)]
    if not len(i_col):
        return out
    starts = np.concatenate(([0], np.flatnonzero(np.diff(i_col)) + 1, [len(i_col)]))
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        i = int(i_col[a])
        if i <= n:
            out[i] = [np.array(c[a:b]) for c in cols]
    return out


def _event(rec: dict[str, Any]) -> Event:
    return Event(rec["t"], EventKind(rec["kind"]), rec["trial"], rec["position_cm"], rec["data"])


def _command(rec: dict[str, Any]) -> Command:
    return Command(rec["t"], rec["kind"], rec["duration_ms"], rec["volume_ul"], rec["frequency_hz"], rec["source"])


class Recorded:
    """One session's records, grouped per iteration as the runner produced and consumed them."""

    def __init__(self, path: Path) -> None:
        s = Session.open(path)
        self.session = s
        self.protocol = Protocol.model_validate(s.header.protocol)
        self.config = api.RigConfig.model_validate(s.header.config)
        fr = s.frames
        assert fr["i"][0] == 1  # iteration 0 (the engine's start) logs events but no frame
        self.n = n = len(fr)
        self.t = [0.0, *fr["t"].tolist()]
        self.states: list[State] = [State(0.0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, False, False, 0.0, False, 0.0, 0, False)]
        self.states += [State(float(r["t"]), int(r["trial"]), int(r["corridor"]), int(r["stage"]),
                             float(r["position_cm"]), float(r["position_cum_cm"]), float(r["ball_speed_cm_s"]),
                             float(r["virtual_speed_cm_s"]), bool(r["flags"] & 1), bool(r["flags"] & 2),
                             float(r["cue_position_cm"]), bool(r["flags"] & 4), float(r["zone_start_cm"]),
                             int(r["rewards_in_trial"]), bool(r["flags"] & 8)) for r in fr]
        self.ball = _split(s.ball["i"], n, s.ball["t"], s.ball["counts"], s.ball["cm"])
        self.licks = _split(s.licks["i"], n, s.licks["t"], s.licks["onset"])
        self.frame_clock = _split(s.frame_clock["i"], n, s.frame_clock["t"])
        self.events: list[list[Event]] = [[] for _ in range(n + 1)]
        for e in s.events:
            self.events[e["i"]].append(_event(e))
        self.commands: list[list[Command]] = [[] for _ in range(n + 1)]
        for c in s.commands:
            self.commands[c["i"]].append(_command(c))
        self.valve: list[list[dict[str, Any]]] = [[] for _ in range(n + 1)]
        for v in s.valve:
            rec = {k: v for k, v in v.items() if k not in ("i", "kind")}
            self.valve[v["i"]].append(rec)
        self.clocks = s.clocks
        ball_cm = group_sums(s.ball["i"], s.ball["cm"], n)
        onsets: list[list[float]] = [[] for _ in range(n + 1)]
        for r in s.licks:
            if r["onset"]:
                onsets[int(r["i"])].append(float(r["t"]))
        self.inputs = [Inputs(float(ball_cm[i]), tuple(onsets[i]), (), False) for i in range(n + 1)]
        # The views the display was asked to show (as rig.runner.loop builds them).
        names = [c.name for c in self.protocol.corridors]
        rewarded = [c.rewarded for c in self.protocol.corridors]
        show_next = self.protocol.inter_trial.show_next
        nxt, ahead = -1, []
        for i in range(n + 1):
            for e in self.events[i]:
                if e.kind == EventKind.TRIAL_START:
                    ni = e.data["next_corridor_index"]
                    nxt = -1 if ni is None else ni
            ahead.append(names[nxt] if nxt >= 0 and show_next else None)
        self.views = [View(st.t, st.trial, names[st.corridor], st.position_cm, st.in_grey, rewarded[st.corridor],
                           ahead[i]) for i, st in enumerate(self.states)]


# ---- the parts --------------------------------------------------------------------------------------

def part_session(rec: Recorded, k: int, data: Path) -> Callable[[], None]:
    protocol = protocol_for(rec.t[k] + 1e-9)

    def run() -> None:
        api.run(protocol, REPO / "config" / CONFIG, animal="phases", seed=SEED, fast=True, data_dir=data)
    return run


def part_sim(rec: Recorded, k: int, data: Path) -> Callable[[], None]:
    """The sim drivers, world and mouse, called as the runner calls them over iterations 1..k."""
    clock = VirtualClock()
    world = make_world(rec.config, rec.protocol, SEED, None)
    devices = Devices.build(rec.config, clock, world, protocol=rec.protocol)
    devices.open()
    ball, lick, fc, valve, cue, display = (devices.ball, devices.lick, devices.frame_clock, devices.valve,
                                           devices.cue, devices.display)
    t, views, commands, valves = rec.t, rec.views, rec.commands, rec.valve
    got_counts: list[np.ndarray] = []
    got_licks: list[float] = []

    def carry_out(i: int) -> None:
        sent = iter(valves[i])
        for c in commands[i]:
            if c.kind == "valve":
                valve.pulse(next(sent)["sent_ms"])
            else:
                cue.play(c.duration_ms, c.frequency_hz)

    def run() -> None:
        carry_out(0)  # the start's commands; the runner shows nothing before iteration 1
        for i in range(1, k + 1):
            clock.wait_until(t[i])
            samples = ball.read()
            edges = lick.read()
            fc.read()
            if len(samples.counts):
                got_counts.append(samples.counts)
            if edges:
                got_licks.extend(e.t for e in edges)
            if commands[i]:
                carry_out(i)
            display.show(views[i])
        devices.close()
        # Faithful: the same counts and lick edges as the recorded session.
        want = [c[1] for c in rec.ball[1:k + 1] if c[0] is not None]
        assert np.array_equal(np.concatenate(got_counts), np.concatenate(want)), "sim: ball counts differ"
        want_l = [x for c in rec.licks[1:k + 1] if c[0] is not None for x in c[0].tolist()]
        assert got_licks == want_l, "sim: lick edges differ"
    return run


def part_engine(rec: Recorded, k: int, data: Path) -> Callable[[], None]:
    engine = Engine(rec.protocol, rec.session.header.seed, rec.config.valve_calibration.duration_ms)
    engine.start(0.0)
    t, inputs = rec.t, rec.inputs

    def run() -> None:
        step = engine.step
        for i in range(1, k + 1):
            state = step(inputs[i], t[i]).state
        assert state.position_cum_cm == rec.states[k].position_cum_cm, "engine: state differs"
    return run


def part_writer(rec: Recorded, k: int, data: Path) -> Callable[[], None]:
    """Every writer call of the runner over iterations 0..k, then close."""
    writer = SessionWriter.create(data, facts(), min_free_mb=0)
    states, events, commands, valves = rec.states, rec.events, rec.commands, rec.valve
    ball, licks, fcl = rec.ball, rec.licks, rec.frame_clock
    lick_args = [(c[0].tolist(), [bool(x) for x in c[1]]) if c[0] is not None else None for c in licks]
    perf = time.perf_counter

    def run() -> None:
        for c in rec.clocks:
            if c["i"] == 0:
                writer.clock_map(0, c["t"], c["source"], c["offset"], c["scale"])
        writer.events(0, events[0])
        w0 = perf()
        for i in range(1, k + 1):
            b = ball[i]
            if b[0] is not None:
                writer.ball(i, b[0], b[1], b[2])
            la = lick_args[i]
            if la is not None:
                writer.licks(i, la[0], la[1])
            f = fcl[i][0]
            if f is not None:
                writer.frame_clock(i, f)
            if commands[i]:
                writer.commands(i, commands[i])
                for v in valves[i]:
                    writer.valve(i, "open", v)
            writer.frame(i, states[i])
            if events[i]:
                writer.events(i, events[i])
            w = perf()
            writer.timing(i, w - w0, 1e-6, 0.0)
            writer.tick(w)
        writer.close(True, "ended")
    return run


PARTS = {"session": part_session, "sim": part_sim, "engine": part_engine, "writer": part_writer}


def check_writer_bytes(rec: Recorded, data: Path) -> None:
    """The writer part wrote the reference session's bytes (for the whole session)."""
    folders = sorted(p for p in data.rglob("frames.bin"))
    out = folders[-1].parent
    for name in [*BINARY_FIELDS, "events.jsonl", "commands.jsonl", "valve.jsonl", "clocks.jsonl"]:
        if name in WALL_CLOCK_FILES:
            continue
        a, b = (rec.session.path / name).read_bytes(), (out / name).read_bytes()
        assert a == b, f"writer: {name} differs from the recorded session's"


# ---- measuring ----------------------------------------------------------------------------------------

def cpu_per_iteration(rec: Recorded, phase: str, repeat: int, tmp: Path) -> float:
    best = float("inf")
    for r in range(repeat):
        data = tmp / f"{phase}-{r}"
        run = PARTS[phase](rec, rec.n, data)
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
        if phase == "writer":
            check_writer_bytes(rec, data)
    return best / rec.n


def _child(args: argparse.Namespace) -> None:
    """Under valgrind: build one part over --iterations, then run it inside exec() (the counted region)."""
    rec = Recorded(Path(args.child_session))
    with tempfile.TemporaryDirectory() as tmp:
        run = PARTS[args.child_phase](rec, args.iterations, Path(tmp))
        exec("run()", {"run": run})  # callgrind counts only inside builtin exec (--toggle-collect)


def instructions(session: Path, phase: str, k: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=builtin_exec", "--callgrind-out-file=/dev/null",
           sys.executable, __file__, "--child-session", str(session), "--child-phase", phase,
           "--iterations", str(k)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind run of {phase} failed:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="simulated length of the session (CPU mode)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per part; the fastest is reported")
    ap.add_argument("--instructions", action="store_true", help="valgrind instruction counts (slow: minutes)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    ap.add_argument("--child-session", help=argparse.SUPPRESS)
    ap.add_argument("--child-phase", help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_session:
        _child(args)
        return
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if args.instructions:
            short, long = 1200, 4800  # iterations: 20 s and 80 s of session
            path = record_session(long / 60 + 1.0, tmp / "ref")
            per = {}
            for phase in PHASES:
                a, b = instructions(path, phase, short), instructions(path, phase, long)
                per[phase] = (b - a) / (long - short)
            unit, fmt = "instructions", "{:9.0f}"
        else:
            path = record_session(args.minutes * 60, tmp / "ref")
            rec = Recorded(path)
            per = {phase: cpu_per_iteration(rec, phase, args.repeat, tmp) * 1e6 for phase in PHASES}
            unit, fmt = "us", "{:9.2f}"
    per["loop"] = per["session"] - per["sim"] - per["engine"] - per["writer"]
    print(f"{unit} per 60 Hz iteration ({PROTOCOL}, {CONFIG}, seed {SEED}):")
    for name in ("sim", "engine", "writer", "loop", "session"):
        label = "whole session" if name == "session" else name
        print(f"  {label:14s} " + fmt.format(per[name]))
    if not args.instructions:
        print(f"  = {1e6 / 60 / per['session']:,.0f}x real time per core (CPU time)")
    if args.json:
        Path(args.json).write_text(json.dumps({"unit": unit, **per}, indent=1) + "\n")


if __name__ == "__main__":
    main()
