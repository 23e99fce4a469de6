"""The renderer on a real offscreen EGL context (Mesa's software GL works): what lands where on screen.

Small screens (three of 320x180, 90 degrees each) keep this fast; the geometry is the paper's.
Corridor 20 cm wide, eye 10 cm above the floor midway between the walls, walls 20 cm high.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rig.protocol import Corridor, Texture
from rig.vr.geometry import ViewState
from rig.vr.layout import Viewport, viewports
from rig.vr.params import CorridorView, DisplayLayout, DisplayParams, PhotodiodeParams, TextureParams
from rig.vr.photodiode import patch_slices
from rig.vr.renderer import CorridorRenderer, standalone_context
from rig.vr.textures import TextureStore

W, H = 320, 180
LAYOUT = DisplayLayout.span(3, 270.0, W, H)
PX_PER_CM_ON_SIDE_SCREEN = (W / 2) / 10.0  # side screens face the wall 10 cm away, tan(45 deg) = 1
CORRIDORS = [
    Corridor(name="leaf1", texture=Texture(source="leaf", exemplar=1)),
    Corridor(name="leaf2", texture=Texture(source="leaf", exemplar=2)),
    Corridor(name="rock1", texture=Texture(source="rock", exemplar=1)),
]


@pytest.fixture(scope="module")
def ctx():
    try:
        context = standalone_context()
    except RuntimeError as e:
        pytest.fail(f"these tests need an offscreen EGL OpenGL 3.3 context and could not create one: {e}")
    yield context
    context.release()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TextureStore:
    return TextureStore(tmp_path_factory.mktemp("textures"), px_per_cm=5.0)


def make(ctx, store: TextureStore, **changes) -> CorridorRenderer:
    params = DisplayParams(
        layout=LAYOUT,
        corridor=changes.pop("corridor", CorridorView()),
        textures=TextureParams(px_per_cm=5.0),
        photodiode=changes.pop("photodiode", PhotodiodeParams(enabled=False)),
        **changes,
    )
    return CorridorRenderer(ctx, CORRIDORS, params, store)


@pytest.fixture(scope="module")
def renderer(ctx, store: TextureStore) -> Iterator[CorridorRenderer]:
    with make(ctx, store) as r:
        yield r


def screen(img: np.ndarray, i: int) -> np.ndarray:
    return img[:, i * W : (i + 1) * W].astype(float)


def best_shift(a: np.ndarray, b: np.ndarray, max_shift: int) -> int:
    """The horizontal shift s (b[:, x] == a[:, x + s]) that matches two strips best."""
    errs = {}
    for s in range(-max_shift, max_shift + 1):
        lo, hi = max(0, -s), min(a.shape[1], a.shape[1] - s)
        errs[s] = np.abs(b[:, lo:hi] - a[:, lo + s : hi + s]).mean()
    return min(errs, key=errs.__getitem__)


def test_render_returns_all_screens_side_by_side(renderer: CorridorRenderer) -> None:
    img = renderer.render(ViewState("leaf1", 100.0))
    assert img.shape == (H, 3 * W, 3) and img.dtype == np.uint8
    assert all(screen(img, i).std() > 10 for i in range(3))


def test_moving_forward_shifts_the_wall_texture_by_the_expected_amount(renderer: CorridorRenderer) -> None:
    step_cm = 2.0
    expected_px = round(step_cm * PX_PER_CM_ON_SIDE_SCREEN)  # 32 px
    a = renderer.render(ViewState("leaf1", 150.0))
    b = renderer.render(ViewState("leaf1", 150.0 + step_cm))
    rows = slice(60, 120)  # wall only (it spans rows ~0-180 at 10 cm)
    cols = slice(60, 260)
    # Left screen looks at the left wall: ahead is to the right, so the texture slides left.
    left = best_shift(screen(a, 0)[rows, cols, 0], screen(b, 0)[rows, cols, 0], 48)
    right = best_shift(screen(a, 2)[rows, cols, 0], screen(b, 2)[rows, cols, 0], 48)
    assert left == expected_px
    assert right == -expected_px


def test_grey_part_is_uniform_grey(ctx, store: TextureStore) -> None:
    view = CorridorView(floor=False, ceiling=False, grey_level=0.5, background_level=0.0)
    with make(ctx, store, corridor=view) as r:
        grey = r.render(ViewState("leaf1", 500.0))  # grey part: 400-600 cm, nothing given ahead
        textured = r.render(ViewState("leaf1", 200.0))
    values = set(np.unique(grey).tolist())
    assert values <= {0, 127, 128}, f"grey part shows other values: {sorted(values)[:10]}"
    assert (grey >= 127).mean() > 0.5  # most of the picture is wall
    assert len(np.unique(textured)) > 50  # the same check on a textured part would fail


def test_left_and_right_walls_are_where_expected(renderer: CorridorRenderer) -> None:
    # 40 cm before the texture ends: on the centre screen the texture/grey border of the left wall is at
    # ndc x = -10/40 (column 120) and of the right wall at +10/40 (column 200); beyond them, grey.
    img = renderer.render(ViewState("leaf1", 360.0))
    centre = screen(img, 1)[:, :, 0]
    row = 85  # just above the horizon: wall on both sides
    assert centre[row, 0:116].std() > 15 and centre[row, 204:320].std() > 15
    assert np.all(np.abs(centre[row, 124:150] - 127.5) <= 1)
    assert np.all(np.abs(centre[row, 170:196] - 127.5) <= 1)
    # No ceiling: above the walls' tops lies the background, near the vanishing point.
    assert centre[5, 150] == 0 and centre[5, 16] != 0
    # Floor below the horizon in the middle.
    assert centre[170, 160] == round(0.25 * 255)
    # The side screens face their walls: the right wall is the left wall mirrored (same texture,
    # ahead is to the left instead of the right).
    left, right = screen(img, 0), screen(img, 2)
    assert np.abs(left - right[:, ::-1]).mean() < 2.0
    assert np.abs(left - left[:, ::-1]).mean() > 10  # and the mirroring is not trivial


def test_different_exemplars_render_differently(renderer: CorridorRenderer) -> None:
    a = renderer.render(ViewState("leaf1", 200.0)).astype(float)
    again = renderer.render(ViewState("leaf1", 200.0)).astype(float)
    b = renderer.render(ViewState("leaf2", 200.0)).astype(float)
    c = renderer.render(ViewState("rock1", 200.0)).astype(float)
    assert np.array_equal(a, again)
    assert np.abs(a - b).mean() > 15
    assert np.abs(a - c).mean() > 15


def test_next_corridor_is_drawn_ahead_or_grey(renderer: CorridorRenderer) -> None:
    # 50 cm before leaf1 ends, with rock1 ahead (from 250 cm) vs nothing ahead (grey).
    with_next = screen(renderer.render(ViewState("leaf1", 550.0, ahead=("rock1",))), 1)
    grey_next = screen(renderer.render(ViewState("leaf1", 550.0)), 1)
    row = 88
    # rock1 starts 50 cm ahead: its walls appear at |ndc x| < 10/50, i.e. columns 128-192.
    assert with_next[row, 130:155].std() > 5
    assert np.all(np.abs(grey_next[row, 130:155, 0] - 127.5) <= 1)


def test_photodiode_patch_alternates_and_marks_trial_start(ctx, store: TextureStore) -> None:
    pd = PhotodiodeParams(enabled=True, screen=2, corner="bottom_right", size_px=16, checker_px=2)
    with make(ctx, store, photodiode=pd) as r:
        frames = [r.render(ViewState("leaf1", 100.0, frame=f)) for f in range(4)]
        start = r.render(ViewState("leaf1", 100.0, frame=4, trial_start=True))
    rows, cols = patch_slices(pd, viewports(LAYOUT)[2], H)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (H - 16, H, 3 * W - 16, 3 * W)
    levels = [int(f[rows, cols].mean()) for f in frames]
    assert levels == [0, 255, 0, 255]
    assert all(len(np.unique(f[rows, cols])) == 1 for f in frames)
    patch = start[rows, cols, 0]
    assert set(np.unique(patch).tolist()) == {0, 255} and abs(patch.mean() - 127.5) < 10
    # Only the patch changes from frame to frame.
    outside = np.ones(frames[0].shape[:2], bool)
    outside[rows, cols] = False
    assert np.array_equal(frames[0][outside], frames[1][outside])


def border_jumps(img: np.ndarray, n: int) -> tuple[list[float], float]:
    """Mean |difference| across each screen border, and between neighbouring columns inside screens."""
    g = img[:, :, 0].astype(float)
    cols = np.abs(np.diff(g, axis=1)).mean(axis=0)
    borders = [(i + 1) * W - 1 for i in range(n - 1)]
    inside = np.delete(cols, borders)
    return [float(cols[b]) for b in borders], float(np.median(inside))


def test_screens_join_without_seam_in_the_picture(ctx, store: TextureStore, renderer: CorridorRenderer) -> None:
    # Neighbouring pixels across a screen border see neighbouring directions, so the picture changes
    # no more there than between neighbouring columns inside a screen.
    state = ViewState("rock1", 200.0)
    jumps, typical = border_jumps(renderer.render(state), 3)
    assert all(j < 3 * typical for j in jumps), (jumps, typical)
    # Control: screens turned 5 degrees apart leave a gap, and the same check catches it.
    gappy = DisplayLayout(
        screens=tuple(
            s.model_copy(update={"yaw_deg": s.yaw_deg + k * 5.0})
            for k, s in zip((-1, 0, 1), LAYOUT.screens, strict=True)
        )
    )
    params = renderer.params.model_copy(update={"layout": gappy})
    with CorridorRenderer(ctx, CORRIDORS, params, store) as r:
        bad, typical_bad = border_jumps(r.render(state), 3)
    assert all(j > 3 * typical_bad for j in bad), (bad, typical_bad)


def test_gamma_brightens_mid_grey(ctx, store: TextureStore) -> None:
    view = CorridorView(floor=False, ceiling=False)
    with make(ctx, store, corridor=view, gamma=2.2) as r:
        img = r.render(ViewState("leaf1", 500.0))
    centre = screen(img, 0)[90, 160, 0]
    assert centre == pytest.approx(255 * 0.5 ** (1 / 2.2), abs=1.5)


def test_closed_renderer_refuses_to_draw(ctx, store: TextureStore) -> None:
    r = make(ctx, store)
    r.close()
    with pytest.raises(RuntimeError, match="closed"):
        r.render(ViewState("leaf1", 0.0))


def test_one_window_per_screen_draws_the_same_picture(ctx, renderer: CorridorRenderer) -> None:
    state = ViewState("leaf1", 120.0)
    whole = renderer.render(state)

    for i in range(3):
        rb = ctx.renderbuffer((W, H), components=4)
        fbo = ctx.framebuffer(color_attachments=[rb])
        renderer.draw_screen(state, i, fbo, Viewport(0, 0, W, H))
        own = np.frombuffer(fbo.read(components=3, alignment=1), np.uint8).reshape(H, W, 3)[::-1]
        fbo.release()
        rb.release()
        diff = np.abs(own.astype(int) - whole[:, i * W : (i + 1) * W])
        # identical up to rounding where the rasteriser's sample positions shift with the viewport origin
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_render_preview_writes_the_picture(tmp_path, store: TextureStore) -> None:
    from PIL import Image

    from rig.protocol import Protocol
    from rig.vr.preview import render_preview

    protocol = Protocol.model_validate(
        {
            "name": "p",
            "kind": "exposure",
            "corridors": [c.model_dump() for c in CORRIDORS],
            "movement": {"rule": "gated"},
            "reward": {"mode": "zone_passive", "zone_start_cm": [200, 300]},
            "end": {"max_trials": 10},
        }
    )
    out = render_preview(protocol, "leaf2", 250.0, LAYOUT, tmp_path / "sub" / "frame.png", store=store)
    with Image.open(out) as im:
        assert im.size == (3 * W, H)
        picture = np.asarray(im.convert("RGB"))
    assert picture.std() > 10
    with pytest.raises(ValueError, match="no corridor 'nope'"):
        render_preview(protocol, "nope", 0.0, LAYOUT, tmp_path / "x.png", store=store)
    with pytest.raises(ValueError, match="outside corridor"):
        render_preview(protocol, "leaf2", 900.0, LAYOUT, tmp_path / "x.png", store=store)
