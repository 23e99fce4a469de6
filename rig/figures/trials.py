"""Per-trial behaviour of one session, computed from its logged events and frames.

    data = trial_data(session.events)          # TrialData: trials, licks, rewards
    data.trials.anticipatory[data.trials.corridor == "leaf1"].mean()
    prof = position_profiles(session.frames, data, bin_cm=10)

Everything here is plain numpy on top of the session log (docs/data-format.md); no plotting. Trials are
indexed as in the log (the engine's trial counter, from 0). The last trial of a session stopped early has
no trial_end: it is kept with `ended` False, and callers that score trials should use ended trials only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rig.engine.records import EventKind

NAN = float("nan")


class TrialDataError(ValueError):
    """The events do not describe trials in the way the engine writes them (a damaged or foreign log)."""


@dataclass(frozen=True)
class Trials:
    """One row per trial_start event, in trial order. Times in s on the session timeline, positions in cm
    from the corridor start; NaN where a value does not apply (no cue, no reward, trial not ended)."""

    index: np.ndarray  # int: the log's trial number
    corridor: np.ndarray  # str: corridor name
    corridor_index: np.ndarray  # int: index in the protocol's corridor list
    rewarded: np.ndarray  # bool: the corridor pays (in exposure: would pay)
    probe: np.ndarray  # bool
    stage: np.ndarray  # int: stage index
    stage_name: np.ndarray  # str ("" when the protocol has no stages)
    t_start: np.ndarray
    t_end: np.ndarray  # NaN when the trial has no trial_end
    ended: np.ndarray  # bool
    cue_position_cm: np.ndarray  # drawn cue position (NaN without a cue)
    cue_t: np.ndarray  # when the cue played (NaN if it never did)
    zone_start_cm: np.ndarray  # drawn reward-zone start (NaN outside zone modes)
    reward_t: np.ndarray  # first reward paid by the task rule
    reward_position_cm: np.ndarray
    rewards: np.ndarray  # int: rule rewards delivered
    rewards_withheld: np.ndarray  # int: rule rewards due but withheld (exposure)
    manual_rewards: np.ndarray  # int
    licks: np.ndarray  # int: licks in the trial (not inter-trial licks)
    first_lick_t: np.ndarray
    first_lick_position_cm: np.ndarray
    anticipatory: np.ndarray  # bool: at least one anticipatory lick (the engine's definition)

    def __len__(self) -> int:
        return len(self.index)

    def corridors(self) -> list[str]:
        """Corridor names in order of first appearance."""
        return list(dict.fromkeys(self.corridor.tolist()))


@dataclass(frozen=True)
class Licks:
    """Every lick event. `trial` is -1 for licks that belong to no trial (inter-trial pause)."""

    t: np.ndarray
    position_cm: np.ndarray
    trial: np.ndarray  # int
    anticipatory: np.ndarray  # bool
    iti: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class Rewards:
    """Every reward or withheld reward event."""

    t: np.ndarray
    position_cm: np.ndarray
    trial: np.ndarray  # int
    volume_ul: np.ndarray
    source: np.ndarray  # str: "task" or "manual"
    withheld: np.ndarray  # bool: reward_withheld (exposure) rather than reward

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class TrialData:
    trials: Trials
    licks: Licks
    rewards: Rewards


def _num(value: Any) -> float:  # a number (or None) from a decoded JSON line
    return NAN if value is None else float(value)


def _where(event: dict[str, Any], n: int) -> str:
    return f"event {n} ({event.get('kind')!r} at t={event.get('t')!r})"


def trial_data(events: Iterable[dict[str, Any]]) -> TrialData:
    """The per-trial table, licks and rewards of a session, from its events.jsonl records."""
    rows: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    lick_rows: list[tuple[float, float, int, bool, bool]] = []
    reward_rows: list[tuple[float, float, int, float, str, bool]] = []
    for n, e in enumerate(events):
        kind = e.get("kind")
        if kind not in ("trial_start", "trial_end", "cue", "lick", "reward", "reward_withheld"):
            continue
        try:
            t, trial, pos = float(e["t"]), int(e["trial"]), float(e["position_cm"])
            data = e.get("data") or {}
        except (KeyError, TypeError, ValueError) as err:
            raise TrialDataError(f"{_where(e, n)}: lacks t, trial or position_cm ({err})") from None
        if kind == EventKind.TRIAL_START:
            if trial in rows:
                raise TrialDataError(f"{_where(e, n)}: trial {trial} starts twice")
            order.append(trial)
            rows[trial] = {
                "corridor": str(data.get("corridor")),
                "corridor_index": int(data.get("corridor_index", -1)),
                "rewarded": bool(data.get("rewarded")),
                "probe": bool(data.get("probe")),
                "stage": int(data.get("stage") or 0),
                "stage_name": str(data.get("stage_name") or ""),
                "t_start": t,
                "t_end": NAN,
                "cue_position_cm": _num(data.get("cue_position_cm")),
                "cue_t": NAN,
                "zone_start_cm": _num(data.get("zone_start_cm")),
                "reward_t": NAN,
                "reward_position_cm": NAN,
                "rewards": 0,
                "rewards_withheld": 0,
                "manual_rewards": 0,
                "licks": 0,
                "first_lick_t": NAN,
                "first_lick_position_cm": NAN,
                "anticipatory": False,
                "ended": False,
            }
            continue
        if kind == EventKind.LICK:
            iti = bool(data.get("iti"))
            lick_rows.append((t, pos, -1 if iti else trial, bool(data.get("anticipatory")), iti))
            if iti:
                continue
        elif kind in ("reward", "reward_withheld"):
            source = str(data.get("source") or "task")
            withheld = kind == EventKind.REWARD_WITHHELD
            reward_rows.append((t, pos, trial, _num(data.get("volume_ul")), source, withheld))
            if trial not in rows:  # a manual reward during an inter-trial pause belongs to the last trial
                continue
        row = rows.get(trial)
        if row is None:
            raise TrialDataError(f"{_where(e, n)}: trial {trial} has no trial_start before it")
        if kind == EventKind.TRIAL_END:
            row["t_end"] = t
            row["ended"] = True
            row["anticipatory"] = bool(data.get("anticipatory"))
        elif kind == EventKind.CUE:
            row["cue_t"] = t
        elif kind == EventKind.LICK:
            row["licks"] += 1
            if row["licks"] == 1:
                row["first_lick_t"], row["first_lick_position_cm"] = t, pos
            if not row["ended"] and data.get("anticipatory"):
                row["anticipatory"] = True
        elif kind == EventKind.REWARD_WITHHELD:
            row["rewards_withheld"] += 1
        elif kind == EventKind.REWARD and data.get("source") == "manual":
            row["manual_rewards"] += 1
        else:
            row["rewards"] += 1
            if row["rewards"] == 1:
                row["reward_t"], row["reward_position_cm"] = t, pos
    return TrialData(_trials(rows, order), _licks(lick_rows), _rewards(reward_rows))


_TRIAL_DTYPES = {
    "corridor": str, "corridor_index": int, "rewarded": bool, "probe": bool, "stage": int, "stage_name": str,
    "rewards": int, "rewards_withheld": int, "manual_rewards": int, "licks": int, "anticipatory": bool,
    "ended": bool,
}


def _trials(rows: dict[int, dict[str, Any]], order: list[int]) -> Trials:
    cols: dict[str, np.ndarray] = {"index": np.array(order, dtype=int)}
    for name in Trials.__dataclass_fields__:
        if name == "index":
            continue
        dtype = _TRIAL_DTYPES.get(name, float)
        values = [rows[k][name] for k in order]
        cols[name] = np.array(values, dtype=dtype) if values else np.zeros(0, dtype=dtype)
    return Trials(**cols)


def _licks(rows: Sequence[tuple[float, float, int, bool, bool]]) -> Licks:
    t, pos, trial, antic, iti = zip(*rows, strict=True) if rows else ((),) * 5
    return Licks(np.array(t, float), np.array(pos, float), np.array(trial, int), np.array(antic, bool),
                 np.array(iti, bool))


def _rewards(rows: Sequence[tuple[float, float, int, float, str, bool]]) -> Rewards:
    t, pos, trial, ul, source, withheld = zip(*rows, strict=True) if rows else ((),) * 6
    return Rewards(np.array(t, float), np.array(pos, float), np.array(trial, int), np.array(ul, float),
                   np.array(source, str) if source else np.zeros(0, str), np.array(withheld, bool))


@dataclass(frozen=True)
class PositionProfiles:
    """Per-trial behaviour in position bins: arrays of shape (n trials, n bins), rows as in `trials`.

    time_s: time spent in the bin; licks: lick count; speed_cm_s: time-weighted mean ball speed (NaN when
    the trial never sampled the bin)."""

    edges_cm: np.ndarray
    time_s: np.ndarray
    licks: np.ndarray
    speed_cm_s: np.ndarray

    @property
    def centers_cm(self) -> np.ndarray:
        centers: np.ndarray = (self.edges_cm[:-1] + self.edges_cm[1:]) / 2
        return centers

    def lick_rate_hz(self) -> np.ndarray:
        """Licks per second of time spent in each bin (NaN where no time was spent)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            rate: np.ndarray = np.where(self.time_s > 0, self.licks / self.time_s, NAN)
        return rate


def position_profiles(
    frames: np.ndarray, data: TrialData, length_cm: float, bin_cm: float = 10.0
) -> PositionProfiles:
    """Bin each trial's frames (frames.bin records) and licks by corridor position, 0..length_cm.

    A frame's interval (from the previous frame) is credited to the position the frame reports, so a
    mouse standing still accumulates time (and slow speed) where it stands."""
    if not (length_cm > 0 and bin_cm > 0):
        raise ValueError(f"length_cm and bin_cm must be positive, got {length_cm}, {bin_cm}")
    edges = np.arange(0.0, length_cm + bin_cm / 2, bin_cm)
    edges[-1] = length_cm
    nb = len(edges) - 1
    trials = data.trials
    row_of = {int(k): r for r, k in enumerate(trials.index)}
    shape = (len(trials), nb)
    time_s = np.zeros(shape)
    dist = np.zeros(shape)
    licks = np.zeros(shape)
    if len(frames) > 1:
        dt = np.diff(frames["t"])
        f = frames[1:]
        uniq, inv = np.unique(f["trial"], return_inverse=True)
        r = np.array([row_of.get(int(k), -1) for k in uniq], dtype=int)[inv]
        b = np.clip(np.searchsorted(edges, f["position_cm"], side="right") - 1, 0, nb - 1)
        # frames after a trial's end (the engine's post-roll keeps the last trial's index) are in no trial
        after = f["t"] > np.append(np.asarray(trials.t_end, float), np.nan)[r]
        ok = (r >= 0) & (dt > 0) & ~after
        np.add.at(time_s, (r[ok], b[ok]), dt[ok])
        np.add.at(dist, (r[ok], b[ok]), (f["ball_speed_cm_s"] * dt)[ok])
    lk = data.licks
    if len(lk):
        r = np.array([row_of.get(int(k), -1) for k in lk.trial])
        b = np.clip(np.searchsorted(edges, lk.position_cm, side="right") - 1, 0, nb - 1)
        ok = (r >= 0) & ~lk.iti
        np.add.at(licks, (r[ok], b[ok]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(time_s > 0, dist / time_s, NAN)
    return PositionProfiles(edges, time_s, licks, speed)


def running_fraction(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean of a boolean (or 0/1) series over the last `window` values (fewer at the
    start), as float."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(values, dtype=float)
    c = np.concatenate(([0.0], np.cumsum(x)))
    k = np.arange(1, len(x) + 1)
    lo = np.maximum(k - window, 0)
    return (c[k] - c[lo]) / (k - lo)
