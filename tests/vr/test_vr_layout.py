"""Display layout and VR parameters: continuity across screens from the renderer's own matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from rig.protocol import Corridor, Texture
from rig.vr.geometry import ViewState, segments, surfaces
from rig.vr.layout import edge_plane_normal, ndc_direction, project, viewports
from rig.vr.params import CorridorView, DisplayLayout, DisplayParams, PhotodiodeParams, ScreenParams


def test_default_layout_is_three_screens_covering_270_degrees_without_gaps() -> None:
    layout = DisplayLayout()
    assert len(layout.screens) == 3
    assert layout.screens[-1].right_deg - layout.screens[0].left_deg == pytest.approx(270.0)
    assert layout.gaps_deg() == pytest.approx([0.0, 0.0])


@pytest.mark.parametrize(
    "layout",
    [DisplayLayout(), DisplayLayout.span(4, 300.0, 800, 600), DisplayLayout.span(2, 120.0, 1920, 1080)],
    ids=["paper", "four", "two"],
)
def test_adjacent_frusta_share_their_edge(layout: DisplayLayout) -> None:
    for a, b in zip(layout.screens, layout.screens[1:], strict=False):
        # The plane bounding a on the right is the plane bounding b on the left.
        na, nb = edge_plane_normal(a, "right"), edge_plane_normal(b, "left")
        assert abs(abs(float(na @ nb)) - 1.0) < 1e-9
        # Rays along a's right edge land exactly on b's left edge, at the same height, through the
        # same projection matrices the renderer uses: no seam and no overlap.
        for y in np.linspace(-1, 1, 9):
            d = ndc_direction(a, 1.0, float(y))
            xa, ya = project(a, d)
            xb, yb = project(b, d)
            assert xa == pytest.approx(1.0, abs=1e-9) and xb == pytest.approx(-1.0, abs=1e-9)
            assert ya == pytest.approx(yb, abs=1e-9)


def test_a_gap_between_screens_is_measured_and_an_overlap_rejected() -> None:
    gap = DisplayLayout(screens=(ScreenParams(yaw_deg=-50, hfov_deg=90), ScreenParams(yaw_deg=50, hfov_deg=90)))
    assert gap.gaps_deg() == pytest.approx([10.0])
    with pytest.raises(ValidationError, match="overlaps"):
        DisplayLayout(screens=(ScreenParams(yaw_deg=-40, hfov_deg=90), ScreenParams(yaw_deg=40, hfov_deg=90)))


def test_screen_directions_point_where_the_yaw_says() -> None:
    left, centre, right = DisplayLayout().screens
    assert np.allclose(ndc_direction(centre, 0, 0), [0, 0, -1])
    assert np.allclose(ndc_direction(left, 0, 0), [-1, 0, 0])
    assert np.allclose(ndc_direction(right, 0, 0), [1, 0, 0])
    # square pixels: vertical fov follows from the aspect ratio
    assert math.tan(math.radians(centre.vfov / 2)) == pytest.approx(720 / 1280)


def test_viewports_are_side_by_side_left_to_right() -> None:
    layout = DisplayLayout(
        screens=(
            ScreenParams(yaw_deg=-45, hfov_deg=90, width_px=100, height_px=50),
            ScreenParams(yaw_deg=45, hfov_deg=90, width_px=200, height_px=80),
        )
    )
    vps = viewports(layout)
    assert [v.rect for v in vps] == [(0, 30, 100, 50), (100, 0, 200, 80)]
    assert (layout.width_px, layout.height_px) == (300, 80)


def test_params_reject_unknown_keys_and_bad_references() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DisplayParams.model_validate({"gama": 2.2})
    with pytest.raises(ValidationError, match="photodiode.screen 3"):
        DisplayParams(photodiode=PhotodiodeParams(screen=3))
    with pytest.raises(ValidationError, match="near_cm"):
        CorridorView(width_cm=0.5)
    assert DisplayParams.model_validate(DisplayParams().model_dump()) == DisplayParams()


CORRIDORS = {
    "a": Corridor(name="a", texture=Texture(source="leaf")),
    "b": Corridor(name="b", texture=Texture(source="rock"), texture_length_cm=300, grey_length_cm=100),
}


def test_segments_cover_the_view_contiguously_with_correct_texture_coordinates() -> None:
    segs = segments(CORRIDORS, ViewState("a", 500.0, ahead=("b",), behind="a"), 600.0)
    assert segs[0].start_cm == pytest.approx(-600.0) and segs[-1].end_cm == pytest.approx(600.0)
    for s, t in zip(segs, segs[1:], strict=False):
        assert s.end_cm == pytest.approx(t.start_cm)
    got = [(s.texture, round(s.start_cm, 6), round(s.end_cm, 6)) for s in segs]
    # previous a's grey end, a's texture (0-400 cm = 500-100 cm behind), a's grey, b's texture, grey
    assert got == [
        (None, -600, -500),
        ("a", -500, -100),
        (None, -100, 100),
        ("b", 100, 400),
        (None, 400, 600),
    ]
    assert (segs[1].u0, segs[1].u1) == pytest.approx((0.0, 1.0))
    # a view distance that cuts a texture part: texture coordinates follow the cut
    cut = segments(CORRIDORS, ViewState("a", 100.0, behind="b"), 150.0)
    assert [(s.texture, round(s.start_cm, 6), round(s.end_cm, 6)) for s in cut] == [
        (None, -150, -100),
        ("a", -100, 150),
    ]
    assert (cut[1].u0, cut[1].u1) == pytest.approx((0.0, 250 / 400))
    back = segments(CORRIDORS, ViewState("a", 0.0, behind="b"), 300.0)
    assert back[0].texture == "b" and (back[0].u0, back[0].u1) == pytest.approx((100 / 300, 1.0))


def test_grey_beyond_the_given_corridors_and_position_checked() -> None:
    segs = segments(CORRIDORS, ViewState("a", 100.0), 600.0)
    assert [s.texture for s in segs] == [None, "a", None]
    with pytest.raises(ValueError, match="outside corridor"):
        segments(CORRIDORS, ViewState("a", 700.0), 600.0)
    with pytest.raises(KeyError, match="zzz"):
        segments(CORRIDORS, ViewState("zzz", 0.0), 600.0)


def test_surfaces_put_walls_at_half_width_and_floor_only_when_asked() -> None:
    view = CorridorView(width_cm=20, wall_height_cm=20, eye_height_cm=10, floor=True, ceiling=False)
    segs = segments(CORRIDORS, ViewState("a", 100.0), 600.0)
    surfs = surfaces(segs, view)
    assert {s.origin[0] for s in surfs if s.kind == "left"} == {-10.0}
    assert {s.origin[0] for s in surfs if s.kind == "right"} == {10.0}
    assert [s.kind for s in surfs].count("floor") == 1 and "ceiling" not in [s.kind for s in surfs]
