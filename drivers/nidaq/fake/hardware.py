"""The simulated X-series device behind the fake nidaqmx: its channels and terminals, the signals wired
to its inputs, what its tasks acquire and generate, and what came out of its output lines.

Everything runs on one clock, `clock.now()` in seconds ("true time"); the device's own timebase runs
`drift_ppm` fast or slow against it, so device durations (sample periods, pulse widths, watchdog
timeouts) last `scale = 1 + drift_ppm * 1e-6` true seconds per device second. Nothing happens by
itself: every state is worked out from the clock when the driver (or the test) asks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.base import Clock
from drivers.nidaq.fake.namespaces import AcquisitionType, DaqError, DAQmxErrors, Edge, TriggerType, daq_error
from drivers.nidaq.limits import TIMEBASE_HZ, WATCHDOG_MAX_S

if TYPE_CHECKING:
    from collections.abc import Iterable

COUNTER_WRAP = 1 << 32  # X-series counters are 32 bits wide
# X-series default counter terminals (X Series User Manual, "Default Counter/Timer Pins").
COUNTER_PINS = {
    "ctr0": {"source": "PFI8", "b": "PFI10", "out": "PFI12"},
    "ctr1": {"source": "PFI3", "b": "PFI11", "out": "PFI13"},
    "ctr2": {"source": "PFI0", "b": "PFI2", "out": "PFI14"},
    "ctr3": {"source": "PFI5", "b": "PFI7", "out": "PFI15"},
}


TERMINALS = {t.lower(): t for t in [*(f"PFI{i}" for i in range(16)), "100MHzTimebase", "20MHzTimebase",
                                    "100kHzTimebase", "ai/SampleClock", "ai/StartTrigger"]}


@dataclass(frozen=True)
class Samples:
    """A signal given sample by sample: the k-th sample a task takes of the channel is values[k] (the
    last value holds after the end)."""

    values: np.ndarray

    def at(self, k: np.ndarray) -> np.ndarray:
        v = np.asarray(self.values, dtype=np.float64)
        if v.size == 0:
            return np.zeros(len(k))
        return np.asarray(v[np.minimum(k, v.size - 1)], dtype=np.float64)


# A signal is a function of true time (an array of seconds -> an array of values) or Samples.
Signal = Callable[[np.ndarray], np.ndarray] | Samples


@dataclass
class Pulse:
    """One counter-output pulse as it came out of `terminal` (true times)."""

    terminal: str
    start: float  # the line went high
    end: float  # the high time ends here unless the task was stopped first
    cut: float | None = None  # stop() ended it here, before `end`

    @property
    def off(self) -> float:
        return self.end if self.cut is None else min(self.end, self.cut)

    @property
    def width(self) -> float:
        return max(0.0, self.off - self.start)


@dataclass
class Generation:
    """One finite analog-output generation (a tone): its samples and when it played."""

    channel: str
    rate_hz: float
    data: np.ndarray
    start: float
    end: float
    cut: float | None = None


@dataclass
class ChannelState:
    kind: str  # ai, ao, di, do, ci, co
    physical: str  # canonical, e.g. Dev1/ai1, Dev1/ctr0, Dev1/port0/line1
    method: str  # the add_*_chan that made it
    args: dict[str, Any]  # its arguments, defaults included
    props: dict[str, Any] = field(default_factory=dict)  # properties set afterwards

    @property
    def counter(self) -> str:
        return self.physical.split("/")[-1]


class TaskState:
    """One task as the device sees it: channels, timing, triggers, and its acquisition or generation."""

    def __init__(self, daq: FakeHardware, name: str) -> None:
        self.daq = daq
        self.name = name
        self.channels: list[ChannelState] = []
        self.timing: dict[str, Any] | None = None  # cfg_samp_clk_timing's arguments
        self.arm: dict[str, Any] = {"trig_type": TriggerType.NONE, "dig_edge_src": "", "dig_edge_edge": Edge.RISING}
        self.running = False
        self.closed = False
        self.starts = 0
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.samples_read = 0
        self.cap = math.inf  # after an overflow: the samples the buffer held when the acquisition stopped
        self.error: DaqError | None = None
        self.out_data: np.ndarray | None = None  # written AO samples, waiting for start
        self.pulse: Pulse | None = None
        self.generation: Generation | None = None
        self.reads = 0  # read calls that returned samples or asked for none

    # ---- what it is -----------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.channels[0].kind if self.channels else ""

    @property
    def device(self) -> FakeDevice:
        return self.daq.device(self.channels[0].physical.split("/")[0])

    @property
    def clock_source(self) -> str:
        return self.timing["source"].lower() if self.timing else ""

    @property
    def is_master(self) -> bool:
        """An AI task on its own sample clock: the one that drives /DevN/ai/SampleClock."""
        return self.kind == "ai" and self.timing is not None and self.clock_source == ""

    def add(self, ch: ChannelState) -> None:
        self._not_running("add a channel")
        if self.channels and self.channels[0].kind != ch.kind:
            raise daq_error(DAQmxErrors.MULTI_CHAN_TYPES_IN_TASK,
                            f"a task holds one kind of channel: {ch.kind} cannot join {self.kind}", self.name)
        if self.channels and ch.kind in ("ci", "co"):
            raise daq_error(DAQmxErrors.MULTI_CHAN_TYPES_IN_TASK, "a counter task holds one counter", self.name)
        self.channels.append(ch)

    def _not_running(self, what: str) -> None:
        if self.running:
            raise daq_error(DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING, f"cannot {what} while the task runs",
                            self.name)

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._not_running("start the task")
        if not self.channels:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, "task has no channels", self.name)
        self.device.reserve(self)
        now = self.daq.now()
        self.daq.start_order.append(self)
        self.running = True
        self.starts += 1
        self.started_at = now
        self.stopped_at = None
        self.samples_read = 0
        self.cap = math.inf
        self.error = None
        dev = self.device
        if self.kind == "co":
            ch = self.channels[0]
            high = float(ch.props.get("co_pulse_high_time", ch.args["high_time"]))
            delay = float(ch.args["initial_delay"])
            term = ch.props.get("co_pulse_term") or f"/{dev.name}/{COUNTER_PINS[ch.counter]['out']}"
            self.pulse = Pulse(dev.canonical_terminal(term), now + delay * dev.scale, now + (delay + high) * dev.scale)
            dev.pulses.append(self.pulse)
        elif self.kind == "ao" and self.timing is not None:
            data = self.out_data if self.out_data is not None else np.zeros(0)
            rate = float(self.timing["rate"])
            self.generation = Generation(self.channels[0].physical, rate, data, now, now + len(data) / rate * dev.scale)
            dev.generations.append(self.generation)

    def stop(self) -> None:
        if not self.running:
            return
        now = self.daq.now()
        self._settle(now)
        if self.pulse is not None and now < self.pulse.end:
            self.pulse.cut = now
        if self.generation is not None and now < self.generation.end:
            self.generation.cut = now
        if self.stopped_at is None:
            self.stopped_at = now
        self.running = False
        self.device.release(self)

    def close(self) -> None:
        self.stop()
        self.closed = True

    def is_done(self) -> bool:
        if not self.running:
            return True
        now = self.daq.now()
        if self.pulse is not None:
            return now >= self.pulse.end
        if self.generation is not None:
            return now >= self.generation.end
        return False  # continuous acquisitions and on-demand tasks run until stopped

    # ---- acquisition ------------------------------------------------------------------------------------

    def master(self) -> TaskState | None:
        return self.device.running_master()

    def arm_time(self) -> float | None:
        """When the counter was armed: at its start, or at the AI start trigger it waits for."""
        if self.started_at is None:
            return None
        if self.arm["trig_type"] == TriggerType.DIGITAL_EDGE:
            src = self.arm["dig_edge_src"].lower()
            if src != f"/{self.device.name.lower()}/ai/starttrigger":
                raise daq_error(DAQmxErrors.TRIG_LINE_NOT_FOUND_ROUTING, f"fake: arm trigger {src} not modelled")
            m = self.device.ai_start
            return None if m is None or m < self.started_at else m
        return self.started_at

    def _count(self, end: float) -> int:
        """Samples this task has taken by `end`."""
        n = self._clock_count(end)
        return n if n <= self.cap else int(self.cap)

    def _clock_count(self, end: float) -> int:
        if self.started_at is None:
            return 0
        if self.stopped_at is not None:
            end = min(end, self.stopped_at)
        if self.is_master:
            t0, p = self.started_at, self._period()
            return math.floor((end - t0) / p + 1e-9) + 1 if end >= t0 else 0
        src, dev = self.clock_source, self.device
        if src == f"/{dev.name.lower()}/ai/sampleclock":
            m = dev.ai_master
            if m is None or m.started_at is None:
                return 0
            m._settle(self.daq.now())  # an overflow there stopped the clock this task follows
            return max(0, m._count(end) - self._first_master_tick(m))
        if src.startswith(f"/{dev.name.lower()}/pfi"):
            return int(np.count_nonzero(self._edge_ticks() <= end))
        raise daq_error(DAQmxErrors.TRIG_LINE_NOT_FOUND_ROUTING, f"fake: sample clock {src!r} not modelled", self.name)

    def _times(self, k0: int, k1: int) -> np.ndarray:
        """True times of this task's samples k0..k1-1."""
        assert self.started_at is not None
        if self.is_master:
            return self.started_at + np.arange(k0, k1) * self._period()
        m = self.device.ai_master
        if self.clock_source.endswith("/ai/sampleclock") and m is not None and m.started_at is not None:
            return m.started_at + (self._first_master_tick(m) + np.arange(k0, k1)) * m._period()
        return self._edge_ticks()[k0:k1]

    def _period(self) -> float:
        assert self.timing is not None
        return self.device.scale / float(self.timing["rate"])

    def _first_master_tick(self, m: TaskState) -> int:
        """The first tick of the AI sample clock after this follower started (0 if it started first)."""
        assert m.started_at is not None and self.started_at is not None
        return max(0, math.ceil((self.started_at - m.started_at) / m._period() - 1e-9))

    def _edge_ticks(self) -> np.ndarray:
        """Times of the active edges of this task's sample clock terminal since the counter was armed."""
        timing = self.timing
        assert timing is not None
        kind = "falling" if timing["active_edge"] == Edge.FALLING else "rising"
        edges = self.device.edge_times(timing["source"], kind)
        armed = self.arm_time()
        return edges[edges >= armed] if armed is not None else np.zeros(0)

    def _settle(self, now: float) -> None:
        """Work out whether the buffer overflowed by now: DAQmx stops the acquisition then (and, for the
        task that drives the AI sample clock, the clock with it)."""
        if self.error is not None or self.timing is None or self.kind not in ("ai", "di", "ci") or not self.running:
            return
        if self.timing["sample_mode"] != AcquisitionType.CONTINUOUS:
            return
        size = int(self.timing["samps_per_chan"])
        if self._count(now) - self.samples_read > size:
            first_lost = self.samples_read + size
            self.stopped_at = float(self._times(first_lost, first_lost + 1)[0])
            self.cap = first_lost
            self.error = daq_error(
                DAQmxErrors.SAMPLES_NO_LONGER_AVAILABLE,
                "The application is not able to keep up with the hardware acquisition (the buffer filled up).",
                self.name,
            )

    def available(self) -> int:
        if self.timing is None:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE, "fake: on-demand input is not modelled", self.name)
        now = self.daq.now()
        self._settle(now)
        if self.error is not None:
            raise self.error
        return max(0, self._count(now) - self.samples_read)

    def read(self, kind: str, n: int, timeout: float) -> np.ndarray:
        """The next n samples of every channel, shape (channels, n); n = -1 reads all available."""
        if kind != self.kind:
            raise daq_error(DAQmxErrors.READ_CHAN_TYPE_MISMATCH, f"a {kind} reader cannot read a {self.kind} task",
                            self.name)
        avail = self.available()
        if n < 0:
            n = avail
        if n > avail:
            raise daq_error(DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE,
                            f"{n} samples requested, {avail} acquired (timeout {timeout} s)", self.name)
        k0, k1 = self.samples_read, self.samples_read + n
        t = self._times(k0, k1)
        k = np.arange(k0, k1)
        out = np.vstack([self._values(ch, t, k) for ch in self.channels]) if n else np.zeros((len(self.channels), 0))
        self.samples_read = k1
        self.reads += 1
        return out

    def _values(self, ch: ChannelState, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        dev = self.device
        sig = dev.signals.get(ch.physical)
        if ch.kind == "ci" and ch.method == "add_ci_count_edges_chan" and sig is None:
            term = ch.props.get("ci_count_edges_term") or f"/{dev.name}/{COUNTER_PINS[ch.counter]['source']}"
            armed = self.arm_time()
            assert armed is not None
            hz = TIMEBASE_HZ.get(term.split("/")[-1].lower())
            if hz is not None:  # counting the device's own timebase: elapsed ticks since the arm
                return np.asarray(np.floor((t - armed) / dev.scale * hz + 1e-6) % COUNTER_WRAP, dtype=np.float64)
            kind = "falling" if ch.args["edge"] == Edge.FALLING else "rising"
            edges = dev.edge_times(term, kind)
            edges = edges[edges >= armed]
            return np.asarray(np.searchsorted(edges, t, side="right") % COUNTER_WRAP, dtype=np.float64)
        if sig is None:
            return np.zeros(len(t))
        v = sig.at(k) if isinstance(sig, Samples) else np.asarray(sig(t), dtype=np.float64)
        if ch.kind == "di":
            bit = int(ch.physical.split("line")[-1])
            return np.asarray((np.asarray(v) != 0) * float(1 << bit), dtype=np.float64)
        return np.asarray(v, dtype=np.float64)


@dataclass
class WatchdogState:
    device: FakeDevice
    timeout_s: float
    lines: dict[str, bool] = field(default_factory=dict)  # line -> level it is forced to on expiry
    running: bool = False
    started_at: float | None = None
    expired_at: float | None = None
    locked: bool = False  # expired and not cleared: the device ignores writes to its lines
    closed: bool = False

    def settle(self, now: float) -> None:
        if not self.running or self.expired_at is not None or self.started_at is None or self.timeout_s < 0:
            return
        due = self.started_at + self.timeout_s * self.device.scale
        if now >= due:
            self.expired_at = due
            self.locked = True
            for line, level in self.lines.items():
                self.device.line_events.setdefault(line, []).append((due, level))


class FakeDevice:
    """One simulated X-series device (PCIe-6321 like): 8 AI, 2 AO, 4 counters, port0 lines 0-7, PFI0-15."""

    def __init__(self, hw: FakeHardware, name: str, drift_ppm: float = 0.0, n_ai: int = 8, n_ao: int = 2,
                 n_counters: int = 4, n_lines: int = 8) -> None:
        self.hw = hw
        self.name = name
        self.scale = 1.0 + drift_ppm * 1e-6
        self.chans = {
            "ai": [f"{name}/ai{i}" for i in range(n_ai)],
            "ao": [f"{name}/ao{i}" for i in range(n_ao)],
            "ci": [f"{name}/ctr{i}" for i in range(n_counters)],
            "co": [f"{name}/ctr{i}" for i in range(n_counters)],
            "di": [f"{name}/port0/line{i}" for i in range(n_lines)],
            "do": [f"{name}/port0/line{i}" for i in range(n_lines)],
        }
        self.signals: dict[str, Signal] = {}
        self._edges: dict[str, dict[str, np.ndarray]] = {}
        self.pulses: list[Pulse] = []
        self.generations: list[Generation] = []
        self.line_events: dict[str, list[tuple[float, bool]]] = {}
        self.watchdogs: list[WatchdogState] = []
        self._reserved: dict[str, TaskState] = {}
        self.ai_master: TaskState | None = None  # the task that drove ai/SampleClock most recently
        self.ai_start: float | None = None  # when its start trigger fired

    # ---- wiring the inputs (tests) ---------------------------------------------------------------------

    def analog(self, channel: str, signal: Signal) -> None:
        """Volts on an AI channel (e.g. "ai1")."""
        self.signals[self.physical(channel, "ai")] = signal

    def line(self, channel: str, signal: Signal) -> None:
        """Level (0/1) of a digital input line (e.g. "port0/line1")."""
        self.signals[self.physical(channel, "di")] = signal

    def counter(self, channel: str, signal: Signal) -> None:
        """The count a counter input returns (encoder position in ticks, or raw edge counts)."""
        self.signals[self.physical(channel, "ci")] = signal

    def edges(self, terminal: str, rising: Iterable[float] = (), falling: Iterable[float] = ()) -> None:
        """Edge times (true time) of a digital signal on a terminal (e.g. "PFI0")."""
        key = self.canonical_terminal(terminal if terminal.startswith("/") else f"/{self.name}/{terminal}")
        self._edges[key] = {"rising": np.sort(np.asarray(list(rising), dtype=float)),
                            "falling": np.sort(np.asarray(list(falling), dtype=float))}

    # ---- what came out (tests) ----------------------------------------------------------------------

    def high_intervals(self, output: str) -> list[tuple[float, float]]:
        """(on, off) true-time intervals during which an output was high: a counter's output terminal
        ("PFI13") or a digital line ("port0/line0"); off is inf while it still is."""
        now = self.hw.now()
        if "line" in output:
            for w in self.watchdogs:
                w.settle(now)
            events = self.line_events.get(self.physical(output, "do"), [])
            out, on = [], None
            for t, level in events:
                if level and on is None:
                    on = t
                elif not level and on is not None:
                    out.append((on, t))
                    on = None
            if on is not None:
                out.append((on, math.inf))
            return out
        key = self.canonical_terminal(output if output.startswith("/") else f"/{self.name}/{output}")
        return [(p.start, p.off if p.off <= now else math.inf) for p in self.pulses
                if p.terminal == key and p.width > 0]

    # ---- for the fake's API classes --------------------------------------------------------------------

    def physical(self, channel: str, kind: str) -> str:
        """The canonical name of one of this device's channels of `kind`, or the DAQmx error."""
        full = channel if channel.lower().startswith(self.name.lower() + "/") else f"{self.name}/{channel}"
        for c in self.chans[kind]:
            if c.lower() == full.lower():
                return c
        for k, names in self.chans.items():
            if any(c.lower() == full.lower() for c in names):
                raise daq_error(DAQmxErrors.INVALID_PHYS_CHAN_TYPE, f"{full} is a {k} channel, not {kind}")
        raise daq_error(DAQmxErrors.PHYSICAL_CHAN_DOES_NOT_EXIST,
                        f"Physical channel specified does not exist on this device: {full}")

    def canonical_terminal(self, terminal: str) -> str:
        """A terminal's name as DAQmx spells it ("/Dev1/PFI0"); DAQmx terminal names are case-blind."""
        parts = terminal.split("/")
        if len(parts) < 3 or parts[0] != "" or parts[1].lower() != self.name.lower():
            raise daq_error(DAQmxErrors.TRIG_LINE_NOT_FOUND_ROUTING, f"terminal {terminal!r} is not on {self.name}")
        rest = TERMINALS.get("/".join(parts[2:]).lower())
        if rest is None:
            raise daq_error(DAQmxErrors.TRIG_LINE_NOT_FOUND_ROUTING, f"terminal {terminal!r} does not exist")
        return f"/{self.name}/{rest}"

    def edge_times(self, terminal: str, kind: str) -> np.ndarray:
        return self._edges.get(self.canonical_terminal(terminal), {}).get(kind, np.zeros(0))

    def running_master(self) -> TaskState | None:
        m = self.ai_master
        return m if m is not None and m.running else None

    def reserve(self, task: TaskState) -> None:
        keys = self._resources(task)
        for k in keys:
            holder = self._reserved.get(k)
            if holder is not None and holder is not task:
                raise daq_error(DAQmxErrors.PAL_RESOURCE_RESERVED,
                                f"The specified resource is reserved: {k} is used by task {holder.name!r}", task.name)
        for k in keys:
            self._reserved[k] = task
        if task.is_master:
            self.ai_master = task
            self.ai_start = self.hw.now()

    def release(self, task: TaskState) -> None:
        for k in [k for k, t in self._reserved.items() if t is task]:
            del self._reserved[k]

    def _resources(self, task: TaskState) -> list[str]:
        kind = task.kind
        if kind in ("ci", "co"):
            return [task.channels[0].physical.lower()]
        if kind == "do":
            return [c.physical.lower() for c in task.channels]
        if kind in ("ai", "ao", "di") and task.timing is not None:
            return [f"{self.name.lower()}/{kind} timing engine"]
        return []

    def check_watchdog_timeout(self, timeout_s: float) -> None:
        if timeout_s > WATCHDOG_MAX_S:
            raise daq_error(DAQmxErrors.INVALID_ATTRIBUTE_VALUE,
                            f"watchdog timeout {timeout_s} s is beyond the device's {WATCHDOG_MAX_S:.3f} s")

    def write_line(self, line: str, level: bool) -> None:
        now = self.hw.now()
        for w in self.watchdogs:
            w.settle(now)
        if any(w.locked and line in w.lines for w in self.watchdogs):
            return  # an expired watchdog holds its lines at their expiration state until it is cleared
        self.line_events.setdefault(line, []).append((now, bool(level)))


class FakeHardware:
    """The devices and tasks of one fake NI-DAQmx installation, on one clock."""

    def __init__(self, clock: Clock, devices: Iterable[str], drift_ppm: float = 0.0,
                 driver_installed: bool = True) -> None:
        self.clock = clock
        self.devices = {name: FakeDevice(self, name, drift_ppm) for name in devices}
        self.tasks: list[TaskState] = []
        self.start_order: list[TaskState] = []  # every start, in order
        self.driver_installed = driver_installed

    def now(self) -> float:
        return float(self.clock.now())

    def device(self, name: str) -> FakeDevice:
        for d in self.devices.values():
            if d.name.lower() == name.lower():
                return d
        raise daq_error(DAQmxErrors.INVALID_DEVICE_ID, f"Device identifier is invalid: {name!r}")

    def device_of(self, channel: str) -> FakeDevice:
        return self.device(channel.split("/")[0])
