"""NI-DAQ output roles (config `type: nidaq`): the reward valve and the sound cue.

The valve opens on a counter-output pulse: the counter's hardware holds the line high for exactly the
pulse's high time and then drops it, so no Python delay can lengthen an opening. The task is re-armed
for every reward (stop, set the high time, start). Manual opening (flushing) is either one more counter
pulse of max_open_ms, or a digital line (wired OR-ed with the counter output into the valve driver)
under a DAQmx watchdog task that sets the line low by itself after max_open_ms.

Both have hardware limits (drivers.nidaq.limits), checked when the config is validated: an X-series
watchdog times at most (2^32 - 1) x 8 ns = 34.36 s, and a counter pulse's high time is at most 2^32 - 1
ticks of its timebase (42.9 s on the 100 MHz one). max_open_ms is therefore at most 34,359 ms.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from drivers.nidaq.common import NidaqParams, NidaqRole
from drivers.nidaq.errors import NidaqError, channel_error
from drivers.nidaq.limits import PULSE_MAX_S_100MHZ, WATCHDOG_MAX_MS
from drivers.nidaq.session import make_task
from drivers.nidaq.signals import tone
from drivers.registry import DriverContext, register

log = logging.getLogger(__name__)

MIN_LOW_S = 1e-3  # counter pulse low time; a single on-demand pulse ends after its high time anyway


class CounterPulse:
    """One counter output producing single hardware-timed pulses, re-armed for each pulse."""

    def __init__(self, nd: Any, device: str, counter: str, terminal: str | None, who: str) -> None:
        self._nd = nd
        self._who = who
        self.task = make_task(nd, who)
        self._armed = False
        physical = f"{device}/{counter}"
        try:
            self.chan = self.task.co_channels.add_co_pulse_chan_time(
                physical,
                idle_state=nd.constants.Level.LOW,
                initial_delay=0.0,
                low_time=MIN_LOW_S,
                high_time=MIN_LOW_S,
            )
            if terminal:
                self.chan.co_pulse_term = f"/{device}/{terminal}"
        except nd.errors.Error as e:
            self.task.close()
            raise channel_error(nd, f"{who}: counter output {physical}", device, "co", e) from e

    def is_high(self) -> bool:
        """The last pulse is still high (its task is not done), as the device says."""
        try:
            return self._armed and not self.task.is_task_done()
        except self._nd.errors.Error as e:
            raise NidaqError(f"{self._who}: cannot ask whether the pulse ended: {e}") from e

    def fire(self, seconds: float) -> None:
        """Start one pulse of `seconds` high time; returns at once (the counter times the pulse)."""
        try:
            if self.is_high():
                log.warning("%s: a new pulse cuts the previous one short", self._who)
            self.task.stop()  # a finished single-pulse task must be stopped before it starts again
            self.chan.co_pulse_high_time = seconds
            self.task.start()
        except self._nd.errors.Error as e:
            raise NidaqError(f"{self._who}: pulse of {seconds * 1000:g} ms failed: {e}") from e
        self._armed = True

    def halt(self) -> None:
        """Stop the counter: its output returns to the idle (low) state."""
        self.task.stop()
        self._armed = False

    def close(self) -> None:
        try:
            self.halt()
        finally:
            self.task.close()


class WatchdogLine:
    """A digital output line that the device itself sets low when the watchdog times out."""

    def __init__(self, nd: Any, device: str, line: str, timeout_s: float, who: str) -> None:
        self._nd = nd
        self._who = who
        physical = f"{device}/{line}"
        self.task = make_task(nd, who)
        self.watchdog: Any = None
        try:
            self.task.do_channels.add_do_chan(physical)
            self.writer = nd.stream_writers.DigitalSingleChannelWriter(self.task.out_stream, auto_start=True)
            self.writer.write_one_sample_one_line(False, timeout=1.0)
            self.watchdog = nd.system.watchdog.WatchdogTask(device, timeout=timeout_s)
            self.watchdog.cfg_watchdog_do_expir_states(
                [nd.types.DOExpirationState(physical_channel=physical, expiration_state=nd.constants.Level.LOW)]
            )
        except nd.errors.Error as e:
            self._close_tasks()
            raise channel_error(nd, f"{who}: digital output {physical} with watchdog", device, "do", e) from e
        self._running = False

    def open(self) -> None:
        try:
            if self._running and not self.watchdog.expired:
                return  # already open: a second request must not extend the opening past max_open_ms
            if self._running:  # the watchdog closed the line: this is a new opening
                self.close()
            self.watchdog.start()  # the timer runs from here and is never reset: expiry closes the line
            self._running = True
            self.writer.write_one_sample_one_line(True, timeout=1.0)
        except self._nd.errors.Error as e:
            raise NidaqError(f"{self._who}: opening the manual line failed: {e}") from e

    def close(self) -> None:
        if self._running:
            # An expired watchdog locks the line until the expiration is cleared.
            self.watchdog.clear_expiration()
        self.writer.write_one_sample_one_line(False, timeout=1.0)
        if self._running:
            self.watchdog.stop()
            self._running = False

    def shutdown(self) -> None:
        try:
            self.close()
        finally:
            self._close_tasks()

    def _close_tasks(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
        self.task.close()


@register("valve", "nidaq")
class NidaqValve(NidaqRole):
    role = "valve"

    class Params(NidaqParams):
        counter: str = Field("ctr1", description="counter output that drives the valve, e.g. ctr1")
        output_terminal: str | None = Field(None, description="route the pulse to this terminal, e.g. PFI13")
        max_open_ms: float = Field(500.0, gt=0, description="longest opening; the hardware ends it")
        manual_line: str | None = Field(
            None, description="digital line for manual opening under a watchdog, e.g. port0/line0"
        )

        @field_validator("max_open_ms")
        @classmethod
        def _within_the_watchdog(cls, v: float) -> float:
            if v > WATCHDOG_MAX_MS:
                raise ValueError(
                    f"{v:g} ms is beyond {math.floor(WATCHDOG_MAX_MS)} ms, the longest an NI X-series watchdog "
                    f"can time ((2^32 - 1) x 8 ns): the device could not close the valve by itself"
                )
            return v

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.max_open_ms = float(params.max_open_ms)
        self._open_since = 0.0  # session time of the command that began the current opening
        self._pulse: CounterPulse | None = None
        self._manual: WatchdogLine | None = None

    def _configure(self) -> None:
        p: NidaqValve.Params = self.params
        nd = self._need_session().nidaqmx
        self._pulse = CounterPulse(nd, p.device, p.counter, p.output_terminal, self.who)
        if p.manual_line:
            try:
                self._manual = WatchdogLine(nd, p.device, p.manual_line, self.max_open_ms / 1000.0, self.who)
            except BaseException:
                self._pulse.close()
                self._pulse = None
                raise

    def pulse(self, duration_ms: float) -> None:
        if not (math.isfinite(duration_ms) and duration_ms >= 0):
            raise ValueError(f"valve pulse duration must be a finite number >= 0 ms, got {duration_ms}")
        self._need_pulse()
        if duration_ms == 0:
            return
        if duration_ms > self.max_open_ms:
            log.warning("%s: pulse of %.1f ms cut to the maximum %.1f ms", self.who, duration_ms, self.max_open_ms)
            duration_ms = self.max_open_ms
        self._open_for(duration_ms)

    def _open_for(self, duration_ms: float) -> None:
        """One counter pulse; one that comes while the valve is still open continues that opening, which
        as a whole never lasts longer than max_open_ms (timed on the session clock from the first
        pulse's command: exact to within the jitter of the start call's latency)."""
        pulse = self._need_pulse()
        now = self._session_clock.now()
        if pulse.is_high():
            left_ms = self.max_open_ms - (now - self._open_since) * 1000.0
            if left_ms <= 0:
                log.warning("%s: the valve has been open for its maximum %.1f ms; a pulse of %.1f ms is dropped",
                            self.who, self.max_open_ms, duration_ms)
                return
            if duration_ms > left_ms:
                log.warning("%s: pulse of %.1f ms cut to %.1f ms, what is left of the current opening's maximum",
                            self.who, duration_ms, left_ms)
                duration_ms = left_ms
        else:
            self._open_since = now
        pulse.fire(duration_ms / 1000.0)

    def open_valve(self) -> None:
        self._need_pulse()
        if self._manual is not None:
            self._manual.open()
        else:
            self._open_for(self.max_open_ms)

    def close_valve(self) -> None:
        # Allowed when already closed (and when not open at all): shutting the valve must always work.
        if self._manual is not None:
            self._manual.close()
        if self._pulse is not None:
            self._pulse.halt()

    def _need_pulse(self) -> CounterPulse:
        if self._pulse is None:
            raise RuntimeError(f"{self.who} is not open; call open() first")
        return self._pulse

    def _teardown(self) -> None:
        manual, pulse = self._manual, self._pulse
        self._manual = self._pulse = None
        try:
            if manual is not None:
                manual.shutdown()
        finally:
            if pulse is not None:
                pulse.close()

    def _channels(self) -> list[tuple[str, str]]:
        p: NidaqValve.Params = self.params
        out = [("co", p.counter)]
        if p.manual_line:
            out.append(("do", p.manual_line))
        return out

    def _describe(self) -> str:
        p: NidaqValve.Params = self.params
        return f"valve on {p.device}/{p.counter}, longest opening {p.max_open_ms:g} ms (hardware-timed)"


@register("cue", "nidaq")
class NidaqCue(NidaqRole):
    """Sound cue: a tone written to an analog output, or a counter pulse gating an external tone
    generator for the cue's duration (the generator sets the frequency)."""

    role = "cue"

    class Params(NidaqParams):
        mode: Literal["analog", "trigger"] = "analog"
        channel: str = Field("ao0", description="analog: e.g. ao0; trigger: a counter, e.g. ctr2")
        output_terminal: str | None = Field(None, description="trigger: route the pulse to this terminal")
        sample_rate_hz: float = Field(20_000.0, gt=0, le=10_000_000, description="analog output update rate")
        amplitude_v: float = Field(1.0, gt=0, le=10)
        ramp_ms: float = Field(5.0, ge=0, le=100, description="raised-cosine on/off ramps (no clicks)")
        max_duration_ms: float = Field(5000.0, gt=0, le=60_000)

        @model_validator(mode="after")
        def _pulse_fits_the_counter(self) -> NidaqCue.Params:
            longest = math.floor(PULSE_MAX_S_100MHZ * 1000)
            if self.mode == "trigger" and self.max_duration_ms > longest:
                raise ValueError(
                    f"max_duration_ms={self.max_duration_ms:g}: a trigger cue is one counter pulse, at most "
                    f"{longest} ms ((2^32 - 1) ticks of the 100 MHz timebase)"
                )
            return self

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self._task: Any = None
        self._writer: Any = None
        self._trigger: CounterPulse | None = None

    def _configure(self) -> None:
        p: NidaqCue.Params = self.params
        nd = self._need_session().nidaqmx
        if p.mode == "trigger":
            self._trigger = CounterPulse(nd, p.device, p.channel, p.output_terminal, self.who)
            return
        physical = f"{p.device}/{p.channel}"
        task = make_task(nd, self.who)
        try:
            task.ao_channels.add_ao_voltage_chan(physical, min_val=-p.amplitude_v, max_val=p.amplitude_v)
        except nd.errors.Error as e:
            task.close()
            raise channel_error(nd, f"{self.who}: analog output {physical}", p.device, "ao", e) from e
        self._task = task
        self._writer = nd.stream_writers.AnalogSingleChannelWriter(task.out_stream, auto_start=False)
        self._writer.verify_array_shape = False

    def play(self, duration_ms: float, frequency_hz: float) -> None:
        p: NidaqCue.Params = self.params
        if not (duration_ms > 0 and math.isfinite(duration_ms)):
            raise ValueError(f"cue duration must be a finite number > 0 ms, got {duration_ms}")
        if not (frequency_hz > 0 and math.isfinite(frequency_hz)):
            raise ValueError(f"cue frequency must be a finite number > 0 Hz, got {frequency_hz}")
        if frequency_hz >= p.sample_rate_hz / 2:
            raise ValueError(f"cue frequency {frequency_hz:g} Hz needs sample_rate_hz above {2 * frequency_hz:g}")
        duration_ms = min(duration_ms, p.max_duration_ms)
        self._need_session()
        if self._trigger is not None:
            self._trigger.fire(duration_ms / 1000.0)
            return
        nd = self._session.nidaqmx  # type: ignore[union-attr]
        wave = tone(p.sample_rate_hz, duration_ms, frequency_hz, p.amplitude_v, p.ramp_ms)
        try:
            self._task.stop()  # a tone still playing is cut by the new one
            self._task.timing.cfg_samp_clk_timing(
                p.sample_rate_hz, sample_mode=nd.constants.AcquisitionType.FINITE, samps_per_chan=len(wave)
            )
            self._writer.write_many_sample(wave, timeout=1.0)  # into the task's buffer: returns at once
            self._task.start()
        except nd.errors.Error as e:
            raise NidaqError(f"{self.who}: playing a {duration_ms:g} ms tone failed: {e}") from e

    def _teardown(self) -> None:
        trigger, task = self._trigger, self._task
        self._trigger = self._task = self._writer = None
        if trigger is not None:
            trigger.close()
        if task is not None:
            task.close()

    def _channels(self) -> list[tuple[str, str]]:
        p: NidaqCue.Params = self.params
        return [("co" if p.mode == "trigger" else "ao", p.channel)]

    def _describe(self) -> str:
        p: NidaqCue.Params = self.params
        return f"cue on {p.device}/{p.channel} ({p.mode})"
