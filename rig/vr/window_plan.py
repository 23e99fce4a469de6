"""Where the gl_window display's windows go on the desktop (pure: no Qt, so it is testable anywhere)."""

from __future__ import annotations

from dataclasses import dataclass

from rig.vr.layout import Viewport, viewports
from rig.vr.params import DisplayParams


@dataclass(frozen=True)
class Target:
    """One window: where it goes on the desktop, the layout screens it shows, their viewports in it."""

    rect: tuple[int, int, int, int]  # x, y, width, height in desktop pixels
    screens: tuple[int, ...]
    viewports: tuple[Viewport, ...]
    monitor: int | None  # fullscreen on this monitor (per_screen with a monitor), else placed by rect


def plan_windows(
    params: DisplayParams, monitors: list[tuple[int, int, int, int]], position: tuple[int, int] = (0, 0)
) -> list[Target]:
    """Where the windows go, given the desktop rectangles of the OS monitors (pure: testable without Qt).

    Screens name their monitor by index (`ScreenParams.monitor`); either every screen names one or none
    does (then the windows are placed side by side from `position`)."""
    layout = params.layout
    named = [s.monitor for s in layout.screens]
    if any(m is None for m in named) and any(m is not None for m in named):
        raise ValueError("display layout: give every screen a monitor, or none (mixing is ambiguous)")
    for i, m in enumerate(named):
        if m is not None and m >= len(monitors):
            raise ValueError(
                f"display layout: screens[{i}].monitor is {m} but this desktop has {len(monitors)} monitor(s)"
            )
    x0, y0 = position
    if params.window == "single":
        chosen = [m for m in named if m is not None]  # all of them or none (checked above)
        if not chosen:
            rect = (x0, y0, layout.width_px, layout.height_px)
        else:
            rect = _union([monitors[m] for m in dict.fromkeys(chosen)])
            if rect[2:] != (layout.width_px, layout.height_px):
                raise ValueError(
                    f"display layout is {layout.width_px}x{layout.height_px} px but monitors "
                    f"{sorted(set(chosen))} cover {rect[2]}x{rect[3]} px; "
                    "make the screens' width_px/height_px match the monitors"
                )
        return [Target(rect, tuple(range(len(layout.screens))), tuple(viewports(layout)), None)]
    out: list[Target] = []
    x = x0
    for i, s in enumerate(layout.screens):
        if s.monitor is None:
            rect = (x, y0, s.width_px, s.height_px)
            x += s.width_px
        else:
            rect = monitors[s.monitor]
            if rect[2:] != (s.width_px, s.height_px):
                raise ValueError(
                    f"screens[{i}] is {s.width_px}x{s.height_px} px but monitor {s.monitor} is "
                    f"{rect[2]}x{rect[3]} px; make width_px/height_px match the monitor"
                )
        out.append(Target(rect, (i,), (Viewport(0, 0, s.width_px, s.height_px),), s.monitor))
    return out


def _union(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return (x0, y0, x1 - x0, y1 - y0)
