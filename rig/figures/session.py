"""The after-session figure: lick rasters by position per corridor, lick rate and running speed by
position, anticipatory licking across the session, and a header with the session's facts.

Rendered with matplotlib's Agg canvas directly (no pyplot, no global backend state), so it runs on a
machine without a display and does not disturb a GUI process that imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rig.datalog.header import SessionFacts
from rig.datalog.info import session_info
from rig.datalog.reader import Session
from rig.figures import style
from rig.figures.style import CorridorColours, grey_band
from rig.figures.trials import PositionProfiles, TrialData, position_profiles, running_fraction, trial_data

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

FIGSIZE_IN = (14.0, 9.0)
DPI = 100
BIN_CM = 10.0
MIN_TRIALS_SEM = 5  # fewest trials for which the lick/speed profiles get a +-SEM band
WINDOW_TRIALS = 20  # running window (trials of one corridor) for the anticipatory fraction


@dataclass(frozen=True)
class CorridorGeometry:
    name: str
    texture_cm: float
    length_cm: float
    rewarded: bool
    probe: bool


def corridor_geometry(header: SessionFacts) -> dict[str, CorridorGeometry]:
    """Corridor lengths and roles from the resolved protocol in a session header."""
    protocol = header.protocol
    out = {}
    for c in protocol.get("corridors") or ():
        tex = float(c.get("texture_length_cm", 400.0))
        out[str(c.get("name"))] = CorridorGeometry(
            str(c.get("name")), tex, tex + float(c.get("grey_length_cm", 200.0)),
            bool(c.get("rewarded")), bool(c.get("probe")),
        )
    return out


def _mean_sem(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.sum(np.isfinite(x), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), np.nan)
        var = np.nansum((x - mean) ** 2, axis=0) / np.maximum(n - 1, 1)
        sem = np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), np.nan)
    return mean, sem


def _role(g: CorridorGeometry | None) -> str:
    """'rewarded' / 'unrewarded' (+ 'probe'); in exposure sessions 'rewarded' means the reward is due and
    withheld, which the raster shows with open reward markers."""
    if g is None:
        return ""
    role = "rewarded" if g.rewarded else "unrewarded"
    return f"{role} probe" if g.probe else role


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _header_lines(info: dict[str, Any], session: Session) -> tuple[str, str, str]:
    h = session.header
    when = str(h.date or "")
    start = str(h.start_time or "")
    if "T" in start:
        when += f" {start.split('T')[1][:5]}"
    title = (f"{info.get('animal')}   {info.get('protocol')} ({info.get('kind')})   {when}   "
             f"session {h.session}")
    withheld = info.get("rewards_withheld") or 0
    rewards = f"{info['rewards']} rewards" + (f" ({withheld} withheld)" if withheld else "")
    facts = (f"{info['trials']} trials    {rewards}    {info['water_ul']:.1f} \u00b5l water    "
             f"{info['licks']} licks    {info['frames']} imaging frames "
             f"({info['frames_dropped']} dropped)    "
             f"{_duration(info['duration_s'])}")
    stages = info.get("stages") or []
    if len(stages) > 1 or (stages and stages[0] != "main"):
        facts += "    stages: " + " \u2192 ".join(stages)
    status = "complete" if info["complete"] else "INCOMPLETE"
    status += f" ({info['end_reason']})"
    return title, facts, status


def _raster(ax: Axes, data: TrialData, name: str, g: CorridorGeometry | None, length: float) -> None:
    tr = data.trials
    rows = np.flatnonzero(tr.corridor == name)
    ordinal = {int(tr.index[r]): k + 1 for k, r in enumerate(rows)}
    n = len(rows)
    if g is not None:
        grey_band(ax, g.texture_cm, g.length_cm)
    lk = data.licks
    sel = np.isin(lk.trial, list(ordinal)) & ~lk.iti
    y = np.array([ordinal[int(k)] for k in lk.trial[sel]])
    # Marker sizes follow the row height (in points) so that rasters of 10 or 300 trials both read well;
    # cue and reward markers keep a minimum size so they stay visible among the licks.
    ax_bbox = ax.get_window_extent()
    row_pt = ax_bbox.height * 72.0 / ax.figure.dpi / max(n, 1)
    tick = float(np.clip(row_pt * 0.9, 2.0, 9.0))
    dot = float(np.clip(row_pt * 0.8, 3.6, 6.0))
    ax.scatter(lk.position_cm[sel], y, marker="|", s=tick**2, lw=0.7, color=style.LICK_COLOUR, label="lick",
               zorder=2)
    y_tr = np.arange(1, n + 1)
    cue = tr.cue_position_cm[rows]
    if np.isfinite(cue).any():
        ax.scatter(cue, y_tr, marker="o", s=dot**2, color=style.CUE_COLOUR, lw=0, label="cue", zorder=3)
    zone = tr.zone_start_cm[rows]
    if np.isfinite(zone).any():
        ax.scatter(zone, y_tr, marker="|", s=(tick * 1.3) ** 2, lw=1.8, color=style.ZONE_COLOUR,
                   label="zone start", zorder=3)
    rw = data.rewards
    if len(rw):
        in_c = np.array([int(k) in ordinal for k in rw.trial], dtype=bool)
        ry = np.array([ordinal.get(int(k), 0) for k in rw.trial])
        paid = in_c & ~rw.withheld & (rw.source == "task")
        kept = in_c & rw.withheld
        manual = in_c & (rw.source == "manual")
        ms = (dot * 1.15) ** 2
        if paid.any():
            ax.scatter(rw.position_cm[paid], ry[paid], marker="D", s=ms, color=style.REWARD_COLOUR, lw=0,
                       label="reward", zorder=4)
        if kept.any():
            ax.scatter(rw.position_cm[kept], ry[kept], marker="D", s=ms, facecolor="none",
                       edgecolor=style.REWARD_COLOUR, lw=0.8, label="reward withheld", zorder=4)
        if manual.any():
            ax.scatter(rw.position_cm[manual], ry[manual], marker="x", s=ms * 1.5, color=style.REWARD_COLOUR,
                       lw=1.0, label="manual reward", zorder=4)
    # Stage advances within the session: a line above the first trial of each new stage.
    stage = tr.stage[rows]
    for k in np.flatnonzero(np.diff(stage)) + 1:
        ax.axhline(k + 0.5, color="#555555", lw=0.9, ls="--", zorder=1)
        ax.text(length * 0.99, k + 0.5, tr.stage_name[rows[k]] or f"stage {stage[k]}", ha="right",
                va="bottom", fontsize=8, color="#333333", zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8})
    ax.set_xlim(0, length)
    ax.set_ylim(n + 0.5 if n else 1, 0.5)  # first trial at the top
    ax.set_xlabel("position (cm)")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=1))


_MARKERS: dict[str, dict[str, Any]] = {
    "lick": {"marker": "|", "color": style.LICK_COLOUR, "markersize": 9, "markeredgewidth": 1.0},
    "cue": {"marker": "o", "color": style.CUE_COLOUR, "markersize": 6},
    "zone start": {"marker": "|", "color": style.ZONE_COLOUR, "markersize": 10, "markeredgewidth": 2.0},
    "reward": {"marker": "D", "color": style.REWARD_COLOUR, "markersize": 6},
    "reward withheld": {"marker": "D", "color": style.REWARD_COLOUR, "markersize": 6,
                        "markerfacecolor": "none"},
    "manual reward": {"marker": "x", "color": style.REWARD_COLOUR, "markersize": 7, "markeredgewidth": 1.2},
}


def _legend_handle(label: str) -> Line2D:
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", **_MARKERS.get(label, {"marker": "o"}))


def _profile_panel(ax: Axes, x: np.ndarray, curves: list[tuple[str, np.ndarray, str, str]],
                   ylabel: str, length: float, geom: dict[str, CorridorGeometry]) -> None:
    tex = max((g.texture_cm for g in geom.values()), default=None)
    if tex is not None:
        grey_band(ax, tex, length)
    for label, values, colour, dash in curves:
        mean, sem = _mean_sem(values)
        ax.plot(x, mean, color=colour, lw=1.8, ls=dash, label=label)
        if len(values) >= MIN_TRIALS_SEM:  # a band from 2-3 trials is noise that hides the other curves
            ax.fill_between(x, mean - sem, mean + sem, color=colour, alpha=0.2, lw=0)
    ax.set_xlim(0, length)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("position (cm)")
    ax.set_ylabel(ylabel)


def session_figure(session: Session) -> Figure:
    """The summary figure of one session (a matplotlib Figure on an Agg canvas)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    info = session_info(session)
    data = trial_data(session.events)
    geom = corridor_geometry(session.header)
    names = list(geom) or data.trials.corridors()
    names += [c for c in data.trials.corridors() if c not in names]
    # Corridors the protocol lists but the session never showed would be empty panels; keep only shown ones.
    shown = set(data.trials.corridor.tolist())
    names = [c for c in names if c in shown] or names[:1]
    length = max((g.length_cm for g in geom.values()), default=600.0)
    colour = CorridorColours()
    tr = data.trials
    ended = tr.ended
    prof: PositionProfiles = position_profiles(session.frames, data, length, BIN_CM)

    with rc_context(style.RC):
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
        FigureCanvasAgg(fig)
        title, facts, status = _header_lines(info, session)
        fig.text(0.015, 0.975, title, fontsize=14, fontweight="bold", va="top")
        fig.text(0.015, 0.938, facts, fontsize=10.5, va="top")
        fig.text(0.985, 0.975, status, fontsize=11, va="top", ha="right", fontweight="bold",
                 color="#1b7f3b" if info["complete"] else "#c0392b")
        outer = fig.add_gridspec(2, 1, height_ratios=[1.55, 1.0], left=0.05, right=0.985, top=0.87,
                                 bottom=0.065, hspace=0.33)
        top = outer[0].subgridspec(1, max(len(names), 1), wspace=0.18)
        for k, name in enumerate(names):
            ax = fig.add_subplot(top[0, k])
            g = geom.get(name)
            _raster(ax, data, name, g, length)
            n = int(np.sum(tr.corridor == name))
            role = _role(g)
            ax.set_title(f"{name} \u00b7 {role}" if role else name, color=colour(name), loc="left")
            ax.text(1.0, 1.02, f"n={n}", transform=ax.transAxes, ha="right", va="bottom", fontsize=9,
                    color="#444444")
            if k == 0:
                ax.set_ylabel("trial (of this corridor)")
        labels: list[str] = []
        for ax in fig.axes:
            labels += [lab for lab in ax.get_legend_handles_labels()[1] if lab not in labels]
        if labels:
            handles = [_legend_handle(lab) for lab in labels]
            fig.legend(handles, labels, loc="upper right", ncol=len(handles), bbox_to_anchor=(0.985, 0.952),
                       handletextpad=0.3, columnspacing=1.4)

        bottom = outer[1].subgridspec(1, 3, wspace=0.25)
        x = prof.centers_cm
        rate = prof.lick_rate_hz()
        lick_curves, speed_curves = [], []
        for name in names:
            m = (tr.corridor == name) & ended
            dash = ":" if geom.get(name) is not None and geom[name].probe else "-"
            lick_curves.append((name, rate[m], colour(name), dash))
            speed_curves.append((name, prof.speed_cm_s[m], colour(name), dash))
        ax = fig.add_subplot(bottom[0, 0])
        _profile_panel(ax, x, lick_curves, "lick rate (licks/s)", length, geom)
        ax.set_title("Licking by position", loc="left")
        ax.legend(loc="upper left")
        ax = fig.add_subplot(bottom[0, 1])
        _profile_panel(ax, x, speed_curves, "running speed (cm/s)", length, geom)
        ax.set_title("Running by position", loc="left")

        ax = fig.add_subplot(bottom[0, 2])
        for name in names:
            m = (tr.corridor == name) & ended
            if not m.any():
                continue
            frac = running_fraction(tr.anticipatory[m], WINDOW_TRIALS)
            g = geom.get(name)
            dash = ":" if g is not None and g.probe else "-"
            lw = 2.2 if g is not None and g.rewarded else 1.6
            ax.plot(tr.index[m] + 1, frac, color=colour(name), ls=dash, lw=lw,
                    label=f"{name}  {tr.anticipatory[m].mean():.2f}")
        # Room below 0 for the legend, so it never hides a curve; the axis itself spans 0-1.
        ax.set_ylim(-0.42, 1.04)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.spines["left"].set_bounds(0, 1)
        ax.axhline(0, color="#dddddd", lw=0.8, zorder=0)
        ax.set_xlim(left=0)
        ax.set_xlabel("trial (session)")
        ax.set_ylabel(f"anticipatory-lick fraction\n(last {WINDOW_TRIALS} trials of corridor)")
        ax.set_title("Anticipatory licking", loc="left")
        if ax.get_legend_handles_labels()[1]:
            ncol = 1 if len(names) == 1 else 2
            ax.legend(loc="lower center", ncol=ncol, title="corridor, fraction over the session",
                      title_fontsize=8.5, borderaxespad=0.2, columnspacing=1.5)
        else:
            ax.text(0.5, 0.5, "no completed trials", transform=ax.transAxes, ha="center", color="#777777")
    return fig


def render_session(session: Session | str | Path, out: str | Path) -> Path:
    """Write the session summary PNG to `out` and return its path."""
    if not isinstance(session, Session):
        session = Session.open(Path(session))
    fig = session_figure(session)
    out = Path(out)
    fig.savefig(out, format="png", dpi=DPI)
    return out
