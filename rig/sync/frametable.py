"""Behaviour on the imaging frame grid: one row per imaging frame, and events as fractional frame indices.

The imaging frame clock (frame_clock.bin, TTL edges on the session timeline) is the timing truth. For
each frame we look up the loop's state (frames.bin, one row per displayed frame) at the frame's time,
interpolating the cumulative position between loop iterations, and summarise what happened during the
frame's interval [t_k, t_k+1): distance moved, mean ball speed, lick onsets, rewards.

Events are mapped to fractional frame indices the way the lab's analysis does: linear interpolation of
the event time over the frame times, so frame k's interval spans indices [k, k+1). Indices are 0-based.

Frame numbering, one convention for every export: a frame is known by its `index`, the 0-based row
number in time order, which is what every fractional frame index (every ...Fr field) counts. ScanImage's
own number (1-based, restarting with each acquisition) is kept in `scanimage_frame`, with the session's
`acquisition` number beside it; both are -1 for frames known only from frame_clock.bin.

When the session folder holds a reconciled mesoscope frame table (MESOSCOPE_TABLE, rows of
rig.sync.reconcile.FRAME_DTYPE), its rows and flags are used instead of the bare TTL edges, so frames whose TTL was
lost but whose message arrived still get a row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from rig.datalog.reader import DEFAULT_INPUT_RATE_HZ, Session, SessionError, read_table
from rig.engine.records import EventKind
from rig.loading import LoadError, protocol_from_dict
from rig.protocol import Protocol

# A reconciled frame table the mesoscope hook may attach to the session folder (rig.sync.reconcile.FRAME_DTYPE).
MESOSCOPE_TABLE = "frame_table.npy"

# An interval longer than this many median intervals means frames were lost before this one.
LONG_INTERVAL_FACTOR = 1.5
# An interval shorter than this many median intervals means an extra edge (contact bounce, glitch).
SHORT_INTERVAL_FACTOR = 0.5

# Bits of FrameTable.flags: why a frame's sync is doubtful.
SYNC_FLAGS: dict[str, int] = {
    "long_interval": 1 << 0,  # interval from the previous frame > 1.5 x median: frames lost before it
    "short_interval": 1 << 1,  # interval from the previous frame < 0.5 x median: an extra edge
    "before_loop": 1 << 2,  # before the first loop iteration: behaviour held at the first state
    "after_loop": 1 << 3,  # after the last loop iteration: behaviour held at the last state
    "missing_ttl": 1 << 4,  # mesoscope table: no TTL edge, time estimated from the frame message
    "missing_msg": 1 << 5,  # mesoscope table: TTL edge without a frame message
    "duplicate_msg": 1 << 6,  # mesoscope table: frame message received more than once
    "duplicate_ttl": 1 << 7,  # mesoscope table: a bounce followed the edge
    "restart": 1 << 8,  # mesoscope table: first frame of a later acquisition
}
_MESO_FLAGS = ("missing_ttl", "missing_msg", "duplicate_msg", "duplicate_ttl", "restart")


def session_protocol(session: Session) -> Protocol:
    """The resolved protocol recorded in the session header, validated again."""
    data = session.header.protocol
    if not isinstance(data, dict):
        raise SessionError(f"{session.path}: header.json has no resolved protocol")
    try:
        return protocol_from_dict(data, source=f"{session.path / 'header.json'} protocol")
    except LoadError as e:
        raise SessionError(f"{session.path}: the protocol in header.json does not validate: {e}") from None


def fractional_frame_index(frame_times: np.ndarray, t: np.ndarray | float, period: float | None = None
                           ) -> np.ndarray:
    """0-based fractional imaging-frame index of each time: k + (t - t_k) / (t_k+1 - t_k).

    The last frame's interval is one `period` long (default: the median interval). Times before the
    first frame or after the last frame's interval get NaN.
    """
    ft = np.asarray(frame_times, dtype=float)
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    out = np.full(tt.shape, np.nan)
    n = len(ft)
    if n == 0:
        return out
    if period is None:
        period = float(np.median(np.diff(ft))) if n >= 2 else np.nan
    inside = (tt >= ft[0]) & (tt <= ft[-1])
    out[inside] = np.interp(tt[inside], ft, np.arange(n, dtype=float))
    if period > 0:
        tail = (tt > ft[-1]) & (tt < ft[-1] + period)
        out[tail] = (n - 1) + (tt[tail] - ft[-1]) / period
    return out


@dataclass(frozen=True)
class FrameTable:
    """Behaviour per imaging frame; every array has one entry per frame (0-based frame index = row)."""

    index: np.ndarray  # i8: 0-based frame index = row number in time order; what every ...Fr field counts
    time: np.ndarray  # f8: session time of the frame (TTL edge; estimated when flagged missing_ttl)
    scanimage_frame: np.ndarray  # i8: ScanImage's frame number, 1-based within `acquisition`; -1: unknown
    acquisition: np.ndarray  # i4: the session's acquisition number (from 1); -1: unknown
    iteration: np.ndarray  # i8: loop iteration whose state was on screen at the frame time (-1: before)
    trial: np.ndarray  # i4: 0-based trial index
    corridor: np.ndarray  # i2: index into protocol.corridors
    corridor_name: np.ndarray  # str: corridor name
    position_cm: np.ndarray  # f8: position in the corridor at the frame time (interpolated)
    position_cum_cm: np.ndarray  # f8: total distance travelled at the frame time (never decreasing)
    ball_speed_cm_s: np.ndarray  # f8: mean ball running speed over the frame's interval
    virtual_speed_cm_s: np.ndarray  # f8: mean corridor speed over the frame's interval
    moved_cm: np.ndarray  # f8: corridor distance travelled during the frame's interval
    moving: np.ndarray  # bool: the engine's moving flag at the frame time
    in_grey: np.ndarray  # bool: position is in the grey part (else in the texture)
    licks: np.ndarray  # i4: lick onsets during the frame's interval
    rewards: np.ndarray  # i4: rewards (task and manual) during the frame's interval
    flags: np.ndarray  # u2: SYNC_FLAGS bits; non-zero = doubtful sync
    period_s: float  # median frame interval (NaN with fewer than two frames)
    source: str  # "frame_clock.bin" or MESOSCOPE_TABLE

    def __len__(self) -> int:
        return len(self.time)

    @property
    def frame(self) -> np.ndarray:
        """The 0-based frame index (same as `index`); kept for callers from before the convention."""
        return self.index

    @property
    def in_texture(self) -> np.ndarray:
        return ~self.in_grey

    @property
    def doubtful(self) -> np.ndarray:
        """Frames with any sync flag set."""
        return self.flags != 0

    def flag(self, name: str) -> np.ndarray:
        if name not in SYNC_FLAGS:
            raise KeyError(f"unknown sync flag {name!r}; known: {list(SYNC_FLAGS)}")
        return (self.flags & SYNC_FLAGS[name]) != 0

    def index_of(self, t: np.ndarray | float) -> np.ndarray:
        """Fractional frame index of session times (NaN outside the imaged span)."""
        return fractional_frame_index(self.time, t, self.period_s)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def to_records(self) -> np.ndarray:
        """One structured array (a row per frame), as saved by to_file(.npy)."""
        cols = self.columns()
        width = max([len(s) for s in self.corridor_name.tolist()] + [1])
        dtype = [(k, f"<U{width}" if k == "corridor_name" else v.dtype.str) for k, v in cols.items()]
        out = np.zeros(len(self), dtype=dtype)
        for k, v in cols.items():
            out[k] = v
        return out

    def to_file(self, path: str | Path) -> Path:
        """Write a .npy structured array or a .csv table (header row; flags as an integer)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            with open(path, "wb") as f:
                np.save(f, self.to_records(), allow_pickle=False)
        elif suffix == ".csv":
            cols = self.columns()
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(cols)
                as_lists = [v.astype(int).tolist() if v.dtype == bool else v.tolist() for v in cols.values()]
                w.writerows(zip(*as_lists, strict=True))
        else:
            raise ValueError(f"{path}: frame table files end in .npy or .csv, not {path.suffix!r}")
        return path


def _median_period(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) >= 2 else float("nan")


def _frame_rows(session: Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Frame times, ScanImage frame and acquisition numbers (-1 unknown) and mesoscope-derived flags,
    from the mesoscope table when present, in time order."""
    table_path = session.path / MESOSCOPE_TABLE
    # Bounded, never unpickled, never blocking (a session folder is input like any other).
    rows = read_table(table_path, session.plausible_records(DEFAULT_INPUT_RATE_HZ), ("time", *_MESO_FLAGS))
    if rows is not None:
        names = rows.dtype.names or ()
        # Tables written before the numbering convention call ScanImage's number `frame`.
        number = "scanimage_frame" if "scanimage_frame" in names else "frame"
        missing = [n for n in (number, "acquisition") if n not in names]
        if missing:
            raise SessionError(f"{table_path}: frame table lacks fields {missing}")
        rows = rows[np.argsort(rows["time"], kind="stable")]
        flags = np.zeros(len(rows), np.uint16)
        for name in _MESO_FLAGS:
            flags[rows[name].astype(bool)] |= SYNC_FLAGS[name]
        return (rows["time"].astype(float), rows[number].astype(np.int64), rows["acquisition"].astype(np.int32),
                flags, MESOSCOPE_TABLE)
    fc = session.frame_clock
    order = np.argsort(fc["t"], kind="stable")
    n = len(fc)
    return (fc["t"][order].astype(float), np.full(n, -1, np.int64), np.full(n, -1, np.int32),
            np.zeros(n, np.uint16), "frame_clock.bin")


def _interval_counts(edges: np.ndarray, ends: np.ndarray, times: np.ndarray) -> np.ndarray:
    """How many of `times` fall in each [edges[k], ends[k])."""
    times = np.sort(times)
    return (np.searchsorted(times, ends, "left") - np.searchsorted(times, edges, "left")).astype(np.int32)


def frame_table(session: Session | str | Path) -> FrameTable:
    """The frame table of a session (a Session or its folder)."""
    if not isinstance(session, Session):
        session = Session.open(session)
    protocol = session_protocol(session)
    names = np.array([c.name for c in protocol.corridors])
    tex_len = np.array([c.texture_length_cm for c in protocol.corridors])
    full_len = np.array([c.length_cm for c in protocol.corridors])

    ft, si_frame, acquisition, flags, source = _frame_rows(session)
    n = len(ft)
    index = np.arange(n, dtype=np.int64)
    period = _median_period(ft)
    loop = session.frames
    if len(loop) == 0 and n:
        raise SessionError(f"{session.path}: frames.bin is empty, so there is no behaviour to align")

    # Interval of each frame: [t_k, t_k+1), the last one a median period long.
    ends = np.append(ft[1:], ft[-1] + (period if np.isfinite(period) else 0.0)) if n else ft.copy()
    if n >= 2:
        dt = np.diff(ft)
        flags[1:][dt > LONG_INTERVAL_FACTOR * period] |= SYNC_FLAGS["long_interval"]
        flags[1:][dt < SHORT_INTERVAL_FACTOR * period] |= SYNC_FLAGS["short_interval"]

    if n == 0:
        empty_f, empty_i = np.zeros(0), np.zeros(0, np.int64)
        return FrameTable(index, empty_f, si_frame, acquisition, empty_i.copy(), np.zeros(0, np.int32),
                          np.zeros(0, np.int16), names[:0], empty_f.copy(), empty_f.copy(), empty_f.copy(),
                          empty_f.copy(), empty_f.copy(), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int32),
                          np.zeros(0, np.int32), flags, period, source)

    lt, cum = loop["t"], loop["position_cum_cm"]
    flags[ft < lt[0]] |= SYNC_FLAGS["before_loop"]
    flags[ft > lt[-1]] |= SYNC_FLAGS["after_loop"]

    # The state on screen at time t is the last loop row at or before t (the first row before the loop).
    k = np.searchsorted(lt, ft, "right") - 1
    before = k < 0
    k = np.clip(k, 0, len(loop) - 1)
    cum_f = np.interp(ft, lt, cum)
    trial = loop["trial"][k].astype(np.int32)
    corridor = loop["corridor"][k].astype(np.int16)
    # Trial and corridor are the engine's at the frame time (so they agree with the event times); the
    # position advances by the distance travelled since that iteration, held at the corridor's end.
    pos = loop["position_cm"][k] + (cum_f - cum[k])
    pos = np.clip(pos, 0.0, full_len[corridor])
    iteration = np.where(before, -1, loop["i"][k]).astype(np.int64)

    span = ends - ft
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = np.interp(ends, lt, cum) - cum_f
        vspeed = np.where(span > 0, moved / span, 0.0)
        ball = session.ball
        if len(ball):
            bo = np.argsort(ball["t"], kind="stable")
            bt, bcum = ball["t"][bo], np.cumsum(ball["cm"][bo])
            # Distance on the ball between the interval's ends; samples are increments ending at their time.
            bspeed = np.where(span > 0, (np.interp(ends, bt, bcum) - np.interp(ft, bt, bcum)) / span, 0.0)
        else:
            bspeed = np.interp(ft, lt, loop["ball_speed_cm_s"])
    moving = (loop["flags"][k] & 1) != 0
    moving[before | (ft > lt[-1])] = False

    onsets = session.licks["t"][session.licks["onset"] == 1]
    reward_t = np.array([e["t"] for e in session.events if e.get("kind") == EventKind.REWARD], dtype=float)
    return FrameTable(
        index=index, time=ft, scanimage_frame=si_frame, acquisition=acquisition, iteration=iteration,
        trial=trial, corridor=corridor,
        corridor_name=names[corridor], position_cm=pos, position_cum_cm=cum_f,
        ball_speed_cm_s=bspeed.astype(float), virtual_speed_cm_s=vspeed.astype(float), moved_cm=moved,
        moving=moving, in_grey=pos >= tex_len[corridor], licks=_interval_counts(ft, ends, onsets),
        rewards=_interval_counts(ft, ends, reward_t), flags=flags, period_s=period, source=source,
    )
