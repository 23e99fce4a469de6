"""Board faults, recorded once per kind with a count.

The first fault of a kind is recorded at once (so the session log shows it within its next fault poll);
repeats are folded into one record per kind and summary period that says how many there were. A noisy
link therefore writes a handful of lines, not one per bad frame, and no occurrence goes uncounted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from drivers.base import Clock

SUMMARY_S = 10.0  # repeats of one kind are summed into one record per this much time
MAX_RECORDS = 10_000  # hard bound on the list; past it, only the counters keep growing


@dataclass(frozen=True, slots=True)
class Fault:
    t: float  # session time (the DriverContext clock) when the host noticed it
    kind: str
    message: str
    count: int = 1  # occurrences this record stands for


@dataclass
class _Kind:
    last_record: float  # time.monotonic() of the last record of this kind
    pending: int = 0  # occurrences since then, not yet recorded
    message: str = ""


class FaultLog:
    """Thread-safe, append-only list of `Fault`s (`records`, the same list object for its lifetime)."""

    def __init__(self, clock: Clock, summary_s: float = SUMMARY_S) -> None:
        self._clock = clock
        self._summary_s = summary_s
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        # One list, only ever appended to: the runner keys "faults already logged" by its identity.
        self.records: list[Fault] = []

    def report(self, kind: str, message: str, n: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            k = self._kinds.get(kind)
            if k is None or (not k.pending and now - k.last_record >= self._summary_s):
                self._kinds[kind] = _Kind(now)
                self._append(Fault(self._clock.now(), kind, message, n))
            else:
                k.pending += n
                k.message = message

    def tick(self) -> None:
        """Record the summaries whose period is over (called often by the reader thread)."""
        now = time.monotonic()
        with self._lock:
            for kind, k in self._kinds.items():
                if k.pending and now - k.last_record >= self._summary_s:
                    self._summarise(kind, k, now)

    def flush(self) -> None:
        """Record every pending summary (at close: nothing counted goes unlogged)."""
        now = time.monotonic()
        with self._lock:
            for kind, k in self._kinds.items():
                if k.pending:
                    self._summarise(kind, k, now)

    def seen(self, kind: str) -> bool:
        with self._lock:
            return kind in self._kinds

    def _summarise(self, kind: str, k: _Kind, now: float) -> None:
        span = now - k.last_record
        self._append(Fault(self._clock.now(), kind, f"{k.pending} more in {span:.1f} s; last: {k.message}", k.pending))
        k.pending, k.last_record = 0, now

    def _append(self, fault: Fault) -> None:
        if len(self.records) < MAX_RECORDS:
            self.records.append(fault)
