"""Pure sample-buffer processing for the NI-DAQ roles: no nidaqmx import, so it is testable anywhere.

Every detector keeps the state it needs between buffers (the Schmitt-trigger level, the last counter
value), so a signal split across reads gives the same result as one read. Sample indices count from
the first sample of the shared sample clock; device time = index / rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Crossing:
    """One Schmitt-trigger transition: `index` is the (fractional) sample index at which the signal
    crossed the threshold that switched the output (`high` rising, `low` falling), interpolated
    linearly between the two samples around it; `rising` tells the direction."""

    index: float
    rising: bool


class Schmitt:
    """Two-threshold (hysteresis) comparator over successive buffers of samples.

    The output goes high when a sample reaches `high` and low when one falls to `low`; samples in
    between keep the previous output, so noise smaller than (high - low) never makes an edge.
    """

    def __init__(self, low: float, high: float, initial_high: bool = False) -> None:
        if not low < high:
            raise ValueError(f"hysteresis needs low < high, got low={low} high={high}")
        self.low = float(low)
        self.high = float(high)
        self.state = bool(initial_high)
        self._last: float | None = None  # previous buffer's last sample, for interpolating a crossing

    def feed(self, start_index: int, v: np.ndarray) -> list[Crossing]:
        v = np.asarray(v, dtype=np.float64)
        if v.size == 0:
            return []
        # +1 where the sample sets the output high, -1 where it sets it low, 0 where it keeps it;
        # carry the latest decision forward to get the output at every sample.
        decision = np.where(v >= self.high, 1, np.where(v <= self.low, -1, 0)).astype(np.int8)
        where = np.where(decision != 0, np.arange(v.size), -1)
        np.maximum.accumulate(where, out=where)
        before = 1 if self.state else -1
        out = np.where(where >= 0, decision[np.maximum(where, 0)], before)
        prev = np.concatenate(([before], out[:-1]))
        changed = np.flatnonzero(out != prev)
        result = []
        for k in changed:
            rising = bool(out[k] > 0)
            level = self.high if rising else self.low
            result.append(Crossing(start_index + self._interpolate(v, int(k), level), rising))
        self.state = bool(out[-1] > 0)
        self._last = float(v[-1])
        return result

    def _interpolate(self, v: np.ndarray, k: int, level: float) -> float:
        """Fractional index where the signal passed `level` between sample k (the one that switched the
        output) and the sample before it; k itself at the very first sample."""
        a = float(v[k - 1]) if k > 0 else self._last
        b = float(v[k])
        if a is None or a == b or not (min(a, b) <= level <= max(a, b)):
            return float(k)
        return (k - 1) + (level - a) / (b - a)


class EncoderCounts:
    """Cumulative encoder position (in counts, as DAQmx returns it for TICKS units) -> increments."""

    def __init__(self) -> None:
        self._last = 0  # DAQmx starts the position at the initial value 0

    def feed(self, cumulative: np.ndarray) -> np.ndarray:
        pos = np.rint(np.asarray(cumulative, dtype=np.float64)).astype(np.int64)
        if pos.size == 0:
            return np.zeros(0, dtype=np.int64)
        inc = np.diff(pos, prepend=self._last)
        self._last = int(pos[-1])
        return inc


class EdgeCounts:
    """Cumulative edge count of a counter sampled on the shared clock -> one sample index per edge.

    An edge is placed at the first sample whose count includes it (resolution one sample period);
    counts wrap at 2**32 on the device and are unwrapped here.
    """

    def __init__(self) -> None:
        self._last = 0

    def feed(self, start_index: int, counts: np.ndarray) -> np.ndarray:
        c = np.asarray(counts, dtype=np.int64)
        if c.size == 0:
            return np.zeros(0, dtype=np.int64)
        inc = np.diff(c, prepend=self._last) % (1 << 32)
        self._last = int(c[-1])
        return start_index + np.repeat(np.arange(c.size), inc)


class TickTimestamps:
    """Counts of a free-running timebase latched at each edge (32 bits, wrapping) -> device seconds.

    Within one read the counts rise edge by edge, each step less than one wrap (2**32 ticks is 42.9 s at
    100 MHz; reads come every few ms). Which wrap the newest count lies in is told by `now_s`, the
    device time of the read known to within `margin_s`: the newest edge happened before the read, so its
    time is the latest one at or before now_s + margin_s. That holds however long the line was idle
    between edges, as long as each edge is read within one wrap less the margin.
    """

    def __init__(self, timebase_hz: float, wrap: int = 1 << 32, margin_s: float = 1.0) -> None:
        if not (timebase_hz > 0 and wrap > 0 and 0 <= margin_s < wrap / timebase_hz / 2):
            raise ValueError(f"bad timestamp settings: {timebase_hz} Hz, wrap {wrap}, margin {margin_s} s")
        self.hz = float(timebase_hz)
        self.wrap = int(wrap)
        self.margin_s = float(margin_s)

    def feed(self, counts: np.ndarray, now_s: float) -> np.ndarray:
        c = np.rint(np.asarray(counts, dtype=np.float64)) % self.wrap
        if c.size == 0:
            return np.zeros(0)
        steps = np.diff(c) % self.wrap  # ticks from each edge to the next
        back = np.concatenate((np.cumsum(steps[::-1])[::-1], [0.0]))  # ticks from each edge to the newest
        limit = (now_s + self.margin_s) * self.hz
        newest = c[-1] + np.floor((limit - c[-1]) / self.wrap) * self.wrap
        return np.asarray((newest - back) / self.hz, dtype=np.float64)


class DigitalEdges:
    """A sampled digital line -> transitions (index of the first sample at the new level)."""

    def __init__(self, initial_high: bool = False) -> None:
        self.state = bool(initial_high)

    def feed(self, start_index: int, levels: np.ndarray) -> list[Crossing]:
        x = np.asarray(levels) != 0
        if x.size == 0:
            return []
        prev = np.concatenate(([self.state], x[:-1]))
        changed = np.flatnonzero(x != prev)
        self.state = bool(x[-1])
        return [Crossing(float(start_index + k), bool(x[k])) for k in changed]


def tone(rate_hz: float, duration_ms: float, frequency_hz: float, amplitude_v: float, ramp_ms: float) -> np.ndarray:
    """A sine burst with raised-cosine on/off ramps (no click at the edges), ending at 0 V."""
    n = max(2, round(rate_hz * duration_ms / 1000.0))
    t = np.arange(n) / rate_hz
    w = amplitude_v * np.sin(2 * np.pi * frequency_hz * t)
    r = min(n // 2, round(rate_hz * ramp_ms / 1000.0))
    if r > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
        w[:r] *= ramp
        w[n - r:] *= ramp[::-1]
    w[-1] = 0.0
    return w
