"""What the window says about a session, decided from what is known (no Qt).

Live phases: STARTING (the runner process is coming up), RUNNING, PAUSED, STALLED (the runner is alive
but no telemetry came for a while). Final phases, decided from the session folder (the record), never
from a message alone:

- FINISHED: the footer says the session completed (its end condition was reached);
- STOPPED EARLY: the footer says it did not complete (an operator stop, a signal, a fault);
- CRASHED: the runner is gone and left no footer, or it reported that its loop crashed.

A final phase carries the folder's own counts (rig.datalog.info.session_info), which are what `rig info`
prints for that folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from gui.wire import End


class Phase(StrEnum):
    IDLE = "IDLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STALLED = "STALLED"
    FINISHED = "FINISHED"
    STOPPED_EARLY = "STOPPED EARLY"
    CRASHED = "CRASHED"

    @property
    def live(self) -> bool:
        return self in (Phase.STARTING, Phase.RUNNING, Phase.PAUSED, Phase.STALLED)

    @property
    def final(self) -> bool:
        return self in (Phase.FINISHED, Phase.STOPPED_EARLY, Phase.CRASHED)


@dataclass(frozen=True)
class Outcome:
    phase: Phase  # FINISHED, STOPPED_EARLY or CRASHED
    reason: str
    folder: Path | None
    info: dict[str, Any] | None  # session_info of the folder; None when it cannot be read
    error: str | None = None  # why the folder could not be read

    def summary_line(self) -> str:
        if self.info is None:
            return f"{self.phase.value.lower()}: {self.reason}; the folder cannot be read: {self.error}"
        i = self.info
        missed = i.get("missed_display_frames")
        return (f"{self.phase.value.lower()}: {self.reason} · {i['trials']} trials · {i['rewards']} rewards · "
                f"{i['water_ul']:.1f} µl" + (f" · {missed} missed frames" if missed is not None else ""))


def outcome(folder: Path | None, end: End | None, runner_gone: bool) -> Outcome:
    """The final phase of a session from its folder, plus the runner's end message when one came."""
    from rig.datalog.info import session_info
    from rig.datalog.reader import Session, SessionError

    info: dict[str, Any] | None = None
    error = None
    has_footer = False
    if folder is not None:
        try:
            session = Session.open(folder)
            info = session_info(session)
            has_footer = session.footer is not None
        except (SessionError, OSError) as e:
            error = str(e)
    else:
        error = "no session folder was announced"
    if end is not None and end.complete is None:
        return Outcome(Phase.CRASHED, end.reason or "the runner's loop crashed", folder, info, error)
    if info is not None and has_footer:
        phase = Phase.FINISHED if info.get("complete") else Phase.STOPPED_EARLY
        return Outcome(phase, str(info.get("end_reason")), folder, info, error)
    if info is None and end is not None and runner_gone:
        # The folder cannot be read, but the runner said how it ended.
        return Outcome(Phase.FINISHED if end.complete else Phase.STOPPED_EARLY, end.reason, folder, None, error)
    why = "the runner process is gone and the session has no footer (killed or crashed)"
    return Outcome(Phase.CRASHED, why if runner_gone else "the session ended without a footer", folder, info, error)

