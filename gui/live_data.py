"""What the plots show, without Qt: fed by telemetry (live) or by a session folder (backfill, replay).

Frames go into a ring buffer (bounded memory for multi-hour sessions); events (licks, cues, rewards, trial
boundaries) are few and kept whole in growable arrays. `snapshot(t_max)` gives everything up to a time,
which is what the replay viewer's playhead needs and what the live view asks for with t_max=None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rig.engine.records import EventKind

FRAME_COLUMNS = ("i", "t", "pos", "speed", "trial", "corridor", "grey")
ANTICIPATION_WINDOW = 10  # trials in the running anticipatory-lick fraction


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

    def extend(self, rows: dict[str, np.ndarray | list]) -> None:
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
    licks: dict[int, tuple[np.ndarray, np.ndarray]]  # corridor -> (position, trial)
    cues: dict[int, tuple[np.ndarray, np.ndarray]]
    rewards: dict[int, tuple[np.ndarray, np.ndarray]]
    trial_starts: np.ndarray  # session times
    anticipation: dict[int, tuple[np.ndarray, np.ndarray]]  # corridor -> (trial, running fraction)
    water: tuple[np.ndarray, np.ndarray]  # (t, cumulative ul)
    trials: int
    rewards_n: int
    water_ul: float
    licks_n: int
    trial: int
    next_corridor: int = -1  # the corridor after the current trial's (-1: none or unknown)
    extra: dict = field(default_factory=dict)


class LiveData:
    """The session's data as far as it has been seen. Frames older than `capacity` are dropped (the
    lick raster, trial marks and water curve keep the whole session)."""

    def __init__(self, corridors: list[str], capacity: int = 60 * 600) -> None:
        self.corridors = list(corridors)
        self.frames = RingBuffer(FRAME_COLUMNS, capacity)
        self.licks = Table(("t", "pos", "trial", "corridor", "anticipatory"))
        self.cues = Table(("t", "pos", "trial", "corridor"))
        self.rewards = Table(("t", "pos", "trial", "corridor", "volume"))
        # next: the corridor of the trial after this one (-1: none or unknown), for the VR preview
        self.trial_starts = Table(("t", "trial", "corridor", "next"))
        self.trial_ends = Table(("t", "trial", "corridor", "anticipated"))
        self.last_i = -1  # last iteration whose frame was ingested
        self.last_event_i = -1  # last iteration whose events came from a session file (telemetry skips them)
        self.version = 0  # bumps on every change; the plots redraw only when it moved
        self.event_version = 0  # bumps on every event kept (the raster, anticipation and water plots)
        self._trial_corridor = 0
        self._anticipated = False

    # ---- ingest ------------------------------------------------------------------------------------

    def add_frames(self, batch: dict[str, list]) -> None:
        i = np.asarray(batch["i"], dtype=float)
        keep = i > self.last_i  # a backfill may overlap what telemetry already sent
        if not keep.any():
            return
        self.frames.extend({c: np.asarray(batch[c], dtype=float)[keep] for c in FRAME_COLUMNS})
        self.last_i = int(i[keep][-1])
        self.version += 1

    def add_event(self, ev: dict) -> None:
        """One event record (as logged in events.jsonl, or as telemetry sends it)."""
        kind, t = ev.get("kind"), float(ev.get("t", 0.0))
        trial, pos = int(ev.get("trial", 0)), float(ev.get("position_cm", 0.0))
        data = ev.get("data") or {}
        if kind == EventKind.TRIAL_START:
            self._trial_corridor = int(data.get("corridor_index", ev.get("corridor", 0)))
            self._anticipated = False
            nxt = data.get("next_corridor_index")
            self.trial_starts.append(t, trial, self._trial_corridor, -1 if nxt is None else int(nxt))
        elif kind == EventKind.LICK:
            if data.get("iti"):
                return
            ant = bool(data.get("anticipatory"))
            self._anticipated |= ant
            self.licks.append(t, pos, trial, self._trial_corridor, ant)
        elif kind == EventKind.CUE:
            self.cues.append(t, pos, trial, self._trial_corridor)
        elif kind == EventKind.REWARD:
            self.rewards.append(t, pos, trial, self._trial_corridor, float(data.get("volume_ul", 0.0)))
        elif kind == EventKind.TRIAL_END:
            self.trial_ends.append(t, trial, self._trial_corridor, self._anticipated)
        else:
            return
        self.version += 1
        self.event_version += 1

    def add_telemetry_event(self, ev: dict) -> None:
        # The runner logs all events of an iteration in one flush, so a backfill holds all or none of them.
        if int(ev.get("i", -1)) <= self.last_event_i:
            return
        self.add_event(ev)

    def load_session(self, session, until_i: int | None = None) -> None:
        """Fill from a session folder (a Session from rig.datalog.reader): the whole session, or what the
        runner has flushed so far when it is still running."""
        f = session.frames
        if until_i is not None:
            f = f[f["i"] <= until_i]
        if len(f):
            from rig.datalog.reader import frame_flag

            self.add_frames({"i": f["i"], "t": f["t"], "pos": f["position_cm"], "speed": f["ball_speed_cm_s"],
                             "trial": f["trial"], "corridor": f["corridor"],
                             "grey": frame_flag(f, "in_grey").astype(float)})
        for ev in session.events:
            if until_i is None or ev.get("i", 0) <= until_i:
                self.add_event(ev)
        self.last_event_i = max([int(e.get("i", -1)) for e in session.events] + [self.last_event_i])

    # ---- read --------------------------------------------------------------------------------------

    def snapshot(self, t_max: float | None = None, window_s: float = 60.0) -> Snapshot:
        fr = self.frames.ordered()
        if t_max is not None and fr.shape[1]:
            fr = fr[:, : int(np.searchsorted(fr[1], t_max, side="right"))]
        t_now = float(fr[1, -1]) if fr.shape[1] else (t_max or 0.0)
        if t_max is not None:
            t_now = max(t_now, t_max) if fr.shape[1] == 0 else t_now
        lo = int(np.searchsorted(fr[1], t_now - window_s)) if fr.shape[1] else 0
        window = fr[:, lo:]

        def per_corridor(table: Table, *cols: str) -> dict[int, tuple[np.ndarray, ...]]:
            n = table.count_until(t_max)
            c = table.col("corridor", n)
            return {k: tuple(table.col(name, n)[c == k] for name in cols) for k in range(len(self.corridors))}

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
        n_start = self.trial_starts.count_until(t_max)
        return Snapshot(
            t=t_now,
            frames=window,
            corridors=self.corridors,
            licks=per_corridor(self.licks, "pos", "trial"),
            cues=per_corridor(self.cues, "pos", "trial"),
            rewards=per_corridor(self.rewards, "pos", "trial"),
            trial_starts=self.trial_starts.col("t", n_start),
            anticipation=anticipation,
            water=(rew_t, water),
            trials=n_end,
            rewards_n=n_rew,
            water_ul=float(water[-1]) if len(water) else 0.0,
            licks_n=self.licks.count_until(t_max),
            trial=int(self.trial_starts.col("trial", n_start)[-1]) if n_start else 0,
            next_corridor=int(self.trial_starts.col("next", n_start)[-1]) if n_start else -1,
            # Replay (t_max given) can move backwards: only live snapshots may skip unchanged event plots.
            extra={"event_key": (self.event_version, n_start, n_end, n_rew) if t_max is None else None},
        )


def _running_mean(x: np.ndarray, window: int) -> np.ndarray:
    if not len(x):
        return x
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)
