"""NI-DAQ input roles (config `type: nidaq`): ball encoder, lick sensor and frame clock.

All three sample on the device's shared AI sample clock (drivers.nidaq.session), so their device times
(sample index / rate) are one timebase, mapped to the session timeline by the session's ClockMap. The
frame clock's timestamp mode latches a count of the device's timebase at each edge instead, armed by the
same clock's start, so its times are on that timebase too, at 10 ns (100 MHz) resolution.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from drivers.base import BallSamples, ClockMap, LickEdge
from drivers.nidaq.common import NidaqParams, NidaqRole
from drivers.nidaq.limits import COUNTER_BITS, TIMEBASE_HZ, TIMEBASE_TERMINALS
from drivers.nidaq.signals import DigitalEdges, EdgeCounts, EncoderCounts, Schmitt, TickTimestamps
from drivers.registry import DriverContext, register

DECODING_FACTOR = {"X_1": 1, "X_2": 2, "X_4": 4}


class _ClockedRole(NidaqRole):
    """An input on the shared sample clock."""

    @property
    def clock(self) -> ClockMap:
        return self._session.clock_map if self._session is not None else ClockMap()

    @clock.setter
    def clock(self, value: ClockMap) -> None:  # Device protocol attribute; the session owns the map
        pass

    @property
    def rate_hz(self) -> float:
        return float(self.params.sample_rate_hz)


@register("ball", "nidaq")
class NidaqBall(_ClockedRole):
    """Quadrature encoder on a counter, read as position in counts at every sample-clock tick."""

    role = "ball"

    class Params(NidaqParams):
        counter: str = Field("ctr0", description="counter input, e.g. ctr0")
        encoder: Literal["angular", "linear"] = "angular"
        decoding: Literal["X_1", "X_2", "X_4"] = "X_4"
        pulses_per_rev: int | None = Field(None, gt=0, description="angular: pulses per revolution (one phase)")
        ball_diameter_cm: float | None = Field(None, gt=0, le=200, description="angular: the ball's diameter")
        dist_per_pulse_cm: float | None = Field(None, gt=0, description="linear: surface travel per pulse")
        a_terminal: str | None = Field(None, description="phase A input terminal (default: the counter's)")
        b_terminal: str | None = Field(None, description="phase B input terminal (default: the counter's)")
        sample_rate_hz: float = Field(1000.0, gt=0, le=1_000_000, description="the shared sample clock")
        clock_ai_channel: str = Field(
            "ai0", description="AI channel sampled only to run the clock when no lick/frame channel is analog"
        )

        @model_validator(mode="after")
        def _geometry(self) -> NidaqBall.Params:
            if self.encoder == "angular" and (self.pulses_per_rev is None or self.ball_diameter_cm is None):
                raise ValueError("an angular encoder needs pulses_per_rev and ball_diameter_cm")
            if self.encoder == "linear" and self.dist_per_pulse_cm is None:
                raise ValueError("a linear encoder needs dist_per_pulse_cm")
            return self

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.counts_per_cm = counts_per_cm(params)
        self._counts = EncoderCounts()

    def _configure(self) -> None:
        p: NidaqBall.Params = self.params
        s = self._need_session()
        s.use_rate(p.sample_rate_hz, self.who)
        s.clock_ai_channel = p.clock_ai_channel
        self._stream = s.add_encoder(
            self.who, p.counter, p.encoder, p.decoding, p.pulses_per_rev or 1, p.a_terminal, p.b_terminal
        )
        self._counts = EncoderCounts()

    def read(self) -> BallSamples:
        start, pos = self._take()
        inc = self._counts.feed(pos)
        return BallSamples(self._times(start, len(inc)), inc)

    def _channels(self) -> list[tuple[str, str]]:
        return [("ci", self.params.counter)]

    def _describe(self) -> str:
        p = self.params
        return f"{p.encoder} encoder on {p.device}/{p.counter}, {p.decoding}, {self.counts_per_cm:.2f} counts/cm"


def counts_per_cm(p: NidaqBall.Params) -> float:
    """Counts per cm of ball surface: decoding factor x pulses per cm."""
    factor = DECODING_FACTOR[p.decoding]
    if p.encoder == "angular":
        assert p.pulses_per_rev is not None and p.ball_diameter_cm is not None
        return factor * p.pulses_per_rev / (math.pi * p.ball_diameter_cm)
    assert p.dist_per_pulse_cm is not None
    return factor / p.dist_per_pulse_cm


@register("lick", "nidaq")
class NidaqLick(_ClockedRole):
    """Lick sensor: an analog input through a Schmitt trigger (volts), or a sampled digital line."""

    role = "lick"

    class Params(NidaqParams):
        mode: Literal["analog", "digital"] = "analog"
        channel: str = Field("ai1", description="analog: e.g. ai1; digital: e.g. port0/line1")
        low_v: float = Field(1.0, ge=-10, le=10, description="analog: released below this voltage")
        high_v: float = Field(2.0, ge=-10, le=10, description="analog: contact at or above this voltage")
        active_high: bool = Field(True, description="False when contact pulls the line low")
        terminal: Literal["RSE", "NRSE", "DIFF", "DEFAULT"] = "RSE"
        sample_rate_hz: float = Field(1000.0, gt=0, le=1_000_000)

        @model_validator(mode="after")
        def _band(self) -> NidaqLick.Params:
            if self.mode == "analog" and not self.low_v < self.high_v:
                raise ValueError(f"low_v ({self.low_v}) must be below high_v ({self.high_v})")
            return self

    def _configure(self) -> None:
        p: NidaqLick.Params = self.params
        s = self._need_session()
        s.use_rate(p.sample_rate_hz, self.who)
        if p.mode == "analog":
            self._stream = s.add_ai(self.who, p.channel, -10.0, 10.0, p.terminal)
            self._schmitt = Schmitt(p.low_v, p.high_v, initial_high=not p.active_high)
        else:
            self._stream = s.add_di(self.who, p.channel)
            self._digital = DigitalEdges(initial_high=not p.active_high)

    def read(self) -> list[LickEdge]:
        p: NidaqLick.Params = self.params
        start, x = self._take()
        edges = self._schmitt.feed(start, x) if p.mode == "analog" else self._digital.feed(start, x)
        rate = self.rate_hz
        return [LickEdge(e.index / rate, e.rising == p.active_high) for e in edges]

    def _channels(self) -> list[tuple[str, str]]:
        p = self.params
        return [("ai" if p.mode == "analog" else "di", p.channel)]

    def _describe(self) -> str:
        p = self.params
        if p.mode == "analog":
            return f"lick on {p.device}/{p.channel}, contact >= {p.high_v} V, release <= {p.low_v} V"
        return f"lick on digital line {p.device}/{p.channel}"


@register("frame_clock", "nidaq")
class NidaqFrameClock(_ClockedRole):
    """Imaging frame clock, three ways (resolution of each in docs/nidaq.md):

    - analog: an analog channel in the clocked AI task with edges through threshold_v (falling through
      2.5 V by default, as in the paper; times interpolated between samples; a new edge needs the line
      back beyond threshold_v +/- hysteresis_v first);
    - counter: a counter counting edges, sampled on the same clock (one-sample resolution);
    - timestamp: a counter counting the device's timebase, latched by each edge (10 ns at 100 MHz).
    """

    role = "frame_clock"

    class Params(NidaqParams):
        mode: Literal["analog", "counter", "timestamp"] = "analog"
        channel: str = Field("ai2", description="analog: e.g. ai2; counter and timestamp: e.g. ctr2")
        edge: Literal["falling", "rising"] = "falling"
        threshold_v: float = Field(2.5, ge=-10, le=10)
        hysteresis_v: float = Field(0.5, gt=0, le=5, description="analog: re-arm this far beyond the threshold")
        terminal: str | None = Field(
            None, description="counter: the input terminal (default the counter's); timestamp: the PFI line "
            "the frame clock is wired to, e.g. PFI0 (required)"
        )
        input_config: Literal["RSE", "NRSE", "DIFF", "DEFAULT"] = "RSE"
        sample_rate_hz: float = Field(1000.0, gt=0, le=1_000_000, description="the shared clock (not timestamp)")
        timebase: Literal["100MHz", "20MHz"] = Field("100MHz", description="timestamp: the timebase counted")
        max_rate_hz: float = Field(
            1000.0, gt=0, le=100_000, description="timestamp: the highest frame-clock edge rate (buffer size)"
        )

        @model_validator(mode="after")
        def _timestamp_needs_a_line(self) -> NidaqFrameClock.Params:
            if self.mode == "timestamp" and not self.terminal:
                raise ValueError("timestamp mode needs terminal: the PFI line the frame clock is wired to, e.g. PFI0")
            return self

    def _configure(self) -> None:
        p: NidaqFrameClock.Params = self.params
        s = self._need_session()
        if p.mode == "timestamp":  # needs no particular rate of the shared clock, only its start
            assert p.terminal is not None
            timebase = TIMEBASE_TERMINALS[p.timebase]
            edge = "FALLING" if p.edge == "falling" else "RISING"
            self._stream = s.add_timestamp_counter(self.who, p.channel, p.terminal, edge, timebase, p.max_rate_hz)
            self._stamps = TickTimestamps(TIMEBASE_HZ[timebase.lower()], wrap=1 << COUNTER_BITS)
            return
        s.use_rate(p.sample_rate_hz, self.who)
        if p.mode == "analog":
            self._stream = s.add_ai(self.who, p.channel, -10.0, 10.0, p.input_config)
            # The edge's own threshold is exactly threshold_v (falling: low = 2.5 V); the other one,
            # hysteresis_v away, re-arms it. Start on the level the edge ends at (low for falling edges),
            # so the line's idle level at the first sample is never taken for a frame.
            t, h = p.threshold_v, p.hysteresis_v
            low, high = (t, t + h) if p.edge == "falling" else (t - h, t)
            self._schmitt = Schmitt(low, high, initial_high=p.edge == "rising")
        else:
            edge = "FALLING" if p.edge == "falling" else "RISING"
            self._stream = s.add_edge_counter(self.who, p.channel, edge, p.terminal)
            self._edges = EdgeCounts()

    def read(self) -> np.ndarray:
        p: NidaqFrameClock.Params = self.params
        start, x = self._take()
        if p.mode == "timestamp":
            return self._stamps.feed(x, self._need_session().device_time())
        rate = self.rate_hz
        if p.mode == "counter":
            return self._edges.feed(start, x) / rate
        want_rising = p.edge == "rising"
        return np.array([c.index / rate for c in self._schmitt.feed(start, x) if c.rising == want_rising])

    def _channels(self) -> list[tuple[str, str]]:
        p = self.params
        return [("ai" if p.mode == "analog" else "ci", p.channel)]

    def _describe(self) -> str:
        p = self.params
        if p.mode == "timestamp":
            return (f"frame clock on {p.device}/{p.terminal}, {p.edge} edges timestamped by {p.channel} "
                    f"on the {p.timebase} timebase")
        return f"frame clock on {p.device}/{p.channel}, {p.edge} edges ({p.mode})"
