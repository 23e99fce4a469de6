"""Fitting the NI-DAQ device clock to the session (host) clock: offset and scale over a sliding window.

Each poll of a clocked task gives one pair (host session time of the read, device time of the newest
sample). The newest sample was taken *before* the read returned, by the read latency (USB/PCIe transfer,
the loop's own delay), so host >= true map(device) for every pair: the true line is the lower envelope
of the pairs. The fit therefore keeps, per `bin_s` of device time, only the pair with the least
host - device (the read that came closest to its sample), fits host = offset + scale * device to those
minima by least squares over the last `window_s` of device time, and then lowers the offset until no
kept pair lies below the line. What remains is the minimum read latency seen in the window (typically
well under 1 ms), by which session times of device events are late; drift between the DAQ timebase
and the host clock (tens of ppm) is corrected by the scale.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from drivers.base import ClockMap
from drivers.clockfit import least_squares, lower_envelope

log = logging.getLogger(__name__)

MAX_DRIFT = 1e-3  # a fitted rate error above 1000 ppm is not a crystal's drift: keep the previous map


class DriftTracker:
    """Offset + scale from (host, device) pairs; `add` refits at most every `refit_s` of host time."""

    def __init__(
        self, start: ClockMap, window_s: float = 60.0, refit_s: float = 1.0, bin_s: float = 1.0,
        min_span_s: float = 5.0,
    ) -> None:
        if not (window_s > 0 and refit_s >= 0 and bin_s > 0 and min_span_s >= 0):
            raise ValueError(
                f"clock fit needs window_s > 0, refit_s >= 0, bin_s > 0, min_span_s >= 0; got "
                f"{window_s}, {refit_s}, {bin_s}, {min_span_s}"
            )
        self.map = start
        self.window_s = float(window_s)
        self.refit_s = float(refit_s)
        self.bin_s = float(bin_s)
        self.min_span_s = float(min_span_s)  # shorter than this: fit the offset only (scale kept)
        self._bins: dict[int, tuple[float, float]] = {}  # bin -> (device, host) with the least host - device
        self._last_fit = -math.inf

    def add(self, host_s: float, device_s: float) -> bool:
        """Record one pair; refit when refit_s has passed since the last fit. True if the map changed."""
        if not (math.isfinite(host_s) and math.isfinite(device_s)):
            raise ValueError(f"clock pair must be finite, got host={host_s} device={device_s}")
        b = math.floor(device_s / self.bin_s)
        kept = self._bins.get(b)
        if kept is None or host_s - device_s < kept[1] - kept[0]:
            self._bins[b] = (device_s, host_s)
        if host_s - self._last_fit < self.refit_s:
            return False
        self._last_fit = host_s
        return self._refit(device_s)

    def _refit(self, newest_device_s: float) -> bool:
        oldest = newest_device_s - self.window_s
        for b in [b for b, (d, _) in self._bins.items() if d < oldest]:
            del self._bins[b]
        pts = np.array(sorted(self._bins.values()))
        d, h = pts[:, 0], pts[:, 1]
        scale = self.map.scale
        if len(pts) >= 3 and d[-1] - d[0] >= self.min_span_s:
            fitted = least_squares(d - d[0], h, fit_scale=True).scale
            if abs(fitted - 1.0) <= MAX_DRIFT:
                scale = fitted
            else:
                log.warning("NI-DAQ clock fit gave a rate error of %.0f ppm; keeping the previous scale",
                            (fitted - 1.0) * 1e6)
        new = lower_envelope(d, h, scale=scale).clock_map  # the line under every pair, touching the lowest
        if new == self.map:
            return False
        self.map = new
        return True
