"""The learning figure of one animal: anticipatory licking per corridor per day, trials and water per
day, and the protocol (and stage) of each day."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rig.figures.learning import DayRecord, animal_days
from rig.figures.style import RC, REWARD_COLOUR, CorridorColours

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE_IN = (12.0, 9.0)
DPI = 100
_STRIP_COLOURS = ("#dbe9f6", "#fde2c8", "#dcefd9", "#eadcf2", "#f6dada", "#efe8d0", "#d9f0ef")


def _spans(labels: list[str]) -> list[tuple[int, int, str]]:
    """Runs of equal consecutive labels as (first index, last index, label)."""
    out: list[tuple[int, int, str]] = []
    for i, lab in enumerate(labels):
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], i, lab)
        else:
            out.append((i, i, lab))
    return out


def _fit(text: str, room_pt: float) -> float:
    """Font size (pt) at which the longest line of text fills room_pt (about 0.6 em per character)."""
    longest = max(len(line) for line in text.split("\n"))
    return room_pt / max(longest * 0.6, 1.0)


def _protocol_strip(ax: Axes, days: list[DayRecord]) -> None:
    labels = [d.label for d in days]
    palette: dict[str, str] = {}
    width_pt = ax.get_window_extent().width * 72.0 / ax.figure.dpi / max(len(days), 1)
    for first, last, lab in _spans(labels):
        colour = palette.setdefault(lab, _STRIP_COLOURS[len(palette) % len(_STRIP_COLOURS)])
        ax.axvspan(first - 0.47, last + 0.47, color=colour, lw=0)
        room = (last - first + 1) * width_pt * 0.92
        text = lab.replace(" + ", "\n+ ").replace(" (", "\n(")
        if _fit(text, room) < 8.0:  # too narrow: break names at underscores (grating_train1_task)
            text = text.replace("_", "_\n")
        size = float(np.clip(_fit(text, room), 6.0, 9.5))
        ax.text((first + last) / 2, 0.5, text, ha="center", va="center", fontsize=size, clip_on=True,
                transform=ax.get_xaxis_transform())
    ax.set_yticks([])
    ax.set_ylabel("protocol", rotation=0, ha="right", va="center")
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", length=0, labelbottom=False)


def animal_figure(animal_dir: str | Path, days: list[DayRecord] | None = None) -> Figure:
    """The learning figure of the animal whose sessions are under animal_dir (an Agg-canvas Figure)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    animal_dir = Path(animal_dir)
    if days is None:
        days = animal_days(animal_dir)
    x = np.arange(len(days))
    colour = CorridorColours()
    names: list[str] = []
    roles: dict[str, int] = {}
    for d in days:
        for n, score in d.corridors().items():
            if n not in names:
                names.append(n)
            # Legend order: rewarded corridors, then unrewarded, then probes.
            roles[n] = min(roles.get(n, 2), 0 if score.rewarded else (2 if score.probe else 1))
    names.sort(key=lambda n: roles[n])
    n_sessions = sum(len(d.sessions) for d in days)
    animal = days[0].sessions[0].path.parent.parent.name if days and days[0].sessions else animal_dir.name

    with rc_context(RC):
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
        FigureCanvasAgg(fig)
        fig.text(0.015, 0.975, f"{animal}   learning", fontsize=14, fontweight="bold", va="top")
        span = f"{days[0].date} to {days[-1].date}" if len(days) > 1 else days[0].date
        fig.text(0.015, 0.94, f"{n_sessions} session{'s' if n_sessions != 1 else ''} on {len(days)} "
                 f"day{'s' if len(days) != 1 else ''} ({span})    {sum(d.trials for d in days)} trials    "
                 f"{sum(d.water_ul for d in days):.1f} \u00b5l water in total", fontsize=10.5, va="top")
        gs = fig.add_gridspec(4, 1, height_ratios=[0.42, 2.3, 1.0, 1.0], left=0.1, right=0.83, top=0.89,
                              bottom=0.08, hspace=0.2)
        ax_strip = fig.add_subplot(gs[0])
        ax_ant = fig.add_subplot(gs[1], sharex=ax_strip)
        ax_tr = fig.add_subplot(gs[2], sharex=ax_strip)
        ax_w = fig.add_subplot(gs[3], sharex=ax_strip)
        ax_strip.set_xlim(-0.6, len(days) - 0.4)
        _protocol_strip(ax_strip, days)

        for name in names:
            scores = [d.corridors().get(name) for d in days]
            y = np.array([s.fraction if s is not None else np.nan for s in scores])
            rewarded = any(s is not None and s.rewarded for s in scores)
            probe = all(s is None or s.probe for s in scores)
            role = "rewarded" if rewarded else ("probe" if probe else "unrewarded")
            c = colour(name)
            ax_ant.plot(x, y, color=c, lw=2.2 if rewarded else 1.6, ls=":" if probe else "-",
                        marker="^" if probe else "o", ms=7, mfc=c if rewarded else "white", mew=1.6,
                        label=f"{name} ({role})")
        ax_ant.set_ylim(-0.03, 1.03)
        ax_ant.set_ylabel("anticipatory-lick fraction\n(trials with a lick before cue or zone)")
        ax_ant.set_title("Anticipatory licking per corridor", loc="left")
        if names:  # a day with no trial has no corridor to name
            ax_ant.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax_ant.grid(axis="y", color="#eeeeee", lw=0.8)
        ax_ant.set_axisbelow(True)

        trials = np.array([d.trials for d in days])
        incomplete = [any(not s.complete for s in d.sessions) for d in days]
        bars = ax_tr.bar(x, trials, width=0.6, color="#8c8c8c")
        for bar, bad in zip(bars, incomplete, strict=True):
            if bad:
                bar.set_hatch("///")
                bar.set_edgecolor("white")
        for xi, d in enumerate(days):
            if len(d.sessions) > 1:
                ax_tr.text(xi, d.trials, f"{len(d.sessions)} sessions", ha="center", va="bottom", fontsize=8)
        ax_tr.set_ylabel("trials")
        ax_tr.set_ylim(0, max(1, trials.max()) * 1.18)
        if any(incomplete):
            ax_tr.text(1.01, 0.0, "hatched: a session\ndid not end normally", transform=ax_tr.transAxes,
                       fontsize=8, va="bottom", color="#555555")

        water = np.array([d.water_ul for d in days])
        ax_w.bar(x, water, width=0.6, color=REWARD_COLOUR)
        ax_w.set_ylabel("water (\u00b5l)")
        ax_w.set_ylim(0, max(1.0, water.max()) * 1.18)
        for xi, w in enumerate(water):
            if w > 0:
                ax_w.text(xi, w, f"{w:.0f}", ha="center", va="bottom", fontsize=8)
        for ax in (ax_ant, ax_tr):
            ax.tick_params(axis="x", labelbottom=False)
        ax_w.set_xticks(x)
        ax_w.set_xticklabels([f"{d.date[5:]}\nday {k + 1}" for k, d in enumerate(days)],
                             fontsize=8.5 if len(days) <= 14 else 7)
        ax_w.set_xlabel("date")
    return fig


def render_animal(animal_dir: str | Path, out: str | Path) -> Path:
    """Write the learning figure of the animal under animal_dir to `out` and return its path."""
    fig = animal_figure(animal_dir)
    out = Path(out)
    fig.savefig(out, format="png", dpi=DPI)
    return out
