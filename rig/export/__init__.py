"""Exports of a session to analysis formats (MouseLand dict, NWB) and what they share.

This package module holds the pieces both exporters need: the per-trial table read from the engine's
events, the lick list, the session's absolute time origin, its key, and progress reporting. The
exporters themselves live in rig.export.mouseland and rig.export.nwb (which imports pynwb, the
`export` extra).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TypeVar

import numpy as np

from rig.datalog.reader import Session
from rig.engine.records import EventKind

T = TypeVar("T")

# MATLAB datenum of the Unix epoch (1970-01-01 00:00 is day 719529).
DATENUM_UNIX_EPOCH = 719529.0


class ExportError(Exception):
    """A session cannot be exported in the requested format; the message says why and where."""


def datenum(unix_s: np.ndarray | float) -> np.ndarray:
    """MATLAB datenum (days) of Unix times (UTC)."""
    return np.asarray(unix_s, dtype=float) / 86400.0 + DATENUM_UNIX_EPOCH


def time_origin(session: Session) -> tuple[datetime, str]:
    """Wall-clock time of session time 0 (time-zone aware) and where it came from.

    clock.json (written when the loop starts) is exact; without it the header's start_time, written
    just before the loop starts, is used.
    """
    tz: tzinfo = UTC
    start = session.header.start_time
    parsed: datetime | None = None
    if isinstance(start, str):
        try:
            parsed = datetime.fromisoformat(start)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            tz = parsed.tzinfo  # keep the rig's own offset for display
    if session.clock is not None and isinstance(session.clock.get("unix_s"), (int, float)):
        return datetime.fromtimestamp(float(session.clock["unix_s"]), tz), "clock.json"
    if parsed is None:
        raise ExportError(f"{session.path}: no clock.json and no valid header start_time; session start unknown")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed, "header.json start_time"


def session_key(session: Session) -> str:
    """`<animal>_<YYYY_MM_DD>_<block>`: the lab's key (date with underscores, block = session number)."""
    h = session.header
    date = str(h.date).replace("-", "_")
    try:
        block = int(h.session)
    except (TypeError, ValueError):
        raise ExportError(f"{session.path}: header has no session number") from None
    return f"{h.animal}_{date}_{block}"


@dataclass(frozen=True)
class Trials:
    """One entry per trial that started (the last may be incomplete), in trial order (entry k is trial k).
    Times are session seconds, positions centimetres in the corridor; NaN where a trial has no such event."""

    corridor: np.ndarray  # i8: index into protocol.corridors
    corridor_name: np.ndarray  # str
    rewarded_corridor: np.ndarray  # bool: the corridor pays (exposure: where reward was due)
    probe: np.ndarray  # bool
    stage: np.ndarray  # i8
    start_t: np.ndarray
    end_t: np.ndarray  # NaN for a trial cut short by the end of the session
    grey_t: np.ndarray  # entering the grey part
    cue_t: np.ndarray
    cue_cm: np.ndarray  # where the cue played (NaN: no cue this trial)
    cue_planned_cm: np.ndarray  # the cue position drawn for the trial (NaN: no cue in the protocol)
    zone_start_cm: np.ndarray  # reward zone start (NaN unless a zone mode)
    reward_t: np.ndarray  # first task reward
    reward_cm: np.ndarray
    rewards: np.ndarray  # i8: task rewards delivered
    manual_rewards: np.ndarray  # i8
    withheld_t: np.ndarray  # first reward_withheld (exposure: when reward would have been given)
    withheld_cm: np.ndarray
    first_lick_t: np.ndarray  # first lick onset in the trial (not counting licks after its end)
    licks: np.ndarray  # i8: lick onsets in the trial (idem)
    complete: np.ndarray  # bool: the trial reached trial_end
    anticipatory: np.ndarray  # bool: the trial had an anticipatory lick (trial_end's flag; False if incomplete)
    stage_name: np.ndarray  # str: the stage in force ('' when the protocol has no stages)

    def __len__(self) -> int:
        return len(self.start_t)


def trials(session: Session) -> Trials:
    """The per-trial table, from events.jsonl."""
    starts = [e for e in session.events if e.get("kind") == EventKind.TRIAL_START]
    n = len(starts)
    index = {int(e["trial"]): k for k, e in enumerate(starts)}
    if len(index) != n:
        raise ExportError(f"{session.path}: events.jsonl has two trial_start events for one trial")

    def col(fill: float = np.nan) -> np.ndarray:
        return np.full(n, fill, dtype=float)

    end_t, grey_t, cue_t, cue_cm = col(), col(), col(), col()
    anticipatory = np.zeros(n, bool)
    reward_t, reward_cm, withheld_t, withheld_cm, first_lick = col(), col(), col(), col(), col()
    rewards, manual, licks = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for e in session.events:
        k = index.get(int(e.get("trial", -1)))
        if k is None:
            continue
        kind, t, pos = e.get("kind"), float(e["t"]), float(e.get("position_cm", np.nan))
        data = e.get("data") or {}
        if kind == EventKind.TRIAL_END:
            end_t[k] = t
            anticipatory[k] = bool(data.get("anticipatory"))
        elif kind == EventKind.GREY_START and np.isnan(grey_t[k]):
            grey_t[k] = t
        elif kind == EventKind.CUE and np.isnan(cue_t[k]):
            cue_t[k], cue_cm[k] = t, pos
        elif kind == EventKind.REWARD:
            if data.get("source") == "manual":
                manual[k] += 1
            else:
                rewards[k] += 1
                if np.isnan(reward_t[k]):
                    reward_t[k], reward_cm[k] = t, pos
        elif kind == EventKind.REWARD_WITHHELD and np.isnan(withheld_t[k]):
            withheld_t[k], withheld_cm[k] = t, pos
        elif kind == EventKind.LICK and not data.get("iti"):  # a lick in the post-roll or a pause is in no trial
            licks[k] += 1
            if np.isnan(first_lick[k]):
                first_lick[k] = t

    def field(key: str, default: object) -> list:
        return [(e.get("data") or {}).get(key, default) for e in starts]

    def num(key: str) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in field(key, None)], dtype=float)

    return Trials(
        corridor=np.array(field("corridor_index", -1), dtype=np.int64),
        corridor_name=np.array([str(v) for v in field("corridor", "")]),
        rewarded_corridor=np.array(field("rewarded", False), dtype=bool),
        probe=np.array(field("probe", False), dtype=bool),
        stage=np.array(field("stage", 0), dtype=np.int64),
        start_t=np.array([float(e["t"]) for e in starts], dtype=float),
        end_t=end_t, grey_t=grey_t, cue_t=cue_t, cue_cm=cue_cm, cue_planned_cm=num("cue_position_cm"),
        zone_start_cm=num("zone_start_cm"), reward_t=reward_t, reward_cm=reward_cm, rewards=rewards,
        manual_rewards=manual, withheld_t=withheld_t, withheld_cm=withheld_cm, first_lick_t=first_lick,
        licks=licks, complete=~np.isnan(end_t), anticipatory=anticipatory,
        stage_name=np.array([str(v or "") for v in field("stage_name", "")]),
    )


@dataclass(frozen=True)
class Licks:
    """Lick onsets as the engine saw them: time (session s), trial (-1 in the pre-roll), position in the
    corridor (cm); `in_trial` is false for a lick that belongs to no trial (pre- and post-roll, an
    inter-trial pause: the engine's `iti` flag)."""

    t: np.ndarray
    trial: np.ndarray
    position_cm: np.ndarray
    in_trial: np.ndarray
    anticipatory: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


def licks(session: Session) -> Licks:
    ev = [e for e in session.events if e.get("kind") == EventKind.LICK]
    return Licks(
        t=np.array([float(e["t"]) for e in ev], dtype=float),
        trial=np.array([int(e["trial"]) for e in ev], dtype=np.int64),
        position_cm=np.array([float(e.get("position_cm", np.nan)) for e in ev], dtype=float),
        in_trial=np.array([not (e.get("data") or {}).get("iti", False) for e in ev], dtype=bool),
        anticipatory=np.array([bool((e.get("data") or {}).get("anticipatory", False)) for e in ev], dtype=bool),
    )


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a tqdm bar on stderr when stderr is a terminal; silently otherwise."""
    if not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False)
