"""Screen geometry: each screen's view and projection matrices and where it sits in the framebuffer.

World frame (cm): x to the mouse's right, y up, -z straight ahead (OpenGL's convention). The eye is at
the origin of the view; matrices are row-major numpy arrays for column vectors (M @ v).
Every screen has a symmetric frustum about its own yaw direction, so two screens whose angular edges
meet (right edge of one = left edge of the next) share the plane through the eye that bounds them:
the picture is continuous across the border, with neither seam nor overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rig.vr.params import DisplayLayout, ScreenParams


def rotation(screen: ScreenParams) -> np.ndarray:
    """3x3 world -> view rotation: turns the screen's yaw direction onto -z."""
    a = math.radians(screen.yaw_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def view_matrix(screen: ScreenParams) -> np.ndarray:
    """4x4 eye-frame -> view-space matrix (positions already relative to the eye)."""
    m = np.eye(4)
    m[:3, :3] = rotation(screen)
    return m


def projection(screen: ScreenParams, near: float, far: float) -> np.ndarray:
    """4x4 symmetric perspective projection for the screen's fields of view."""
    tx = math.tan(math.radians(screen.hfov_deg) / 2)
    ty = math.tan(math.radians(screen.vfov) / 2)
    return np.array(
        [
            [1.0 / tx, 0.0, 0.0, 0.0],
            [0.0, 1.0 / ty, 0.0, 0.0],
            [0.0, 0.0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def ndc_direction(screen: ScreenParams, ndc_x: float, ndc_y: float) -> np.ndarray:
    """Unit direction (eye frame) of the ray through normalised device coordinates (ndc_x, ndc_y)."""
    tx = math.tan(math.radians(screen.hfov_deg) / 2)
    ty = math.tan(math.radians(screen.vfov) / 2)
    v = np.array([ndc_x * tx, ndc_y * ty, -1.0])
    d = rotation(screen).T @ v
    unit: np.ndarray = d / np.linalg.norm(d)
    return unit


def project(
    screen: ScreenParams, direction: np.ndarray, near: float = 0.5, far: float = 1000.0
) -> np.ndarray:
    """NDC (x, y) where a direction (or eye-relative point) lands on the screen, via the GL matrices."""
    p = projection(screen, near, far) @ view_matrix(screen) @ np.append(np.asarray(direction, float), 1.0)
    if p[3] <= 0:
        raise ValueError(f"direction {direction} is behind screen {screen.name or screen.yaw_deg}")
    ndc: np.ndarray = p[:2] / p[3]
    return ndc


def edge_plane_normal(screen: ScreenParams, side: str) -> np.ndarray:
    """Unit normal of the plane through the eye that bounds the screen on its left or right side."""
    x = -1.0 if side == "left" else 1.0
    top, bottom = ndc_direction(screen, x, 1.0), ndc_direction(screen, x, -1.0)
    n = np.cross(top, bottom)
    unit: np.ndarray = n / np.linalg.norm(n)
    return unit


@dataclass(frozen=True)
class Viewport:
    """A screen's rectangle in the combined framebuffer, GL convention (origin bottom left)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)


def viewports(layout: DisplayLayout) -> list[Viewport]:
    """Screens side by side left to right, top-aligned in a framebuffer of the layout's size."""
    out: list[Viewport] = []
    x = 0
    for s in layout.screens:
        out.append(Viewport(x, layout.height_px - s.height_px, s.width_px, s.height_px))
        x += s.width_px
    return out
