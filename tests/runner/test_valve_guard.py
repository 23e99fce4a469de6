"""The valve guard's invariants, for any sequence of requests from any source (hypothesis state machine),
and the water truth of a session whose rewards the valve cannot give in full."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drivers.base import CheckResult, ClockMap
from rig.config import CalibrationPoint, ValveCalibration, ValveSafety
from rig.runner.valve_guard import ValveGuard
from tests.support.paths import REPO

CAL = ValveCalibration(points=(CalibrationPoint(duration_ms=10, volume_ul=1.0),
                               CalibrationPoint(duration_ms=50, volume_ul=5.0)))


class PhysicalValve:
    """A valve that does exactly what it is told (no limits of its own): the guard alone must hold them.
    Implements drivers.base.Valve; `now` is set by the test before each call."""

    def __init__(self, max_open_ms: float) -> None:
        self.max_open_ms = max_open_ms
        self.clock = ClockMap()
        self.now = 0.0
        self.intervals: list[list[float]] = []  # [open, close] in session seconds
        self._held: float | None = None

    def open(self) -> None: ...

    def close(self) -> None: ...

    def self_test(self) -> list[CheckResult]:
        return []

    def pulse(self, duration_ms: float) -> None:
        self.intervals.append([self.now, self.now + duration_ms / 1000.0])

    def open_valve(self) -> None:
        if self._held is None:
            self._held = self.now

    def close_valve(self) -> None:
        if self._held is not None:
            self.intervals.append([self._held, self.now])
            self._held = None
        if self.intervals and self.intervals[-1][1] > self.now:  # cuts a pulse under way
            self.intervals[-1][1] = max(self.now, self.intervals[-1][0])


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.safety = ValveSafety(min_closed_ms=100.0, manual_rewards_per_minute=5, max_session_water_ul=60.0)
        self.valve = PhysicalValve(max_open_ms=200.0)
        self.guard = ValveGuard(self.valve, CAL, self.safety)
        self.t = 0.0
        self.manual_accepted: list[float] = []

    def _at(self, dt: float) -> None:
        self.t += dt
        self.valve.now = self.t

    @rule(dt=st.floats(0, 0.5))
    def wait(self, dt: float) -> None:
        self._at(dt)
        self.guard.tick(self.t)

    @rule(ms=st.floats(0.1, 5000), dt=st.floats(0, 0.05))
    def task_reward(self, ms: float, dt: float) -> None:
        self._at(dt)
        self.guard.pulse(self.t, ms, "task", CAL.volume_ul(ms))

    @rule(ms=st.floats(0.1, 500), dt=st.floats(0, 0.05))
    def operator_reward(self, ms: float, dt: float) -> None:
        self._at(dt)
        d = self.guard.pulse(self.t, ms, "manual", CAL.volume_ul(ms))
        if d.outcome != "refused":
            self.manual_accepted.append(self.t)

    @rule(s=st.floats(0.001, 100), dt=st.floats(0, 0.05))
    def flush(self, s: float, dt: float) -> None:
        self._at(dt)
        self.guard.open(self.t, s)

    @rule(dt=st.floats(0, 0.3))
    def close(self, dt: float) -> None:
        self._at(dt)
        self.guard.close(self.t)

    @precondition(lambda self: self.guard.is_open)
    @rule()
    def tick_at_the_limit(self) -> None:
        # The loop ticks every frame; here exactly when the flush's limit comes.
        self._at(max(0.0, self.guard._open_until - self.t))
        self.guard.tick(self.t)

    def _closed_intervals(self) -> list[list[float]]:
        return sorted(self.valve.intervals)

    @invariant()
    def no_opening_longer_than_max_open(self) -> None:
        for a, b in self._closed_intervals():
            assert (b - a) * 1000.0 <= self.valve.max_open_ms + 1e-6

    @invariant()
    def openings_never_overlap_and_are_spaced(self) -> None:
        iv = self._closed_intervals()
        for (_, b), (c, _) in zip(iv, iv[1:], strict=False):
            assert (c - b) * 1000.0 >= self.safety.min_closed_ms - 1e-6, (b, c)

    @invariant()
    def operator_rewards_are_rate_limited(self) -> None:
        m = self.manual_accepted
        for k, t0 in enumerate(m):
            assert sum(1 for t in m[k:] if t - t0 < 60.0) <= self.safety.manual_rewards_per_minute

    @invariant()
    def water_is_what_the_valve_gave_and_never_past_the_cap(self) -> None:
        given = sum(CAL.volume_ul((b - a) * 1000.0) for a, b in self.valve.intervals)
        if self.guard.is_open:  # a flush under way is counted as planned until it closes
            return
        assert math.isclose(self.guard.water_ul, given, rel_tol=1e-9, abs_tol=1e-9)
        assert self.guard.water_ul <= self.safety.max_session_water_ul + 1e-9


TestGuardMachine = GuardMachine.TestCase
TestGuardMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_a_flood_of_operator_rewards_is_cut_to_the_rate_limit() -> None:
    valve = PhysicalValve(max_open_ms=1000.0)
    guard = ValveGuard(valve, CAL, ValveSafety(min_closed_ms=0.0, manual_rewards_per_minute=30))
    accepted = 0
    for k in range(8750):  # the flood: 8,750 requests in one second
        valve.now = k / 8750
        accepted += guard.pulse(valve.now, 25.0, "manual", 2.5).outcome != "refused"
    assert accepted == 30 // 1 and guard.water_ul <= 30 * 2.5 + 1e-9


def _config(tmp_path: Path, **changes: object) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "sim.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_a_reward_the_valve_cannot_give_is_refused_before_the_session(tmp_path: Path) -> None:
    """max_open_ms 20 ms with a 2.5 µl reward that needs 25 ms: refused up front, no folder."""
    cfg = _config(tmp_path, drivers__valve__max_open_ms=20.0)
    r = _rig("run", "train1_task", "--config", str(cfg), "--fast", "--max-trials", "5", "--data",
             str(tmp_path / "d"), "-q")
    assert r.returncode == 2 and "max_open_ms" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_a_session_that_reaches_its_water_cap_records_the_truth(tmp_path: Path) -> None:
    """The session cap cuts and then refuses openings: each is a logged fault, and the record shows the
    water the valve gave, not what the task asked for."""
    cfg = _config(tmp_path, valve_safety__max_session_water_ul=11.0)
    r = _rig("run", "train1_task", "--config", str(cfg), "--fast", "--max-trials", "30", "--seed", "3",
             "--data", str(tmp_path / "d"), "-q")
    assert r.returncode == 0, r.stderr
    info = json.loads(_rig("info", r.stdout.strip().splitlines()[-1], "--json").stdout)
    assert info["rewards"] > 5 and info["water_requested_ul"] == 2.5 * info["rewards"]
    assert math.isclose(info["water_ul"], 11.0, rel_tol=1e-6)  # four full rewards and one cut to the cap
    assert info["valve_cut"] == 1 and info["valve_refused"] == info["rewards"] - 5
    assert any("cut short" in w for w in info["warnings"]) and any("refused" in w for w in info["warnings"])
    assert info["faults"] >= 1 + info["valve_refused"]
