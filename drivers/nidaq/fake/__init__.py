"""A fake of the nidaqmx package for the NI-DAQ drivers: the driver's hardware boundary, simulated.

`FakeNidaqmx(clock)` offers the part of nidaqmx the drivers use (Task, channels, timing, triggers,
stream readers and writers, system, watchdog, constants, errors, types) with the same names,
parameters and enum values (checked against the installed package by test_nidaq_api.py), over a
simulated X-series device that runs on `clock.now()`: the AI task's sample clock ticks and other tasks
follow it, counters count edges and timebase ticks, a counter pulse stays high for its high time and
its task is done only after it, buffers overflow and stop the acquisition, an expired watchdog forces
its lines low. Channel kinds are checked (an AI channel is not a counter).

    clock = ManualClock()
    daq = FakeNidaqmx(clock)
    daq.device("Dev1").analog("ai1", lambda t: 5.0 * (t > 1.0))
    with daq.installed():          # the NI-DAQ roles now open this fake instead of nidaqmx
        ...

Tests wire inputs and inspect outputs through `daq.device(name)` (drivers.nidaq.fake.hardware).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from drivers.base import Clock
from drivers.nidaq.fake import api
from drivers.nidaq.fake.hardware import FakeDevice, FakeHardware, Generation, Pulse, Samples, TaskState
from drivers.nidaq.fake.namespaces import constants, errors, types

if TYPE_CHECKING:
    from drivers.nidaq.session import SessionPool

__all__ = ["FakeDevice", "FakeNidaqmx", "Generation", "ManualClock", "Pulse", "Samples", "TaskState"]


class ManualClock:
    """A session clock that moves only when told (drivers.base.Clock)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = float(t)

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        if dt < 0:
            raise ValueError(f"time only moves forward, got {dt}")
        self.t += dt

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, float(t))


def _bound(cls: type, hw: FakeHardware, **extra: Any) -> type:
    """A subclass of one of the fake's API classes that knows this fake's hardware."""
    return type(cls.__name__, (cls,), {"_hw": hw, "__module__": cls.__module__, **extra})


class FakeNidaqmx:
    """Stands in for the `nidaqmx` module (the attributes the drivers use), over simulated devices."""

    def __init__(self, clock: Clock, devices: Iterable[str] = ("Dev1", "Dev2"), *, drift_ppm: float = 0.0,
                 driver_installed: bool = True) -> None:
        self.hardware = FakeHardware(clock, devices, drift_ppm, driver_installed)
        self.pool: SessionPool | None = None  # the roles' pool while installed()
        hw = self.hardware
        self.Task = _bound(api.Task, hw)
        self.constants = constants
        self.errors = errors
        self.types = types
        self.stream_readers = SimpleNamespace(
            AnalogMultiChannelReader=api.AnalogMultiChannelReader,
            DigitalMultiChannelReader=api.DigitalMultiChannelReader,
            CounterReader=api.CounterReader,
        )
        self.stream_writers = SimpleNamespace(
            DigitalSingleChannelWriter=api.DigitalSingleChannelWriter,
            AnalogSingleChannelWriter=api.AnalogSingleChannelWriter,
        )
        system_cls = _bound(api.System, hw)
        system_cls.local = staticmethod(lambda: system_cls())  # type: ignore[attr-defined]
        self.system = SimpleNamespace(
            System=system_cls,
            Device=_bound(api.Device, hw),
            watchdog=SimpleNamespace(WatchdogTask=_bound(api.WatchdogTask, hw)),
        )

    def device(self, name: str = "Dev1") -> FakeDevice:
        return self.hardware.device(name)

    @property
    def tasks(self) -> list[TaskState]:
        """Every task created, in order (open or closed)."""
        return list(self.hardware.tasks)

    @property
    def open_tasks(self) -> list[TaskState]:
        return [t for t in self.hardware.tasks if not t.closed]

    def tasks_with(self, method: str) -> list[TaskState]:
        """The tasks holding a channel made by `method` (e.g. "add_co_pulse_chan_time")."""
        return [t for t in self.hardware.tasks if any(c.method == method for c in t.channels)]

    @contextmanager
    def installed(self) -> Iterator[FakeNidaqmx]:
        """Within the block the NI-DAQ roles open this fake instead of nidaqmx (a pool of their own)."""
        from drivers.nidaq.common import NidaqRole
        from drivers.nidaq.session import SessionPool

        pool = SessionPool(loader=lambda: self)
        saved = NidaqRole.pool
        NidaqRole.pool = self.pool = pool
        try:
            yield self
        finally:
            NidaqRole.pool = saved
        if len(pool):
            raise RuntimeError(f"{len(pool)} NI-DAQ device session(s) left open")
