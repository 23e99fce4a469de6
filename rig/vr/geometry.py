"""Corridor geometry: which wall pieces are within view distance, as quads relative to the eye.

Pure numpy, no GL: the renderer draws whatever `surfaces()` returns. Positions are in cm relative to
the eye (x right, y up, -z ahead) and computed in float64 from positions within a corridor, so the
picture does not lose precision however far the mouse has run in a session.
The corridor is a box seen from inside (convex), so no surface hides another and no depth test is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rig.protocol import Corridor
from rig.vr.params import CorridorView


@dataclass(frozen=True)
class ViewState:
    """What to draw this frame. `ahead` lists the corridors after the current one (the rest is grey);
    `behind` is the previous corridor (None: grey behind). `frame` counts displayed frames and drives
    the photodiode's parity; `trial_start` marks a trial's first frame."""

    corridor: str
    position_cm: float
    frame: int = 0
    trial_start: bool = False
    ahead: tuple[str, ...] = field(default_factory=tuple)
    behind: str | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of both walls, eye-relative: `start_cm` < `end_cm` ahead of the eye (negative: behind).
    `texture` names the corridor whose texture covers it (None: grey); u0/u1 are texture coordinates."""

    start_cm: float
    end_cm: float
    texture: str | None
    u0: float = 0.0
    u1: float = 0.0


@dataclass(frozen=True)
class Surface:
    """A quad: corners origin + s*axis_s + t*axis_t for s, t in [0, 1]."""

    kind: str  # "left", "right", "floor", "ceiling"
    origin: tuple[float, float, float]
    axis_s: tuple[float, float, float]
    axis_t: tuple[float, float, float]
    texture: str | None
    level: float
    u0: float = 0.0
    u1: float = 0.0


def segments(corridors: Mapping[str, Corridor], state: ViewState, view_distance_cm: float) -> list[Segment]:
    """Wall stretches from view_distance behind the eye to view_distance ahead of it."""
    try:
        cur = corridors[state.corridor]
        ahead = [corridors[n] for n in state.ahead]
        behind = corridors[state.behind] if state.behind is not None else None
    except KeyError as e:
        raise KeyError(f"view names corridor {e.args[0]!r}, which the renderer does not know") from None
    p = float(state.position_cm)
    if not 0.0 <= p <= cur.length_cm:
        raise ValueError(f"position {p} cm is outside corridor {cur.name!r} (0-{cur.length_cm} cm)")
    lo, hi = p - view_distance_cm, p + view_distance_cm

    # Pieces in the current corridor's coordinates, from behind the eye to ahead of it.
    pieces: list[tuple[float, float, Corridor | None]] = []
    if behind is not None:
        pieces += _corridor_pieces(behind, -behind.length_cm)
    pieces += _corridor_pieces(cur, 0.0)
    start = cur.length_cm
    for c in ahead:
        if start >= hi:
            break
        pieces += _corridor_pieces(c, start)
        start += c.length_cm
    first = pieces[0][0]
    out: list[Segment] = []
    if lo < first:
        out.append(Segment(lo - p, first - p, None))
    for a, b, piece in pieces:
        a2, b2 = max(a, lo), min(b, hi)
        if b2 <= a2:
            continue
        if piece is None:
            out.append(Segment(a2 - p, b2 - p, None))
        else:
            length = piece.texture_length_cm
            out.append(Segment(a2 - p, b2 - p, piece.name, (a2 - a) / length, (b2 - a) / length))
    if start < hi:
        out.append(Segment(max(start, lo) - p, hi - p, None))
    return _merge_grey(out)


def _corridor_pieces(c: Corridor, start: float) -> list[tuple[float, float, Corridor | None]]:
    pieces: list[tuple[float, float, Corridor | None]] = [(start, start + c.texture_length_cm, c)]
    if c.texture.source == "grey":
        pieces = [(start, start + c.texture_length_cm, None)]
    if c.grey_length_cm > 0:
        pieces.append((start + c.texture_length_cm, start + c.length_cm, None))
    return pieces


def _merge_grey(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segs:
        if out and s.texture is None and out[-1].texture is None:
            out[-1] = Segment(out[-1].start_cm, s.end_cm, None)
        else:
            out.append(s)
    return out


def surfaces(segs: Sequence[Segment], view: CorridorView) -> list[Surface]:
    """Quads for the walls of every segment, plus the floor and ceiling if the view has them."""
    half = view.width_cm / 2
    y0 = -view.eye_height_cm
    h = view.wall_height_cm
    out: list[Surface] = []
    for seg in segs:
        length = seg.end_cm - seg.start_cm
        for kind, x in (("left", -half), ("right", half)):
            out.append(
                Surface(
                    kind,
                    (x, y0, -seg.start_cm),
                    (0.0, 0.0, -length),
                    (0.0, h, 0.0),
                    seg.texture,
                    view.grey_level,
                    seg.u0,
                    seg.u1,
                )
            )
    if segs:
        a, b = segs[0].start_cm, segs[-1].end_cm
        planes = (
            ("floor", view.floor, y0, view.floor_level),
            ("ceiling", view.ceiling, y0 + h, view.ceiling_level),
        )
        for kind, on, y, level in planes:
            if on:
                out.append(
                    Surface(kind, (-half, y, -a), (0.0, 0.0, -(b - a)), (2 * half, 0.0, 0.0), None, level)
                )
    return out
