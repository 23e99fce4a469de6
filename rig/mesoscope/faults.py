"""Faults seen on the mesoscope link, reported once per kind with a count (never one line per message).

The first fault of a kind is reported at once; repeats of it are summed and reported as one entry per
`interval_s`, and whatever is left when the link closes in a final entry. A flood of bad messages thus
costs a few lines of faults.jsonl, each saying how many it stands for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkFault:
    """`count` faults of `kind`, the last at rig time `t`; `message` describes the last one."""

    t: float
    kind: str
    message: str
    count: int = 1

    def text(self) -> str:
        return self.message if self.count == 1 else f"{self.message} ({self.count} like this since the last report)"


@dataclass
class _Pending:
    t: float
    message: str
    count: int


class FaultLog:
    """Thread-safe: the receiver thread notes faults, the session hook takes them."""

    def __init__(self, interval_s: float = 1.0, max_kinds: int = 64) -> None:
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self.totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ready: list[LinkFault] = []
        self._pending: dict[str, _Pending] = {}
        self._last_report: dict[str, float] = {}

    def note(self, t: float, kind: str, message: str) -> None:
        with self._lock:
            if kind not in self.totals and len(self.totals) >= self.max_kinds:
                kind = "other"
            self.totals[kind] = self.totals.get(kind, 0) + 1
            if kind not in self._last_report:  # the first of its kind: report it now
                self._last_report[kind] = t
                self._ready.append(LinkFault(t, kind, message[:500]))
                return
            p = self._pending.get(kind)
            if p is None:
                self._pending[kind] = _Pending(t, message[:500], 1)
            else:
                p.t, p.message, p.count = t, message[:500], p.count + 1

    def take(self, now: float, final: bool = False) -> list[LinkFault]:
        """Faults to log now: first occurrences, and repeat summaries once interval_s has passed
        (all of them when `final`)."""
        with self._lock:
            out, self._ready = self._ready, []
            for kind in list(self._pending):
                if final or now - self._last_report[kind] >= self.interval_s:
                    p = self._pending.pop(kind)
                    out.append(LinkFault(p.t, kind, p.message, p.count))
                    self._last_report[kind] = now
            return sorted(out, key=lambda f: f.t)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.totals.values())
