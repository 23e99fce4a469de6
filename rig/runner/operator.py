"""Operator requests (from the app, a script or a signal handler) and the inbox the loop drains."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

OperatorAction = Literal["manual_reward", "pause", "resume", "stop", "note"]
# The operator actions that are engine inputs (a note is logged, and changes nothing).
OPERATOR_ACTIONS: tuple[OperatorAction, ...] = ("manual_reward", "pause", "resume", "stop")


@dataclass(frozen=True)
class Operator:
    """One operator request."""

    action: OperatorAction
    volume_ul: float = 0.0
    text: str = ""  # a note's text


def apply_operator(
    actions: Sequence[Operator], paused: bool, stop_reason: str
) -> tuple[tuple[float, ...], bool, str]:
    """Fold one iteration's operator actions into engine inputs: (manual reward volumes, paused, stop reason).
    The live loop and `rig replay --verify` both use it, so they read the log the same way."""
    manual: tuple[float, ...] = ()
    for op in actions:
        if op.action == "manual_reward":
            manual += (op.volume_ul,)
        elif op.action == "pause":
            paused = True
        elif op.action == "resume":
            paused = False
        elif op.action == "stop":
            stop_reason = stop_reason or "operator stop"
    return manual, paused, stop_reason


class OperatorQueue:
    """Thread-safe inbox of operator requests; the loop drains it once per iteration."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Operator] = queue.SimpleQueue()
        # Nothing waiting? The queue's own (C) method: the --fast loop asks once per iteration.
        self.empty: Callable[[], bool] = self._q.empty

    def put(self, op: Operator) -> None:
        self._q.put(op)

    def drain(self) -> list[Operator]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out
