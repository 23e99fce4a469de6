"""The fake's nidaqmx-facing classes: Task, its channel collections, channels, timing, triggers and
streams, the stream readers and writers, and nidaqmx.system (System, Device, WatchdogTask).

Each class stands for the nidaqmx class named in its `REAL` and offers only members that class has,
with the same parameter names, order and defaults (tests/drivers/nidaq/test_nidaq_api.py checks this
against the installed package). Setting an attribute the class does not have is an error, so driver
code cannot silently set a property name that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from drivers.nidaq.fake.hardware import ChannelState, FakeHardware, TaskState, WatchdogState
from drivers.nidaq.fake.namespaces import (
    AcquisitionType,
    AngleUnits,
    CountDirection,
    DAQmxErrors,
    DaqNotFoundError,
    DOExpirationState,
    Edge,
    EncoderType,
    EncoderZIndexPhase,
    LengthUnits,
    Level,
    LineGrouping,
    TerminalConfiguration,
    TimeUnits,
    TriggerType,
    VoltageUnits,
    daq_error,
)


class Strict:
    """Refuses to set a public attribute that is not a settable property of the class."""

    REAL: ClassVar[str] = ""

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            prop = getattr(type(self), name, None)
            if not isinstance(prop, property) or prop.fset is None:
                raise AttributeError(f"fake {type(self).__name__} has no settable attribute {name!r} "
                                     f"(nor has {self.REAL})")
        object.__setattr__(self, name, value)


def _enum(value: Any, kind: type, arg: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{arg} must be a {kind.__name__}, got {value!r}")
    return value


def _not_running(state: TaskState, what: str) -> None:
    if state.running:
        raise daq_error(DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING, f"cannot {what} while the task runs",
                        state.name)


# ---- tasks ---------------------------------------------------------------------------------------------


class Task(Strict):
    REAL = "nidaqmx.task.Task"
    _hw: ClassVar[FakeHardware]  # set on the per-fake subclass (FakeNidaqmx.Task)

    def __init__(self, new_task_name: str = "", *, grpc_options: Any = None) -> None:
        hw = self._hw
        if not hw.driver_installed:
            raise DaqNotFoundError("Could not find an installation of NI-DAQmx. (fake)")
        self._state = TaskState(hw, new_task_name or f"_unnamedTask<{len(hw.tasks)}>")
        hw.tasks.append(self._state)

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def ai_channels(self) -> AIChannelCollection:
        return AIChannelCollection(self._state)

    @property
    def ao_channels(self) -> AOChannelCollection:
        return AOChannelCollection(self._state)

    @property
    def di_channels(self) -> DIChannelCollection:
        return DIChannelCollection(self._state)

    @property
    def do_channels(self) -> DOChannelCollection:
        return DOChannelCollection(self._state)

    @property
    def ci_channels(self) -> CIChannelCollection:
        return CIChannelCollection(self._state)

    @property
    def co_channels(self) -> COChannelCollection:
        return COChannelCollection(self._state)

    @property
    def timing(self) -> Timing:
        return Timing(self._state)

    @property
    def triggers(self) -> Triggers:
        return Triggers(self._state)

    @property
    def in_stream(self) -> InStream:
        return InStream(self._state)

    @property
    def out_stream(self) -> OutStream:
        return OutStream(self._state)

    def start(self) -> None:
        self._state.start()

    def stop(self) -> None:
        self._state.stop()

    def close(self) -> None:
        self._state.close()

    def is_task_done(self) -> bool:
        return self._state.is_done()

    def __enter__(self) -> Task:
        return self

    def __exit__(self, type: Any, value: Any, traceback: Any) -> None:
        self.close()


C = TypeVar("C", bound="Channel")


class _Collection(Strict):
    def __init__(self, state: TaskState) -> None:
        self._state = state

    def _add(self, kind: str, physical: str, method: str, args: dict[str, Any], channel: type[C]) -> C:
        dev = self._state.daq.device_of(physical)
        ch = ChannelState(kind, dev.physical(physical, kind), method, args)
        self._state.add(ch)
        return channel(self._state, ch)


class AIChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.AIChannelCollection"

    def add_ai_voltage_chan(
        self, physical_channel: str, name_to_assign_to_channel: str = "",
        terminal_config: TerminalConfiguration = TerminalConfiguration.DEFAULT, min_val: float = -5.0,
        max_val: float = 5.0, units: VoltageUnits = VoltageUnits.VOLTS, custom_scale_name: str = "",
    ) -> AIChannel:
        _enum(terminal_config, TerminalConfiguration, "terminal_config")
        _enum(units, VoltageUnits, "units")
        if not min_val < max_val:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, f"min_val {min_val} must be below max_val {max_val}")
        args = {"terminal_config": terminal_config, "min_val": float(min_val), "max_val": float(max_val)}
        return self._add("ai", physical_channel, "add_ai_voltage_chan", args, AIChannel)


class AOChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.AOChannelCollection"

    def add_ao_voltage_chan(
        self, physical_channel: str, name_to_assign_to_channel: str = "", min_val: float = -10.0,
        max_val: float = 10.0, units: VoltageUnits = VoltageUnits.VOLTS, custom_scale_name: str = "",
    ) -> AOChannel:
        _enum(units, VoltageUnits, "units")
        args = {"min_val": float(min_val), "max_val": float(max_val)}
        return self._add("ao", physical_channel, "add_ao_voltage_chan", args, AOChannel)


class DIChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.DIChannelCollection"

    def add_di_chan(self, lines: str, name_to_assign_to_lines: str = "",
                    line_grouping: LineGrouping = LineGrouping.CHAN_FOR_ALL_LINES) -> DIChannel:
        _enum(line_grouping, LineGrouping, "line_grouping")
        return self._add("di", lines, "add_di_chan", {"line_grouping": line_grouping}, DIChannel)


class DOChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.DOChannelCollection"

    def add_do_chan(self, lines: str, name_to_assign_to_lines: str = "",
                    line_grouping: LineGrouping = LineGrouping.CHAN_FOR_ALL_LINES) -> DOChannel:
        _enum(line_grouping, LineGrouping, "line_grouping")
        return self._add("do", lines, "add_do_chan", {"line_grouping": line_grouping}, DOChannel)


class CIChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.CIChannelCollection"

    def add_ci_ang_encoder_chan(
        self, counter: str, name_to_assign_to_channel: str = "", decoding_type: EncoderType = EncoderType.X_4,
        zidx_enable: bool = False, zidx_val: float = 0, zidx_phase: EncoderZIndexPhase = EncoderZIndexPhase.AHIGH_BHIGH,
        units: AngleUnits = AngleUnits.DEGREES, pulses_per_rev: int = 24, initial_angle: float = 0.0,
        custom_scale_name: str = "",
    ) -> CIChannel:
        _enum(decoding_type, EncoderType, "decoding_type")
        _enum(zidx_phase, EncoderZIndexPhase, "zidx_phase")
        _enum(units, AngleUnits, "units")
        args = {"decoding_type": decoding_type, "units": units, "pulses_per_rev": int(pulses_per_rev)}
        return self._add("ci", counter, "add_ci_ang_encoder_chan", args, CIChannel)

    def add_ci_lin_encoder_chan(
        self, counter: str, name_to_assign_to_channel: str = "", decoding_type: EncoderType = EncoderType.X_4,
        zidx_enable: bool = False, zidx_val: float = 0, zidx_phase: EncoderZIndexPhase = EncoderZIndexPhase.AHIGH_BHIGH,
        units: LengthUnits = LengthUnits.METERS, dist_per_pulse: float = 0.001, initial_pos: float = 0.0,
        custom_scale_name: str = "",
    ) -> CIChannel:
        _enum(decoding_type, EncoderType, "decoding_type")
        _enum(zidx_phase, EncoderZIndexPhase, "zidx_phase")
        _enum(units, LengthUnits, "units")
        args = {"decoding_type": decoding_type, "units": units, "dist_per_pulse": float(dist_per_pulse)}
        return self._add("ci", counter, "add_ci_lin_encoder_chan", args, CIChannel)

    def add_ci_count_edges_chan(
        self, counter: str, name_to_assign_to_channel: str = "", edge: Edge = Edge.RISING, initial_count: int = 0,
        count_direction: CountDirection = CountDirection.COUNT_UP,
    ) -> CIChannel:
        _enum(edge, Edge, "edge")
        _enum(count_direction, CountDirection, "count_direction")
        args = {"edge": edge, "initial_count": int(initial_count), "count_direction": count_direction}
        return self._add("ci", counter, "add_ci_count_edges_chan", args, CIChannel)


class COChannelCollection(_Collection):
    REAL = "nidaqmx.task.collections.COChannelCollection"

    def add_co_pulse_chan_time(
        self, counter: str, name_to_assign_to_channel: str = "", units: TimeUnits = TimeUnits.SECONDS,
        idle_state: Level = Level.LOW, initial_delay: float = 0.0, low_time: float = 0.01, high_time: float = 0.01,
    ) -> COChannel:
        _enum(units, TimeUnits, "units")
        _enum(idle_state, Level, "idle_state")
        args = {"idle_state": idle_state, "initial_delay": float(initial_delay), "low_time": float(low_time),
                "high_time": float(high_time)}
        return self._add("co", counter, "add_co_pulse_chan_time", args, COChannel)


# ---- channels ------------------------------------------------------------------------------------------


class Channel(Strict):
    REAL = "nidaqmx.task.channels.Channel"

    def __init__(self, task: TaskState, state: ChannelState) -> None:
        self._task = task
        self._ch = state

    def _terminal(self, prop: str, value: str) -> None:
        self._ch.props[prop] = self._task.daq.device_of(self._ch.physical).canonical_terminal(value)


def _terminal_property(name: str) -> property:
    """A channel's terminal attribute (a real property, as nidaqmx has): read back canonical, routed on set."""
    def get(self: Channel) -> str:
        return str(self._ch.props.get(name, ""))

    def put(self: Channel, value: str) -> None:
        self._terminal(name, value)
    return property(get, put)


class AIChannel(Channel):
    REAL = "nidaqmx.task.channels.AIChannel"


class AOChannel(Channel):
    REAL = "nidaqmx.task.channels.AOChannel"


class DIChannel(Channel):
    REAL = "nidaqmx.task.channels.DIChannel"


class DOChannel(Channel):
    REAL = "nidaqmx.task.channels.DOChannel"


class CIChannel(Channel):
    REAL = "nidaqmx.task.channels.CIChannel"

    ci_encoder_a_input_term = _terminal_property("ci_encoder_a_input_term")

    ci_encoder_b_input_term = _terminal_property("ci_encoder_b_input_term")

    ci_count_edges_term = _terminal_property("ci_count_edges_term")


class COChannel(Channel):
    REAL = "nidaqmx.task.channels.COChannel"

    co_pulse_term = _terminal_property("co_pulse_term")

    @property
    def co_pulse_high_time(self) -> float:
        return float(self._ch.props.get("co_pulse_high_time", self._ch.args["high_time"]))

    @co_pulse_high_time.setter
    def co_pulse_high_time(self, value: float) -> None:
        if not value > 0:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, f"pulse high time must be > 0, got {value}")
        self._ch.props["co_pulse_high_time"] = float(value)


# ---- timing, triggers, streams -------------------------------------------------------------------------


class Timing(Strict):
    REAL = "nidaqmx.task.Timing"

    def __init__(self, state: TaskState) -> None:
        self._state = state

    def cfg_samp_clk_timing(
        self, rate: float, source: str = "", active_edge: Edge = Edge.RISING,
        sample_mode: AcquisitionType = AcquisitionType.FINITE, samps_per_chan: int = 1000,
    ) -> None:
        st = self._state
        _not_running(st, "change the timing")
        _enum(active_edge, Edge, "active_edge")
        _enum(sample_mode, AcquisitionType, "sample_mode")
        if not rate > 0:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, f"sample clock rate must be > 0, got {rate}")
        if source:
            if not st.channels:
                raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, "add a channel before the timing")
            source = st.device.canonical_terminal(source)
        st.timing = {"rate": float(rate), "source": source, "active_edge": active_edge, "sample_mode": sample_mode,
                     "samps_per_chan": int(samps_per_chan)}


class Triggers(Strict):
    REAL = "nidaqmx.task.triggering.Triggers"

    def __init__(self, state: TaskState) -> None:
        self._state = state

    @property
    def arm_start_trigger(self) -> ArmStartTrigger:
        return ArmStartTrigger(self._state)


def _arm_property(key: str, accept: Callable[[TaskState, Any], Any]) -> property:
    """An arm-start trigger attribute: settable only while the task is not running, checked by `accept`."""
    def get(self: ArmStartTrigger) -> Any:
        return self._state.arm[key]

    def put(self: ArmStartTrigger, value: Any) -> None:
        _not_running(self._state, "change a trigger")
        self._state.arm[key] = accept(self._state, value)
    return property(get, put)


class ArmStartTrigger(Strict):
    REAL = "nidaqmx.task.triggering.ArmStartTrigger"

    def __init__(self, state: TaskState) -> None:
        self._state = state

    trig_type = _arm_property("trig_type", lambda st, v: _enum(v, TriggerType, "trig_type"))
    dig_edge_src = _arm_property("dig_edge_src", lambda st, v: st.device.canonical_terminal(v))
    dig_edge_edge = _arm_property("dig_edge_edge", lambda st, v: _enum(v, Edge, "dig_edge_edge"))


class InStream(Strict):
    REAL = "nidaqmx.task.InStream"

    def __init__(self, state: TaskState) -> None:
        self._state = state

    @property
    def avail_samp_per_chan(self) -> int:
        return self._state.available()


class OutStream(Strict):
    REAL = "nidaqmx.task.OutStream"

    def __init__(self, state: TaskState) -> None:
        self._state = state


# ---- stream readers and writers ------------------------------------------------------------------------


class _Reader(Strict):
    KIND: ClassVar[str] = ""

    def __init__(self, task_in_stream: InStream) -> None:
        if not isinstance(task_in_stream, InStream):
            raise TypeError(f"{type(self).__name__} needs a task's in_stream, got {task_in_stream!r}")
        self._state = task_in_stream._state
        self._verify = True

    @property
    def verify_array_shape(self) -> bool:
        return self._verify

    @verify_array_shape.setter
    def verify_array_shape(self, value: bool) -> None:
        self._verify = bool(value)

    def _fill(self, data: np.ndarray, n: int, timeout: float, dtype: type) -> int:
        if data.dtype != dtype:
            raise TypeError(f"{type(self).__name__} needs a {np.dtype(dtype)} array, got {data.dtype}")
        got = self._state.read(self.KIND, n, timeout)
        rows = 1 if data.ndim == 1 else data.shape[0]
        if got.shape[0] != rows or (data.shape[-1] < got.shape[1]):
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE,
                            f"array of shape {data.shape} cannot hold {got.shape} samples")
        data.reshape(rows, -1)[:, : got.shape[1]] = got
        return int(got.shape[1])


class AnalogMultiChannelReader(_Reader):
    REAL = "nidaqmx.stream_readers.AnalogMultiChannelReader"
    KIND = "ai"

    def read_many_sample(self, data: np.ndarray, number_of_samples_per_channel: int = -1,
                         timeout: float = 10.0) -> int:
        return self._fill(data, number_of_samples_per_channel, timeout, np.float64)


class DigitalMultiChannelReader(_Reader):
    REAL = "nidaqmx.stream_readers.DigitalMultiChannelReader"
    KIND = "di"

    def read_many_sample_port_uint32(self, data: np.ndarray, number_of_samples_per_channel: int = -1,
                                     timeout: float = 10.0) -> int:
        return self._fill(data, number_of_samples_per_channel, timeout, np.uint32)


class CounterReader(_Reader):
    REAL = "nidaqmx.stream_readers.CounterReader"
    KIND = "ci"

    def read_many_sample_double(self, data: np.ndarray, number_of_samples_per_channel: int = -1,
                                timeout: float = 10.0) -> int:
        return self._fill(data, number_of_samples_per_channel, timeout, np.float64)

    def read_many_sample_uint32(self, data: np.ndarray, number_of_samples_per_channel: int = -1,
                                timeout: float = 10.0) -> int:
        return self._fill(data, number_of_samples_per_channel, timeout, np.uint32)


class _Writer(Strict):
    def __init__(self, task_out_stream: OutStream, auto_start: bool) -> None:
        if not isinstance(task_out_stream, OutStream):
            raise TypeError(f"{type(self).__name__} needs a task's out_stream, got {task_out_stream!r}")
        self._state = task_out_stream._state
        self._auto_start = bool(auto_start)
        self._verify = True

    @property
    def verify_array_shape(self) -> bool:
        return self._verify

    @verify_array_shape.setter
    def verify_array_shape(self, value: bool) -> None:
        self._verify = bool(value)


class DigitalSingleChannelWriter(_Writer):
    REAL = "nidaqmx.stream_writers.DigitalSingleChannelWriter"

    def write_one_sample_one_line(self, data: bool, timeout: float = 10) -> None:
        st = self._state
        if st.kind != "do" or len(st.channels) != 1:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, "write_one_sample_one_line needs one DO line")
        implicit = not st.running
        if implicit and not self._auto_start:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, "task not started and auto_start is False")
        if implicit:
            st.start()  # an on-demand write with auto_start starts the task, writes, and stops it again
        st.device.write_line(st.channels[0].physical, bool(data))
        if implicit:
            st.stop()


class AnalogSingleChannelWriter(_Writer):
    REAL = "nidaqmx.stream_writers.AnalogSingleChannelWriter"

    def write_many_sample(self, data: np.ndarray, timeout: float = 10.0) -> int:
        st = self._state
        _not_running(st, "write into the buffer of a finite generation")  # as the driver uses it
        ch = st.channels[0]
        v = np.asarray(data, dtype=np.float64)
        if v.size and (v.min() < ch.args["min_val"] - 1e-9 or v.max() > ch.args["max_val"] + 1e-9):
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE,
                            f"samples outside the channel's range [{ch.args['min_val']}, {ch.args['max_val']}]")
        st.out_data = v.copy()
        if self._auto_start:
            st.start()
        return int(v.size)


# ---- nidaqmx.system -------------------------------------------------------------------------------------


class PhysicalChannelCollection(Strict):
    REAL = "nidaqmx.system._collections.physical_channel_collection.PhysicalChannelCollection"

    def __init__(self, names: list[str]) -> None:
        self._names = names

    @property
    def channel_names(self) -> list[str]:
        return list(self._names)


class DeviceCollection(Strict):
    REAL = "nidaqmx.system._collections.device_collection.DeviceCollection"

    def __init__(self, hw: FakeHardware) -> None:
        self._hw = hw

    @property
    def device_names(self) -> list[str]:
        if not self._hw.driver_installed:
            raise DaqNotFoundError("Could not find an installation of NI-DAQmx. (fake)")
        return list(self._hw.devices)


class System(Strict):
    REAL = "nidaqmx.system.System"
    _hw: ClassVar[FakeHardware]

    @staticmethod
    def local() -> System:
        raise NotImplementedError  # replaced on the per-fake subclass, which knows its hardware

    @property
    def devices(self) -> DeviceCollection:
        return DeviceCollection(self._hw)


class Device(Strict):
    REAL = "nidaqmx.system.Device"
    _hw: ClassVar[FakeHardware]

    def __init__(self, name: str, *, grpc_options: Any = None) -> None:
        self._name = name

    def _chans(self, kind: str) -> PhysicalChannelCollection:
        return PhysicalChannelCollection(self._hw.device(self._name).chans[kind])

    @property
    def ai_physical_chans(self) -> PhysicalChannelCollection:
        return self._chans("ai")

    @property
    def ao_physical_chans(self) -> PhysicalChannelCollection:
        return self._chans("ao")

    @property
    def ci_physical_chans(self) -> PhysicalChannelCollection:
        return self._chans("ci")

    @property
    def co_physical_chans(self) -> PhysicalChannelCollection:
        return self._chans("co")

    @property
    def di_lines(self) -> PhysicalChannelCollection:
        return self._chans("di")

    @property
    def do_lines(self) -> PhysicalChannelCollection:
        return self._chans("do")


class WatchdogTask(Strict):
    REAL = "nidaqmx.system.watchdog.WatchdogTask"
    _hw: ClassVar[FakeHardware]

    def __init__(self, device_name: str, task_name: str = "", timeout: float = 10, grpc_options: Any = None) -> None:
        hw = self._hw
        if not hw.driver_installed:
            raise DaqNotFoundError("Could not find an installation of NI-DAQmx. (fake)")
        dev = hw.device(device_name)
        dev.check_watchdog_timeout(float(timeout))
        self._w = WatchdogState(dev, float(timeout))
        dev.watchdogs.append(self._w)

    @property
    def expired(self) -> bool:
        self._w.settle(self._hw.now())
        return self._w.expired_at is not None

    def cfg_watchdog_do_expir_states(self, expiration_states: list[DOExpirationState]) -> None:
        for s in expiration_states:
            _enum(s.expiration_state, Level, "expiration_state")
            line = self._w.device.physical(s.physical_channel, "do")
            self._w.lines[line] = s.expiration_state == Level.HIGH

    def start(self) -> None:
        w = self._w
        if w.running:
            raise daq_error(DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING, "the watchdog task is running")
        w.settle(self._hw.now())
        w.running, w.started_at, w.expired_at, w.locked = True, self._hw.now(), None, False

    def stop(self) -> None:
        self._w.settle(self._hw.now())
        self._w.running = False

    def clear_expiration(self) -> None:
        self._w.settle(self._hw.now())
        self._w.locked = False

    def close(self) -> None:
        self.stop()
        self._w.closed = True
        self._w.locked = False
