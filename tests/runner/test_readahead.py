"""Reading simulated inputs ahead (rig.runner.readahead, SessionWriter.ball_ahead / frame_clock_ahead,
the sim drivers' read_ahead): the same values and the same logged bytes as reading once per iteration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.base import View
from drivers.registry import DriverContext, default_registry
from rig.config import SimMouse
from rig.datalog.writer import SessionWriter
from rig.runner.clock import VirtualClock
from rig.runner.readahead import segment_sums
from rig.sim.mouse import VirtualMouse
from rig.sim.world import SimulatedWorld
from tests.support.headers import facts

PERIOD = 1 / 60


def _writer(root: Path) -> SessionWriter:
    return SessionWriter.create(root, facts(), min_free_mb=0)


def _times(n: int, t0: float = PERIOD) -> np.ndarray:
    out, t = [t0], t0
    for _ in range(n - 1):
        t += PERIOD
        out.append(t)
    return np.array(out)


def test_read_ahead_records_are_logged_as_per_call_records_and_only_as_far_as_consumed(tmp_path: Path):
    rng = np.random.default_rng(3)
    per_iteration = [int(n) for n in rng.integers(0, 4, size=12)]
    ends = np.cumsum(per_iteration)
    t = np.arange(int(ends[-1])) / 1000.0
    counts = rng.integers(-5, 50, size=len(t))
    cm = counts / 100.0
    edges_per_iteration = [0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]
    fc_ends = np.cumsum(edges_per_iteration)
    fc = np.arange(int(fc_ends[-1])) * 0.3
    consumed = 9  # iterations 1..9 ran; 10..12 were read ahead but never consumed

    with _writer(tmp_path / "calls") as w:
        start = 0
        fstart = 0
        for i in range(1, consumed + 1):
            end, fend = int(ends[i - 1]), int(fc_ends[i - 1])
            w.ball(i, t[start:end], counts[start:end], cm[start:end])
            w.frame_clock(i, fc[fstart:fend])
            start, fstart = end, fend
            if i == 4:
                w.flush()
        w.close(True, "done")
    with _writer(tmp_path / "ahead") as w:
        w.ball_ahead(1, t[: ends[5]], counts[: ends[5]], cm[: ends[5]], ends[:6])  # iterations 1..6
        w.frame_clock_ahead(1, fc, fc_ends)  # iterations 1..12
        rest = slice(int(ends[5]), None)
        w.ball_ahead(7, t[rest], counts[rest], cm[rest], ends[6:] - ends[5])  # iterations 7..12
        for i in range(1, consumed + 1):
            w.consumed(i)
            if i == 4:
                w.flush()  # part of a block flushed, the rest later
        w.close(True, "done")
    (calls,) = (tmp_path / "calls").glob("*/*/*")
    (ahead,) = (tmp_path / "ahead").glob("*/*/*")
    for name in ("ball.bin", "frame_clock.bin"):
        assert (ahead / name).read_bytes() == (calls / name).read_bytes(), name
    assert len((ahead / "ball.bin").read_bytes()) == 32 * int(ends[consumed - 1])


def test_read_ahead_blocks_that_do_not_fit_are_refused(tmp_path: Path):
    with _writer(tmp_path) as w:
        with pytest.raises(ValueError, match="ends must ascend"):
            w.ball_ahead(1, np.zeros(3), np.zeros(3), np.zeros(3), np.array([1, 0, 3]))
        with pytest.raises(ValueError, match="ends must ascend to the 3"):
            w.ball_ahead(1, np.zeros(3), np.zeros(3), np.zeros(3), np.array([1, 2]))
        w.ball_ahead(1, np.zeros(3), np.zeros(3), np.zeros(3), np.array([1, 2, 3]))
        with pytest.raises(ValueError, match="overlaps"):
            w.ball_ahead(3, np.zeros(1), np.zeros(1), np.zeros(1), np.array([1]))
        w.frame_clock(1, np.array([0.5]))
        with pytest.raises(ValueError, match="logged per call"):
            w.frame_clock_ahead(2, np.array([1.0]), np.array([1]))
        w.close(False, "test")


def test_segment_sums_are_numpy_sums_bit_for_bit():
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 300, size=400)
    values = rng.standard_normal(int(lengths.sum())) * 1e3
    starts = np.cumsum(lengths) - lengths
    got = segment_sums(values, starts, lengths)
    want = [float(values[s:s + n].sum()) if n else 0.0 for s, n in zip(starts, lengths, strict=True)]
    assert got.tolist() == want


def _drivers(ball_rate_hz: float) -> tuple[VirtualClock, Any, Any, Any]:
    clock = VirtualClock()
    world = SimulatedWorld(VirtualMouse(SimMouse(expertise=0.8), seed=4), seed=4)
    ctx = DriverContext(clock, world)
    reg = default_registry()

    def make(role: str, **params: float) -> Any:
        spec = reg.spec(role, "sim")
        d = spec.cls(spec.params(**params), ctx)
        d.open()
        return d

    ball = make("ball", sample_rate_hz=ball_rate_hz)
    fc = make("frame_clock", rate_hz=30.0, jitter_ms=1.0)
    lick = make("lick")
    return clock, ball, fc, lick


@pytest.mark.parametrize("ball_rate_hz", [1000.0, 333.0, 45.0])
def test_sim_drivers_read_ahead_what_they_would_read_per_iteration(ball_rate_hz: float):
    times = _times(1500)
    clock, ball, fc, lick = _drivers(ball_rate_hz)
    want_t, want_c, want_f, want_licks = [], [], [], []
    for t in times.tolist():
        clock.wait_until(t)
        s = ball.read()
        want_t.append(s.t)
        want_c.append(s.counts)
        want_f.append(fc.read())
        want_licks.append(lick.read())
    clock, ball, fc, lick = _drivers(ball_rate_hz)
    got_t, got_c, got_f, got_licks = [], [], [], []
    for chunk in (times[:1], times[1:700], times[700:]):  # a chunk of one, then larger ones
        samples, ends = ball.read_ahead(chunk)
        edges, fends = fc.read_ahead(chunk)
        for j, t in enumerate(chunk.tolist()):
            a, b = (int(ends[j - 1]) if j else 0), int(ends[j])
            got_t.append(samples.t[a:b])
            got_c.append(samples.counts[a:b])
            fa, fb = (int(fends[j - 1]) if j else 0), int(fends[j])
            got_f.append(edges[fa:fb])
            clock.wait_until(t)
            got_licks.append(lick.read())  # licks still one iteration at a time
    for name, want, got in (("t", want_t, got_t), ("counts", want_c, got_c), ("frames", want_f, got_f)):
        assert [w.tolist() for w in want] == [g.tolist() for g in got], name
    assert want_licks == got_licks
    assert sum(len(c) for c in got_c) > 0 and sum(len(f) for f in got_f) > 0


def test_mouse_advance_is_run_until_then_take_licks():
    def drive(advance: bool) -> list:
        mouse = VirtualMouse(SimMouse(expertise=0.9, lick_rate_hz=2.0), seed=9)
        mouse.meet("leaf1", True)
        out = []
        pos = 0.0
        for i, t in enumerate(_times(4000).tolist()):
            if advance:
                out += mouse.advance(t)
            else:
                mouse.run_until(t)
                out += mouse.take_licks(t)
            if i % 700 == 350:
                mouse.hear_cue(t)
            if i % 900 == 600:
                mouse.give_water(t, 25.0)
            pos = (pos + 0.4) % 600.0
            mouse.see(View(t, i // 1500, "leaf1", pos, pos >= 400.0, True))
        return out

    licks = drive(True)
    assert len(licks) > 50
    assert licks == drive(False)
