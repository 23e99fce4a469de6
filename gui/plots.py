"""The session plots (pyqtgraph): running speed and position over the last minute, the lick raster by position
per corridor (cue, task reward and operator reward marks), anticipatory licking per corridor, water given.

`PlotPanel.show_snapshot(snapshot)` redraws from a gui.live_data.Snapshot; the caller decides how often.
What keeps it cheap (the app shares two cores with the runner):

- two views: the traces (speed, position) and the event plots are separate QGraphicsViews, so a trace
  update repaints only its own view, and the event plots are touched only when an event came;
- the traces use a fixed time axis (seconds before now, -60..0), so axes and their text never change as
  time goes by; y ranges only change when the data leaves them;
- each trace is cut to at most MAX_POINTS points (min/max per bin: peaks survive) before it is drawn;
- no antialiasing, no mouse interaction, no auto-ranging.

A gap in the frames (telemetry lost, or a stall) breaks the line instead of bridging it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from gui import style
from gui.live_data import FRAME_COLUMNS, Pair, Snapshot

MAX_RASTER_PLOTS = 4
RASTER_TRIALS = 40  # trials visible in the raster (it scrolls)
_I, _T, _POS, _SPEED, _CORRIDOR, _GREY = (FRAME_COLUMNS.index(c) for c in ("i", "t", "pos", "speed", "corridor",
                                                                           "grey"))
WINDOW_S = 60.0
MAX_POINTS = 600  # per trace (min/max pairs): finer than the eye follows at the widths the app runs at
GAP_S = 0.25  # frames further apart than this (or with loop iterations missing) are not joined
MANUAL = "#ff9466"


class IntegerAxis(pg.AxisItem):  # pyqtgraph has no type hints
    """Ticks on whole numbers only (trial numbers)."""

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:  # noqa: N802, N803
        levels = super().tickSpacing(minVal, maxVal, size)
        out: list[tuple[float, float]] = []
        for spacing, offset in levels:
            s = max(1.0, float(round(spacing)))
            if all(s != o[0] for o in out):
                out.append((s, offset))
        return out or [(1.0, 0.0)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [str(int(round(v))) for v in values]


def _quiet(p: pg.PlotItem, title: str, left: str, bottom: str | None = None) -> None:
    p.setTitle(title, color=style.MUTED, size="9pt")
    p.setLabel("left", left)
    if bottom:
        p.setLabel("bottom", bottom)
    p.showGrid(x=True, y=True, alpha=0.15)
    p.setMenuEnabled(False)
    p.hideButtons()
    p.setMouseEnabled(x=False, y=False)
    p.vb.disableAutoRange()
    for name in ("left", "bottom"):
        p.getAxis(name).enableAutoSIPrefix(False)


def _view() -> pg.GraphicsLayoutWidget:
    v = pg.GraphicsLayoutWidget()
    v.ci.setSpacing(4)
    v.ci.setContentsMargins(2, 2, 2, 2)
    v.setViewportUpdateMode(QtWidgets.QGraphicsView.MinimalViewportUpdate)
    v.setOptimizationFlags(QtWidgets.QGraphicsView.DontAdjustForAntialiasing)
    return v


def gaps_as_nan(x: np.ndarray, ys: list[np.ndarray], i: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Insert a NaN point wherever frames are missing (loop iterations skipped, or a time jump), so a
    line drawn with connect='finite' breaks there."""
    if len(x) < 2:
        return x, ys
    gap = np.flatnonzero((np.diff(i) > 1) | (np.diff(x) > GAP_S)) + 1
    if not len(gap):
        return x, ys
    return np.insert(x, gap, np.nan), [np.insert(y, gap, np.nan) for y in ys]


def decimate(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about `limit` points: the min and max of each bin, in time order (NaNs kept as breaks)."""
    n = len(x)
    if n <= limit:
        return x, y
    per = int(np.ceil(n / (limit / 2)))
    m = n // per * per
    xb = x[:m].reshape(-1, per)
    yb = y[:m].reshape(-1, per)
    with np.errstate(all="ignore"):
        has = np.isfinite(yb).any(axis=1)
        lo = np.where(has, np.nanmin(np.where(np.isfinite(yb), yb, np.inf), axis=1), np.nan)
        hi = np.where(has, np.nanmax(np.where(np.isfinite(yb), yb, -np.inf), axis=1), np.nan)
    # A bin with a break (any NaN) stays broken: its max point is dropped.
    broken = ~np.isfinite(yb).all(axis=1)
    hi = np.where(broken, np.nan, hi)
    xs = np.column_stack([xb[:, 0], xb[:, -1]]).ravel()
    ys = np.column_stack([lo, hi]).ravel()
    return np.concatenate([xs, x[m:]]), np.concatenate([ys, y[m:]])


class PlotPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None, x_label: str = "s before now") -> None:
        super().__init__(parent)
        self.x_label = x_label
        self.traces = _view()
        self.events = _view()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.traces, 2)
        lay.addWidget(self.events, 3)
        self._corridors: list[str] = []
        self._rewarded: list[bool] = []
        self._lengths: list[float] = []
        self._anticipation: str | None = "before the cue"
        self.draws = 0  # how many times the panel redrew (tests and the benchmark read it)
        self.event_draws = 0
        self._build()

    # ---- building ----------------------------------------------------------------------------------

    def set_corridors(self, corridors: list[str], rewarded: list[bool], lengths: list[float] | None = None,
                      anticipation: str | None = "before the cue") -> None:
        """anticipation: what an anticipatory lick comes before ("before the cue", "before the reward zone"),
        or None for a protocol with neither (no anticipation plot then)."""
        self._corridors = list(corridors)
        self._rewarded = list(rewarded) + [False] * (len(corridors) - len(rewarded))
        self._lengths = list(lengths or [])
        self._anticipation = anticipation
        self._build()

    def clear(self) -> None:
        """Nothing from a previous session: empty plots, no corridors."""
        self.set_corridors([], [], [], "before the cue")

    def _build(self) -> None:
        self.traces.clear()
        self.events.clear()
        self._event_key: Any = None
        self._speed_top = 10.0
        corridors = self._corridors
        ncols = max(1, min(len(corridors), MAX_RASTER_PLOTS))

        t = self.traces
        self.speed = t.addPlot(row=0, col=0)
        names = "  ".join(f"■ {n}" for n in corridors)
        _quiet(self.speed, f"Speed (cm/s) and position (cm), {self.x_label} (s): {names}  ■ grey  ┆ trial start",
               "cm/s")
        self.speed.showGrid(x=False, y=False)  # the grid is drawn by the axes: it would repaint them every time
        self.speed.setXRange(-WINDOW_S, 0, padding=0)
        self.speed.setYRange(0, self._speed_top, padding=0)
        self.speed.hideAxis("bottom")
        self.speed_curve = self.speed.plot(pen=pg.mkPen(style.ACCENT, width=1.5), connect="finite",
                                           skipFiniteCheck=True)
        self.position = t.addPlot(row=1, col=0)
        _quiet(self.position, "", "cm")
        self.position.setTitle(None)
        self.position.showGrid(x=False, y=False)
        self.position.setXRange(-WINDOW_S, 0, padding=0)
        self.position.setYRange(0, max(self._lengths or [100.0]), padding=0.02)
        self.position.setXLink(self.speed)
        self.position_curves = [self.position.plot(pen=pg.mkPen(style.corridor_colour(k), width=2),
                                                   connect="finite", skipFiniteCheck=True)
                                for k in range(len(corridors))]
        self.grey_curve = self.position.plot(pen=pg.mkPen("#6b717c", width=2), connect="finite", skipFiniteCheck=True)
        self.trial_lines = pg.PlotCurveItem(pen=pg.mkPen(style.WARN, width=1, style=QtCore.Qt.DashLine),
                                            connect="pairs")
        self.position.addItem(self.trial_lines)
        t.ci.layout.setRowStretchFactor(0, 2)
        t.ci.layout.setRowStretchFactor(1, 3)

        v = self.events
        self.rasters: list[pg.PlotItem] = []
        self.lick_dots: list[pg.ScatterPlotItem] = []
        self.cue_marks: list[pg.ScatterPlotItem] = []
        self.reward_marks: list[pg.ScatterPlotItem] = []
        self.manual_marks: list[pg.ScatterPlotItem] = []
        for k, name in enumerate(corridors[:MAX_RASTER_PLOTS]):
            p = v.addPlot(row=0, col=k, axisItems={"left": IntegerAxis("left")})
            tag = " (rewarded)" if self._rewarded[k] else ""
            _quiet(p, "", "trial" if k == 0 else "")
            p.setTitle(f"Licks: {name}{tag}", color=style.corridor_colour(k), size="9pt")
            p.showGrid(x=True, y=False, alpha=0.15)
            p.setXRange(0, self._lengths[k] if k < len(self._lengths) and self._lengths[k] > 0 else 100, padding=0.02)
            p.invertY(True)  # newest trial at the bottom, as on a paper raster
            p.setYRange(-0.5, 5.5, padding=0)
            cues = pg.ScatterPlotItem(symbol="s", size=8, pen=None, brush=pg.mkBrush(style.CUE))
            licks = pg.ScatterPlotItem(symbol="o", size=4, pen=None, brush=pg.mkBrush(style.LICK))
            rewards = pg.ScatterPlotItem(symbol="t", size=11, pen=pg.mkPen("w", width=0.5),
                                         brush=pg.mkBrush(style.REWARD))
            # Operator rewards: a hollow orange diamond, never mistaken for the task's blue triangle.
            manual = pg.ScatterPlotItem(symbol="d", size=13, pen=pg.mkPen(MANUAL, width=2), brush=None)
            for item in (cues, licks, rewards, manual):
                p.addItem(item)
            self.rasters.append(p)
            self.lick_dots.append(licks)
            self.cue_marks.append(cues)
            self.reward_marks.append(rewards)
            self.manual_marks.append(manual)

        self.legend = pg.LabelItem("lick raster by position (cm):  ● lick   ■ cue   ▼ task reward   ◇ manual reward",
                                   color=style.MUTED, size="8pt")
        v.addItem(self.legend, row=2, col=0, colspan=ncols)
        self.anticipation: pg.PlotItem | None = None
        self.anticipation_curves: list[pg.PlotDataItem] = []
        half = max(1, ncols // 2) if self._anticipation else 0
        if self._anticipation:
            a = v.addPlot(row=1, col=0, colspan=half, axisItems={"bottom": IntegerAxis("bottom")})
            _quiet(a, f"Anticipatory licking by trial: a lick {self._anticipation} (running mean of 10)", "fraction")
            a.setYRange(-0.05, 1.05, padding=0)
            a.setXRange(0, 10, padding=0.02)
            self.anticipation = a
            self.anticipation_curves = [
                a.plot(pen=pg.mkPen(style.corridor_colour(k), width=2), symbol="o", symbolSize=4,
                       symbolBrush=style.corridor_colour(k), symbolPen=None, name=name)
                for k, name in enumerate(corridors)]
        self.water = v.addPlot(row=1, col=half, colspan=max(1, ncols - half))
        _quiet(self.water, "Water given (µl) by session time (s)", "")
        self.water.setYRange(0, 5, padding=0)
        self.water.setXRange(0, WINDOW_S, padding=0)
        self.water_curve = self.water.plot(pen=pg.mkPen(style.REWARD, width=2), fillLevel=0,
                                           brush=(79, 163, 247, 50))
        v.ci.layout.setRowStretchFactor(0, 3)
        v.ci.layout.setRowStretchFactor(1, 2)

    # ---- drawing -----------------------------------------------------------------------------------

    def show_snapshot(self, snap: Snapshot) -> None:
        if snap.corridors != self._corridors:
            self._corridors = list(snap.corridors)
            self._build()
        self._draw_traces(snap)
        key = snap.extra.get("event_key")
        self.draws += 1
        if key is not None and key == self._event_key:
            return  # nothing new for the event plots: leave them (and their repaint) alone
        self._event_key = key
        self._draw_events(snap)
        self.event_draws += 1

    def _draw_traces(self, snap: Snapshot) -> None:
        fr = snap.frames
        t = fr[_T] - snap.t  # seconds before now (the playhead, in the replay viewer)
        x, (speed, pos, corridor, grey) = gaps_as_nan(t, [fr[_SPEED], fr[_POS], fr[_CORRIDOR], fr[_GREY]], fr[_I])
        self.speed_curve.setData(*decimate(x, speed))
        finite = speed[np.isfinite(speed)]
        top = float(finite.max()) if len(finite) else 0.0
        if top > self._speed_top or top < self._speed_top / 3:  # change the axis rarely
            self._speed_top = max(10.0, float(np.ceil(top * 1.25 / 10) * 10))
            self.speed.setYRange(0, self._speed_top, padding=0)
        # Position is smooth: every n-th point is enough (and one decimation serves every corridor's curve).
        step = max(1, int(np.ceil(len(x) / MAX_POINTS)))
        if step > 1:
            keep = np.zeros(len(x), bool)
            keep[::step] = True
            keep[-1] = True
            keep |= ~np.isfinite(x)  # the breaks stay
            x, pos, corridor, grey = x[keep], pos[keep], corridor[keep], grey[keep]
        is_grey = grey > 0
        for k, curve in enumerate(self.position_curves):
            curve.setData(x, np.where((corridor == k) & ~is_grey, pos, np.nan))
        self.grey_curve.setData(x, np.where(is_grey, pos, np.nan))
        starts = snap.trial_starts[snap.trial_starts >= snap.t - WINDOW_S] - snap.t
        if len(starts):
            top_pos = float(self.position.vb.viewRange()[1][1])
            self.trial_lines.setData(np.repeat(starts, 2), np.tile([0.0, top_pos], len(starts)))
        else:
            self.trial_lines.setData([], [])

    def raster_trials(self) -> int:
        """Trials shown in the raster: RASTER_TRIALS, fewer when it is short (at least 4 px per trial)."""
        h = float(self.rasters[0].vb.height()) if self.rasters else 0.0
        return int(min(RASTER_TRIALS, max(10, h // 4)))

    def _draw_events(self, snap: Snapshot) -> None:
        lo = max(snap.trial - self.raster_trials() + 1, 0)
        for k, p in enumerate(self.rasters):
            self.lick_dots[k].setData(*_recent(snap.licks.get(k), lo))
            self.cue_marks[k].setData(*_recent(snap.cues.get(k), lo))
            self.reward_marks[k].setData(*_recent(snap.rewards.get(k), lo))
            self.manual_marks[k].setData(*_recent(snap.manual_rewards.get(k), lo))
            p.setYRange(lo - 0.5, max(snap.trial, lo + 5) + 0.5, padding=0)
        if self.anticipation is not None:
            last = 0.0
            for k, curve in enumerate(self.anticipation_curves):
                trials, frac = snap.anticipation.get(k, (np.empty(0), np.empty(0)))
                curve.setData(trials, frac)
                if len(trials):
                    last = max(last, float(trials[-1]))
            self.anticipation.setXRange(0, max(10.0, last + 1), padding=0.02)
        wt, wv = snap.water
        t_end = max(snap.t, float(wt[-1]) if len(wt) else 0.0)
        if len(wt):
            prev = np.concatenate([[0.0], wv[:-1]])
            steps = np.column_stack([prev, wv]).ravel()  # a staircase: flat, then up at each reward
            self.water_curve.setData(np.concatenate([[0.0], np.repeat(wt, 2), [t_end]]),
                                     np.concatenate([[0.0], steps, [wv[-1]]]))
            top = float(wv[-1])
        else:
            self.water_curve.setData([0.0, t_end], [0.0, 0.0])
            top = 0.0
        self.water.setYRange(0, max(5.0, top * 1.15), padding=0)
        self.water.setXRange(0, max(WINDOW_S, t_end), padding=0.02)


def _recent(pair: Pair | None, lo_trial: int) -> Pair:
    if pair is None:
        return np.empty(0), np.empty(0)
    pos, trial = pair
    sel = trial >= lo_trial
    return pos[sel], trial[sel]


def anticipation_label(protocol: dict[str, Any]) -> str | None:
    """What an anticipatory lick comes before in this protocol (a session header's protocol dict): the cue
    (reward modes *_after_cue), the reward zone (zone_* modes), or None when neither applies."""
    rules = [protocol.get("reward")] + [s.get("reward") for s in protocol.get("stages") or () if isinstance(s, dict)]
    modes = {str(r.get("mode")) for r in rules if isinstance(r, dict)}
    cue = protocol.get("cue") is not None and any(m.endswith("after_cue") for m in modes)
    zone = any(m.startswith("zone") for m in modes)
    if cue and zone:
        return "before the cue or the reward zone"
    if cue:
        return "before the cue"
    if zone:
        return "before the reward zone"
    return None
