"""Frame synchronisation: reconcile frame-clock TTL edges with mesoscope frame messages.

The TTL edges, recorded in the rig's clock, are the timing truth; the frame messages (frame number,
plane, mesoscope timestamp, rig receive time) give each edge its identity. `reconcile` pairs them into
one frame table with a row per frame seen on either path (or implied by a gap in the frame numbers),
flagging what is missing, duplicated or late. Pure functions over numpy arrays: no I/O, no clocks.

Frame numbering (one convention, docs/mesoscope-protocol.md): a table row's `index` is its 0-based row
number in time order, which is what every exported ...Fr field and fractional frame index counts.
ScanImage's own 1-based number within an acquisition is `scanimage_frame`, never called just "frame".
`acquisition` is the session's acquisition number (1, 2, ... in order of arrival over every bridge run);
`bridge_run` / `bridge_acquisition` keep the bridge's instance (0-based, in order seen) and its numbering,
which starts again at 1 when the bridge restarts.

Input is bounded: non-finite times are dropped and counted (`n_ttl_refused`, `n_msgs_refused`) rather
than refused wholesale, and frame numbers implying far more missing frames than were seen on either
path are not filled in row by row (counted per acquisition in `unfilled`), so no message can make
reconciling slow or stop a frame table being written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.clockfit import LinearFit, least_squares

MSG_DTYPE = np.dtype(
    [
        ("frame", "i8"),  # the message's frame: ScanImage's number, 1-based within the acquisition
        ("plane", "i4"),
        ("mesoscope_time", "f8"),
        ("rig_receive_time", "f8"),
        ("acquisition", "i4"),  # the session's acquisition number (see frames_to_array)
        ("bridge_run", "i4"),  # 0-based bridge instance, in order seen
        ("bridge_acquisition", "i4"),  # the bridge's own acquisition number
    ]
)

# Rows as reconcile builds them; FRAME_DTYPE adds the index and the bridge's numbering.
_ROW_DTYPE = np.dtype(
    [
        ("time", "f8"),  # rig clock: the TTL edge, else the mesoscope time mapped through the clock fit
        ("ttl_time", "f8"),  # NaN when missing_ttl
        ("acquisition", "i4"),  # session acquisition from 1; -1: an edge no acquisition accounts for
        ("scanimage_frame", "i8"),  # ScanImage's, 1-based in its acquisition; -1: no number left for the edge
        ("plane", "i4"),  # -1 when unknown
        ("mesoscope_time", "f8"),  # NaN when missing_msg
        ("receive_time", "f8"),  # NaN when missing_msg
        ("n_msgs", "i4"),  # messages received for this frame (2+ = duplicates)
        ("missing_ttl", "?"),
        ("missing_msg", "?"),
        ("duplicate_msg", "?"),
        ("duplicate_ttl", "?"),  # a second edge (contact bounce) within half a period of this one
        ("gap", "?"),  # interval from the previous frame > GAP_FACTOR x the median interval
        ("restart", "?"),  # first frame of an acquisition after the first
    ]
)

_ROW_NAMES: tuple[str, ...] = tuple(_ROW_DTYPE.names or ())
_MSG_NAMES: tuple[str, ...] = tuple(MSG_DTYPE.names or ())
FRAME_DTYPE = np.dtype(
    [("index", "i8")]  # 0-based row number in time order: what every ...Fr field counts
    + [(n, _ROW_DTYPE[n].str) for n in _ROW_NAMES]
    + [("bridge_run", "i4"), ("bridge_acquisition", "i4")]  # -1 with acquisition -1
)

GAP_FACTOR = 1.5
FLAG_FIELDS = ("missing_ttl", "missing_msg", "duplicate_msg", "duplicate_ttl", "gap", "restart")


@dataclass(frozen=True)
class FrameTable:
    """Reconciled frames (`rows`, FRAME_DTYPE, sorted by time) and how they were matched."""

    rows: np.ndarray
    fits: dict[int, LinearFit]  # per acquisition: mesoscope clock -> rig clock, fitted on matched frames
    n_ttl: int  # edges given (bounces included)
    n_msgs: int  # messages given (duplicates included)
    tolerance_s: dict[int, float]  # per acquisition: largest accepted |TTL - predicted| when matching
    n_ttl_refused: int = 0  # non-finite edge times dropped
    n_msgs_refused: int = 0  # messages dropped: non-finite mesoscope time or a frame number below 1
    unfilled: dict[int, int] = field(default_factory=dict)  # per acquisition: implied frames not given rows

    def __len__(self) -> int:
        return len(self.rows)

    def flagged_index(self) -> np.ndarray:
        """Row indices of frames with any flag set."""
        mask = np.zeros(len(self.rows), bool)
        for f in FLAG_FIELDS:
            mask |= self.rows[f]
        return np.flatnonzero(mask)


def clock_from_pings(t_send: Sequence[float] | np.ndarray, t_bridge: Sequence[float] | np.ndarray,
                     t_recv: Sequence[float] | np.ndarray, *, keep: float = 0.5,
                     min_span_for_drift_s: float = 60.0) -> LinearFit:
    """Bridge clock -> rig clock from pings: the bridge stamped t_bridge between the rig's send and
    receive, so it sits at the midpoint give or take rtt/2; only the fastest `keep` fraction is used."""
    s, b, r = (np.asarray(a, dtype=float) for a in (t_send, t_bridge, t_recv))
    if not (s.shape == b.shape == r.shape) or len(s) == 0:
        raise ValueError("clock_from_pings: need equal, non-empty arrays of send, bridge and receive times")
    rtt = r - s
    if np.any(rtt < 0):
        raise ValueError("clock_from_pings: a ping was received before it was sent; wrong clock?")
    n_keep = max(1, int(np.ceil(keep * len(s))))
    best = np.sort(np.argsort(rtt, kind="stable")[:n_keep])
    # Over less than a minute a drift of tens of ppm is below the ping noise: fit the offset only.
    long_enough = len(best) >= 3 and float(np.ptp(b[best])) >= min_span_for_drift_s
    return least_squares(b[best], (s[best] + r[best]) / 2, fit_scale=long_enough)


def as_msg_array(frame_msgs: np.ndarray | Iterable[Any]) -> np.ndarray:
    """Frame messages as a MSG_DTYPE array, from such an array or from tuples
    (frame, plane, mesoscope_time, rig_receive_time[, acquisition[, bridge_run, bridge_acquisition]]).
    Missing: acquisition 1, bridge_run 0, bridge_acquisition = acquisition."""
    optional = ("acquisition", "bridge_run", "bridge_acquisition")
    if isinstance(frame_msgs, np.ndarray) and frame_msgs.dtype.names:
        names = frame_msgs.dtype.names
        missing = [n for n in _MSG_NAMES if n not in names and n not in optional]
        if missing:
            raise ValueError(f"frame message array lacks fields {missing}")
        out = np.zeros(len(frame_msgs), MSG_DTYPE)
        for n in _MSG_NAMES:
            if n in names:
                out[n] = frame_msgs[n]
        if "acquisition" not in names:
            out["acquisition"] = 1
        if "bridge_acquisition" not in names:
            out["bridge_acquisition"] = out["acquisition"]
        return out
    rows = list(frame_msgs)
    out = np.zeros(len(rows), MSG_DTYPE)
    for i, row in enumerate(rows):
        if len(row) == 4:
            out[i] = (*row, 1, 0, 1)
        elif len(row) == 5:
            out[i] = (*row, 0, row[4])
        elif len(row) == 7:
            out[i] = tuple(row)
        else:
            raise ValueError(f"frame message {i}: expected 4, 5 or 7 fields, got {len(row)}")
    return out


# A message whose frame number is this many frames (+10 % of its acquisition's span) away from what its
# mesoscope time says, against the acquisition's other messages, cannot be one of its frames.
INCONSISTENT_FRAMES = 1000


def _consistent(msgs: np.ndarray) -> np.ndarray:
    """Drop messages whose frame number disagrees wildly with their mesoscope time (median-based, so
    a few such messages cannot move the reference)."""
    keep = np.ones(len(msgs), bool)
    for a in np.unique(msgs["acquisition"]):
        sel = np.flatnonzero(msgs["acquisition"] == a)
        f, t = msgs["frame"][sel].astype(float), msgs["mesoscope_time"][sel]
        if len(sel) < 3:
            continue
        period = _nominal_period(msgs["frame"][sel], t, np.zeros(0))
        resid = f - t / period
        span = (np.max(t) - np.min(t)) / period
        keep[sel] = np.abs(resid - np.median(resid)) <= INCONSISTENT_FRAMES + 0.1 * span
    return msgs[keep]


def _debounce(ttl: np.ndarray, period: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Drop edges closer than half a frame period to the previous kept edge; return kept edges and, for
    each, whether a bounce followed it. The period comes from the messages when there are any (missed
    edges stretch the TTL intervals), else from the median TTL interval."""
    if len(ttl) == 0:
        return ttl, np.zeros(0, bool)
    if period is None:
        if len(ttl) < 3:
            return ttl, np.zeros(len(ttl), bool)
        period = float(np.median(np.diff(ttl)))
    half = 0.5 * period
    kept: list[float] = [float(ttl[0])]
    bounced: list[bool] = [False]
    for t in ttl[1:]:
        if t - kept[-1] < half:
            bounced[-1] = True
        else:
            kept.append(float(t))
            bounced.append(False)
    return np.array(kept), np.array(bounced)


def _nominal_period(frames: np.ndarray, meso: np.ndarray, ttl: np.ndarray) -> float:
    if len(frames) >= 2:
        order = np.argsort(frames, kind="stable")
        frames, meso = frames[order], meso[order]
        step = np.diff(frames)
        ok = step > 0
        if ok.any():
            p = float(np.median(np.diff(meso)[ok] / step[ok]))
            if np.isfinite(p) and p > 0:
                return p
    if len(ttl) >= 2:
        p = float(np.median(np.diff(ttl)))
        if np.isfinite(p) and p > 0:
            return p
    return 1.0


def _match(pred: np.ndarray, ttl: np.ndarray, free: np.ndarray, tol: float) -> np.ndarray:
    """One-to-one nearest matching of predicted times to free TTL edges within tol; -1 = none."""
    idx_free = np.flatnonzero(free)
    out = np.full(len(pred), -1, np.int64)
    if len(idx_free) == 0 or len(pred) == 0:
        return out
    cand_t = ttl[idx_free]
    pos = np.clip(np.searchsorted(cand_t, pred), 1, len(cand_t) - 1) if len(cand_t) > 1 else np.zeros(
        len(pred), np.int64)
    if len(cand_t) > 1:
        left = pos - 1
        use_left = np.abs(cand_t[left] - pred) <= np.abs(cand_t[pos] - pred)
        pos = np.where(use_left, left, pos)
    err = np.abs(cand_t[pos] - pred)
    best: dict[int, int] = {}
    for j in np.argsort(err, kind="stable"):
        if err[j] > tol:
            break
        k = int(pos[j])
        if k not in best:
            best[k] = int(j)
            out[j] = idx_free[k]
    return out


def _prior_for(prior: LinearFit | dict[int, LinearFit] | None, acq: int, meso: np.ndarray,
               recv: np.ndarray, period: float) -> LinearFit:
    if isinstance(prior, LinearFit):
        return prior
    if isinstance(prior, dict) and acq in prior:
        return prior[acq]
    # No ping prior: assume each message arrives less than half a period after its edge.
    ok = np.isfinite(recv)
    if not ok.any():
        raise ValueError(f"reconcile: acquisition {acq} has no receive times and there is no clock prior")
    meso, recv = meso[ok], recv[ok]
    long_enough = len(meso) >= 3 and (meso.max() - meso.min()) > 10 * period
    return _robust_fit(meso, recv, long_enough, period)


def _robust_fit(x: np.ndarray, y: np.ndarray, fit_scale: bool, tol: float) -> LinearFit:
    """A line through (x, y) that a minority of points far off it cannot move: a median slope (of pairs
    half the span apart) and median offset pick the points within `tol` of the line, and a least-squares
    fit is made on those alone."""
    slope = 1.0
    if fit_scale and len(x) >= 4:
        order = np.argsort(x, kind="stable")
        xs, ys = x[order], y[order]
        h = len(xs) // 2
        dx, dy = xs[h:2 * h] - xs[:h], ys[h:2 * h] - ys[:h]
        good = dx > 0
        if good.any():
            slope = float(np.median(dy[good] / dx[good]))
    offset = float(np.median(y - slope * x))
    near = np.abs(y - (offset + slope * x)) <= tol
    if not near.any():
        return least_squares(x, y, fit_scale=fit_scale)
    return least_squares(x[near], y[near], fit_scale=fit_scale and int(near.sum()) >= 3)


def reconcile(ttl_times: np.ndarray | Sequence[float], frame_msgs: np.ndarray | Iterable[Any], *,
              prior: LinearFit | dict[int, LinearFit] | None = None, tolerance: float = 0.25) -> FrameTable:
    """Reconcile TTL edge times (rig clock) with frame messages into a FrameTable.

    `prior` maps mesoscope time to rig time (from pings, `clock_from_pings`); without it the messages'
    receive times give it, which assumes a message arrives within half a frame period of its edge.
    A message and an edge are paired when they lie within `tolerance` x the frame period after fitting.
    """
    ttl_given = np.asarray(ttl_times, dtype=float).ravel()
    ttl_all = np.sort(ttl_given[np.isfinite(ttl_given)])
    msgs_given = as_msg_array(frame_msgs)
    msgs = _consistent(msgs_given[np.isfinite(msgs_given["mesoscope_time"]) & (msgs_given["frame"] >= 1)])
    # Frame numbers beyond this many missing per acquisition are counted, not given a row each.
    max_fill = 1000 + 4 * (len(ttl_all) + len(msgs))
    # One entry per (acquisition, frame): the first received; the rest count as duplicates.
    order = np.lexsort((msgs["rig_receive_time"], msgs["frame"], msgs["acquisition"]))
    msgs_sorted = msgs[order]
    key = msgs_sorted[["acquisition", "frame"]]
    first = np.ones(len(msgs_sorted), bool)
    if len(msgs_sorted):
        first[1:] = key[1:] != key[:-1]
    uniq = msgs_sorted[first]
    counts = np.diff(np.append(np.flatnonzero(first), len(msgs_sorted)))

    periods = [_nominal_period(uniq["frame"][sel], uniq["mesoscope_time"][sel], np.zeros(0))
               for sel in (uniq["acquisition"] == a for a in np.unique(uniq["acquisition"]))
               if int(sel.sum()) >= 2]
    debounce = float(np.median(periods)) if periods else None
    if debounce is not None and len(ttl_all) >= 3:
        # Too long a period would merge real edges: never longer than the edges' own median interval.
        debounce = min(debounce, float(np.median(np.diff(ttl_all))))
    ttl, bounced = _debounce(ttl_all, debounce)

    free = np.ones(len(ttl), bool)
    ttl_owner = np.full(len(ttl), -1, np.int64)  # acquisition that claimed the edge
    rows: list[tuple[Any, ...]] = []
    fits: dict[int, LinearFit] = {}
    tols: dict[int, float] = {}
    unfilled: dict[int, int] = {}
    acq_ids = sorted({int(a) for a in uniq["acquisition"]},
                     key=lambda a: float(uniq["mesoscope_time"][uniq["acquisition"] == a].min()))
    per_acq: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
    for acq in acq_ids:
        sel = uniq["acquisition"] == acq
        m, cnt = uniq[sel], counts[sel]
        period = _nominal_period(m["frame"], m["mesoscope_time"], ttl)
        fit = _prior_for(prior, acq, m["mesoscope_time"], m["rig_receive_time"], period)
        match = _match(fit.map(m["mesoscope_time"]), ttl, free, 0.5 * period)
        for _ in range(3):  # refit on matched pairs, then rematch tighter
            got = match >= 0
            if got.sum() >= 1:
                fit = least_squares(m["mesoscope_time"][got], ttl[match[got]], fit_scale=got.sum() >= 3)
            match = _match(fit.map(m["mesoscope_time"]), ttl, free, tolerance * period)
        free[match[match >= 0]] = False
        ttl_owner[match[match >= 0]] = acq
        fits[acq], tols[acq] = fit, tolerance * period
        per_acq[acq] = (m, cnt, match, period)

    # Edges no message claimed: give each to the acquisition whose matched span is nearest in time.
    spans = {a: fits[a].map(per_acq[a][0]["mesoscope_time"][[0, -1]]) for a in acq_ids}
    orphan_by_acq: dict[int, list[int]] = {a: [] for a in acq_ids}
    for i in np.flatnonzero(free):
        if not acq_ids:
            break
        dist = {a: max(spans[a][0] - ttl[i], ttl[i] - spans[a][1], 0.0) for a in acq_ids}
        orphan_by_acq[min(dist, key=lambda a: dist[a])].append(int(i))

    for ai, acq in enumerate(acq_ids):
        m, cnt, match, period = per_acq[acq]
        fit = fits[acq]
        for j in range(len(m)):
            e = int(match[j])  # the matched edge, -1 for none
            t_ttl = float(ttl[e]) if e >= 0 else np.nan
            t = t_ttl if e >= 0 else float(fit.map(m["mesoscope_time"][j]))
            rows.append((t, t_ttl, acq, int(m["frame"][j]), int(m["plane"][j]), float(m["mesoscope_time"][j]),
                         float(m["rig_receive_time"][j]), int(cnt[j]), e < 0, False, cnt[j] > 1,
                         bool(bounced[e]) if e >= 0 else False, False, ai > 0 and j == 0))
        filled, not_filled = _fill_unmessaged(acq, ai, m, fit, period, ttl, bounced, orphan_by_acq[acq], max_fill)
        rows.extend(filled)
        if not_filled:
            unfilled[acq] = not_filled
    if not acq_ids:  # no messages at all: edges without identity
        rows.extend((float(ttl[i]), float(ttl[i]), -1, -1, -1, np.nan, np.nan, 0, False, True, False,
                     bool(bounced[i]), False, False) for i in range(len(ttl)))

    built = np.array(rows, dtype=_ROW_DTYPE) if rows else np.zeros(0, _ROW_DTYPE)
    built = built[np.lexsort((built["scanimage_frame"], built["time"]))]
    table = np.zeros(len(built), FRAME_DTYPE)
    for n in _ROW_NAMES:
        table[n] = built[n]
    table["index"] = np.arange(len(table))
    bridge = {int(a): (int(r), int(b)) for a, r, b in
              zip(uniq["acquisition"], uniq["bridge_run"], uniq["bridge_acquisition"], strict=True)}
    table["bridge_run"] = [bridge.get(int(a), (-1, -1))[0] for a in table["acquisition"]]
    table["bridge_acquisition"] = [bridge.get(int(a), (-1, -1))[1] for a in table["acquisition"]]
    _flag_gaps(table)
    return FrameTable(table, fits, len(ttl_all), len(msgs), tols, n_ttl_refused=len(ttl_given) - len(ttl_all),
                      n_msgs_refused=len(msgs_given) - len(msgs), unfilled=unfilled)


def _nearest_free(est: int, lo: int, hi: int, taken: set[int]) -> int:
    """The number nearest `est` (ties: the lower) strictly between lo and hi and not taken; -1 if none.
    Looks at no more numbers than are taken, whatever the span (frame numbers come from outside)."""
    if hi - lo <= 1:
        return -1
    est = min(max(est, lo + 1), hi - 1)
    for d in range(len(taken) + 2):
        for f in (est - d, est + d):
            if lo < f < hi and f not in taken:
                return f
    return -1


def _fill_unmessaged(acq: int, ai: int, m: np.ndarray, fit: LinearFit, period: float, ttl: np.ndarray,
                     bounced: np.ndarray, orphans: list[int], max_fill: int
                     ) -> tuple[list[tuple[Any, ...]], int]:
    """Rows for edges without a message, numbered from the frames around them, and for frame numbers
    skipped on both paths (time estimated from the neighbouring frames). Returns the rows and how many
    skipped numbers were not given rows because there were more than max_fill of them."""
    frames, meso = m["frame"], m["mesoscope_time"]
    known = set(int(f) for f in frames)
    last = int(frames.max())
    rows: list[tuple[Any, ...]] = []
    taken: set[int] = set()
    taken_t: dict[int, float] = {}  # frame numbers given to edges without a message, and their edge times
    for i in orphans:
        tm = float(fit.unmap(ttl[i]))
        k = int(np.searchsorted(meso, tm))  # meso increases with frame number within an acquisition
        lo = k - 1 if k > 0 else None
        hi = k if k < len(m) else None
        if lo is not None and hi is not None:
            before, after = tm - float(meso[lo]), float(meso[hi]) - tm
            est = (int(frames[lo]) + round(before / period) if before <= after
                   else int(frames[hi]) - round(after / period))
            # No known frame lies between two neighbours, so only the numbers taken here can clash.
            frame = _nearest_free(est, int(frames[lo]), int(frames[hi]), taken)
        elif lo is not None:
            est = int(frames[lo]) + max(1, round((tm - float(meso[lo])) / period))
            frame = est if est not in taken else -1
        else:
            est = int(frames[hi]) - max(1, round((float(meso[hi]) - tm) / period))
            frame = est if est >= 1 and est not in taken else -1
        if frame > 0:
            taken.add(frame)
            taken_t[frame] = float(ttl[i])
            last = max(last, frame)
        rows.append((float(ttl[i]), float(ttl[i]), acq if frame > 0 else -1, frame, -1, np.nan, np.nan, 0,
                     False, True, False, bool(bounced[i]), False, ai > 0 and frame == 1))
    n_missing = last - len({f for f in known | taken if 1 <= f <= last})
    if n_missing > max_fill:
        return rows, n_missing
    # Every numbered frame's rig time (messages through the fit, message-less edges as stamped), so a frame
    # seen on neither path is timed from the frames on both sides of it, in order, a stall between included.
    seen_t = dict(zip((int(f) for f in frames), (float(x) for x in fit.map(meso)), strict=True))
    seen_t.update(taken_t)
    seen = np.array(sorted(seen_t), dtype=np.int64)
    times = np.array([seen_t[int(f)] for f in seen])
    for f in np.setdiff1d(np.arange(1, last + 1, dtype=np.int64), seen, assume_unique=True).tolist():
        k = int(np.searchsorted(seen, f))
        if k == 0:
            t_est = float(times[0] - (seen[0] - f) * period)
        else:
            p, tp = int(seen[k - 1]), float(times[k - 1])
            t_est = tp + (f - p) * period
            if k < len(seen) and t_est >= times[k]:  # a stall after it: share the interval instead
                t_est = tp + (f - p) / (int(seen[k]) - p) * (float(times[k]) - tp)
        rows.append((t_est, np.nan, acq, f, -1, np.nan, np.nan, 0, True, True, False, False, False,
                     ai > 0 and f == 1))
    return rows, 0


def _flag_gaps(table: np.ndarray) -> None:
    for acq in np.unique(table["acquisition"]):
        idx = np.flatnonzero(table["acquisition"] == acq)
        if len(idx) < 3:
            continue
        dt = np.diff(table["time"][idx])
        med = float(np.median(dt))
        table["gap"][idx[1:][dt > GAP_FACTOR * med]] = True


def sync_report(table: FrameTable, ping_fit: LinearFit | None = None) -> dict[str, Any]:
    """Counts on both paths, rate, jitter, clock fits and flagged frames, as a JSON-ready dict.

    `frames` and `frames_dropped` count every acquisition separately, bridge restarts included; frame
    numbers implied but not given rows (`implied_frames_not_filled`) count as frames and as dropped."""
    r = table.rows
    numbered = r[r["scanimage_frame"] > 0]
    unfilled = int(sum(table.unfilled.values()))
    ttl_ok = r[~r["missing_ttl"]]
    intervals: list[np.ndarray] = []
    for acq in np.unique(ttl_ok["acquisition"]):
        t = ttl_ok["time"][ttl_ok["acquisition"] == acq]
        if len(t) >= 2:
            d = np.diff(t)
            intervals.append(d[d <= GAP_FACTOR * np.median(d)])  # exclude gaps and missing edges
    iv = np.concatenate(intervals) if intervals else np.zeros(0)
    flagged = table.flagged_index()
    counts = {f: int(r[f].sum()) for f in FLAG_FIELDS}
    report: dict[str, Any] = {
        "frames": int(len(numbered)) + unfilled,
        "frames_dropped": int((r["missing_ttl"] | r["missing_msg"]).sum()) + unfilled,
        "ttl_edges": table.n_ttl,
        "ttl_frames": int((~r["missing_ttl"]).sum()),
        "messages": table.n_msgs,
        "message_frames": int((~r["missing_msg"]).sum()),
        "acquisitions": int(len(table.fits)),
        "acquisition_detail": [
            {"acquisition": int(a), "bridge_run": int(sel["bridge_run"][0]),
             "bridge_acquisition": int(sel["bridge_acquisition"][0]),
             "frames": int(len(sel)) + table.unfilled.get(int(a), 0),
             "frames_dropped": int((sel["missing_ttl"] | sel["missing_msg"]).sum()) + table.unfilled.get(int(a), 0)}
            for a in sorted(table.fits) for sel in (r[r["acquisition"] == a],) if len(sel)
        ],
        "ttl_refused": table.n_ttl_refused,
        "messages_refused": table.n_msgs_refused,
        "implied_frames_not_filled": unfilled,
        "rate_hz": float(1.0 / np.median(iv)) if len(iv) else None,
        "interval_jitter_ms": float(np.std(iv) * 1e3) if len(iv) >= 2 else None,
        "clock_fits": {str(a): f.as_dict() for a, f in table.fits.items()},
        "ping_fit": ping_fit.as_dict() if ping_fit is not None else None,
        "counts_agree": counts["missing_ttl"] == 0 and counts["missing_msg"] == 0,
        "flag_counts": counts,
        "flagged": [
            {"index": int(i), "acquisition": int(r["acquisition"][i]),
             "scanimage_frame": int(r["scanimage_frame"][i]),
             "time": float(r["time"][i]), "flags": [f for f in FLAG_FIELDS if r[f][i]]}
            for i in flagged[:1000]
        ],
        "flagged_truncated": bool(len(flagged) > 1000),
    }
    return report
