"""NI-DAQ sync output (config role `sync`, `type: nidaq`): pulses to the mesoscope's aux trigger input.

Each pulse is one hardware-timed counter-output pulse of `width_ms` (re-armed per pulse, like the
valve). The device does not timestamp its own outputs, so a pulse's device time is the shared sample
clock's time at the moment of the command: the session time just before the counter is started,
mapped back through the session's current clock fit. Its uncertainty is the start call's latency
(tens of microseconds on PCIe, up to about a millisecond on USB) plus the clock fit's error.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from drivers.base import ClockMap
from drivers.nidaq.common import NidaqParams, NidaqRole
from drivers.nidaq.outputs import CounterPulse
from drivers.registry import DriverContext, register


@register("sync", "nidaq")
class NidaqSync(NidaqRole):
    """Random-interval sync pulses (the session schedules them) on a counter output, with their times."""

    role = "sync"

    class Params(NidaqParams):
        counter: str = Field("ctr3", description="counter output that drives the aux trigger, e.g. ctr3")
        output_terminal: str | None = Field(None, description="route the pulse to this terminal, e.g. PFI15")
        width_ms: float = Field(10.0, gt=0, le=1000, description="pulse high time")
        min_interval_s: float = Field(1.0, gt=0, le=3600, description="shortest random interval between pulses")
        max_interval_s: float = Field(5.0, gt=0, le=3600, description="longest random interval between pulses")

        @model_validator(mode="after")
        def _ordered(self) -> NidaqSync.Params:
            if self.max_interval_s < self.min_interval_s:
                raise ValueError(
                    f"max_interval_s={self.max_interval_s} must be >= min_interval_s={self.min_interval_s}"
                )
            if self.width_ms / 1000.0 >= self.min_interval_s:
                raise ValueError(f"width_ms={self.width_ms} must be shorter than min_interval_s")
            return self

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.min_interval_s = float(params.min_interval_s)
        self.max_interval_s = float(params.max_interval_s)
        self._pulse: CounterPulse | None = None
        self._pulse_times: list[float] = []

    @property
    def clock(self) -> ClockMap:
        return self._session.clock_map if self._session is not None else ClockMap()

    @clock.setter
    def clock(self, value: ClockMap) -> None:  # Device protocol attribute; the session owns the map
        pass

    def _configure(self) -> None:
        p: NidaqSync.Params = self.params
        nd = self._need_session().nidaqmx
        self._pulse = CounterPulse(nd, p.device, p.counter, p.output_terminal, self.who)
        self._pulse_times = []

    def pulse(self) -> float:
        """Start one pulse (returns at once, the counter times it); returns its device time."""
        if self._pulse is None:
            raise RuntimeError(f"{self.who} is not open; call open() first")
        s = self._need_session()
        s.ensure_started()  # the device time needs the shared clock running (no-op once it is)
        m = s.clock_map
        t_device = (self._session_clock.now() - m.offset) / m.scale
        self._pulse.fire(self.params.width_ms / 1000.0)
        self._pulse_times.append(t_device)
        return t_device

    def read(self) -> np.ndarray:
        """Device times of the pulses emitted since the previous read."""
        out, self._pulse_times = np.asarray(self._pulse_times, dtype=float), []
        return out

    def _teardown(self) -> None:
        pulse, self._pulse = self._pulse, None
        if pulse is not None:
            pulse.close()

    def _channels(self) -> list[tuple[str, str]]:
        return [("co", self.params.counter)]

    def _describe(self) -> str:
        p: NidaqSync.Params = self.params
        return (f"sync pulses on {p.device}/{p.counter}, {p.width_ms:g} ms every "
                f"{p.min_interval_s:g}-{p.max_interval_s:g} s")
