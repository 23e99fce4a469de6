"""The fake nidaqmx models what the driver's safety and timing depend on: task completion on the clock,
channel kinds, resource reservation, buffer overflow stopping the clock, and the watchdog. Used through
its nidaqmx-facing API, as the driver uses nidaqmx."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.nidaq.fake import FakeNidaqmx, ManualClock
from drivers.nidaq.fake.namespaces import AcquisitionType, DaqError, DAQmxErrors, DOExpirationState, Level
from drivers.nidaq.limits import WATCHDOG_MAX_S


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def nd(clock: ManualClock) -> FakeNidaqmx:
    return FakeNidaqmx(clock)


def code(err: pytest.ExceptionInfo[DaqError]) -> DAQmxErrors:
    return DAQmxErrors(err.value.error_code)


def test_a_single_pulse_task_is_done_only_after_its_high_time(nd, clock) -> None:
    task = nd.Task()
    ch = task.co_channels.add_co_pulse_chan_time("Dev1/ctr1", high_time=0.001, low_time=0.001)
    ch.co_pulse_high_time = 0.1
    assert task.is_task_done()  # not started
    task.start()
    clock.advance(0.05)
    assert not task.is_task_done()
    clock.advance(0.05)
    assert task.is_task_done()
    with pytest.raises(DaqError) as err:
        task.start()  # a finished single pulse must be stopped before it starts again
    assert code(err) is DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING
    task.stop()
    task.start()
    clock.advance(0.03)
    task.stop()  # cuts the second pulse
    task.close()
    assert nd.device().high_intervals("PFI13") == [(0.0, pytest.approx(0.1)), (pytest.approx(0.1), pytest.approx(0.13))]


def test_channel_kinds_are_checked(nd) -> None:
    task = nd.Task()
    with pytest.raises(DaqError) as err:
        task.ai_channels.add_ai_voltage_chan("Dev1/ctr0")
    assert code(err) is DAQmxErrors.INVALID_PHYS_CHAN_TYPE
    with pytest.raises(DaqError) as err:
        task.ci_channels.add_ci_count_edges_chan("Dev1/ctr9")
    assert code(err) is DAQmxErrors.PHYSICAL_CHAN_DOES_NOT_EXIST
    task.ci_channels.add_ci_count_edges_chan("Dev1/ctr0")
    with pytest.raises(DaqError) as err:
        task.di_channels.add_di_chan("Dev1/port0/line0")
    assert code(err) is DAQmxErrors.MULTI_CHAN_TYPES_IN_TASK
    task.timing.cfg_samp_clk_timing(1000.0, source="/Dev1/PFI0", sample_mode=AcquisitionType.CONTINUOUS)
    task.start()
    with pytest.raises(DaqError) as err:
        nd.stream_readers.AnalogMultiChannelReader(task.in_stream).read_many_sample(np.zeros((1, 1)), 0, 0.0)
    assert code(err) is DAQmxErrors.READ_CHAN_TYPE_MISMATCH
    with pytest.raises(TypeError, match="TerminalConfiguration"):
        nd.Task().ai_channels.add_ai_voltage_chan("Dev1/ai0", terminal_config="RSE")
    task.close()


def test_a_counter_is_reserved_by_the_running_task_that_uses_it(nd) -> None:
    a, b = nd.Task(), nd.Task()
    a.co_channels.add_co_pulse_chan_time("Dev1/ctr1")
    b.ci_channels.add_ci_count_edges_chan("Dev1/ctr1")
    b.timing.cfg_samp_clk_timing(1000.0, source="/Dev1/PFI0", sample_mode=AcquisitionType.CONTINUOUS)
    a.start()
    with pytest.raises(DaqError) as err:
        b.start()
    assert code(err) is DAQmxErrors.PAL_RESOURCE_RESERVED
    a.stop()
    b.start()
    a.close()
    b.close()


def test_an_undrained_clock_task_overflows_and_stops_the_clock_its_followers_use(nd, clock) -> None:
    ai, ci = nd.Task(), nd.Task()
    ai.ai_channels.add_ai_voltage_chan("Dev1/ai0")
    ai.timing.cfg_samp_clk_timing(1000.0, sample_mode=AcquisitionType.CONTINUOUS, samps_per_chan=1000)
    ci.ci_channels.add_ci_ang_encoder_chan("Dev1/ctr0")
    ci.timing.cfg_samp_clk_timing(1000.0, source="/Dev1/ai/SampleClock", sample_mode=AcquisitionType.CONTINUOUS,
                                  samps_per_chan=100_000)
    ci.start()
    ai.start()
    reader = nd.stream_readers.CounterReader(ci.in_stream)
    got = 0
    for _ in range(30):  # 3 s, reading the follower only
        clock.advance(0.1)
        n = ci.in_stream.avail_samp_per_chan
        got += reader.read_many_sample_double(np.zeros(n), n, 0.0)
    assert got == 1000  # the clock stopped when the AI buffer (1000 samples) was full
    with pytest.raises(DaqError) as err:
        _ = ai.in_stream.avail_samp_per_chan
    assert code(err) is DAQmxErrors.SAMPLES_NO_LONGER_AVAILABLE
    ai.close()
    ci.close()


def test_an_expired_watchdog_holds_its_line_until_the_expiration_is_cleared(nd, clock) -> None:
    do = nd.Task()
    do.do_channels.add_do_chan("Dev1/port0/line0")
    writer = nd.stream_writers.DigitalSingleChannelWriter(do.out_stream, auto_start=True)
    wd = nd.system.watchdog.WatchdogTask("Dev1", timeout=0.5)
    wd.cfg_watchdog_do_expir_states([DOExpirationState("Dev1/port0/line0", Level.LOW)])
    wd.start()
    writer.write_one_sample_one_line(True)
    clock.advance(1.0)
    assert wd.expired
    writer.write_one_sample_one_line(True)  # ignored: the expired watchdog holds the line
    wd.clear_expiration()
    clock.advance(1.0)
    writer.write_one_sample_one_line(True)
    wd.close()
    do.close()
    assert nd.device().high_intervals("port0/line0") == [(0.0, 0.5), (2.0, np.inf)]
    with pytest.raises(DaqError) as err:
        nd.system.watchdog.WatchdogTask("Dev1", timeout=WATCHDOG_MAX_S + 0.01)
    assert code(err) is DAQmxErrors.INVALID_ATTRIBUTE_VALUE


def test_the_fake_refuses_attributes_nidaqmx_lacks(nd) -> None:
    task = nd.Task()
    ch = task.co_channels.add_co_pulse_chan_time("Dev1/ctr1")
    with pytest.raises(AttributeError, match="co_pulse_hightime"):
        ch.co_pulse_hightime = 0.1
    with pytest.raises(AttributeError, match="avail_samp_per_chan"):
        task.in_stream.avail_samp_per_chan = 3  # read-only in nidaqmx too
    with pytest.raises(TypeError):
        task.co_channels.add_co_pulse_chan_time("Dev1/ctr2", high=0.1)
    task.close()
