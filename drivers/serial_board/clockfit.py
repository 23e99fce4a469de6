"""Fit of the board's clock to the host's from (device time, host receipt time) pairs.

Every heartbeat gives one pair. Host receipt = true session time of the device stamp + transport
latency, and latency is never negative, so:
- scale (the crystal's rate error, tens of ppm) is a least-squares slope over a sliding window once it
  spans `min_span_s` (refitted on the quarter of points with the lowest residuals, which hug the
  zero-latency line); before that it is 1.0;
- offset is the lower envelope: min(host - scale * device) over the window, i.e. the map sends a device
  stamp to the receipt time of the fastest packet. Mapped times are therefore late by the link's minimum
  latency (USB full speed: ~0.1-1 ms), consistently for every input on this board.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from drivers.base import ClockMap
from drivers.clockfit import lower_envelope


@dataclass(frozen=True, slots=True)
class HeartbeatFit:
    """One fit, for the session log: the map, how many points and the receipt-latency spread."""

    clock: ClockMap  # board seconds -> host receipt clock (the connection uses time.perf_counter)
    points: int
    span_s: float
    latency_p50_s: float  # host receipt minus mapped device time, over the window
    latency_max_s: float


class ClockFitter:
    def __init__(self, window: int = 3000, min_span_s: float = 10.0) -> None:
        self._dev: deque[float] = deque(maxlen=window)
        self._host: deque[float] = deque(maxlen=window)
        self._min_span_s = min_span_s

    def reset(self) -> None:
        self._dev.clear()
        self._host.clear()

    def add(self, t_device: float, t_host: float) -> None:
        self._dev.append(t_device)
        self._host.append(t_host)

    def __len__(self) -> int:
        return len(self._dev)

    def fit(self) -> HeartbeatFit | None:
        if not self._dev:
            return None
        dev = np.fromiter(self._dev, float, len(self._dev))
        host = np.fromiter(self._host, float, len(self._host))
        span = float(dev[-1] - dev[0])
        # Refit on the fastest quarter: latency is one-sided, so those points hug the true line.
        line = lower_envelope(dev, host, scale=None if span >= self._min_span_s else 1.0, fastest=0.25)
        lat = host - line.map(dev)
        return HeartbeatFit(line.clock_map, len(dev), span, float(np.median(lat)), float(lat.max()))
