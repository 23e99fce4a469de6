"""Every opening of the reward valve goes through one guard, whatever asked for it.

Task rewards, operator rewards and flushes all pass `ValveGuard`, which holds these invariants on the
session timeline, for any sequence of requests from any source:

- no opening lasts longer than the valve's `max_open_ms` (a pulse is cut to it; a flush is closed at it);
- no opening starts while the valve is open, nor within `min_closed_ms` of its last closing;
- operator rewards beyond `manual_rewards_per_minute` (over the last minute) are refused;
- once the session has delivered `max_session_water_ul`, nothing opens (a pulse that would pass the cap is
  cut to what is left).

Times are the session clock's at the moment of each call (the runner passes clock.now(), not the
iteration's start), so the limits hold for the valve itself, not only for the loop's bookkeeping.

Each decision is a `Delivery`: what was asked, what was really sent, the water that opening gives through
the calibration, and why anything was cut or refused. The runner logs every one (valve.jsonl), so the
water the record shows is the water the mouse got.

Every opening, a flush too, is a timed pulse that the device ends by itself (the board's timer, the DAQ's
counter, the simulated valve's clock): a stalled or crashed host loop can never hold the valve open. A
flush closed early is cut with close_valve(). The driver and the board firmware enforce max_open_ms again
on their own: the guard is the first of three limits, not the only one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from drivers.base import Valve
from rig.config import ValveCalibration, ValveSafety

Source = Literal["task", "manual", "flush"]


@dataclass(frozen=True, slots=True)
class Delivery:
    t: float
    source: Source
    requested_ms: float
    sent_ms: float  # 0 when refused
    volume_ul: float  # the water this opening delivers, from sent_ms through the calibration
    requested_ul: float  # what the asker meant to give (0 for flushes)
    outcome: Literal["delivered", "cut", "refused"]
    reason: str = ""

    def record(self) -> dict[str, object]:
        return {"t": self.t, "source": self.source, "requested_ms": self.requested_ms, "sent_ms": self.sent_ms,
                "volume_ul": self.volume_ul, "requested_ul": self.requested_ul, "outcome": self.outcome,
                "reason": self.reason}


class ValveGuard:
    def __init__(self, valve: Valve, calibration: ValveCalibration, safety: ValveSafety) -> None:
        self.valve = valve
        self.calibration = calibration
        self.safety = safety
        self.max_open_ms = float(valve.max_open_ms)
        self.water_ul = 0.0
        self._open_until = -math.inf  # session time the current opening ends (a pulse's end, a flush's limit)
        self._closed_at = -math.inf  # when the last opening ended
        self._flush_open = False
        self._opened_t = -math.inf
        self._manual: deque[float] = deque()  # times of accepted operator rewards in the last minute

    # ---- questions the command channel asks before it queues a request ------------------------------

    def manual_refusal(self, t: float) -> str:
        """Why an operator reward asked for at t would be refused now ('' when it would be given). Asked before
        the request reaches the engine, so a refused one is never logged as a reward; a task reward opening
        the valve in the same iteration can still refuse it at the valve (valve.jsonl records that)."""
        self._forget(t)
        refusal = self._refusal(t)
        if refusal:
            return refusal
        if len(self._manual) >= self.safety.manual_rewards_per_minute:
            return (f"operator rewards are limited to {self.safety.manual_rewards_per_minute:g} per minute "
                    "(valve_safety.manual_rewards_per_minute)")
        if self.water_ul >= self.safety.max_session_water_ul:
            return f"the session has given its {self.safety.max_session_water_ul:g} µl cap"
        return ""

    @property
    def is_open(self) -> bool:
        """A flush is under way (from the command channel's point of view)."""
        return self._flush_open

    def open_at(self, t: float) -> bool:
        """The valve is open at t (a reward's pulse or a flush)."""
        return t < self._open_until

    # ---- openings ---------------------------------------------------------------------------------

    def pulse(self, t: float, duration_ms: float, source: Source, requested_ul: float = 0.0) -> Delivery:
        """Open for duration_ms (a reward); returns what was done."""
        self.tick(t)
        refusal = self.manual_refusal(t) if source == "manual" else self._refusal(t)
        if not (math.isfinite(duration_ms) and duration_ms > 0):
            refusal = refusal or f"duration {duration_ms!r} ms is not a positive number"
        if refusal:
            return Delivery(t, source, duration_ms, 0.0, 0.0, requested_ul, "refused", refusal)
        sent, reasons = duration_ms, []
        if sent > self.max_open_ms:
            sent = self.max_open_ms
            reasons.append(f"cut to the valve's max_open_ms {self.max_open_ms:g} ms")
        left_ul = self.safety.max_session_water_ul - self.water_ul
        if self.calibration.volume_ul(sent) > left_ul:
            sent = self._ms_for(left_ul)
            reasons.append(f"cut to the {self.safety.max_session_water_ul:g} µl session cap")
            if sent <= 0:
                return Delivery(t, source, duration_ms, 0.0, 0.0, requested_ul, "refused", reasons[-1])
        self.valve.pulse(sent)
        return self._opened(t, source, duration_ms, sent, requested_ul, "; ".join(reasons))

    def open(self, t: float, close_after_s: float) -> Delivery:
        """A flush: a pulse of close_after_s (at most max_open_ms), which `close()` may cut short."""
        self.tick(t)
        requested = close_after_s * 1000.0
        refusal = self._refusal(t)
        if not (math.isfinite(requested) and requested > 0):
            refusal = refusal or f"close_after_s {close_after_s!r} is not a positive number"
        if refusal:
            return Delivery(t, "flush", requested, 0.0, 0.0, 0.0, "refused", refusal)
        sent, reason = requested, ""
        if sent > self.max_open_ms:
            sent, reason = self.max_open_ms, f"cut to the valve's max_open_ms {self.max_open_ms:g} ms"
        left_ul = self.safety.max_session_water_ul - self.water_ul
        if self.calibration.volume_ul(sent) > left_ul:
            sent, reason = self._ms_for(left_ul), f"cut to the {self.safety.max_session_water_ul:g} µl session cap"
            if sent <= 0:
                return Delivery(t, "flush", requested, 0.0, 0.0, 0.0, "refused", reason)
        self.valve.pulse(sent)
        self._flush_open = True
        # Counted as planned; close() corrects it to what was really open.
        return self._opened(t, "flush", requested, sent, 0.0, reason)

    def close(self, t: float) -> float:
        """Close now (always allowed): cuts any opening under way, a reward's or a flush's. Returns the µl
        the cut opening did not deliver (0 when nothing was open), already taken off `water_ul`."""
        self.valve.close_valve()
        self._flush_open = False
        unused = 0.0
        if t < self._open_until:
            planned_ms = (self._open_until - self._opened_t) * 1000.0
            really_ms = max(0.0, (t - self._opened_t) * 1000.0)
            unused = self.calibration.volume_ul(planned_ms) - self.calibration.volume_ul(really_ms)
            self.water_ul -= unused
            self._open_until = max(t, self._opened_t)
            self._closed_at = self._open_until
        return unused

    def tick(self, t: float) -> bool:
        """Once per iteration: note that a flush's pulse has ended by itself. True when one just ended."""
        if self._flush_open and t >= self._open_until:
            self._flush_open = False
            self._closed_at = self._open_until
            return True
        return False

    # ---- internals --------------------------------------------------------------------------------

    def _refusal(self, t: float) -> str:
        if self._flush_open or t < self._open_until:
            return "the valve is open"
        if t - max(self._closed_at, self._open_until) < self.safety.min_closed_ms / 1000.0:
            return f"the valve must stay shut {self.safety.min_closed_ms:g} ms between openings"
        if self.water_ul >= self.safety.max_session_water_ul:
            return f"the session has given its {self.safety.max_session_water_ul:g} µl cap"
        return ""

    def _opened(self, t: float, source: Source, requested: float, sent: float, requested_ul: float,
                reason: str) -> Delivery:
        self._opened_t = t
        self._open_until = t + sent / 1000.0
        self._closed_at = self._open_until
        volume = self.calibration.volume_ul(sent)
        self.water_ul += volume
        if source == "manual":
            self._manual.append(t)
        return Delivery(t, source, requested, sent, volume, requested_ul, "cut" if reason else "delivered", reason)

    def _ms_for(self, volume_ul: float) -> float:
        if volume_ul <= 0:
            return 0.0
        return min(self.calibration.duration_ms(volume_ul), self.max_open_ms)

    def _forget(self, t: float) -> None:
        while self._manual and t - self._manual[0] >= 60.0:
            self._manual.popleft()
