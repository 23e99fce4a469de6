"""The photodiode patch: what it shows on a frame and where it sits on its screen."""

from __future__ import annotations

from enum import IntEnum

from rig.vr.layout import Viewport
from rig.vr.params import PhotodiodeParams


class Patch(IntEnum):
    BLACK = 0
    WHITE = 1
    CHECKER = 2  # a trial's first frame: half luminance, a third level on the photodiode


def patch_for(frame: int, trial_start: bool) -> Patch:
    """Black on even frames, white on odd ones, a checkerboard on a trial's first frame. Every frame
    differs from the one before, so each buffer swap gives an edge on the photodiode."""
    if trial_start:
        return Patch.CHECKER
    return Patch.WHITE if frame % 2 else Patch.BLACK


def patch_rect(params: PhotodiodeParams, screen: Viewport) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the patch in framebuffer pixels, GL convention (origin bottom left)."""
    s = params.size_px
    left = params.corner.endswith("left")
    top = params.corner.startswith("top")
    x = screen.x if left else screen.x + screen.width - s
    y = screen.y + screen.height - s if top else screen.y
    return (x, y, s, s)


def patch_slices(params: PhotodiodeParams, screen: Viewport, image_height: int) -> tuple[slice, slice]:
    """(rows, cols) of the patch in an image read back top row first (as `render()` returns it)."""
    x, y, w, h = patch_rect(params, screen)
    top = image_height - (y + h)
    return slice(top, top + h), slice(x, x + w)
