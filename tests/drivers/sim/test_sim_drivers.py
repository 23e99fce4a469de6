"""The simulated drivers and the world behind them: protocols, streams, counts, frames, valve limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.base import (
    BallEncoder,
    CueOutput,
    Device,
    Display,
    FrameClock,
    LickSensor,
    Valve,
    View,
)
from drivers.registry import ROLES, DriverContext, default_registry
from drivers.sim import SimBall, SimValve
from rig.config import SimMouse
from rig.sim.mouse import VirtualMouse
from rig.sim.world import SimulatedWorld

PROTOCOLS = {
    "ball": BallEncoder,
    "lick": LickSensor,
    "valve": Valve,
    "cue": CueOutput,
    "frame_clock": FrameClock,
    "display": Display,
}


class ManualClock:
    """The session clock, set by the test."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def make_world(seed: int = 1, **mouse: float) -> SimulatedWorld:
    return SimulatedWorld(VirtualMouse(SimMouse(**mouse), seed=seed), seed=seed)


def make(role: str, clock: ManualClock, world: SimulatedWorld | None, **params: object):
    spec = default_registry().spec(role, "sim")
    return spec.cls(spec.params(**params), DriverContext(clock, world))


def rig(seed: int = 1, **params: dict) -> tuple[ManualClock, SimulatedWorld, dict]:
    clock, world = ManualClock(), make_world(seed, lick_rate_hz=2.0)
    devs = {role: make(role, clock, world, **params.get(role, {})) for role in ROLES}
    for d in devs.values():
        d.open()
    return clock, world, devs


@pytest.mark.parametrize("role", ROLES)
def test_every_sim_driver_satisfies_its_protocol(role: str) -> None:
    dev = make(role, ManualClock(), make_world())
    assert isinstance(dev, Device) and isinstance(dev, PROTOCOLS[role])
    dev.open()
    checks = dev.self_test()
    assert checks and all(c.ok for c in checks)
    dev.close()


def test_params_reject_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="rate_hz"):
        SimBall.Params(rate_hz=10)
    with pytest.raises(ValidationError, match="counts_per_cm"):
        SimBall.Params(counts_per_cm=0)
    with pytest.raises(ValidationError, match="max_open_ms"):
        SimValve.Params(max_open_ms=-1)


def test_a_sim_driver_needs_a_world_and_an_open_call() -> None:
    with pytest.raises(ValueError, match="sim ball driver needs a simulated world"):
        make("ball", ManualClock(), None)
    lick = make("lick", ManualClock(), make_world())
    with pytest.raises(RuntimeError, match="sim lick driver is not open"):
        lick.read()
    with lick:
        assert lick.read() == []
    with pytest.raises(RuntimeError, match="not open"):
        lick.read()


def test_ball_counts_conserve_the_distance_run() -> None:
    for cpc in (100.0, 0.37):
        clock, world, devs = rig(ball={"counts_per_cm": cpc, "sample_rate_hz": 1000.0})
        twin = make_world(1, lick_rate_hz=2.0)
        total_counts, total_cm, n = 0, 0.0, 0
        for i in range(1, 60 * 120):
            clock.t = i / 60
            s = devs["ball"].read()
            _, cm, _ = twin.advance(clock.t)
            assert s.counts.dtype == np.int64 and len(s.t) == len(s.counts) == len(cm)
            assert np.all(np.diff(s.t) > 0)
            total_counts += int(s.counts.sum())
            total_cm += float(cm.sum())
            n += len(s.counts)
        assert total_cm > 100.0
        assert n == math.floor(clock.t * 1000)  # one sample per ms, none lost or repeated
        assert abs(total_counts / cpc - total_cm) < 1.0 / cpc + 1e-6


def test_ball_samples_at_a_lower_configured_rate() -> None:
    clock, _, devs = rig(ball={"sample_rate_hz": 50.0})
    clock.t = 10.0
    s = devs["ball"].read()
    assert len(s.t) == 500
    assert np.allclose(np.diff(s.t), 0.02)


def test_ball_and_lick_streams_are_each_handed_out_once_in_any_order() -> None:
    clock, _, devs = rig()
    twin = make_world(1, lick_rate_hz=2.0)
    ball_n, licks, twin_n, twin_licks = 0, [], 0, []
    for i in range(1, 60 * 60):
        clock.t = i / 60
        first, second = ("ball", "lick") if i % 2 else ("lick", "ball")
        out = {first: devs[first].read(), second: devs[second].read()}
        assert devs["lick"].read() == [] and len(devs["ball"].read().counts) == 0  # nothing twice
        ball_n += len(out["ball"].counts)
        licks += out["lick"]
        ts, _, edges = twin.advance(clock.t)
        twin_n += len(ts)
        twin_licks += edges
    assert len(licks) > 50
    assert licks == twin_licks and ball_n == twin_n


def test_frame_clock_edges_come_at_the_configured_rate() -> None:
    clock, _, devs = rig(frame_clock={"rate_hz": 3.17, "jitter_ms": 0.2, "start_s": 0.4})
    edges = []
    for i in range(1, 60 * 200):
        clock.t = i / 60
        got = devs["frame_clock"].read()
        assert np.all(got <= clock.t)
        edges.extend(got.tolist())
    e = np.array(edges)
    assert e[0] == pytest.approx(0.4, abs=0.001)
    assert len(e) == pytest.approx(200 * 3.17, abs=2)
    assert np.all(np.diff(e) > 0)
    assert np.mean(np.diff(e)) == pytest.approx(1 / 3.17, rel=1e-3)
    assert 0 < np.std(np.diff(e)) < 0.001


def test_frame_clock_cannot_be_reconfigured_once_edges_were_read() -> None:
    clock, world = ManualClock(), make_world()
    fc = make("frame_clock", clock, world)
    fc.open()
    clock.t = 5.0
    assert len(fc.read()) > 0
    with pytest.raises(RuntimeError, match="frame clock cannot be reconfigured"):
        make("frame_clock", clock, world, rate_hz=30.0).open()


def test_frame_clock_rejects_jitter_that_could_reorder_edges() -> None:
    world = make_world()
    with pytest.raises(ValueError, match="frame jitter"):
        make("frame_clock", ManualClock(), world, rate_hz=100.0, jitter_ms=5.0).open()


def test_valve_pulse_is_cut_at_the_maximum_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock, _, devs = rig(valve={"max_open_ms": 200.0})
    valve = devs["valve"]
    clock.t = 1.0
    valve.pulse(50.0)
    valve.pulse(800.0)
    first, second = valve.openings
    assert first.duration_ms == pytest.approx(50.0) and not first.clamped
    assert second.duration_ms == pytest.approx(200.0) and second.clamped
    assert "cut to the maximum" in caplog.text
    with pytest.raises(ValueError, match="valve pulse duration"):
        valve.pulse(math.nan)


def test_valve_held_open_closes_by_itself_after_the_maximum() -> None:
    clock, _, devs = rig(valve={"max_open_ms": 500.0})
    valve = devs["valve"]
    clock.t = 2.0
    valve.open_valve()
    assert valve.held_open
    clock.t = 2.3
    assert valve.held_open
    clock.t = 4.0
    assert not valve.held_open
    (opening,) = valve.openings
    assert opening.t_open == 2.0 and opening.duration_ms == pytest.approx(500.0)
    valve.close_valve()  # closing a closed valve is fine
    clock.t = 5.0
    valve.open_valve()
    clock.t = 5.1
    valve.close_valve()
    assert valve.openings[-1].duration_ms == pytest.approx(100.0)


@settings(max_examples=60, deadline=None)
@given(
    max_ms=st.floats(1.0, 2000.0),
    actions=st.lists(
        st.tuples(
            st.sampled_from(["pulse", "open", "close"]),
            st.floats(0.0, 5000.0),  # pulse duration, ms
            st.floats(0.0, 3.0),  # clock step before the action, s
        ),
        max_size=30,
    ),
)
def test_valve_never_reports_an_opening_longer_than_its_maximum(max_ms: float, actions: list) -> None:
    clock = ManualClock()
    valve = make("valve", clock, make_world(), max_open_ms=max_ms)
    valve.open()
    for kind, duration, step in actions:
        clock.t += step
        if kind == "pulse":
            valve.pulse(duration)
        elif kind == "open":
            valve.open_valve()
        else:
            valve.close_valve()
    clock.t += 10.0
    valve.close()
    assert all(o.duration_ms <= max_ms + 1e-6 for o in valve.openings)
    assert all(o.t_close >= o.t_open for o in valve.openings)


def test_water_from_the_valve_makes_the_mouse_drink() -> None:
    clock, world = ManualClock(), make_world(lick_rate_hz=0.0)
    valve, lick = make("valve", clock, world), make("lick", clock, world)
    valve.open()
    lick.open()
    clock.t = 5.0
    assert lick.read() == []
    valve.pulse(40.0)
    clock.t = 8.0
    assert sum(e.onset for e in lick.read()) >= 6


def test_cue_and_display_reach_the_mouse() -> None:
    clock, world, devs = rig()
    clock.t = 3.0
    view = View(3.0, 0, "leaf1", 120.0, False, True)
    assert devs["display"].show(view) == 3.0
    devs["cue"].play(200.0, 4000.0)
    assert world.mouse.last_cue_t == 3.0
    with pytest.raises(ValueError, match="cue duration"):
        devs["cue"].play(0.0, 4000.0)


def test_same_seed_and_calls_give_the_same_session() -> None:
    def session(seed: int) -> tuple[list, list, list]:
        clock, _, devs = rig(seed)
        ball, licks, frames = [], [], []
        for i in range(1, 60 * 30):
            clock.t = i / 60
            ball.append(devs["ball"].read().counts.sum())
            licks += devs["lick"].read()
            frames += devs["frame_clock"].read().tolist()
            if i % 300 == 0:
                devs["cue"].play(200.0, 4000.0)
                devs["valve"].pulse(30.0)
            devs["display"].show(View(clock.t, i // 600, "leaf1", (i % 600) * 1.0, False, True))
        return ball, licks, frames

    a, b, c = session(5), session(5), session(6)
    assert a == b
    assert a[0] != c[0] and a[1] != c[1] and a[2] != c[2]


def test_the_world_hands_advance_output_once_and_never_goes_back() -> None:
    world = make_world(lick_rate_hz=5.0)
    ts1, cm1, l1 = world.advance(2.0)
    ts2, cm2, l2 = world.advance(2.0)
    ts3, cm3, l3 = world.advance(1.0)
    assert len(ts1) == 2000 and len(cm1) == 2000 and l1
    assert len(ts2) == len(ts3) == 0 and l2 == l3 == []
    with pytest.raises(RuntimeError, match="ball sample rate cannot change"):
        world.attach_ball(500.0)


def test_world_from_config_uses_the_config_mouse_and_the_protocol_textures() -> None:
    from rig.config import RigConfig
    from rig.protocol import Protocol

    drivers = {role: {"type": "sim"} for role in ROLES}
    calibration = {"points": [{"duration_ms": 25, "volume_ul": 2.5}]}
    config = RigConfig.model_validate(
        {"name": "t", "valve_calibration": calibration, "drivers": drivers, "sim": {"lick_rate_hz": 4.0}}
    )
    corridor = {"name": "leaf1", "texture": {"source": "leaf"}, "texture_length_cm": 300.0}
    protocol = Protocol.model_validate(
        {
            "name": "p",
            "kind": "exposure",
            "corridors": [corridor],
            "movement": {"rule": "gated"},
            "cue": {"position_cm": [50, 250]},
            "reward": {"mode": "passive_after_cue"},
            "end": {"max_trials": 10},
        }
    )
    world = SimulatedWorld.from_config(config, protocol, seed=4)
    assert world.mouse.params.lick_rate_hz == 4.0 and world.mouse.seed == 4
    assert world.mouse.texture_length_cm == 300.0
    _, _, licks = world.advance(10.0)
    assert sum(e.onset for e in licks) > 20
    no_mouse = config.model_copy(update={"sim": None})
    with pytest.raises(ValueError, match="has no sim: section"):
        SimulatedWorld.from_config(no_mouse, protocol, seed=4)
