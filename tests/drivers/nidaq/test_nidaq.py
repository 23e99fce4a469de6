"""The NI-DAQ drivers against drivers.nidaq.fake: a simulated X-series device behind a stand-in for the
nidaqmx package (its names and signatures are checked against the real package in test_nidaq_api.py).
Inputs are wired to the fake device, time moves on the session clock, and outputs are judged by what
came out of the device's lines."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.base import ClockMap, SyncOutput
from drivers.nidaq import NidaqBall, NidaqCue, NidaqFrameClock, NidaqLick, NidaqSync, NidaqValve
from drivers.nidaq.clockfit import DriftTracker
from drivers.nidaq.errors import NidaqConfigError, NidaqError, NidaqUnavailable
from drivers.nidaq.fake import FakeNidaqmx, ManualClock, Samples, TaskState
from drivers.nidaq.fake.namespaces import AcquisitionType, AngleUnits, Edge, EncoderType, Level, TerminalConfiguration
from drivers.nidaq.session import SESSIONS
from drivers.registry import DriverContext, Registry

REPO = Path(__file__).resolve().parents[3]
SAMPLE_CLOCK = "/Dev1/ai/SampleClock"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def daq(clock: ManualClock) -> Iterator[FakeNidaqmx]:
    fake = FakeNidaqmx(clock)
    with fake.installed():  # raises if a device session is left open
        yield fake
    assert not fake.open_tasks, "a test left a DAQmx task open"


@pytest.fixture
def ctx(clock: ManualClock) -> DriverContext:
    return DriverContext(clock=clock)


def task_with(daq: FakeNidaqmx, method: str) -> TaskState:
    (task,) = daq.tasks_with(method)
    return task


def ball_params(**kw) -> NidaqBall.Params:
    return NidaqBall.Params(**{"pulses_per_rev": 1024, "ball_diameter_cm": 20.0, **kw})


# ---- registry and config ------------------------------------------------------------------------------


def nidaq_registry() -> Registry:
    import drivers.sim as sim

    reg = Registry()
    for cls in (sim.SimDisplay,):
        reg.add("display", "sim", cls)
    for role, cls in (("ball", NidaqBall), ("lick", NidaqLick), ("valve", NidaqValve), ("cue", NidaqCue),
                      ("frame_clock", NidaqFrameClock), ("sync", NidaqSync)):
        reg.add(role, "nidaq", cls)
    return reg


def test_example_config_validates_against_the_nidaq_drivers() -> None:
    from rig.loading import load_config

    cfg = load_config(REPO / "config" / "nidaq-example.yaml", nidaq_registry())
    assert {r: e.type for r, e in cfg.drivers.items() if r != "display"} == dict.fromkeys(
        ("ball", "lick", "valve", "cue", "frame_clock", "sync"), "nidaq"
    )
    assert cfg.driver_params("valve").manual_line == "port0/line0"
    assert cfg.driver_params("sync").counter == "ctr3"


def test_bad_nidaq_params_are_rejected_with_the_field() -> None:
    with pytest.raises(ValueError, match="pulses_per_rev and ball_diameter_cm"):
        NidaqBall.Params(encoder="angular")
    with pytest.raises(ValueError, match="low_v"):
        NidaqLick.Params(low_v=3.0, high_v=2.0)
    with pytest.raises(ValueError, match="extra"):
        NidaqValve.Params(max_open=3)
    with pytest.raises(ValueError, match="timestamp mode needs terminal"):
        NidaqFrameClock.Params(mode="timestamp", channel="ctr2")


def test_max_open_beyond_the_watchdog_limit_is_refused() -> None:
    assert NidaqValve.Params(max_open_ms=34_359).max_open_ms == 34_359
    with pytest.raises(ValueError, match=r"beyond 34359 ms, the longest an NI X-series watchdog can time"):
        NidaqValve.Params(max_open_ms=34_360)
    with pytest.raises(ValueError, match="beyond 34359 ms"):
        NidaqValve.Params(max_open_ms=60_000, manual_line="port0/line0")


def test_config_with_max_open_beyond_the_watchdog_names_file_and_line(tmp_path: Path) -> None:
    from rig.loading import ConfigError, load_config

    lines = (REPO / "config" / "nidaq-example.yaml").read_text().splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.strip().startswith("max_open_ms:")]
    lines[at] = "    max_open_ms: 60000"
    path = tmp_path / "rig.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, nidaq_registry())
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), at + 1, "drivers.valve.max_open_ms")
    assert "34359 ms" in problem.message and "watchdog" in problem.message


def test_trigger_cue_longer_than_a_counter_pulse_is_refused() -> None:
    assert NidaqCue.Params(mode="analog", max_duration_ms=60_000).max_duration_ms == 60_000
    with pytest.raises(ValueError, match="at most 42949 ms"):
        NidaqCue.Params(mode="trigger", channel="ctr2", max_duration_ms=60_000)


def test_package_imports_and_errors_clearly_without_nidaqmx(monkeypatch, clock) -> None:
    monkeypatch.setitem(sys.modules, "nidaqmx", None)  # `import nidaqmx` now raises ImportError
    valve = NidaqValve(NidaqValve.Params(), DriverContext(clock=clock))  # constructing needs no nidaqmx
    with pytest.raises(NidaqUnavailable, match=r"corridor-rig\[daq\]"):
        valve.open()
    assert not valve.self_test()[0].ok
    assert len(SESSIONS) == 0


def test_missing_ni_driver_gives_an_install_hint(clock, ctx) -> None:
    with FakeNidaqmx(clock, driver_installed=False).installed() as fake:
        with pytest.raises(NidaqUnavailable, match="install the NI-DAQmx driver"):
            NidaqLick(NidaqLick.Params(), ctx).open()
        result = NidaqLick(NidaqLick.Params(), ctx).self_test()
        assert not result[0].ok and "install the NI-DAQmx driver" in result[0].message
    assert fake.tasks == []


def test_unknown_device_lists_the_devices_found(daq, ctx) -> None:
    with pytest.raises(NidaqConfigError, match=r"'Dev7' not found; devices found: Dev1, Dev2"):
        NidaqLick(NidaqLick.Params(device="Dev7"), ctx).open()


def test_unknown_channel_lists_the_device_channels(daq, ctx) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai9"), ctx)
    with pytest.raises(NidaqConfigError, match=r"Dev1/ai9.*ai channels on Dev1: Dev1/ai0, Dev1/ai1"):
        lick.open()
    assert not lick.is_open
    assert daq.tasks and not daq.open_tasks  # the half-built session's task was cleared


def test_a_channel_of_the_wrong_kind_is_refused_with_the_right_kind_listed(daq, ctx) -> None:
    fc = NidaqFrameClock(NidaqFrameClock.Params(mode="counter", channel="ai2"), ctx)
    with pytest.raises(NidaqConfigError, match=r"Dev1/ai2.*ci channels on Dev1: Dev1/ctr0, Dev1/ctr1"):
        fc.open()
    valve = NidaqValve(NidaqValve.Params(counter="ctr1", manual_line="ai0"), ctx)
    with pytest.raises(NidaqConfigError, match=r"do channels on Dev1: Dev1/port0/line0"):
        valve.open()
    assert not daq.open_tasks


# ---- the clocked inputs -------------------------------------------------------------------------------


def test_encoder_is_an_x4_counter_on_the_ai_sample_clock(daq, ctx) -> None:
    ball = NidaqBall(ball_params(a_terminal="PFI8"), ctx)
    with ball:
        ci = task_with(daq, "add_ci_ang_encoder_chan")
        (ch,) = ci.channels
        assert (ch.physical, ch.args["decoding_type"], ch.args["units"], ch.args["pulses_per_rev"]) == (
            "Dev1/ctr0", EncoderType.X_4, AngleUnits.TICKS, 1024)
        assert ch.props == {"ci_encoder_a_input_term": "/Dev1/PFI8"}
        assert daq.hardware.start_order == []  # tasks start on the first read
        assert len(ball.read().counts) == 1  # sample 0, taken as the clock started
        # No analog role: one AI channel is sampled only to run the clock.
        ai = task_with(daq, "add_ai_voltage_chan")
        assert [c.physical for c in ai.channels] == ["Dev1/ai0"]
        assert ai.timing == {"rate": 1000.0, "source": "", "active_edge": Edge.RISING,
                             "sample_mode": AcquisitionType.CONTINUOUS, "samps_per_chan": 10000}
        assert ci.timing == {**ai.timing, "source": SAMPLE_CLOCK}
        assert daq.hardware.start_order == [ci, ai]  # the follower waits for the clock


def test_encoder_counts_become_increments_and_cm(daq, ctx, clock) -> None:
    ball = NidaqBall(ball_params(), ctx)
    daq.device().counter("ctr0", Samples(np.array([0.0, 4.0, 8.0, 8.0, 5.0, 9.0, 4105.0, 4105.0, 4000.0])))
    with ball:
        first = ball.read()
        clock.advance(0.0065)  # samples 1..6 have been taken
        s = ball.read()
        clock.advance(0.002)
        s2 = ball.read()
    got = np.r_[first.counts, s.counts]
    assert got.tolist() == [0, 4, 4, 0, -3, 4, 4096]
    np.testing.assert_allclose(np.r_[first.t, s.t], np.arange(7) / 1000.0)
    assert s2.counts.tolist() == [0, -105]
    np.testing.assert_allclose(s2.t, [0.007, 0.008])
    # 4 counts per pulse, 1024 pulses per turn of a 20 cm ball
    assert ball.counts_per_cm == pytest.approx(4 * 1024 / (np.pi * 20.0))
    total_cm = (got.sum() + s2.counts.sum()) / ball.counts_per_cm
    assert total_cm == pytest.approx(4000 / ball.counts_per_cm)


def test_a_read_with_nothing_available_does_not_call_read(daq, ctx) -> None:
    with NidaqLick(NidaqLick.Params(), ctx) as lick:
        assert lick.read() == []  # the clock starts: sample 0 is read
        ai = task_with(daq, "add_ai_voltage_chan")
        assert ai.reads == 1
        assert lick.read() == []
        assert lick.read() == []
        assert ai.reads == 1  # no new sample at the same instant: no read call


def test_lick_hysteresis_in_volts_across_reads(daq, ctx, clock) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai1", low_v=1.0, high_v=2.0, terminal="DIFF"), ctx)
    # Noise inside the 1-2 V band makes no edge; contact at sample 3, release at sample 8 (next read).
    daq.device().analog("ai1", Samples(np.array([0.2, 1.5, 1.9, 2.4, 3.0, 1.6, 2.1, 1.2, 0.8, 0.1, 1.9, 0.3])))
    with lick:
        (ch,) = task_with(daq, "add_ai_voltage_chan").channels
        assert (ch.physical, ch.args) == (
            "Dev1/ai1", {"terminal_config": TerminalConfiguration.DIFF, "min_val": -10.0, "max_val": 10.0})
        first = lick.read()
        clock.advance(0.0065)
        first += lick.read()
        clock.advance(0.005)
        second = lick.read()
    assert [(e.onset) for e in first] == [True]
    assert [(e.onset) for e in second] == [False]
    # contact when the signal passes 2 V, release when it passes 1 V, interpolated between samples
    assert first[0].t == pytest.approx(0.0022)
    assert second[0].t == pytest.approx(0.0075)


def test_active_low_digital_lick_line(daq, ctx, clock) -> None:
    lick = NidaqLick(NidaqLick.Params(mode="digital", channel="port0/line1", active_high=False), ctx)
    daq.device().line("port0/line1", Samples(np.array([1, 1, 0, 0, 1])))  # idle high; contact pulls it low
    with lick:
        (ch,) = task_with(daq, "add_di_chan").channels
        assert ch.physical == "Dev1/port0/line1"
        edges = lick.read()
        clock.advance(0.0045)
        edges += lick.read()
    assert [(e.t, e.onset) for e in edges] == [(0.002, True), (0.004, False)]


def frame_clock_trace(rate: float, edges_s: list[float], n: int) -> np.ndarray:
    """A 5 V TTL that falls to 0 V at each edge time (with a 1-sample ramp) and rises 2 ms later."""
    t = np.arange(n) / rate
    v = np.full(n, 5.0)
    for e in edges_s:
        v = np.minimum(v, np.clip((t - e) * rate * -5.0 + 2.5, 0.0, 5.0) + (t > e + 0.002) * 5.0)
    return v


def test_frame_edges_falling_through_2_5_volts(daq, ctx, clock) -> None:
    rate = 5000.0
    fc = NidaqFrameClock(NidaqFrameClock.Params(channel="ai2", sample_rate_hz=rate), ctx)
    true_edges = [0.01031, 0.32582, 0.64127]
    daq.device().analog("ai2", Samples(frame_clock_trace(rate, true_edges, 4000)))
    with fc:
        got = list(fc.read())
        clock.advance(1699.5 / rate)
        got += list(fc.read())
        clock.advance(2300 / rate)
        got += list(fc.read())
    np.testing.assert_allclose(got, true_edges, atol=0.1 / rate)


def test_frame_clock_idle_level_is_not_a_frame(daq, ctx, clock) -> None:
    fc = NidaqFrameClock(NidaqFrameClock.Params(), ctx)
    # a line idling low (microscope off), then one frame pulse
    daq.device().analog("ai2", Samples(np.r_[np.zeros(50), np.full(5, 5.0), np.zeros(5)]))
    with fc:
        fc.read()
        clock.advance(0.0495)
        assert len(fc.read()) == 0
        clock.advance(0.010)
        assert fc.read().tolist() == pytest.approx([0.0545])


def test_frame_clock_as_a_counter_on_the_shared_clock(daq, ctx, clock) -> None:
    fc = NidaqFrameClock(NidaqFrameClock.Params(mode="counter", channel="ctr2", terminal="PFI0"), ctx)
    daq.device().edges("PFI0", falling=[0.0015, 0.0035, 0.0038], rising=[0.0005, 0.0025])
    with fc:
        ci = task_with(daq, "add_ci_count_edges_chan")
        (ch,) = ci.channels
        assert (ch.physical, ch.args["edge"], ch.props) == ("Dev1/ctr2", Edge.FALLING,
                                                            {"ci_count_edges_term": "/Dev1/PFI0"})
        got = list(fc.read())
        assert ci.timing["source"] == SAMPLE_CLOCK
        clock.advance(0.0045)
        got += list(fc.read())
    assert got == pytest.approx([0.002, 0.004, 0.004])  # each falling edge at the next sample


def test_roles_share_one_ai_task_and_one_timebase(daq, ctx, clock) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai1"), ctx)
    fc = NidaqFrameClock(NidaqFrameClock.Params(channel="ai2"), ctx)
    ball = NidaqBall(ball_params(), ctx)
    dev = daq.device()
    dev.analog("ai1", Samples(np.array([0.0, 3.0, 3.0, 0.0])))
    dev.analog("ai2", Samples(np.array([5.0, 5.0, 0.0, 0.0])))
    lick.open()
    fc.open()
    ball.open()
    assert len(daq.pool) == 1
    ai = task_with(daq, "add_ai_voltage_chan")
    assert [c.physical for c in ai.channels] == ["Dev1/ai1", "Dev1/ai2"]  # one task
    ball.read()
    clock.advance(0.0035)
    assert lick.clock is fc.clock is ball.clock  # one ClockMap from the session
    assert [(e.t, e.onset) for e in lick.read()] == [
        (pytest.approx(2 / 3 / 1000), True), (pytest.approx((2 + 2 / 3) / 1000), False)
    ]
    assert fc.read().tolist() == [pytest.approx(0.0015)]  # frame clock got its row though lick read first
    # Reference counting: closing two roles leaves the session's tasks running for the third.
    lick.close()
    fc.close()
    assert not ai.closed and ai.running
    ball.close()
    assert {t.name for t in daq.tasks if t.closed} == {ai.name, task_with(daq, "add_ci_ang_encoder_chan").name}


def test_clock_only_ai_task_is_drained_so_the_ball_keeps_its_samples(daq, ctx, clock) -> None:
    """The AI task that only runs the sample clock has a 10 s buffer: undrained it would fill, stop, and
    stop the clock the encoder samples on (the fake models DAQmx's overflow: test_nidaq_fake.py)."""
    ball = NidaqBall(ball_params(), ctx)
    daq.device().counter("ctr0", lambda t: np.floor(t * 400.0))  # 400 counts/s
    n = 0
    with ball:
        for _ in range(300):  # 15 s of reads every 50 ms
            s = ball.read()
            n += len(s.counts)
            clock.advance(0.05)
        clock_task = task_with(daq, "add_ai_voltage_chan")
        assert clock_task.error is None and clock_task.running
    assert n == 14951  # samples 0 .. 14.95 s, none lost


def test_a_task_whose_roles_closed_is_drained_while_the_others_run(daq, ctx, clock) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai1"), ctx)
    ball = NidaqBall(ball_params(), ctx)
    n = 0
    with ball:
        lick.open()
        lick.read()
        clock.advance(1.0)
        lick.close()  # the AI task now only runs the clock
        for _ in range(240):  # 12 s more
            n += len(ball.read().counts)
            clock.advance(0.05)
        assert task_with(daq, "add_ai_voltage_chan").error is None
    assert n == 12951  # every sample from 0 to 12.95 s, none lost


def test_clock_map_offset_is_the_session_time_of_the_first_read(daq, ctx, clock) -> None:
    with NidaqLick(NidaqLick.Params(), ctx) as lick:
        clock.advance(3.25)
        lick.read()
        assert lick.clock.to_session(0.5) == pytest.approx(3.75)


def test_roles_must_agree_on_the_sample_rate(daq, ctx) -> None:
    with NidaqLick(NidaqLick.Params(sample_rate_hz=1000), ctx):
        with pytest.raises(NidaqConfigError, match="share one sample clock"):
            NidaqFrameClock(NidaqFrameClock.Params(sample_rate_hz=2000), ctx).open()


def test_opening_a_role_after_the_clock_started_is_refused(daq, ctx) -> None:
    with NidaqLick(NidaqLick.Params(), ctx) as lick:
        lick.read()
        with pytest.raises(NidaqError, match="open every NI-DAQ role before the first read"):
            NidaqFrameClock(NidaqFrameClock.Params(), ctx).open()


def test_two_rigs_in_one_process_do_not_share_a_session(daq) -> None:
    a = NidaqLick(NidaqLick.Params(), DriverContext(clock=ManualClock()))
    b = NidaqLick(NidaqLick.Params(), DriverContext(clock=ManualClock()))
    with a, b:
        assert len(daq.pool) == 2


# ---- frame clock timestamps ---------------------------------------------------------------------------


def timestamp_clock(ctx: DriverContext, **kw) -> NidaqFrameClock:
    return NidaqFrameClock(NidaqFrameClock.Params(mode="timestamp", channel="ctr2", terminal="PFI0", **kw), ctx)


def test_timestamp_mode_counts_the_100mhz_timebase_latched_by_each_edge(daq, ctx, clock) -> None:
    fc = timestamp_clock(ctx)
    with fc:
        ts = task_with(daq, "add_ci_count_edges_chan")
        (ch,) = ts.channels
        assert (ch.physical, ch.args["edge"], ch.props) == (
            "Dev1/ctr2", Edge.RISING, {"ci_count_edges_term": "/Dev1/100MHzTimebase"})
        fc.read()
        assert ts.timing == {"rate": 1000.0, "source": "/Dev1/PFI0", "active_edge": Edge.FALLING,
                             "sample_mode": AcquisitionType.CONTINUOUS, "samps_per_chan": 10000}
        assert ts.arm == {"trig_type": ts.arm["trig_type"].DIGITAL_EDGE, "dig_edge_src": "/Dev1/ai/StartTrigger",
                          "dig_edge_edge": Edge.RISING}
        clock_task = task_with(daq, "add_ai_voltage_chan")  # no analog role: an AI task just for the clock
        assert daq.hardware.start_order == [ts, clock_task]  # armed before the AI start trigger fires


def test_timestamps_have_microsecond_resolution_on_the_shared_timebase(daq, ctx, clock) -> None:
    """Edges between AI samples come out at their own times (the analog and counter modes would put
    them on the 1 ms grid), on the same zero as the sampled streams."""
    lick = NidaqLick(NidaqLick.Params(mode="digital", channel="port0/line1"), ctx)
    fc = timestamp_clock(ctx)
    clock.advance(2.0)  # the clock starts at session time 2.0
    frames = 2.0 + 0.0001234 + np.arange(300) / 30.0 + np.random.default_rng(1).uniform(0, 1e-3, 300)
    daq.device().edges("PFI0", falling=frames, rising=frames + 0.002)
    daq.device().line("port0/line1", lambda t: (t - 2.0) >= 0.0105)  # a lick 10.5 ms after the start
    got = []
    with lick, fc:
        licks = lick.read()
        while clock.now() < 12.1:
            clock.advance(0.016)
            licks += lick.read()
            got += list(fc.read())
        assert fc.clock is lick.clock
    assert len(got) == 300
    assert np.max(np.abs(np.array(got) - (frames - 2.0))) < 1e-7  # 10 ns ticks
    assert licks[0].t == pytest.approx(0.011)  # the sampled lick lands on the next 1 ms sample


def test_timestamps_survive_counter_wraps_and_idle_gaps_longer_than_a_wrap(daq, ctx, clock) -> None:
    fc = timestamp_clock(ctx, edge="rising")
    frames = np.r_[0.5, 1.0, 50.0, 50.1, 140.0]  # 49 s and 90 s idle: more than one 42.9 s wrap
    daq.device().edges("PFI0", rising=frames)
    got = []
    with fc:
        while clock.now() < 141.0:
            got += list(fc.read())
            clock.advance(0.25)
    np.testing.assert_allclose(got, frames, atol=1e-7)


def test_timestamps_and_samples_share_the_device_timebase_under_drift(clock, ctx) -> None:
    with FakeNidaqmx(clock, drift_ppm=80.0).installed() as daq:
        lick = NidaqLick(NidaqLick.Params(mode="digital", channel="port0/line1"), ctx)
        fc = timestamp_clock(ctx, timebase="20MHz")
        edge = 30.0  # true time; the device's own clock has counted 30 / (1 + 80e-6) s by then
        daq.device().edges("PFI0", falling=[edge])
        daq.device().line("port0/line1", lambda t: t >= edge)
        with lick, fc:
            got, licks = [], []
            while clock.now() < 31.0:
                licks += lick.read()
                got += list(fc.read())
                clock.advance(0.02)
    device_edge = edge / (1 + 80e-6)
    assert got == [pytest.approx(device_edge, abs=5e-8)]  # 50 ns ticks
    assert licks[0].t == pytest.approx(math.ceil(device_edge * 1000) / 1000)  # the next sample, same timebase


# ---- outputs ------------------------------------------------------------------------------------------


def test_valve_pulse_is_a_rearmed_counter_pulse_of_exact_width(daq, ctx, clock) -> None:
    valve = NidaqValve(NidaqValve.Params(counter="ctr1", output_terminal="PFI12", max_open_ms=200), ctx)
    with valve:
        co = task_with(daq, "add_co_pulse_chan_time")
        (ch,) = co.channels
        assert (ch.physical, ch.args) == ("Dev1/ctr1", {"idle_state": Level.LOW, "initial_delay": 0.0,
                                                        "low_time": 0.001, "high_time": 0.001})
        assert ch.props == {"co_pulse_term": "/Dev1/PFI12"}
        assert co.starts == 0
        valve.pulse(40.0)
        clock.advance(1.0)
        valve.pulse(1000.0)  # longer than max_open_ms: cut to it
        clock.advance(1.0)
        valve.pulse(0)
        assert co.starts == 2
        with pytest.raises(ValueError, match="finite number"):
            valve.pulse(float("nan"))
        valve.open_valve()  # no manual line: one pulse of max_open_ms
        clock.advance(1.0)
    assert daq.device().high_intervals("PFI12") == [
        (0.0, pytest.approx(0.04)), (1.0, pytest.approx(1.2)), (2.0, pytest.approx(2.2))]
    assert co.closed


def test_a_pulse_while_the_previous_is_high_cuts_it_short(daq, ctx, clock, caplog) -> None:
    valve = NidaqValve(NidaqValve.Params(max_open_ms=500), ctx)
    with valve, caplog.at_level(logging.WARNING, logger="drivers.nidaq.outputs"):
        valve.pulse(100.0)
        clock.advance(0.03)
        valve.pulse(50.0)  # the first is still high on the device's clock
        assert [r.message for r in caplog.records] == ["nidaq valve (Dev1): a new pulse cuts the previous one short"]
        clock.advance(0.2)
        valve.pulse(20.0)  # the second ended 150 ms ago: no warning
        assert len(caplog.records) == 1
        clock.advance(1.0)
    pulses = daq.device().pulses
    assert [(p.start, p.width) for p in pulses] == [
        (0.0, pytest.approx(0.03)), (pytest.approx(0.03), pytest.approx(0.05)),
        (pytest.approx(0.23), pytest.approx(0.02)),
    ]
    assert pulses[0].cut == pytest.approx(0.03) and pulses[1].cut is None


def test_pulses_that_overlap_never_open_the_valve_longer_than_max_open(daq, ctx, clock, caplog) -> None:
    valve = NidaqValve(NidaqValve.Params(max_open_ms=500), ctx)
    with valve, caplog.at_level(logging.WARNING, logger="drivers.nidaq.outputs"):
        valve.pulse(400.0)
        clock.advance(0.3)
        valve.pulse(400.0)  # the valve has been open 300 ms: 200 ms are left
        clock.advance(0.15)
        valve.open_valve()  # a flush request 450 ms into the opening: 50 ms left
        clock.advance(0.1)
        valve.pulse(100.0)  # closed again since 500 ms: a new opening
        clock.advance(0.05)
        assert any("cut to 200.0 ms" in r.message for r in caplog.records)
        clock.advance(1.0)
    (on, off), *_ = [(a, b) for a, b in _merged(daq.device().high_intervals("PFI13"))]
    assert (on, off) == (0.0, pytest.approx(0.5))
    assert _merged(daq.device().high_intervals("PFI13"))[1:] == [(pytest.approx(0.55), pytest.approx(0.65))]


def test_a_pulse_when_the_opening_has_used_its_maximum_is_dropped(clock, ctx, caplog) -> None:
    with FakeNidaqmx(clock, drift_ppm=100.0).installed() as daq:  # the device's 500 ms last 500.05 ms
        with NidaqValve(NidaqValve.Params(max_open_ms=500), ctx) as valve, caplog.at_level(logging.WARNING):
            valve.pulse(500.0)
            clock.advance(0.50002)  # still high on the device, 500 ms gone on the session clock
            valve.pulse(100.0)
            clock.advance(1.0)
    assert [r.message for r in caplog.records] == [
        "nidaq valve (Dev1): the valve has been open for its maximum 500.0 ms; a pulse of 100.0 ms is dropped"]
    assert daq.device().high_intervals("PFI13") == [(0.0, pytest.approx(0.50005))]


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Back-to-back intervals (a pulse re-armed while high) as one opening."""
    out: list[tuple[float, float]] = []
    for a, b in intervals:
        if out and a <= out[-1][1] + 1e-9:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def test_manual_open_uses_a_watchdog_that_closes_the_line_in_hardware(daq, ctx, clock) -> None:
    valve = NidaqValve(NidaqValve.Params(manual_line="port0/line0", max_open_ms=750), ctx)
    dev = daq.device()
    with valve:
        (wd,) = dev.watchdogs
        assert (wd.timeout_s, wd.lines) == (0.75, {"Dev1/port0/line0": False})
        assert dev.line_events["Dev1/port0/line0"] == [(0.0, False)]  # starts closed
        clock.advance(1.0)
        valve.open_valve()
        clock.advance(0.5)
        valve.close_valve()
        assert dev.high_intervals("port0/line0") == [(1.0, 1.5)]
        clock.advance(1.5)
        valve.open_valve()  # and the program hangs: nothing closes it but the device
        clock.advance(0.5)
        valve.open_valve()  # a second request does not restart the timer
        clock.advance(2.0)
        assert dev.high_intervals("port0/line0") == [(1.0, 1.5), (3.0, pytest.approx(3.75))]
        valve.open_valve()  # after the watchdog closed it, a new opening
        clock.advance(0.1)
        valve.close_valve()
    assert dev.high_intervals("port0/line0")[2:] == [(5.5, pytest.approx(5.6))]
    assert not wd.running and wd.closed


def test_the_longest_allowed_opening_fits_the_devices_watchdog(daq, ctx, clock) -> None:
    valve = NidaqValve(NidaqValve.Params(manual_line="port0/line0", max_open_ms=34_359), ctx)
    with valve:
        valve.open_valve()
        clock.advance(40.0)
    assert daq.device().high_intervals("port0/line0") == [(0.0, pytest.approx(34.359))]
    assert daq.device().high_intervals("PFI13") == []


def test_cue_writes_a_tone_and_starts_a_finite_generation(daq, ctx, clock) -> None:
    cue = NidaqCue(NidaqCue.Params(channel="ao0", sample_rate_hz=20000, amplitude_v=0.5), ctx)
    with cue:
        ao = task_with(daq, "add_ao_voltage_chan")
        assert (ao.channels[0].physical, ao.channels[0].args) == ("Dev1/ao0", {"min_val": -0.5, "max_val": 0.5})
        clock.advance(1.0)
        cue.play(100.0, 4000.0)
        assert ao.timing == {"rate": 20000.0, "source": "", "active_edge": Edge.RISING,
                             "sample_mode": AcquisitionType.FINITE, "samps_per_chan": 2000}
        (gen,) = daq.device().generations
        wave = gen.data
        assert (gen.start, gen.end, len(wave)) == (1.0, pytest.approx(1.1), 2000)
        assert 0.45 < np.max(np.abs(wave)) <= 0.5 and wave[0] == 0 and wave[-1] == 0  # within the AO range
        spectrum = np.abs(np.fft.rfft(wave))
        assert np.argmax(spectrum) * 20000 / len(wave) == pytest.approx(4000, abs=10)
        assert not ao.is_done()
        clock.advance(0.1)
        assert ao.is_done()
        with pytest.raises(ValueError, match="sample_rate_hz"):
            cue.play(100.0, 15000.0)


def test_trigger_cue_is_a_counter_pulse(daq, ctx, clock) -> None:
    with NidaqCue(NidaqCue.Params(mode="trigger", channel="ctr2"), ctx) as cue:
        cue.play(150.0, 4000.0)
        assert task_with(daq, "add_co_pulse_chan_time").channels[0].physical == "Dev1/ctr2"
        clock.advance(1.0)
    assert daq.device().high_intervals("PFI14") == [(0.0, pytest.approx(0.15))]  # ctr2's default output


def test_self_test_reports_present_and_missing_channels(daq, ctx) -> None:
    ok = NidaqLick(NidaqLick.Params(channel="ai1"), ctx).self_test()
    assert [r.ok for r in ok] == [True]
    bad = NidaqLick(NidaqLick.Params(channel="ai9"), ctx).self_test()
    assert not bad[0].ok and "Dev1/ai9 is not a ai channel of Dev1" in bad[0].message
    gone = NidaqLick(NidaqLick.Params(device="Dev9"), ctx).self_test()
    assert not gone[0].ok and "devices found: Dev1, Dev2" in gone[0].message
    assert daq.tasks == []  # a self-test opens nothing


# ---- sync output --------------------------------------------------------------------------------------


def test_sync_pulse_is_a_counter_pulse_timed_on_the_shared_clock(daq, ctx, clock, caplog) -> None:
    lick = NidaqLick(NidaqLick.Params(), ctx)
    sync = NidaqSync(NidaqSync.Params(counter="ctr3", output_terminal="PFI15", width_ms=10), ctx)
    assert isinstance(sync, SyncOutput)
    with lick, sync, caplog.at_level(logging.WARNING):
        co = task_with(daq, "add_co_pulse_chan_time")
        (ch,) = co.channels
        assert (ch.physical, ch.props) == ("Dev1/ctr3", {"co_pulse_term": "/Dev1/PFI15"})
        clock.advance(2.0)
        lick.read()  # the shared clock starts: device time 0 = session time 2.0
        clock.advance(1.5)
        assert sync.pulse() == pytest.approx(1.5)
        clock.advance(1.75)
        sync.pulse()
        got = sync.read()
        np.testing.assert_allclose(got, [1.5, 3.25])
        assert sync.clock is lick.clock
        np.testing.assert_allclose(sync.clock.to_session(got), [3.5, 5.25])
        assert sync.read().size == 0  # each pulse is read once
        clock.advance(1.0)
    assert daq.device().high_intervals("PFI15") == [(3.5, pytest.approx(3.51)), (5.25, pytest.approx(5.26))]
    assert not caplog.records  # each pulse had ended before the next: none was cut
    assert co.closed


def test_sync_alone_times_pulses_on_the_session_clock(daq, ctx, clock) -> None:
    with NidaqSync(NidaqSync.Params(), ctx) as sync:
        clock.advance(0.75)
        sync.pulse()
        np.testing.assert_allclose(sync.read(), [0.75])
        assert sync.clock == ClockMap()
        assert daq.tasks_with("add_ai_voltage_chan") == []  # no clocked input: no clock task either
        assert (sync.min_interval_s, sync.max_interval_s) == (1.0, 5.0)


def test_sync_params_are_checked_and_pulse_needs_open(ctx) -> None:
    with pytest.raises(ValueError, match="max_interval_s"):
        NidaqSync.Params(min_interval_s=2.0, max_interval_s=1.0)
    with pytest.raises(ValueError, match="width_ms"):
        NidaqSync.Params(width_ms=500, min_interval_s=0.2)
    with pytest.raises(RuntimeError, match="not open"):
        NidaqSync(NidaqSync.Params(), ctx).pulse()


# ---- clock fit ----------------------------------------------------------------------------------------


def test_clock_map_follows_a_50_ppm_drift_through_the_reads(clock, ctx) -> None:
    rate, drift, start = 200.0, 50e-6, 1.0
    rng = np.random.default_rng(3)
    maps = []
    with FakeNidaqmx(clock, drift_ppm=drift * 1e6).installed():
        lick = NidaqLick(NidaqLick.Params(sample_rate_hz=rate), ctx)
        with lick:
            clock.advance(start)
            lick.read()
            while clock.now() < start + 150.0:  # 150 s of reads every 50 ms or so
                clock.advance(0.05 + rng.exponential(0.003))
                lick.read()
                if not maps or lick.clock != maps[-1]:
                    maps.append(lick.clock)
            m = lick.clock
            t_dev = 149.0
    assert m.scale == pytest.approx(1 + drift, abs=2e-6)
    err = m.to_session(t_dev) - (start + (1 + drift) * t_dev)
    assert 0 <= err < 0.001  # late by at most the minimum latency; without the fit it would be 7.5 ms
    assert len(maps) <= 151  # refit at most once a second of host time


def test_clock_fit_is_offset_only_until_the_pairs_span_min_span_then_a_line_under_them() -> None:
    fit = DriftTracker(ClockMap(offset=10.0), refit_s=0.0, min_span_s=5.0)
    assert fit.add(10.002, 0.0)
    assert fit.map == ClockMap(offset=10.002, scale=1.0)
    assert fit.add(12.001, 2.0)  # a read closer to its sample lowers the offset; the span is too short
    assert fit.map == ClockMap(offset=10.001, scale=1.0)
    pairs = [(10.002, 0.0), (12.001, 2.0), (10.001 + 1.0001 * 6.0, 6.0), (10.0015 + 1.0001 * 8.0, 8.0)]
    for h, d in pairs[2:]:
        fit.add(h, d)
    assert fit.map.scale > 1.0
    gaps = [h - fit.map.to_session(d) for h, d in pairs]
    assert min(gaps) == pytest.approx(0.0, abs=1e-12)  # no pair lies below the line; one touches it
    with pytest.raises(ValueError, match="finite"):
        fit.add(float("nan"), 1.0)


def test_clock_fit_refits_at_most_once_per_refit_interval() -> None:
    fit = DriftTracker(ClockMap(offset=0.0), refit_s=1.0)
    assert fit.add(0.005, 0.0)
    assert not fit.add(0.5, 0.499)  # better pair, but only 0.5 s since the last fit
    assert fit.map.offset == pytest.approx(0.005)
    assert fit.add(1.2, 1.1995)
    assert fit.map.offset == pytest.approx(0.0005)


def test_clock_fit_forgets_pairs_older_than_the_window() -> None:
    fit = DriftTracker(ClockMap(offset=0.0), window_s=10.0, refit_s=0.0, min_span_s=1e9)  # offset only
    fit.add(0.001, 0.0)
    fit.add(5.003, 5.0)
    assert fit.map.offset == pytest.approx(0.001)
    fit.add(20.003, 20.0)  # the 1 ms pairs are more than 10 s older: the offset follows the newer ones
    assert fit.map.offset == pytest.approx(0.003)


def test_clock_fit_rejects_an_impossible_rate_and_keeps_the_scale() -> None:
    fit = DriftTracker(ClockMap(offset=0.0), refit_s=0.0, min_span_s=1.0)
    for d in range(5):
        fit.add(1.01 * d, float(d))  # 1 % rate error: not a crystal
    assert fit.map.scale == 1.0
    assert fit.map.offset == 0.0
