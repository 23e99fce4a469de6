"""What the fuzz tests observed, per boundary (issue 11): inputs tried, refused, crashes, hangs, samples lost.

A test increments a count only where it saw the thing happen (a reply with ok=false, a thread found dead, a
bound that ran out); `lost` stays None ("n/a") unless the test compares what arrived with a ground truth.
The tallies live in pytest's config.stash (root conftest.py) and are printed in the terminal summary.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import pytest


@dataclass
class Tally:
    boundary: str
    unit: str  # what one "tried" is: a request, a packet, a byte, a document
    tried: int = 0
    refused: int = 0  # turned away with a reason the test checked (an error reply, a counter, exit 2)
    crashes: int = 0  # the thing under test died or raised what it must not
    hangs: int = 0  # no answer within the test's bound
    bounded: bool = True  # False: the test sets no bound of its own, so hangs print "n/a"
    lost: int | None = None  # samples missing against the ground truth; None: the test cannot tell
    other: collections.Counter[str] = field(default_factory=collections.Counter)

    def lose(self, n: int) -> None:
        """Count `n` samples lost (0 included: it marks the loss as measured)."""
        self.lost = (self.lost or 0) + n

    def row(self) -> str:
        lost = "n/a" if self.lost is None else str(self.lost)
        hangs = str(self.hangs) if self.bounded else "n/a"
        extra = "  ".join(f"{k}={v}" for k, v in sorted(self.other.items()))
        return (f"{self.boundary:<42} {self.tried:>6} {self.unit:<10} {self.refused:>7} {self.crashes:>7} "
                f"{hangs:>5} {lost:>5}  {extra}").rstrip()


HEADER = f"{'boundary':<42} {'tried':>6} {'':<10} {'refused':>7} {'crashes':>7} {'hangs':>5} {'lost':>5}  other"


class FuzzTallies:
    """The session's tallies, by boundary name; a boundary appears once a test asked for it."""

    def __init__(self) -> None:
        self._by_name: dict[str, Tally] = {}

    def __call__(self, boundary: str, unit: str, *, bounded: bool = True) -> Tally:
        t = self._by_name.setdefault(boundary, Tally(boundary, unit, bounded=bounded))
        assert t.unit == unit, f"{boundary}: counted in {t.unit}, not {unit}"
        return t

    def lines(self) -> list[str]:
        rows = [t for t in self._by_name.values() if t.tried]
        return [HEADER, *(t.row() for t in rows)] if rows else []


TALLIES = pytest.StashKey[FuzzTallies]()
