"""Display and VR parameters (the display driver's Params embed `DisplayParams`).

Angles in degrees; yaw 0 is straight ahead and positive yaw turns to the mouse's right. Lengths in cm.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from rig.protocol import Frozen

SEAM_TOLERANCE_DEG = 1e-6


class ScreenParams(Frozen):
    """One physical screen: where it points, how much of the visual field it covers, its pixels."""

    name: str = ""
    yaw_deg: float = Field(0.0, ge=-180, le=180, description="direction of the screen's centre")
    hfov_deg: float = Field(90.0, gt=0, lt=180, description="horizontal field of view")
    vfov_deg: float | None = Field(None, gt=0, lt=180, description="default: from hfov and square pixels")
    width_px: int = Field(1280, ge=1, le=16384)
    height_px: int = Field(720, ge=1, le=16384)
    monitor: int | None = Field(None, ge=0, description="OS screen index for a fullscreen window")

    @property
    def vfov(self) -> float:
        if self.vfov_deg is not None:
            return self.vfov_deg
        half = math.atan(math.tan(math.radians(self.hfov_deg) / 2) * self.height_px / self.width_px)
        return math.degrees(2 * half)

    @property
    def left_deg(self) -> float:
        return self.yaw_deg - self.hfov_deg / 2

    @property
    def right_deg(self) -> float:
        return self.yaw_deg + self.hfov_deg / 2


def _paper_screens() -> tuple[ScreenParams, ...]:
    return tuple(
        ScreenParams(name=n, yaw_deg=y, hfov_deg=90.0, width_px=1280, height_px=720)
        for n, y in (("left", -90.0), ("centre", 0.0), ("right", 90.0))
    )


class DisplayLayout(Frozen):
    """Screens around the mouse, listed left to right. Adjacent screens may leave a gap (a bezel) but
    must not overlap; with no gap the picture is continuous across the border."""

    screens: tuple[ScreenParams, ...] = Field(default_factory=_paper_screens, min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> DisplayLayout:
        for i in range(1, len(self.screens)):
            a, b = self.screens[i - 1], self.screens[i]
            if b.left_deg < a.right_deg - SEAM_TOLERANCE_DEG:
                raise ValueError(
                    f"screens[{i}] (yaw {b.yaw_deg}, left edge {b.left_deg:g} deg) overlaps screens[{i - 1}] "
                    f"(right edge {a.right_deg:g} deg); list screens left to right without overlap"
                )
        total = self.screens[-1].right_deg - self.screens[0].left_deg
        if total > 360 + SEAM_TOLERANCE_DEG:
            raise ValueError(f"screens cover {total:g} deg, more than 360")
        return self

    @classmethod
    def span(cls, n: int, total_deg: float, width_px: int, height_px: int) -> DisplayLayout:
        """n equal screens side by side, centred straight ahead, covering total_deg with no gap."""
        h = total_deg / n
        yaws = [-total_deg / 2 + h * (i + 0.5) for i in range(n)]
        return cls(
            screens=tuple(
                ScreenParams(name=f"screen{i}", yaw_deg=y, hfov_deg=h, width_px=width_px, height_px=height_px)
                for i, y in enumerate(yaws)
            )
        )

    @property
    def width_px(self) -> int:
        return sum(s.width_px for s in self.screens)

    @property
    def height_px(self) -> int:
        return max(s.height_px for s in self.screens)

    def gaps_deg(self) -> list[float]:
        """Angle between each screen's right edge and the next screen's left edge (0 = seamless)."""
        return [b.left_deg - a.right_deg for a, b in zip(self.screens, self.screens[1:], strict=False)]


class CorridorView(Frozen):
    """The corridor's geometry as the mouse sees it."""

    width_cm: float = Field(20.0, gt=0, le=1000, description="wall to wall; the eye is midway")
    wall_height_cm: float = Field(20.0, gt=0, le=1000)
    eye_height_cm: float = Field(10.0, gt=0, description="above the floor")
    view_distance_cm: float = Field(
        600.0, gt=0, le=100_000, description="how far ahead (and behind) is drawn"
    )
    near_cm: float = Field(0.5, gt=0, description="near clipping plane")
    floor: bool = True
    ceiling: bool = False
    floor_level: float = Field(0.25, ge=0, le=1)
    ceiling_level: float = Field(0.25, ge=0, le=1)
    grey_level: float = Field(0.5, ge=0, le=1, description="walls of the grey part")
    background_level: float = Field(0.0, ge=0, le=1, description="beyond the view distance / no surface")

    @model_validator(mode="after")
    def _eye_inside(self) -> CorridorView:
        if self.eye_height_cm >= self.wall_height_cm and self.ceiling:
            raise ValueError(
                f"eye_height_cm {self.eye_height_cm} must be below the ceiling ({self.wall_height_cm})"
            )
        if self.near_cm >= self.width_cm / 2:
            raise ValueError(f"near_cm {self.near_cm} must be less than half the corridor width")
        return self


class PhotodiodeParams(Frozen):
    """A square patch that is black on even frames and white on odd frames; on a trial's first frame
    it is a fine black/white checkerboard (half luminance whatever the gamma), which a photodiode reads as
    a third level."""

    enabled: bool = True
    screen: int = Field(0, ge=0, description="index into layout.screens")
    corner: Literal["top_left", "top_right", "bottom_left", "bottom_right"] = "top_left"
    size_px: int = Field(48, ge=2, le=2048)
    checker_px: int = Field(2, ge=1, le=64)


class TextureParams(Frozen):
    """Wall texture resolution and filtering. Mipmaps (trilinear filtering) keep distant walls from
    shimmering; anisotropic filtering sharpens walls seen at grazing angles but costs a lot in software GL."""

    px_per_cm: float = Field(10.0, gt=0, le=100, description="wall texture resolution")
    mipmaps: bool = True
    anisotropy: float = Field(1.0, ge=1, le=16, description="capped at what the GL offers")
    cache_dir: str | None = Field(None, description="default ~/.cache/corridor-rig/textures")


class DisplayParams(Frozen):
    """Everything the renderer needs besides the protocol: layout, corridor view, textures, output."""

    layout: DisplayLayout = DisplayLayout()
    corridor: CorridorView = CorridorView()
    textures: TextureParams = TextureParams()
    photodiode: PhotodiodeParams = PhotodiodeParams()
    gamma: float = Field(1.0, gt=0.1, le=5, description="display gamma to correct: output = value**(1/gamma)")
    luminance: float = Field(1.0, ge=0, le=1, description="scales every scene value (not the photodiode)")
    window: Literal["single", "per_screen"] = Field(
        "single", description="one window spanning, or one per screen"
    )

    @model_validator(mode="after")
    def _photodiode_screen(self) -> DisplayParams:
        n = len(self.layout.screens)
        pd = self.photodiode
        if pd.screen >= n:
            raise ValueError(f"photodiode.screen {pd.screen} does not exist; the layout has {n} screen(s)")
        s = self.layout.screens[pd.screen]
        if pd.size_px > min(s.width_px, s.height_px):
            raise ValueError(f"photodiode.size_px {pd.size_px} is larger than screen {pd.screen}")
        return self
