"""What the plots show, without Qt: fed by telemetry (live) or by a session folder (backfill, replay).

Frames go into a ring buffer (bounded memory for multi-hour sessions); events (licks, cues, rewards, trial
boundaries) are few and kept whole in growable arrays. `snapshot(t_max)` gives everything up to a time,
which is what the replay viewer's playhead needs and what the live view asks for with t_max=None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gui.stages import StageProgress, StageTracker
from rig.engine.records import EventKind

if TYPE_CHECKING:
    from gui.wire import StateBatch
    from rig.datalog.reader import Session

FRAME_COLUMNS = ("i", "t", "pos", "speed", "trial", "corridor", "grey")
ANTICIPATION_WINDOW = 10  # trials in the running anticipatory-lick fraction
LIVE_TAIL_ROWS = 16_384  # the live plot window is read from at most this many newest frames (60 s at 270 Hz)

Pair = tuple[np.ndarray, np.ndarray]


class RingBuffer:
    """Fixed-capacity float64 columns; the oldest rows are overwritten."""

    def __init__(self, columns: tuple[str, ...], capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.columns = columns
        self.capacity = capacity
        self._data = np.full((len(columns), capacity), np.nan)
        self._n = 0  # rows ever appended

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def extend(self, rows: Mapping[str, np.ndarray | list[float]]) -> None:
        new = np.asarray([rows[c] for c in self.columns], dtype=float)
        k = new.shape[1]
        if k == 0:
            return
        if k >= self.capacity:
            self._data[:] = new[:, -self.capacity:]
            # Rows now start at column 0: make the write position a multiple of the capacity.
            self._n = -(-(self._n + k) // self.capacity) * self.capacity
            return
        start = self._n % self.capacity
        end = start + k
        if end <= self.capacity:
            self._data[:, start:end] = new
        else:
            cut = self.capacity - start
            self._data[:, start:] = new[:, :cut]
            self._data[:, : k - cut] = new[:, cut:]
        self._n += k

    def ordered(self) -> np.ndarray:
        """Rows oldest first, as a (columns, rows) array."""
        if self._n <= self.capacity:
            return self._data[:, : self._n]
        start = self._n % self.capacity
        return np.concatenate([self._data[:, start:], self._data[:, :start]], axis=1)

    def newest(self, n: int) -> np.ndarray:
        """The newest n rows (or fewer), oldest first, without copying the whole buffer."""
        have = len(self)
        n = min(n, have)
        if n == 0:
            return self._data[:, :0]
        end = self._n % self.capacity if self._n > self.capacity else self._n
        start = end - n
        if start >= 0:
            return self._data[:, start:end]
        return np.concatenate([self._data[:, start:], self._data[:, :end]], axis=1)


class Table:
    """Growable float64 columns (amortised doubling)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self._data = np.empty((len(columns), 64))
        self.n = 0

    def append(self, *values: float) -> None:
        if self.n == self._data.shape[1]:
            self._data = np.concatenate([self._data, np.empty_like(self._data)], axis=1)
        self._data[:, self.n] = values
        self.n += 1

    def col(self, name: str, upto: int | None = None) -> np.ndarray:
        return self._data[self.columns.index(name), : self.n if upto is None else upto]

    def count_until(self, t_max: float | None) -> int:
        if t_max is None:
            return self.n
        return int(np.searchsorted(self.col("t"), t_max, side="right"))


@dataclass
class Snapshot:
    """Everything the plots and counters need, up to one moment."""

    t: float
    frames: np.ndarray  # (len(FRAME_COLUMNS), n) within the plot window
    corridors: list[str]
    licks: dict[int, Pair]  # corridor -> (position, trial)
    cues: dict[int, Pair]
    rewards: dict[int, Pair]  # task rewards
    manual_rewards: dict[int, Pair]  # operator rewards (drawn apart)
    trial_starts: np.ndarray  # session times
    anticipation: dict[int, Pair]  # corridor -> (trial, running fraction)
    water: Pair  # (t, cumulative ul)
    trials: int
    rewards_n: int
    water_ul: float
    licks_n: int
    trial: int
    next_corridor: int = -1  # the corridor after the current trial's (-1: none or unknown)
    stage: StageProgress | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LiveData:
    """The session's data as far as it has been seen. Frames older than `capacity` are dropped (the
    lick raster, trial marks and water curve keep the whole session)."""

    def __init__(self, corridors: list[str], capacity: int = 60 * 600, protocol: dict[str, Any] | None = None) -> None:
        self.corridors = list(corridors)
        self.frames = RingBuffer(FRAME_COLUMNS, capacity)
        self.licks = Table(("t", "pos", "trial", "corridor", "anticipatory"))  # the raster: no ITI licks
        self.all_licks = Table(("t",))  # every lick onset, as `rig info` counts them
        self.cues = Table(("t", "pos", "trial", "corridor"))
        self.rewards = Table(("t", "pos", "trial", "corridor", "volume", "manual"))
        # next: the corridor of the trial after this one (-1: none or unknown), for the VR preview
        self.trial_starts = Table(("t", "trial", "corridor", "next"))
        self.trial_ends = Table(("t", "trial", "corridor", "anticipated"))
        self.stages = StageTracker(protocol or {})
        self.last_i = -1  # last iteration whose frame was ingested
        self.version = 0  # bumps on every change; the plots redraw only when it moved
        self.event_version = 0  # bumps on every event kept (the raster, anticipation and water plots)
        self._trial_corridor = 0
        self._anticipated = False

    def set_protocol(self, protocol: dict[str, Any]) -> None:
        """The protocol as recorded in the session header: for the stages and their criteria."""
        self.stages = StageTracker(protocol)

    # ---- ingest ------------------------------------------------------------------------------------

    def add_frames(self, columns: Mapping[str, np.ndarray | list[float]]) -> None:
        """Frames as FRAME_COLUMNS columns; rows already seen (by loop iteration) are skipped."""
        i = np.asarray(columns["i"], dtype=float)
        keep = i > self.last_i  # a backfill may overlap what telemetry already sent
        if not keep.any():
            return
        self.frames.extend({c: np.asarray(columns[c], dtype=float)[keep] for c in FRAME_COLUMNS})
        self.last_i = int(i[keep][-1])
        self.version += 1

    def add_batch(self, batch: StateBatch) -> None:
        self.add_frames(batch.columns)

    def add_session_frames(self, f: np.ndarray) -> None:
        """frames.bin records (rig.datalog.reader's layout)."""
        if not len(f):
            return
        from rig.datalog.reader import frame_flag

        self.add_frames({"i": f["i"], "t": f["t"], "pos": f["position_cm"], "speed": f["ball_speed_cm_s"],
                         "trial": f["trial"], "corridor": f["corridor"],
                         "grey": frame_flag(f, "in_grey").astype(float)})

    def add_event(self, ev: Mapping[str, Any]) -> None:
        """One event record as logged in events.jsonl. Fields of the wrong type make the event count as
        nothing on the plots (the folder's own reader judges the record)."""
        try:
            self._add_event(ev)
        except (TypeError, ValueError):
            return

    def _add_event(self, ev: Mapping[str, Any]) -> None:
        kind, t = ev.get("kind"), float(ev.get("t", 0.0))
        trial, pos = int(ev.get("trial", 0)), float(ev.get("position_cm", 0.0))
        raw = ev.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind in (EventKind.TRIAL_END, EventKind.STAGE_ADVANCE):
            self.stages.add(dict(ev))
        if kind == EventKind.TRIAL_START:
            self._trial_corridor = int(data.get("corridor_index", ev.get("corridor", 0)))
            self._anticipated = False
            nxt = data.get("next_corridor_index")
            self.trial_starts.append(t, trial, self._trial_corridor, -1 if nxt is None else int(nxt))
        elif kind == EventKind.LICK:
            self.all_licks.append(t)
            if data.get("iti"):
                return
            ant = bool(data.get("anticipatory"))
            self._anticipated |= ant
            self.licks.append(t, pos, trial, self._trial_corridor, ant)
        elif kind == EventKind.CUE:
            self.cues.append(t, pos, trial, self._trial_corridor)
        elif kind == EventKind.REWARD:
            manual = data.get("source") == "manual"
            self.rewards.append(t, pos, trial, self._trial_corridor, float(data.get("volume_ul", 0.0)), manual)
        elif kind == EventKind.TRIAL_END:
            self.trial_ends.append(t, trial, self._trial_corridor, self._anticipated)
        elif kind != EventKind.STAGE_ADVANCE:
            return
        self.version += 1
        self.event_version += 1

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        for ev in events:
            self.add_event(ev)

    def load_session(self, session: Session) -> None:
        """Fill from a whole session folder (a Session from rig.datalog.reader): the replay viewer."""
        self.set_protocol(session.header.protocol)
        self.add_session_frames(session.frames)
        self.add_events(session.events)

    # ---- read --------------------------------------------------------------------------------------

    def snapshot(self, t_max: float | None = None, window_s: float = 60.0) -> Snapshot:
        fr = self.frames.ordered() if t_max is not None else self.frames.newest(LIVE_TAIL_ROWS)
        if t_max is not None and fr.shape[1]:
            fr = fr[:, : int(np.searchsorted(fr[1], t_max, side="right"))]
        t_now = float(fr[1, -1]) if fr.shape[1] else (t_max or 0.0)
        if t_max is not None:
            t_now = max(t_now, t_max) if fr.shape[1] == 0 else t_now
        lo = int(np.searchsorted(fr[1], t_now - window_s)) if fr.shape[1] else 0
        window = fr[:, lo:]

        def per_corridor(table: Table, *cols: str, where: np.ndarray | None = None) -> dict[int, Pair]:
            n = table.count_until(t_max)
            c = table.col("corridor", n)
            sel = np.ones(n, bool) if where is None else where[:n]
            return {k: (table.col(cols[0], n)[(c == k) & sel], table.col(cols[1], n)[(c == k) & sel])
                    for k in range(len(self.corridors))}

        n_end = self.trial_ends.count_until(t_max)
        ends_c = self.trial_ends.col("corridor", n_end)
        ends_trial = self.trial_ends.col("trial", n_end)
        ends_ant = self.trial_ends.col("anticipated", n_end)
        anticipation = {}
        for k in range(len(self.corridors)):
            sel = ends_c == k
            anticipation[k] = (ends_trial[sel], _running_mean(ends_ant[sel], ANTICIPATION_WINDOW))
        n_rew = self.rewards.count_until(t_max)
        rew_t = self.rewards.col("t", n_rew)
        water = np.cumsum(self.rewards.col("volume", n_rew))
        manual = self.rewards.col("manual", n_rew) > 0
        n_start = self.trial_starts.count_until(t_max)
        return Snapshot(
            t=t_now,
            frames=window,
            corridors=self.corridors,
            licks=per_corridor(self.licks, "pos", "trial"),
            cues=per_corridor(self.cues, "pos", "trial"),
            rewards=per_corridor(self.rewards, "pos", "trial", where=~manual),
            manual_rewards=per_corridor(self.rewards, "pos", "trial", where=manual),
            trial_starts=self.trial_starts.col("t", n_start),
            anticipation=anticipation,
            water=(rew_t, water),
            trials=n_end,
            rewards_n=n_rew,
            water_ul=float(water[-1]) if len(water) else 0.0,
            licks_n=self.all_licks.count_until(t_max),
            trial=int(self.trial_starts.col("trial", n_start)[-1]) if n_start else 0,
            next_corridor=int(self.trial_starts.col("next", n_start)[-1]) if n_start else -1,
            stage=self.stages.progress() if t_max is None else None,
            # Replay (t_max given) can move backwards: only live snapshots may skip unchanged event plots.
            extra={"event_key": (self.event_version, n_start, n_end, n_rew) if t_max is None else None},
        )


def _running_mean(x: np.ndarray, window: int) -> np.ndarray:
    if not len(x):
        return x
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return np.asarray((c[idx] - c[lo]) / (idx - lo))
