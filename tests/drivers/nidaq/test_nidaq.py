"""NI-DAQ drivers against the real nidaqmx API surface: nidaqmx's interpreter is replaced by an autospec
of its real LibraryInterpreter (the technique of nidaqmx-python's own unit tests), so every Task,
channel, timing and reader call goes through the real nidaqmx code down to the C-library boundary,
where the calls and arguments are asserted and generated sample buffers are fed back."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from unittest import mock

import nidaqmx  # the daq extra; part of dev, so CI always runs these
import numpy as np
import pytest
from nidaqmx._library_interpreter import LibraryInterpreter
from nidaqmx.constants import (
    AcquisitionType,
    AngleUnits,
    Edge,
    EncoderType,
    EncoderZIndexPhase,
    FillMode,
    Level,
    TerminalConfiguration,
    TimeUnits,
    VoltageUnits,
)
from nidaqmx.errors import DaqError, DaqNotFoundError

from drivers.base import ClockMap, SyncOutput
from drivers.nidaq import NidaqBall, NidaqCue, NidaqFrameClock, NidaqLick, NidaqSync, NidaqValve
from drivers.nidaq.clockfit import ClockFit
from drivers.nidaq.errors import NidaqConfigError, NidaqError, NidaqUnavailable
from drivers.nidaq.session import SESSIONS
from drivers.registry import DriverContext, Registry
from rig.clock import VirtualClock

REPO = Path(__file__).resolve().parents[3]
AVAIL_SAMP_PER_CHAN = 0x1223  # DAQmx_Read_AvailSampPerChan
CO_PULSE_HIGH_TIME = 0x18BA  # DAQmx_CO_Pulse_HighTime
SAMPLE_CLOCK = "/Dev1/ai/SampleClock"


class FakeDaq:
    """Wraps the autospec'd interpreter: hands out task handles, lists devices and serves queued sample
    buffers to the read calls, like the C library would."""

    def __init__(self, interp: mock.Mock) -> None:
        self.interp = interp
        self.pending: dict[str, list[np.ndarray]] = {}  # task handle -> buffers not read yet
        ids = itertools.count()
        interp.create_task.side_effect = lambda name: (f"task{next(ids)}", True)
        interp.create_watchdog_timer_task_ex.side_effect = lambda dev, name, timeout: (f"wd{next(ids)}", True)
        interp.get_system_info_attribute_string.return_value = "Dev1, Dev2"
        interp.get_device_attribute_string.return_value = "Dev1/ai0, Dev1/ai1, Dev1/ai2, Dev1/ai3"
        interp.internal_get_last_created_chan.side_effect = lambda: "chan"
        interp.is_task_done.return_value = True
        interp.get_read_attribute_uint32.side_effect = self._avail
        interp.read_analog_f64.side_effect = self._read
        interp.read_counter_f64_ex.side_effect = self._read
        interp.read_digital_u32.side_effect = self._read

    def handle_of(self, method: str) -> str:
        """The task handle the (first) call of a channel-creating method went to."""
        return getattr(self.interp, method).call_args_list[0].args[0]

    def feed(self, handle: str, samples: np.ndarray) -> None:
        self.pending.setdefault(handle, []).append(np.atleast_2d(samples))

    def _avail(self, handle: str, attribute: int) -> int:
        assert attribute == AVAIL_SAMP_PER_CHAN
        return sum(b.shape[1] for b in self.pending.get(handle, []))

    def _read(self, handle, n, timeout, fill_mode, out):
        assert timeout == 0.0, "reads must never wait"
        assert fill_mode == FillMode.GROUP_BY_CHANNEL.value
        data = np.concatenate(self.pending.pop(handle), axis=1)
        assert data.shape[1] == n
        out.reshape(data.shape)[...] = data
        return out, n

    def calls(self, method: str) -> list[mock._Call]:
        return getattr(self.interp, method).call_args_list


@pytest.fixture
def daq(monkeypatch: pytest.MonkeyPatch) -> FakeDaq:
    interp = mock.create_autospec(LibraryInterpreter, instance=True)
    monkeypatch.setattr(nidaqmx.utils, "_select_interpreter", lambda *a, **k: interp)
    yield FakeDaq(interp)
    assert len(SESSIONS) == 0, "a test left a device session open"


@pytest.fixture
def ctx() -> DriverContext:
    return DriverContext(clock=VirtualClock())


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


def test_package_imports_and_errors_clearly_without_nidaqmx(monkeypatch, ctx) -> None:
    monkeypatch.setitem(sys.modules, "nidaqmx", None)  # `import nidaqmx` now raises ImportError
    valve = NidaqValve(NidaqValve.Params(), ctx)  # constructing needs no nidaqmx
    with pytest.raises(NidaqUnavailable, match=r"corridor-rig\[daq\]"):
        valve.open()
    assert not valve.self_test()[0].ok


def test_missing_ni_driver_gives_an_install_hint(monkeypatch, ctx) -> None:
    def no_library(*a, **k):
        raise DaqNotFoundError("Could not find an installation of NI-DAQmx.")

    monkeypatch.setattr(nidaqmx.utils, "_select_interpreter", no_library)
    with pytest.raises(NidaqUnavailable, match="install the NI-DAQmx driver"):
        NidaqLick(NidaqLick.Params(), ctx).open()
    assert len(SESSIONS) == 0


def test_unknown_device_lists_the_devices_found(daq, ctx) -> None:
    with pytest.raises(NidaqConfigError, match=r"'Dev7' not found; devices found: Dev1, Dev2"):
        NidaqLick(NidaqLick.Params(device="Dev7"), ctx).open()


def test_unknown_channel_lists_the_device_channels(daq, ctx) -> None:
    daq.interp.create_ai_voltage_chan.side_effect = DaqError("Physical channel specified does not exist.", -200170)
    lick = NidaqLick(NidaqLick.Params(channel="ai9"), ctx)
    with pytest.raises(NidaqConfigError, match=r"Dev1/ai9.*ai channels on Dev1: Dev1/ai0, Dev1/ai1"):
        lick.open()
    assert not lick.is_open
    daq.interp.clear_task.assert_called_once()  # the half-built session was cleared


# ---- the clocked inputs -------------------------------------------------------------------------------


def test_encoder_is_an_x4_counter_on_the_ai_sample_clock(daq, ctx) -> None:
    ball = NidaqBall(ball_params(a_terminal="PFI8"), ctx)
    with ball:
        ci = daq.handle_of("create_ci_ang_encoder_chan")
        daq.interp.create_ci_ang_encoder_chan.assert_called_once_with(
            ci, "Dev1/ctr0", "", EncoderType.X_4.value, False, 0, EncoderZIndexPhase.AHIGH_BHIGH.value,
            AngleUnits.TICKS.value, 1024, 0.0, "",
        )
        daq.interp.set_chan_attribute_string.assert_called_once_with(ci, "chan", mock.ANY, "/Dev1/PFI8")
        daq.interp.start_task.assert_not_called()  # tasks start on the first read
        assert len(ball.read().counts) == 0
        # No analog role: one AI channel is sampled only to run the clock.
        ai = daq.handle_of("create_ai_voltage_chan")
        assert daq.calls("create_ai_voltage_chan")[0].args[1] == "Dev1/ai0"
        assert daq.calls("cfg_samp_clk_timing") == [
            mock.call(ai, 1000.0, "", Edge.RISING.value, AcquisitionType.CONTINUOUS.value, 10000),
            mock.call(ci, 1000.0, SAMPLE_CLOCK, Edge.RISING.value, AcquisitionType.CONTINUOUS.value, 10000),
        ]
        assert daq.calls("start_task") == [mock.call(ci), mock.call(ai)]  # the follower waits for the clock


def test_encoder_counts_become_increments_and_cm(daq, ctx) -> None:
    ball = NidaqBall(ball_params(), ctx)
    with ball:
        ball.read()
        ci = daq.handle_of("create_ci_ang_encoder_chan")
        daq.feed(ci, np.array([0.0, 4.0, 8.0, 8.0, 5.0]))
        daq.feed(ci, np.array([9.0, 4105.0]))  # two buffers in one read
        s = ball.read()
        assert s.counts.tolist() == [0, 4, 4, 0, -3, 4, 4096]
        np.testing.assert_allclose(s.t, np.arange(7) / 1000.0)
        daq.feed(ci, np.array([4105.0, 4000.0]))
        s2 = ball.read()
        assert s2.counts.tolist() == [0, -105]
        np.testing.assert_allclose(s2.t, [0.007, 0.008])
        # 4 counts per pulse, 1024 pulses per turn of a 20 cm ball
        assert ball.counts_per_cm == pytest.approx(4 * 1024 / (np.pi * 20.0))
        total_cm = (s.counts.sum() + s2.counts.sum()) / ball.counts_per_cm
        assert total_cm == pytest.approx(4000 / ball.counts_per_cm)


def test_a_read_with_nothing_available_does_not_call_read(daq, ctx) -> None:
    with NidaqLick(NidaqLick.Params(), ctx) as lick:
        assert lick.read() == []
        assert lick.read() == []
        daq.interp.read_analog_f64.assert_not_called()


def test_lick_hysteresis_in_volts_across_reads(daq, ctx) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai1", low_v=1.0, high_v=2.0, terminal="DIFF"), ctx)
    with lick:
        ai = daq.handle_of("create_ai_voltage_chan")
        daq.interp.create_ai_voltage_chan.assert_called_once_with(
            ai, "Dev1/ai1", "", TerminalConfiguration.DIFF.value, -10.0, 10.0, VoltageUnits.VOLTS.value, ""
        )
        lick.read()
        # Noise inside the 1-2 V band makes no edge; contact at sample 3, release at sample 8 (next read).
        daq.feed(ai, np.array([0.2, 1.5, 1.9, 2.4, 3.0, 1.6, 2.1]))
        first = lick.read()
        daq.feed(ai, np.array([1.2, 0.8, 0.1, 1.9, 0.3]))
        second = lick.read()
    assert [(e.onset) for e in first] == [True]
    assert [(e.onset) for e in second] == [False]
    # contact when the signal passes 2 V, release when it passes 1 V, interpolated between samples
    assert first[0].t == pytest.approx(0.0022)
    assert second[0].t == pytest.approx(0.0075)


def test_active_low_digital_lick_line(daq, ctx) -> None:
    lick = NidaqLick(NidaqLick.Params(mode="digital", channel="port0/line1", active_high=False), ctx)
    with lick:
        di = daq.handle_of("create_di_chan")
        assert daq.calls("create_di_chan")[0].args[1] == "Dev1/port0/line1"
        lick.read()
        daq.feed(di, np.array([2, 2, 0, 0, 2], dtype=np.uint32))  # idle high; contact pulls it low
        edges = lick.read()
    assert [(e.t, e.onset) for e in edges] == [(0.002, True), (0.004, False)]


def frame_clock_trace(rate: float, edges_s: list[float], n: int) -> np.ndarray:
    """A 5 V TTL that falls to 0 V at each edge time (with a 1-sample ramp) and rises 2 ms later."""
    t = np.arange(n) / rate
    v = np.full(n, 5.0)
    for e in edges_s:
        v = np.minimum(v, np.clip((t - e) * rate * -5.0 + 2.5, 0.0, 5.0) + (t > e + 0.002) * 5.0)
    return v


def test_frame_edges_falling_through_2_5_volts(daq, ctx) -> None:
    rate = 5000.0
    fc = NidaqFrameClock(NidaqFrameClock.Params(channel="ai2", sample_rate_hz=rate), ctx)
    true_edges = [0.01031, 0.32582, 0.64127]
    trace = frame_clock_trace(rate, true_edges, 4000)
    with fc:
        fc.read()
        ai = daq.handle_of("create_ai_voltage_chan")
        daq.feed(ai, trace[:1700])
        got = list(fc.read())
        daq.feed(ai, trace[1700:])
        got += list(fc.read())
    np.testing.assert_allclose(got, true_edges, atol=0.1 / rate)


def test_frame_clock_idle_level_is_not_a_frame(daq, ctx) -> None:
    fc = NidaqFrameClock(NidaqFrameClock.Params(), ctx)
    with fc:
        fc.read()
        ai = daq.handle_of("create_ai_voltage_chan")
        daq.feed(ai, np.zeros(50))  # a line idling low (microscope off)
        assert len(fc.read()) == 0
        daq.feed(ai, np.r_[np.full(5, 5.0), np.zeros(5)])
        assert fc.read().tolist() == pytest.approx([0.0545])


def test_frame_clock_as_a_counter_on_the_shared_clock(daq, ctx) -> None:
    fc = NidaqFrameClock(NidaqFrameClock.Params(mode="counter", channel="ctr2", terminal="PFI0"), ctx)
    with fc:
        ci = daq.handle_of("create_ci_count_edges_chan")
        daq.interp.create_ci_count_edges_chan.assert_called_once_with(
            ci, "Dev1/ctr2", "", Edge.FALLING.value, 0, mock.ANY
        )
        fc.read()
        assert daq.calls("cfg_samp_clk_timing")[1].args[:3] == (ci, 1000.0, SAMPLE_CLOCK)
        daq.feed(ci, np.array([0.0, 0.0, 1.0, 1.0, 3.0]))
        assert fc.read().tolist() == pytest.approx([0.002, 0.004, 0.004])


def test_roles_share_one_ai_task_and_one_timebase(daq, ctx) -> None:
    lick = NidaqLick(NidaqLick.Params(channel="ai1"), ctx)
    fc = NidaqFrameClock(NidaqFrameClock.Params(channel="ai2"), ctx)
    ball = NidaqBall(ball_params(), ctx)
    lick.open()
    fc.open()
    ball.open()
    assert len(SESSIONS) == 1
    ai_calls = daq.calls("create_ai_voltage_chan")
    assert [c.args[1] for c in ai_calls] == ["Dev1/ai1", "Dev1/ai2"]
    assert ai_calls[0].args[0] == ai_calls[1].args[0]  # one task
    ai = ai_calls[0].args[0]
    ball.read()
    ctx.clock.wait_until(2.0)
    lick.read()
    assert lick.clock is fc.clock is ball.clock  # one ClockMap from the session
    daq.feed(ai, np.array([[0.0, 3.0, 3.0, 0.0], [5.0, 5.0, 0.0, 0.0]]))  # rows: lick, frame clock
    assert [(e.t, e.onset) for e in lick.read()] == [
        (pytest.approx(2 / 3 / 1000), True), (pytest.approx((2 + 2 / 3) / 1000), False)
    ]
    assert fc.read().tolist() == [pytest.approx(0.0015)]  # frame clock got its row though lick read first
    # Reference counting: closing two roles leaves the session's tasks running for the third.
    lick.close()
    fc.close()
    daq.interp.clear_task.assert_not_called()
    ball.close()
    assert {c.args[0] for c in daq.calls("clear_task")} == {ai, daq.handle_of("create_ci_ang_encoder_chan")}


def test_clock_map_offset_is_the_session_time_of_the_first_read(daq, ctx) -> None:
    with NidaqLick(NidaqLick.Params(), ctx) as lick:
        ctx.clock.wait_until(3.25)
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
    a = NidaqLick(NidaqLick.Params(), DriverContext(clock=VirtualClock()))
    b = NidaqLick(NidaqLick.Params(), DriverContext(clock=VirtualClock()))
    with a, b:
        assert len(SESSIONS) == 2


# ---- outputs ------------------------------------------------------------------------------------------


def test_valve_pulse_is_a_rearmed_counter_pulse_of_exact_width(daq, ctx) -> None:
    valve = NidaqValve(NidaqValve.Params(counter="ctr1", output_terminal="PFI12", max_open_ms=200), ctx)
    with valve:
        co = daq.handle_of("create_co_pulse_chan_time")
        daq.interp.create_co_pulse_chan_time.assert_called_once_with(
            co, "Dev1/ctr1", "", TimeUnits.SECONDS.value, Level.LOW.value, 0.0, 0.001, 0.001
        )
        daq.interp.set_chan_attribute_string.assert_called_once_with(co, "chan", mock.ANY, "/Dev1/PFI12")
        daq.interp.reset_mock()
        valve.pulse(40.0)
        assert daq.interp.mock_calls == [
            mock.call.stop_task(co),
            mock.call.set_chan_attribute_double(co, "chan", CO_PULSE_HIGH_TIME, 0.04),
            mock.call.start_task(co),
        ]
        valve.pulse(1000.0)  # longer than max_open_ms: cut to it
        assert daq.calls("set_chan_attribute_double")[-1].args[3] == pytest.approx(0.2)
        valve.pulse(0)
        assert len(daq.calls("start_task")) == 2
        with pytest.raises(ValueError, match="finite number"):
            valve.pulse(float("nan"))
        valve.open_valve()  # no manual line: one pulse of max_open_ms
        assert daq.calls("set_chan_attribute_double")[-1].args[3] == pytest.approx(0.2)
    daq.interp.clear_task.assert_called_once_with(co)


def test_manual_open_uses_a_watchdog_that_closes_the_line_in_hardware(daq, ctx) -> None:
    valve = NidaqValve(NidaqValve.Params(manual_line="port0/line0", max_open_ms=750), ctx)
    with valve:
        wd = daq.calls("create_watchdog_timer_task_ex")[0]
        assert wd.args == ("Dev1", "", 0.75)
        expiry = daq.calls("cfg_watchdog_do_expir_states")[0].args
        assert expiry[1] == "Dev1/port0/line0" and expiry[2].tolist() == [Level.LOW.value]
        do = daq.handle_of("create_do_chan")
        assert daq.calls("write_digital_lines")[-1].args[0] == do
        assert daq.calls("write_digital_lines")[-1].args[5].tolist() == [False]  # starts closed
        valve.open_valve()
        daq.interp.start_task.assert_called_with(expiry[0])  # the watchdog timer runs
        assert daq.calls("write_digital_lines")[-1].args[5].tolist() == [True]
        valve.close_valve()
        assert daq.calls("write_digital_lines")[-1].args[5].tolist() == [False]
        daq.interp.stop_task.assert_any_call(expiry[0])


def test_cue_writes_a_tone_and_starts_a_finite_generation(daq, ctx) -> None:
    cue = NidaqCue(NidaqCue.Params(channel="ao0", sample_rate_hz=20000, amplitude_v=0.5), ctx)
    with cue:
        ao = daq.handle_of("create_ao_voltage_chan")
        daq.interp.create_ao_voltage_chan.assert_called_once_with(
            ao, "Dev1/ao0", "", -0.5, 0.5, VoltageUnits.VOLTS.value, ""
        )
        cue.play(100.0, 4000.0)
        daq.interp.cfg_samp_clk_timing.assert_called_once_with(
            ao, 20000.0, "", Edge.RISING.value, AcquisitionType.FINITE.value, 2000
        )
        w = daq.calls("write_analog_f64")[0].args
        assert w[:5] == (ao, 2000, False, 1.0, FillMode.GROUP_BY_CHANNEL.value)
        wave = w[5]
        assert 0.45 < np.max(np.abs(wave)) <= 0.5 and wave[0] == 0 and wave[-1] == 0  # within the AO range
        spectrum = np.abs(np.fft.rfft(wave))
        assert np.argmax(spectrum) * 20000 / len(wave) == pytest.approx(4000, abs=10)
        daq.interp.start_task.assert_called_once_with(ao)
        with pytest.raises(ValueError, match="sample_rate_hz"):
            cue.play(100.0, 15000.0)


def test_trigger_cue_is_a_counter_pulse(daq, ctx) -> None:
    with NidaqCue(NidaqCue.Params(mode="trigger", channel="ctr2"), ctx) as cue:
        cue.play(150.0, 4000.0)
        co = daq.handle_of("create_co_pulse_chan_time")
        assert daq.calls("create_co_pulse_chan_time")[0].args[1] == "Dev1/ctr2"
        daq.interp.set_chan_attribute_double.assert_called_once_with(co, "chan", CO_PULSE_HIGH_TIME, 0.15)
        daq.interp.start_task.assert_called_once_with(co)


def test_self_test_reports_present_and_missing_channels(daq, ctx) -> None:
    ok = NidaqLick(NidaqLick.Params(channel="ai1"), ctx).self_test()
    assert [r.ok for r in ok] == [True]
    bad = NidaqLick(NidaqLick.Params(channel="ai7"), ctx).self_test()
    assert not bad[0].ok and "Dev1/ai7 is not a ai channel of Dev1" in bad[0].message
    gone = NidaqLick(NidaqLick.Params(device="Dev9"), ctx).self_test()
    assert not gone[0].ok and "devices found: Dev1, Dev2" in gone[0].message


# ---- sync output --------------------------------------------------------------------------------------


def test_sync_pulse_is_a_counter_pulse_timed_on_the_shared_clock(daq, ctx) -> None:
    lick = NidaqLick(NidaqLick.Params(), ctx)
    sync = NidaqSync(NidaqSync.Params(counter="ctr3", output_terminal="PFI15", width_ms=10), ctx)
    assert isinstance(sync, SyncOutput)
    with lick, sync:
        co = daq.handle_of("create_co_pulse_chan_time")
        daq.interp.create_co_pulse_chan_time.assert_called_once_with(
            co, "Dev1/ctr3", "", TimeUnits.SECONDS.value, Level.LOW.value, 0.0, 0.001, 0.001
        )
        daq.interp.set_chan_attribute_string.assert_called_once_with(co, "chan", mock.ANY, "/Dev1/PFI15")
        ctx.clock.wait_until(2.0)
        lick.read()  # the shared clock starts: device time 0 = session time 2.0
        ctx.clock.wait_until(3.5)
        daq.interp.reset_mock()
        assert sync.pulse() == pytest.approx(1.5)
        assert daq.interp.mock_calls == [
            mock.call.stop_task(co),
            mock.call.set_chan_attribute_double(co, "chan", CO_PULSE_HIGH_TIME, 0.01),
            mock.call.start_task(co),
        ]
        ctx.clock.wait_until(5.25)
        sync.pulse()
        daq.interp.is_task_done.assert_called_once_with(co)  # re-armed: checks the previous pulse ended
        got = sync.read()
        np.testing.assert_allclose(got, [1.5, 3.25])
        assert sync.clock is lick.clock
        np.testing.assert_allclose(sync.clock.to_session(got), [3.5, 5.25])
        assert sync.read().size == 0  # each pulse is read once
    assert co in {c.args[0] for c in daq.calls("clear_task")}


def test_sync_alone_times_pulses_on_the_session_clock(daq, ctx) -> None:
    with NidaqSync(NidaqSync.Params(), ctx) as sync:
        ctx.clock.wait_until(0.75)
        sync.pulse()
        np.testing.assert_allclose(sync.read(), [0.75])
        assert sync.clock == ClockMap()
        daq.interp.create_ai_voltage_chan.assert_not_called()  # no clocked input: no clock task either
        assert (sync.min_interval_s, sync.max_interval_s) == (1.0, 5.0)


def test_sync_params_are_checked_and_pulse_needs_open(ctx) -> None:
    with pytest.raises(ValueError, match="max_interval_s"):
        NidaqSync.Params(min_interval_s=2.0, max_interval_s=1.0)
    with pytest.raises(ValueError, match="width_ms"):
        NidaqSync.Params(width_ms=500, min_interval_s=0.2)
    with pytest.raises(RuntimeError, match="not open"):
        NidaqSync(NidaqSync.Params(), ctx).pulse()


# ---- clock fit ----------------------------------------------------------------------------------------


def test_clock_map_follows_a_50_ppm_drift_through_the_reads(daq, ctx) -> None:
    rate, drift, start = 200.0, 50e-6, 1.0
    rng = np.random.default_rng(3)
    lick = NidaqLick(NidaqLick.Params(sample_rate_hz=rate), ctx)
    maps = []
    with lick:
        ctx.clock.wait_until(start)
        lick.read()
        ai = daq.handle_of("create_ai_voltage_chan")
        fed = 0
        for k in range(1, 3001):  # 150 s of reads every 50 ms
            newest = 10 * k  # index + 1 of the newest sample in this read
            daq.feed(ai, np.zeros((1, newest - fed)))
            fed = newest
            latency = min(0.0003 + rng.exponential(0.003), 0.04)  # the read comes after its sample
            ctx.clock.wait_until(start + (1 + drift) * (newest - 1) / rate + latency)
            lick.read()
            if not maps or lick.clock != maps[-1]:
                maps.append(lick.clock)
        m = lick.clock
    assert m.scale == pytest.approx(1 + drift, abs=2e-6)
    t_dev = (fed - 1) / rate
    err = m.to_session(t_dev) - (start + (1 + drift) * t_dev)
    assert 0 <= err < 0.001  # late by at most the minimum latency; without the fit it would be 7.5 ms
    assert len(maps) <= 151  # refit at most once a second of host time


def test_clock_fit_is_offset_only_until_the_pairs_span_min_span_then_a_line_under_them() -> None:
    fit = ClockFit(ClockMap(offset=10.0), refit_s=0.0, min_span_s=5.0)
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
    fit = ClockFit(ClockMap(offset=0.0), refit_s=1.0)
    assert fit.add(0.005, 0.0)
    assert not fit.add(0.5, 0.499)  # better pair, but only 0.5 s since the last fit
    assert fit.map.offset == pytest.approx(0.005)
    assert fit.add(1.2, 1.1995)
    assert fit.map.offset == pytest.approx(0.0005)


def test_clock_fit_forgets_pairs_older_than_the_window() -> None:
    fit = ClockFit(ClockMap(offset=0.0), window_s=10.0, refit_s=0.0, min_span_s=1e9)  # offset only
    fit.add(0.001, 0.0)
    fit.add(5.003, 5.0)
    assert fit.map.offset == pytest.approx(0.001)
    fit.add(20.003, 20.0)  # the 1 ms pairs are more than 10 s older: the offset follows the newer ones
    assert fit.map.offset == pytest.approx(0.003)


def test_clock_fit_rejects_an_impossible_rate_and_keeps_the_scale() -> None:
    fit = ClockFit(ClockMap(offset=0.0), refit_s=0.0, min_span_s=1.0)
    for d in range(5):
        fit.add(1.01 * d, float(d))  # 1 % rate error: not a crystal
    assert fit.map.scale == 1.0
    assert fit.map.offset == 0.0
