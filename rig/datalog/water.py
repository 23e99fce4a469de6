"""The water a session really gave, read from its log.

valve.jsonl (written by the runner's valve guard) holds every opening as decided: what was asked, what was
sent, and the water that gave through the calibration; early-closed flushes are corrected by their
"close" records. Sessions recorded before valve.jsonl existed fall back to the engine's commands (what was
asked for), and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.datalog.reader import Session


@dataclass(frozen=True)
class Water:
    delivered_ul: float  # what the valve really gave
    requested_ul: float  # what the engine (task and operator rewards) asked for
    openings: int
    cut: int  # openings shorter than asked (max_open_ms, the session cap)
    refused: int  # openings not made (valve still open or too soon, rate limit, cap)
    from_log: bool  # False: an old session without valve.jsonl; delivered = requested, unverified

    def warnings(self) -> list[str]:
        out = []
        if not self.from_log:
            out.append("no valve.jsonl: water is the engine's request, not the valve's delivery")
        if self.cut:
            out.append(f"valve: {self.cut} opening(s) cut short (see faults.jsonl)")
        if self.refused:
            out.append(f"valve: {self.refused} opening(s) refused (see faults.jsonl)")
        return out


def _num(x: object) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else 0.0


def session_water(session: Session) -> Water:
    return water_from_records(session.commands, session.valve, "valve.jsonl" in session.header.files)


def water_from_records(commands: list[dict[str, Any]], valve: list[dict[str, Any]], valve_logged: bool) -> Water:
    """The water of a session from its command and valve records (for readers that skip the binary files).
    `valve_logged`: the session's writer knew valve.jsonl (an empty one then means no opening at all)."""
    requested = sum(_num(c.get("volume_ul")) for c in commands if c.get("kind") == "valve")
    if not valve:
        return Water(requested if not valve_logged else 0.0, requested, 0, 0, 0, from_log=valve_logged)
    delivered = 0.0
    openings = cut = refused = 0
    for rec in valve:
        if rec.get("kind") == "open":
            outcome = rec.get("outcome")
            if outcome == "refused":
                refused += 1
                continue
            openings += 1
            cut += outcome == "cut"
            delivered += _num(rec.get("volume_ul"))
        elif rec.get("kind") == "close":
            delivered -= _num(rec.get("unused_ul"))
    return Water(max(delivered, 0.0), requested, openings, cut, refused, True)
