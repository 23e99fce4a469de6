"""Look of the summary figures: corridor colours, fonts, the grey-segment band.

Colours are fixed per corridor name so that leaf1 has the same colour in every figure of every animal;
names outside the table get colours from a spare list in order of first use within one figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

# The paper's corridors (shared/PAPER.md) and the shipped protocols' names. Pairs that are compared in
# one stage (leaf1/circle1, leaf1/leaf2, grating0/grating45) get clearly different hues.
CORRIDOR_COLOURS: dict[str, str] = {
    "leaf1": "#1b9e3e",
    "leaf2": "#d9a400",
    "leaf3": "#17a2b8",
    "circle1": "#7b4fc4",
    "circle2": "#e0609f",
    "circle3": "#a0522d",
    "rock1": "#8c6d31",
    "rock2": "#b5967a",
    "wood1": "#c0392b",
    "wood2": "#e67e22",
    "wood5": "#7f8c8d",
    "leaf1_swap1": "#2e86de",
    "leaf1_swap2": "#e74c3c",
    "grating0": "#1f77b4",
    "grating45": "#ff7f0e",
    "grating0_p15": "#7fb8e0",
    "grating45_p15": "#ffbf7f",
    "grey": "#555555",
}
_SPARE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")

GREY_BAND = "#e6e6e6"  # the grey-walled end of each corridor
CUE_COLOUR = "#d62728"
REWARD_COLOUR = "#1f5fbf"
LICK_COLOUR = "#222222"
ZONE_COLOUR = "#ff9f1a"

RC: dict[RcKeyType, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


class CorridorColours:
    """Colour per corridor name: the fixed table, then spares in order of first request."""

    def __init__(self) -> None:
        self._assigned: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name in CORRIDOR_COLOURS:
            return CORRIDOR_COLOURS[name]
        if name not in self._assigned:
            used = set(self._assigned.values())
            free = [c for c in _SPARE if c not in used] or list(_SPARE)
            self._assigned[name] = free[0]
        return self._assigned[name]


def grey_band(ax: Axes, texture_cm: float, length_cm: float, vertical: bool = True) -> None:
    """Shade the grey part of the corridor (texture end .. corridor end) behind the data."""
    if length_cm > texture_cm:
        if vertical:
            ax.axvspan(texture_cm, length_cm, color=GREY_BAND, zorder=0, lw=0)
        else:
            ax.axhspan(texture_cm, length_cm, color=GREY_BAND, zorder=0, lw=0)
