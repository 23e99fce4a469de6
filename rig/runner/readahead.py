"""Inputs read ahead in chunks on a virtual clock (--fast), handed to the loop one iteration at a time.

On a virtual clock the loop's iteration times are known in advance (each the previous plus the period,
added as the loop adds them), and drivers with `read_ahead(times)` (the simulated ball and frame clock,
which depend on nothing the loop does) return what many reads would have, at once. Mapping the ball's
samples to session time and cm, and each iteration's sum, are then done in bulk; the writer gets the
chunk's records and logs them as far as iterations consume them (SessionWriter.ball_ahead,
frame_clock_ahead, consumed). Every value is the one the loop's own per-iteration reads would compute,
bit for bit (tests/runner/fast_bytes.py checks the logged bytes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rig.datalog.writer import SessionWriter

__all__ = ["READ_AHEAD_ITERATIONS", "ReadAhead", "segment_sums"]

READ_AHEAD_ITERATIONS = 600  # iterations read at once (10 s at 60 Hz)


class ReadAhead:
    """The ball and the frame clock read ahead for `chunk` iterations at a time."""

    def __init__(self, ball: Any, frame_clock: Any, writer: SessionWriter, period: float,
                 chunk: int = READ_AHEAD_ITERATIONS) -> None:
        if not self.usable(ball, frame_clock):
            raise TypeError(f"{type(ball).__name__} / {type(frame_clock).__name__} cannot be read ahead")
        self._ball = ball
        self._frame_clock = frame_clock
        self._writer = writer
        self._period = period
        self._chunk = chunk
        self._cm_per_count = 1.0 / ball.counts_per_cm

    @staticmethod
    def usable(ball: object, frame_clock: object) -> bool:
        """Both drivers can read ahead and keep their clock maps fixed (so a chunk maps with one map)."""
        return all(callable(getattr(d, "read_ahead", None)) and getattr(d, "clock_static", False)
                   for d in (ball, frame_clock))

    def refill(self, i0: int, t0: float) -> tuple[list[float], list[float], list[float]]:
        """Read iterations i0, i0 + 1, ... (the first at session time t0) ahead: their session times, ball
        cm and session time of the newest ball sample (nan when none came). The records go to the writer,
        logged once the loop tells it the iterations consumed them."""
        period = self._period
        times = [t0]
        t = t0
        for _ in range(self._chunk - 1):
            t += period  # the loop's own accumulation: the same floats
            times.append(t)
        at = np.array(times)
        samples, ends = self._ball.read_ahead(at)
        ts = self._ball.clock.to_session(samples.t)
        cm = samples.counts * self._cm_per_count
        self._writer.ball_ahead(i0, ts, samples.counts, cm, ends)
        ns = np.diff(ends, prepend=0)
        sums = segment_sums(cm, ends - ns, ns)
        lasts = ts[np.maximum(ends - 1, 0)] if len(ts) else np.full(len(ends), math.nan)
        lasts = np.where(ns > 0, lasts, math.nan)
        edges, fc_ends = self._frame_clock.read_ahead(at)
        self._writer.frame_clock_ahead(i0, self._frame_clock.clock.to_session(edges), fc_ends)
        return times, sums.tolist(), lasts.tolist()


def segment_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """float(values[s:s + n].sum()) for every segment, in bulk and bit for bit: numpy's pairwise summation
    order depends on the length, so segments of one length are gathered into one contiguous 2-D array and
    summed along its rows (the same inner loop per row as a 1-D sum; np.add.reduceat adds in another
    order). 0.0 for empty segments."""
    out = np.zeros(len(lengths))
    for n in np.unique(lengths).tolist():
        if n == 0:
            continue
        sel = lengths == n
        block = values[starts[sel][:, None] + np.arange(n)]
        out[sel] = block.sum(axis=1)
    return out
