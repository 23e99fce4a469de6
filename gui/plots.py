"""The session plots (pyqtgraph): running speed, position with trial boundaries, lick raster by position per
corridor with cue and reward marks, anticipatory-lick fraction per corridor, water delivered.

`PlotPanel.show(snapshot)` redraws from a gui.live_data.Snapshot; the caller decides how often (the
windows call it at ~20 Hz, and only when something changed). Curves are only ever replaced with setData
on bounded windows, so the cost does not grow with session length.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtWidgets

from gui import style
from gui.live_data import FRAME_COLUMNS, Snapshot

MAX_RASTER_PLOTS = 4
RASTER_TRIALS = 40  # trials visible in the raster (it scrolls)
_T, _POS, _SPEED, _CORRIDOR, _GREY = (FRAME_COLUMNS.index(c) for c in ("t", "pos", "speed", "corridor", "grey"))
WINDOW_S = 60.0


def _style_plot(p: pg.PlotItem, title: str, left: str, bottom: str | None = None) -> None:
    p.setTitle(f"<span style='color:{style.MUTED};font-size:9pt'>{title}</span>")
    p.setLabel("left", left)
    if bottom:
        p.setLabel("bottom", bottom)
    p.showGrid(x=True, y=True, alpha=0.15)
    p.setMenuEnabled(False)
    p.hideButtons()


class PlotPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.ci.setSpacing(6)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self._corridors: list[str] = []
        self.draws = 0  # how many times the panel redrew (tests and the benchmark read it)
        self._build([])

    def _build(self, corridors: list[str], rewarded: list[bool] | None = None,
               lengths: list[float] | None = None) -> None:
        self.view.clear()
        self._corridors = list(corridors)
        self._event_key = None
        rewarded = rewarded or [False] * len(corridors)
        lengths = lengths or []
        ncols = max(1, min(len(corridors), MAX_RASTER_PLOTS))
        v = self.view

        self.speed = v.addPlot(row=0, col=0, colspan=ncols)
        _style_plot(self.speed, "Running speed", "cm/s")
        self.speed_curve = self.speed.plot(pen=pg.mkPen(style.ACCENT, width=1.5))
        self.speed.setClipToView(True)
        self.speed.setDownsampling(auto=True, mode="peak")

        self.position = v.addPlot(row=1, col=0, colspan=ncols)
        names = " ".join(f"<span style='color:{style.corridor_colour(k)}'>■ {n}</span>"
                         for k, n in enumerate(corridors))
        _style_plot(self.position, f"Position in corridor: {names} <span style='color:{style.MUTED}'>■ grey</span>"
                    f" · <span style='color:{style.WARN}'>┆ trial start</span>", "cm", "session time (s)")
        self.position.setXLink(self.speed)
        self.position.setClipToView(True)
        # One curve per corridor plus one for the grey parts (NaN elsewhere): colour says where the mouse is.
        self.position_curves = [self.position.plot(pen=pg.mkPen(style.corridor_colour(k), width=2), connect="finite")
                                for k in range(len(corridors))]
        self.grey_curve = self.position.plot(pen=pg.mkPen("#6b717c", width=2), connect="finite")
        # A bare curve item: the plot's clip-to-view would drop single points and break the pairs.
        self.trial_lines = pg.PlotCurveItem(pen=pg.mkPen(style.WARN, width=1, style=pg.QtCore.Qt.DashLine),
                                            connect="pairs")
        self.position.addItem(self.trial_lines)

        self.rasters: list[pg.PlotItem] = []
        self.lick_dots: list[pg.ScatterPlotItem] = []
        self.cue_marks: list[pg.ScatterPlotItem] = []
        self.reward_marks: list[pg.ScatterPlotItem] = []
        for k, name in enumerate(corridors[:MAX_RASTER_PLOTS]):
            p = v.addPlot(row=2, col=k)
            tag = " (rewarded)" if rewarded[k] else ""
            p.setTitle(f"<span style='color:{style.corridor_colour(k)};font-size:9pt'>Licks: {name}{tag}</span>"
                       f"<span style='font-size:8pt'> &nbsp;<span style='color:{style.LICK}'>● lick</span> "
                       f"<span style='color:{style.CUE}'>■ cue</span> "
                       f"<span style='color:{style.REWARD}'>▼ reward</span></span>")
            if k < len(lengths) and lengths[k] > 0:
                p.setXRange(0, lengths[k], padding=0.02)
            p.setLabel("bottom", "position (cm)")
            if k == 0:
                p.setLabel("left", "trial")
            p.showGrid(x=True, y=False, alpha=0.15)
            p.setMenuEnabled(False)
            p.hideButtons()
            p.invertY(True)  # newest trial at the bottom, as on a paper raster
            cues = pg.ScatterPlotItem(symbol="s", size=9, pen=None, brush=pg.mkBrush(style.CUE))
            licks = pg.ScatterPlotItem(symbol="o", size=4, pen=None, brush=pg.mkBrush(style.LICK))
            rewards = pg.ScatterPlotItem(symbol="t", size=11, pen=pg.mkPen("w", width=0.5),
                                         brush=pg.mkBrush(style.REWARD))
            for item in (cues, licks, rewards):
                p.addItem(item)
            self.rasters.append(p)
            self.lick_dots.append(licks)
            self.cue_marks.append(cues)
            self.reward_marks.append(rewards)

        half = max(1, ncols // 2)
        self.anticipation = v.addPlot(row=3, col=0, colspan=half)
        _style_plot(self.anticipation, "Anticipatory licking (trials with a lick before the cue, running mean "
                    "of 10)", "fraction", "trial")
        self.anticipation.setYRange(-0.05, 1.05)
        self.anticipation.addLegend(offset=(8, 4), labelTextSize="8pt")
        self.anticipation_curves = [
            self.anticipation.plot(pen=pg.mkPen(style.corridor_colour(k), width=2), symbol="o", symbolSize=4,
                                   symbolBrush=style.corridor_colour(k), symbolPen=None, name=name)
            for k, name in enumerate(corridors)
        ]
        self.water = v.addPlot(row=3, col=half, colspan=max(1, ncols - half))
        _style_plot(self.water, "Water delivered", "µl", "session time (s)")
        self.water_curve = self.water.plot(pen=pg.mkPen(style.REWARD, width=2), stepMode=None,
                                           fillLevel=0, brush=(79, 163, 247, 50))
        for row, factor in ((0, 2), (1, 2), (2, 3), (3, 2)):
            v.ci.layout.setRowStretchFactor(row, factor)

    def show_snapshot(self, snap: Snapshot) -> None:
        if snap.corridors != self._corridors:
            self._build(snap.corridors, getattr(self, "_rewarded", None), getattr(self, "_lengths", None))
        fr = snap.frames
        t = fr[_T]
        self.speed_curve.setData(t, fr[_SPEED])
        pos, corridor, grey = fr[_POS], fr[_CORRIDOR], fr[_GREY] > 0
        for k, curve in enumerate(self.position_curves):
            curve.setData(t, np.where((corridor == k) & ~grey, pos, np.nan))
        self.grey_curve.setData(t, np.where(grey, pos, np.nan))
        t_end = snap.t
        left = max(t_end - WINDOW_S, 0.0)
        self.speed.setXRange(left, left + WINDOW_S, padding=0)
        starts = snap.trial_starts[snap.trial_starts >= left]
        if len(starts):
            top = max(float(np.nanmax(fr[_POS])) if len(t) else 0.0, 1.0)
            xs = np.repeat(starts, 2)
            ys = np.tile([0.0, top], len(starts))
            self.trial_lines.setData(xs, ys)
        else:
            self.trial_lines.setData([], [])
        key = snap.extra.get("event_key")
        if key is not None and key == self._event_key:
            self.draws += 1
            return  # nothing new for the event plots: leave them (and their repaint) alone
        self._event_key = key
        lo = max(snap.trial - RASTER_TRIALS + 1, 0)
        for k, p in enumerate(self.rasters):
            self.lick_dots[k].setData(*_recent(snap.licks.get(k), lo))
            self.cue_marks[k].setData(*_recent(snap.cues.get(k), lo))
            self.reward_marks[k].setData(*_recent(snap.rewards.get(k), lo))
            p.setYRange(lo - 0.5, max(snap.trial, lo + 5) + 0.5, padding=0)
        for k, curve in enumerate(self.anticipation_curves):
            trials, frac = snap.anticipation.get(k, (np.empty(0), np.empty(0)))
            curve.setData(trials, frac)
        wt, wv = snap.water
        if len(wt):
            prev = np.concatenate([[0.0], wv[:-1]])
            steps = np.column_stack([prev, wv]).ravel()  # a staircase: flat, then up at each reward
            self.water_curve.setData(np.concatenate([[0.0], np.repeat(wt, 2), [max(t_end, wt[-1])]]),
                                     np.concatenate([[0.0], steps, [wv[-1]]]))
        else:
            self.water_curve.setData([0.0, t_end], [0.0, 0.0])
        self.draws += 1

    def set_corridors(self, corridors: list[str], rewarded: list[bool], lengths: list[float] | None = None) -> None:
        self._rewarded = list(rewarded)
        self._lengths = list(lengths or [])
        self._build(corridors, rewarded, self._lengths)


def _recent(pair: tuple[np.ndarray, np.ndarray] | None, lo_trial: int) -> tuple[np.ndarray, np.ndarray]:
    if pair is None:
        return np.empty(0), np.empty(0)
    pos, trial = pair
    sel = trial >= lo_trial
    return pos[sel], trial[sel]
