"""Fitting one clock to another: the line, and the two ways the rig fits it.

Every clock in the rig (a board's microseconds, a DAQ's sample clock, the mesoscope's frame times) is mapped
onto another by a line, `y = offset + scale * x`. `least_squares` fits it to pairs whose errors are
symmetric (matched frame times); `lower_envelope` fits it to pairs that can only be late (a device stamp
and the host time it was received: transport latency is never negative), by taking the slope from the
pairs and laying the line under all of them. Drivers use these for their device clocks; rig.sync for the
mesoscope's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivers.base import ClockMap

__all__ = ["LinearFit", "least_squares", "lower_envelope"]


@dataclass(frozen=True, slots=True)
class LinearFit:
    """y = offset + scale * x, fitted on n pairs, with the residuals' rms and largest magnitude (s)."""

    offset: float
    scale: float
    n: int
    rms_s: float
    max_abs_s: float

    def map(self, x: np.ndarray | float) -> np.ndarray:
        return self.offset + self.scale * np.asarray(x, dtype=float)

    def unmap(self, y: np.ndarray | float) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.offset) / self.scale

    @property
    def drift_ppm(self) -> float:
        return (self.scale - 1.0) * 1e6

    @property
    def clock_map(self) -> ClockMap:
        return ClockMap(self.offset, self.scale)

    def as_dict(self) -> dict[str, float | int]:
        return {"offset_s": self.offset, "drift_ppm": self.drift_ppm, "n": self.n, "rms_ms": self.rms_s * 1e3,
                "max_abs_ms": self.max_abs_s * 1e3}


def _pairs(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, what: str) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"{what}: need two 1-D arrays of equal length, not {xa.shape}, {ya.shape}")
    if len(xa) == 0:
        raise ValueError(f"{what}: no pairs to fit")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError(f"{what}: times must be finite")
    return xa, ya


def _fit(offset: float, scale: float, x: np.ndarray, y: np.ndarray) -> LinearFit:
    resid = y - (offset + scale * x)
    return LinearFit(offset, scale, len(x), float(np.sqrt(np.mean(resid**2))), float(np.max(np.abs(resid))))


def least_squares(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *,
                  fit_scale: bool | None = None) -> LinearFit:
    """The least-squares line. Scale is fixed at 1 for fewer than 3 pairs (or when fit_scale=False): a
    drift cannot be told from noise over too short a span."""
    xa, ya = _pairs(x, y, "least_squares")
    x0 = xa.mean()
    xc = xa - x0
    sxx = float(xc @ xc)
    if fit_scale is None:
        fit_scale = len(xa) >= 3 and sxx > 0
    scale = float(xc @ (ya - ya.mean())) / sxx if fit_scale and sxx > 0 else 1.0
    return _fit(float(ya.mean() - scale * x0), scale, xa, ya)


def lower_envelope(device: Sequence[float] | np.ndarray, host: Sequence[float] | np.ndarray, *,
                   scale: float | None = None, fastest: float = 1.0) -> LinearFit:
    """host = offset + scale * device for pairs that can only be late: the slope (given, or fitted, then
    refitted on the `fastest` fraction of pairs, which hug the zero-latency line) and the offset that lays
    the line under every pair, touching the fastest. The residuals are then the latencies (all >= 0)."""
    d, h = _pairs(device, host, "lower_envelope")
    if scale is None:
        if len(d) < 2 or d.max() == d.min():
            scale = 1.0
        else:
            first = least_squares(d - d[0], h - h[0], fit_scale=True)
            scale = first.scale
            if 0 < fastest < 1:
                late = (h - h[0]) - first.map(d - d[0])
                fast = late <= np.quantile(late, fastest)
                if int(fast.sum()) >= 2 and d[fast].max() > d[fast].min():
                    scale = least_squares(d[fast] - d[0], h[fast] - h[0], fit_scale=True).scale
    return _fit(float(np.min(h - scale * d)), float(scale), d, h)
