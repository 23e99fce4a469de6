"""One NI-DAQ device shared by several roles: the clocked input tasks, their buffers and one timebase.

Why a shared object: DAQmx allows one task per kind of channel, so the lick and frame-clock analog
inputs live in one AI task, and every counter in a task of its own; all input tasks sample on the AI
sample clock (`/DevN/ai/SampleClock`) so that encoder, lick and frame clock share one timebase:
sample i of any stream was taken at device time i / rate.

Lifecycle and reference counting (explicit, see SessionPool): each role's open() calls
`SessionPool.acquire`, which returns the session for (device, session clock), creating it on first use
and counting one more user; the role adds its channels. The clocked tasks start on the first read by
any role (`ensure_started`), after every driver has opened and after the session clock was restarted,
so the device clock's zero lands on the session timeline at a measured time. Each role's close()
calls `SessionPool.release`; when the count reaches zero every task is stopped and cleared.
Channels cannot be added to a running task: a role that opens after the first read gets an error.

A frame clock in timestamp mode is the exception to the shared sample clock: its counter counts the
device's 100 MHz (or 20 MHz) timebase and latches the count on each frame-clock edge (the edge is its
sample clock), armed by the AI start trigger, so count / timebase rate is the edge's device time on the
same zero as the sampled streams.

Reads never block: each poll asks DAQmx how many samples are available and reads exactly those. Every
running task is read: a task no role takes from (the AI task that only runs the clock, or one whose
roles closed) is drained on every take, so its buffer never fills; a full buffer would stop it, and a
stopped AI task stops the sample clock every other stream follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.base import Clock, ClockMap
from drivers.nidaq.clockfit import DriftTracker
from drivers.nidaq.errors import (
    NidaqConfigError,
    NidaqError,
    channel_error,
    device_names,
    driver_missing,
    import_nidaqmx,
    is_driver_missing,
)

log = logging.getLogger(__name__)

BUFFER_S = 10.0  # DAQmx input buffer: the loop may stall this long before samples are lost


@dataclass
class Stream:
    """One channel's samples as they arrive, waiting for its role to take them."""

    name: str
    task_key: str  # "ai", "di" or the counter's name
    row: int  # row of this channel in its task's reads
    next_index: int = 0  # sample index of the next sample to arrive
    chunks: list[np.ndarray] = field(default_factory=list)
    subscribed: bool = True


@dataclass(frozen=True)
class EdgeClock:
    """A sample clock of a task's own: the active edges of a terminal, armed by the AI start trigger."""

    terminal: str  # e.g. PFI0
    edge: str  # "RISING" or "FALLING"
    max_rate_hz: float  # the highest edge rate expected (sizes the buffer)


@dataclass
class _InputTask:
    kind: str  # "ai", "di" or "ci"
    task: Any
    rows: int = 0
    reader: Any = None
    samples_read: int = 0  # per channel since the start: the newest sample's index + 1
    own_clock: EdgeClock | None = None  # None: samples on the shared AI sample clock


def make_task(nidaqmx: Any, where: str) -> Any:
    """A new DAQmx task, with the missing driver reported as such."""
    try:
        return nidaqmx.Task()
    except nidaqmx.errors.Error as e:
        if is_driver_missing(nidaqmx, e):
            raise driver_missing(e) from e
        raise NidaqError(f"{where}: cannot create a DAQmx task: {e}") from e


class DeviceSession:
    """The clocked input tasks of one device (see the module docstring)."""

    def __init__(self, nidaqmx: Any, device: str, clock: Clock) -> None:
        self.nidaqmx = nidaqmx
        self.device = device
        self.users = 0
        self.rate_hz: float | None = None
        self.clock_ai_channel = "ai0"
        self.clock_map = ClockMap()
        # DriftTracker keyword arguments (window_s, refit_s, bin_s, min_span_s), set before the first read.
        self.fit_settings: dict[str, float] = {}
        self._fit: DriftTracker | None = None
        self._session_clock = clock
        self._tasks: dict[str, _InputTask] = {}
        self._streams: list[Stream] = []
        self._started = False
        self._closed = False

    # ---- configuration (before the first read) ------------------------------------------------------

    def use_rate(self, rate_hz: float, who: str) -> None:
        """The shared sample clock's rate; every clocked role must ask for the same one."""
        if self.rate_hz is None:
            self.rate_hz = float(rate_hz)
        elif self.rate_hz != float(rate_hz):
            raise NidaqConfigError(
                f"{who}: sample_rate_hz {rate_hz:g} differs from {self.rate_hz:g} Hz set by another role on "
                f"{self.device}; the roles of one device share one sample clock, give them the same rate"
            )

    def add_ai(self, who: str, channel: str, min_v: float, max_v: float, terminal: str) -> Stream:
        nd = self.nidaqmx
        config = getattr(nd.constants.TerminalConfiguration, terminal)
        task = self._input_task("ai", who)
        physical = f"{self.device}/{channel}"
        try:
            task.task.ai_channels.add_ai_voltage_chan(
                physical, terminal_config=config, min_val=min_v, max_val=max_v
            )
        except nd.errors.Error as e:
            raise channel_error(nd, f"{who}: analog input {physical}", self.device, "ai", e) from e
        return self._stream(who, "ai", task)

    def add_di(self, who: str, line: str) -> Stream:
        nd = self.nidaqmx
        task = self._input_task("di", who)
        physical = f"{self.device}/{line}"
        try:
            task.task.di_channels.add_di_chan(physical, line_grouping=nd.constants.LineGrouping.CHAN_PER_LINE)
        except nd.errors.Error as e:
            raise channel_error(nd, f"{who}: digital input {physical}", self.device, "di", e) from e
        return self._stream(who, "di", task)

    def add_encoder(
        self, who: str, counter: str, kind: str, decoding: str, pulses_per_rev: int,
        a_terminal: str | None, b_terminal: str | None,
    ) -> Stream:
        """An encoder counter reporting position in ticks (counts) at every sample-clock tick."""
        nd = self.nidaqmx
        c = nd.constants
        task = self._input_task(counter, who, kind="ci")
        physical = f"{self.device}/{counter}"
        decoding_type = getattr(c.EncoderType, decoding)
        try:
            if kind == "angular":
                ch = task.task.ci_channels.add_ci_ang_encoder_chan(
                    physical, decoding_type=decoding_type, units=c.AngleUnits.TICKS, pulses_per_rev=pulses_per_rev
                )
            else:
                ch = task.task.ci_channels.add_ci_lin_encoder_chan(
                    physical, decoding_type=decoding_type, units=c.LengthUnits.TICKS
                )
            if a_terminal:
                ch.ci_encoder_a_input_term = f"/{self.device}/{a_terminal}"
            if b_terminal:
                ch.ci_encoder_b_input_term = f"/{self.device}/{b_terminal}"
        except nd.errors.Error as e:
            raise channel_error(nd, f"{who}: encoder counter {physical}", self.device, "ci", e) from e
        return self._stream(who, counter, task)

    def add_edge_counter(self, who: str, counter: str, edge: str, terminal: str | None) -> Stream:
        """A counter counting edges, its running count sampled at every sample-clock tick."""
        nd = self.nidaqmx
        task = self._input_task(counter, who, kind="ci")
        physical = f"{self.device}/{counter}"
        try:
            ch = task.task.ci_channels.add_ci_count_edges_chan(physical, edge=getattr(nd.constants.Edge, edge))
            if terminal:
                ch.ci_count_edges_term = f"/{self.device}/{terminal}"
        except nd.errors.Error as e:
            raise channel_error(nd, f"{who}: edge counter {physical}", self.device, "ci", e) from e
        return self._stream(who, counter, task)

    def add_timestamp_counter(self, who: str, counter: str, terminal: str, edge: str, timebase: str,
                              max_rate_hz: float) -> Stream:
        """A counter counting the device timebase `timebase` (e.g. 100MHzTimebase), its count latched on
        every `edge` of `terminal`: one sample per edge, the timebase ticks since the AI start trigger."""
        nd = self.nidaqmx
        task = self._input_task(counter, who, kind="ci")
        physical = f"{self.device}/{counter}"
        try:
            ch = task.task.ci_channels.add_ci_count_edges_chan(physical, edge=nd.constants.Edge.RISING)
            ch.ci_count_edges_term = f"/{self.device}/{timebase}"
        except nd.errors.Error as e:
            raise channel_error(nd, f"{who}: timestamp counter {physical}", self.device, "ci", e) from e
        task.own_clock = EdgeClock(terminal, edge, float(max_rate_hz))
        return self._stream(who, counter, task)

    def _input_task(self, key: str, who: str, kind: str | None = None) -> _InputTask:
        if self._started:
            raise NidaqError(
                f"{who}: {self.device}'s clocked tasks are already running; open every NI-DAQ role before "
                f"the first read"
            )
        kind = kind or key
        existing = self._tasks.get(key)
        if existing is not None:
            if kind == "ci":
                raise NidaqConfigError(f"{who}: counter {self.device}/{key} is already used by another role")
            return existing
        made = _InputTask(kind, make_task(self.nidaqmx, who))
        self._tasks[key] = made
        return made

    def _stream(self, who: str, key: str, task: _InputTask) -> Stream:
        s = Stream(who, key, task.rows)
        task.rows += 1
        self._streams.append(s)
        return s

    # ---- running -------------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    def ensure_started(self) -> None:
        """Start the clocked tasks: the counters and digital input first (they wait for the clock), then
        the AI task whose start starts the clock. The clock map's offset is the session time then."""
        if self._started or not self._streams:
            return
        nd = self.nidaqmx
        c = nd.constants
        rate = self.rate_hz or 1000.0
        n_buf = max(2, int(rate * BUFFER_S))
        ai = self._tasks.get("ai")
        if ai is None:
            # The AI sample clock only runs in a task with an AI channel: sample one just for the clock.
            ai = self._input_task("ai", "nidaq clock")
            self._add_clock_channel(ai)
        src = f"/{self.device}/ai/SampleClock"
        try:
            ai.task.timing.cfg_samp_clk_timing(rate, sample_mode=c.AcquisitionType.CONTINUOUS, samps_per_chan=n_buf)
            followers = [t for k, t in self._tasks.items() if k != "ai"]
            for t in followers:
                if t.own_clock is None:
                    t.task.timing.cfg_samp_clk_timing(
                        rate, source=src, sample_mode=c.AcquisitionType.CONTINUOUS, samps_per_chan=n_buf
                    )
                else:
                    self._edge_clocked(t, t.own_clock)
            for t in followers:
                t.task.start()
            ai.task.start()
        except nd.errors.Error as e:
            raise NidaqError(f"{self.device}: cannot start the clocked input tasks at {rate:g} Hz: {e}") from e
        started_at = self._session_clock.now()
        self.clock_map = ClockMap(offset=started_at, scale=1.0)
        # The AI task's start returned after its clock started: (started_at, 0) is a valid first pair.
        self._fit = DriftTracker(self.clock_map, **self.fit_settings)
        self._fit.add(started_at, 0.0)
        self._started = True
        for t in self._tasks.values():
            t.reader = self._reader(t)

    def _edge_clocked(self, t: _InputTask, clock: EdgeClock) -> None:
        """Timing of a task sampled on a terminal's edges, armed when the AI task starts: its count then
        starts from zero together with sample 0 of the shared clock."""
        c = self.nidaqmx.constants
        t.task.timing.cfg_samp_clk_timing(
            clock.max_rate_hz, source=f"/{self.device}/{clock.terminal}", active_edge=getattr(c.Edge, clock.edge),
            sample_mode=c.AcquisitionType.CONTINUOUS, samps_per_chan=max(1000, int(clock.max_rate_hz * BUFFER_S)),
        )
        arm = t.task.triggers.arm_start_trigger
        arm.trig_type = c.TriggerType.DIGITAL_EDGE
        arm.dig_edge_src = f"/{self.device}/ai/StartTrigger"
        arm.dig_edge_edge = c.Edge.RISING

    def device_time(self) -> float:
        """The device time now, from the session clock through the current clock map (ms-accurate)."""
        m = self.clock_map
        return (self._session_clock.now() - m.offset) / m.scale

    def _add_clock_channel(self, ai: _InputTask) -> None:
        physical = f"{self.device}/{self.clock_ai_channel}"
        try:
            ai.task.ai_channels.add_ai_voltage_chan(physical)
        except self.nidaqmx.errors.Error as e:
            raise channel_error(self.nidaqmx, f"clock channel {physical}", self.device, "ai", e) from e
        ai.rows += 1

    def _reader(self, t: _InputTask) -> Any:
        sr = self.nidaqmx.stream_readers
        r = {
            "ai": sr.AnalogMultiChannelReader,
            "di": sr.DigitalMultiChannelReader,
            "ci": sr.CounterReader,
        }[t.kind](t.task.in_stream)
        r.verify_array_shape = False  # shapes are ours; skip DAQmx round-trips for the channel count
        return r

    def take(self, stream: Stream) -> tuple[int, np.ndarray]:
        """(index of the first sample, samples) that arrived for `stream` since its last take."""
        self.ensure_started()
        self._poll(stream.task_key)
        for key in self._undrained():
            self._poll(key)
        start = stream.next_index - sum(len(c) for c in stream.chunks)
        if not stream.chunks:
            return start, np.zeros(0)
        data = stream.chunks[0] if len(stream.chunks) == 1 else np.concatenate(stream.chunks)
        stream.chunks.clear()
        return start, data

    def _undrained(self) -> list[str]:
        """Running tasks no role takes from: polled with every take so that their buffers never fill."""
        taken = {s.task_key for s in self._streams if s.subscribed}
        return [k for k in self._tasks if k not in taken]

    def _poll(self, key: str) -> None:
        t = self._tasks.get(key)
        if t is None or t.reader is None:
            return
        nd = self.nidaqmx
        try:
            n = int(t.task.in_stream.avail_samp_per_chan)
            if n <= 0:
                return
            if t.kind == "ai":
                data = np.empty((t.rows, n))
                got = t.reader.read_many_sample(data, number_of_samples_per_channel=n, timeout=0.0)
            elif t.kind == "di":
                data = np.empty((t.rows, n), dtype=np.uint32)
                got = t.reader.read_many_sample_port_uint32(data, number_of_samples_per_channel=n, timeout=0.0)
            else:
                data = np.empty((1, n))
                got = t.reader.read_many_sample_double(data[0], number_of_samples_per_channel=n, timeout=0.0)
        except nd.errors.Error as e:
            raise NidaqError(f"{self.device}: reading the {key} task failed: {e}") from e
        got = int(got)
        if got > 0:
            t.samples_read += got
            if t.own_clock is None:  # samples on the shared clock: sample i at i / rate
                self._clock_pair(t.samples_read)
        for s in self._streams:
            if s.task_key == key:
                if s.subscribed:
                    s.chunks.append(np.array(data[s.row, :got]))
                s.next_index += got

    def _clock_pair(self, samples_read: int) -> None:
        """One (host, device) pair for the clock fit: the session time just after a read, and the device
        time of the newest sample it returned (sample i is taken at i / rate)."""
        if self._fit is None:
            return
        if self._fit.add(self._session_clock.now(), (samples_read - 1) / (self.rate_hz or 1000.0)):
            self.clock_map = self._fit.map

    def unsubscribe(self, stream: Stream) -> None:
        stream.subscribed = False
        stream.chunks.clear()

    def close(self) -> None:
        """Stop and clear every task; errors are logged so that every task gets cleared."""
        if self._closed:
            return
        self._closed = True
        for key, t in self._tasks.items():
            try:
                t.task.close()  # DAQmx clears (and so stops) the task
            except self.nidaqmx.errors.Error:
                log.exception("%s: clearing the %s task failed", self.device, key)
        self._tasks.clear()


class SessionPool:
    """The DeviceSessions in use, keyed by (device, session clock): the drivers built together for one
    rig (one DriverContext, hence one clock) share a session; another rig in the same process does not.
    """

    def __init__(self, loader: Callable[[], Any] = import_nidaqmx) -> None:
        self._sessions: dict[tuple[str, int], DeviceSession] = {}
        self._loader = loader  # returns the nidaqmx module (or drivers.nidaq.fake's stand-in for it)

    def load(self) -> Any:
        """The nidaqmx module this pool's sessions use; NidaqUnavailable when it cannot be loaded."""
        return self._loader()

    def acquire(self, device: str, clock: Clock, who: str) -> DeviceSession:
        key = (device, id(clock))
        s = self._sessions.get(key)
        if s is None:
            nd = self.load()
            found = device_names(nd)
            if device not in found:
                listing = ", ".join(found) if found else "none (is the device plugged in and powered?)"
                raise NidaqConfigError(f"{who}: NI-DAQ device {device!r} not found; devices found: {listing}")
            s = DeviceSession(nd, device, clock)
            self._sessions[key] = s
        s.users += 1
        return s

    def release(self, session: DeviceSession) -> None:
        session.users -= 1
        if session.users > 0:
            return
        for k, v in list(self._sessions.items()):
            if v is session:
                del self._sessions[k]
        session.close()

    def __len__(self) -> int:
        return len(self._sessions)


# The process's pool: drivers are built one role at a time (cls(params, context)), so the roles of one
# device find each other here. Entries live only while some role holds them open.
SESSIONS = SessionPool()
