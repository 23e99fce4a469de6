"""The engine's inputs and outputs: plain immutable records, shared by engine, runner, log and replay.

Times are seconds on the session timeline. Positions are centimetres from the start of the current
corridor's textured part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class EventKind(StrEnum):
    """Every kind of engine event, as logged in events.jsonl (a StrEnum: each member is its string)."""

    SESSION_START = "session_start"
    TRIAL_START = "trial_start"
    CUE = "cue"
    LICK = "lick"
    REWARD = "reward"
    REWARD_WITHHELD = "reward_withheld"
    GREY_START = "grey_start"
    TRIAL_END = "trial_end"
    STAGE_ADVANCE = "stage_advance"
    POST_ROLL = "post_roll"  # the task is over; imaging goes on until session_end
    SESSION_END = "session_end"


EVENT_KINDS: tuple[str, ...] = tuple(k.value for k in EventKind)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything the engine consumes in one step (all that arrived since the previous step)."""

    ball_cm: float = 0.0  # forward ball displacement since the previous step (negative = backwards)
    licks: tuple[float, ...] = ()  # lick onset times, ascending
    manual_rewards_ul: tuple[float, ...] = ()  # operator rewards requested since the previous step
    paused: bool = False  # operator pause: corridor frozen, no cue or reward fires


@dataclass(slots=True)  # not frozen: built every frame, and frozen construction costs ~2 us
class State:
    t: float
    trial: int  # 0-based trial index (-1 during the pre-roll)
    corridor: int  # index into protocol.corridors
    stage: int  # index into protocol.stages (0 when the protocol has none)
    position_cm: float  # within the current corridor, 0 .. corridor length
    position_cum_cm: float  # total distance travelled in the virtual world, never decreasing
    ball_speed_cm_s: float
    virtual_speed_cm_s: float
    moving: bool
    in_grey: bool
    cue_position_cm: float  # this trial's cue position (nan when the protocol has no cue)
    cue_played: bool
    zone_start_cm: float  # this trial's reward zone start (nan unless a zone mode is in force)
    rewards_in_trial: int
    done: bool
    # index of the next trial's corridor, known one trial ahead so the display can draw it beyond the
    # grey part; -1 when there is none (the last trial under max_trials, the imaging rolls) or none is known yet
    next_corridor: int = -1


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    kind: EventKind
    trial: int
    position_cm: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Command:
    """An output the runner must carry out: a valve pulse or a sound cue."""

    t: float
    kind: Literal["valve", "cue"]
    duration_ms: float
    volume_ul: float = 0.0
    frequency_hz: float = 0.0
    source: Literal["task", "manual"] = "task"


@dataclass(frozen=True, slots=True)
class Step:
    state: State
    events: tuple[Event, ...] = ()
    commands: tuple[Command, ...] = ()
