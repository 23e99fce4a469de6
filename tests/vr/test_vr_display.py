"""The GL display drivers without a window: frame bookkeeping, the offscreen driver on a real EGL context
(alone and inside a real-time simulated session), window placement, and the `rig textures` / `rig render`
commands. The Qt window itself is tested under Xvfb in test_vr_display_window.py."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from drivers.base import Display, View
from drivers.registry import DriverContext
from rig.cli.main import main
from rig.config import driver_registry
from rig.datalog.reader import Session
from rig.loading import load_config, load_protocol
from rig.runner.clock import RealClock
from rig.runner.hooks import OnStart
from rig.runner.session import SessionOptions, run_session
from rig.vr.display_driver import FrameTracker, OffscreenDisplay, WindowDisplay, display_params
from rig.vr.geometry import ViewState
from rig.vr.layout import viewports
from rig.vr.params import DisplayLayout, DisplayParams, ScreenParams
from rig.vr.photodiode import patch_slices
from rig.vr.renderer import CorridorRenderer, standalone_context
from rig.vr.window_plan import plan_windows
from tests.support.paths import REPO

DEMO = REPO / "protocols" / "demo.yaml"
W, H = 160, 90
SMALL = DisplayLayout.span(3, 270.0, W, H)


@pytest.fixture(scope="module")
def demo():
    return load_protocol(DEMO)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("textures")


def small_params(cache: Path, **changes) -> OffscreenDisplay.Params:
    return OffscreenDisplay.Params(
        layout=SMALL, textures={"px_per_cm": 2.0, "cache_dir": str(cache)}, **changes
    )


def view(trial: int, corridor: str, position: float, ahead: str | None = None) -> View:
    return View(
        t=0.0, trial=trial, corridor=corridor, position_cm=position, in_grey=False, corridor_rewarded=True,
        ahead_corridor=ahead,
    )


def open_gl_or_fail():
    try:
        standalone_context().release()
    except RuntimeError as e:
        pytest.fail(f"these tests need an offscreen EGL OpenGL 3.3 context and could not create one: {e}")


# -- bookkeeping -------------------------------------------------------------------------------------


def test_frame_tracker_counts_frames_marks_trial_starts_and_keeps_the_corridor_behind():
    tr = FrameTracker(continuous=True)
    states = [
        tr.next(v)
        for v in (
            view(0, "leaf1", 0.0),
            view(0, "leaf1", 5.0),
            view(1, "circle1", 0.0),
            view(1, "circle1", 3.0),
        )
    ]
    assert [s.frame for s in states] == [0, 1, 2, 3]
    assert [s.trial_start for s in states] == [True, False, True, False]
    assert [s.behind for s in states] == [None, None, "leaf1", "leaf1"]
    assert all(s.ahead == () for s in states)  # the views name no next corridor: grey ahead


def test_frame_tracker_draws_the_next_corridor_ahead_only_in_continuous_protocols():
    cont, pause = FrameTracker(continuous=True), FrameTracker(continuous=False)
    assert cont.next(view(0, "leaf1", 590.0, ahead="circle1")).ahead == ("circle1",)
    assert cont.next(view(0, "leaf1", 595.0)).ahead == ()
    assert pause.next(view(0, "leaf1", 590.0, ahead="circle1")).ahead == ()


def test_frame_tracker_draws_nothing_behind_when_trials_pause_between_corridors():
    tr = FrameTracker(continuous=False)
    tr.next(view(0, "leaf1", 600.0))
    assert tr.next(view(1, "circle1", 0.0)).behind is None


def test_display_driver_module_imports_and_registers_without_moderngl_or_qt():
    code = (
        "import sys; sys.modules['moderngl'] = None; sys.modules['PyQt5'] = None\n"
        "from rig.config import driver_registry\n"
        "print(' '.join(driver_registry().types('display')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) >= {"gl_offscreen", "gl_window", "sim"}


def test_gl_types_are_registered_with_display_params_and_implement_the_display_interface():
    reg = driver_registry()  # the rig's own driver modules (the VR display) beside the drivers package
    assert reg.spec("display", "gl_offscreen").cls is OffscreenDisplay
    assert reg.spec("display", "gl_window").cls is WindowDisplay
    assert issubclass(reg.spec("display", "gl_window").params, DisplayParams)
    ctx = DriverContext(clock=RealClock())
    assert isinstance(OffscreenDisplay(OffscreenDisplay.Params(), ctx), Display)
    assert isinstance(WindowDisplay(WindowDisplay.Params(), ctx), Display)


def test_shipped_gl_configs_load_with_their_display_params():
    for name, cls in (("sim-gl.yaml", WindowDisplay), ("sim-offscreen.yaml", OffscreenDisplay)):
        cfg = load_config(REPO / "config" / name)
        p = cfg.driver_params("display")
        assert isinstance(p, cls.Params) and len(p.layout.screens) == 3, name
        assert type(display_params(p)) is DisplayParams


# -- the offscreen driver ------------------------------------------------------------------------------


def test_offscreen_display_draws_exactly_what_the_renderer_draws_for_the_view(demo, cache: Path):
    open_gl_or_fail()
    params = small_params(cache)
    d = OffscreenDisplay(params, DriverContext(clock=RealClock()))
    d.bind(demo)
    with d:
        d.show(view(0, "leaf1", 120.0))
        got = d.snapshot()
    ctx = standalone_context()
    try:
        with CorridorRenderer(ctx, demo.corridors, display_params(params)) as r:
            want = r.render(ViewState("leaf1", 120.0, frame=0, trial_start=True))
            other = r.render(ViewState("leaf1", 140.0, frame=0, trial_start=True))
    finally:
        ctx.release()
    assert got.shape == (H, 3 * W, 3)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, other)


def test_offscreen_display_photodiode_shows_checker_then_alternates(demo, cache: Path):
    open_gl_or_fail()
    params = small_params(cache)
    rows, cols = patch_slices(params.photodiode, viewports(params.layout)[0], H)
    d = OffscreenDisplay(params, DriverContext(clock=RealClock()))
    d.bind(demo)
    patches = []
    with d:
        for k, v in enumerate(
            [
                view(0, "leaf1", 10.0),
                view(0, "leaf1", 11.0),
                view(0, "leaf1", 12.0),
                view(1, "circle1", 0.0),
                view(1, "circle1", 1.0),
            ]
        ):
            d.show(v)
            assert d.frames_shown == k + 1
            patches.append(d.snapshot()[rows, cols, 0])
    kinds = []
    for p in patches:
        if np.all(p == 255):
            kinds.append("white")
        elif np.all(p == 0):
            kinds.append("black")
        else:
            assert set(np.unique(p)) == {0, 255}
            kinds.append("checker")
    # frame 0: trial start; 1 odd white; 2 even black; 3 trial start; 4 even black
    assert kinds == ["checker", "white", "black", "checker", "black"]


def test_offscreen_display_draws_the_previous_corridor_behind_after_a_trial_change(demo, cache: Path):
    open_gl_or_fail()
    # No grey part, so the corridor just left is right behind the mouse, where the side screens see it.
    no_grey = tuple(c.model_copy(update={"grey_length_cm": 0.0}) for c in demo.corridors)
    demo = demo.model_copy(update={"corridors": no_grey})
    params = small_params(cache, photodiode={"enabled": False})
    d = OffscreenDisplay(params, DriverContext(clock=RealClock()))
    d.bind(demo)
    ctx = standalone_context()
    try:
        with d, CorridorRenderer(ctx, demo.corridors, display_params(params)) as r:
            d.show(view(0, "leaf1", 399.0))
            d.show(view(1, "circle1", 5.0))
            got = d.snapshot()
            behind_leaf = r.render(ViewState("circle1", 5.0, behind="leaf1"))
            behind_grey = r.render(ViewState("circle1", 5.0))
    finally:
        ctx.release()
    assert np.array_equal(got, behind_leaf) and not np.array_equal(got, behind_grey)


def test_offscreen_display_draws_the_next_corridor_beyond_the_grey_part(demo, cache: Path):
    open_gl_or_fail()
    params = small_params(cache, photodiode={"enabled": False})
    leaf = next(c for c in demo.corridors if c.name == "leaf1")
    end_of_grey = leaf.length_cm - 10.0  # 10 cm of grey left, the next corridor's texture right after it
    ctx = standalone_context()
    try:
        with CorridorRenderer(ctx, demo.corridors, display_params(params)) as r:
            upcoming = r.render(ViewState("leaf1", end_of_grey, ahead=("circle1",)))
            upcoming_other = r.render(ViewState("leaf1", end_of_grey, ahead=("leaf1",)))
            grey = r.render(ViewState("leaf1", end_of_grey))
    finally:
        ctx.release()
    assert not np.array_equal(upcoming, grey) and not np.array_equal(upcoming, upcoming_other)
    shown = {}
    for show_next in (True, False):
        d = OffscreenDisplay(params, DriverContext(clock=RealClock()))
        d.bind(demo)
        with d:
            # what the runner asks for: the next corridor's name when inter_trial.show_next, else None
            d.show(view(0, "leaf1", end_of_grey, ahead="circle1" if show_next else None))
            shown[show_next] = d.snapshot()
    assert np.array_equal(shown[True], upcoming)
    assert np.array_equal(shown[False], grey)
    # pause protocols keep the world ahead grey even when the view names the next corridor
    paused = demo.model_copy(update={"inter_trial": demo.inter_trial.model_copy(update={"mode": "pause"})})
    d = OffscreenDisplay(params, DriverContext(clock=RealClock()))
    d.bind(paused)
    with d:
        d.show(view(0, "leaf1", end_of_grey, ahead="circle1"))
        assert np.array_equal(d.snapshot(), grey)


def test_show_before_the_protocol_is_bound_says_what_is_missing(cache: Path):
    open_gl_or_fail()
    with OffscreenDisplay(small_params(cache), DriverContext(clock=RealClock())) as d:
        with pytest.raises(RuntimeError, match="bind"):
            d.show(view(0, "leaf1", 0.0))


def test_binding_a_protocol_with_other_corridors_is_refused(demo, cache: Path):
    open_gl_or_fail()
    other = load_protocol(REPO / "protocols" / "test1_task.yaml")
    with OffscreenDisplay(small_params(cache), DriverContext(clock=RealClock())) as d:
        d.bind(demo)
        d.show(view(0, "leaf1", 1.0))
        d.bind(demo.model_copy(update={"end": demo.end}))  # same corridors: fine, the frame count goes on
        assert d.frames_shown == 1
        with pytest.raises(RuntimeError, match="already draws"):
            d.bind(other)


@dataclass(frozen=True)
class ContextWithProtocol(DriverContext):
    """The DriverContext extension the display asks for: the session's protocol."""

    protocol: object = None


def test_display_takes_the_protocol_from_the_driver_context_when_it_has_one(demo, cache: Path):
    open_gl_or_fail()
    with OffscreenDisplay(small_params(cache), ContextWithProtocol(clock=RealClock(), protocol=demo)) as d:
        d.show(view(0, "circle1", 30.0))
        assert d.frames_shown == 1 and d.snapshot().std() > 10


def test_realtime_sim_session_with_offscreen_display_shows_and_logs_every_frame(
    demo, cache: Path, tmp_path: Path
):
    open_gl_or_fail()
    entry = yaml.safe_load((REPO / "config" / "sim-offscreen.yaml").read_text())
    entry["drivers"]["display"]["layout"] = {"screens": [s.model_dump() for s in SMALL.screens]}
    entry["drivers"]["display"]["textures"] = {"px_per_cm": 2.0, "cache_dir": str(cache)}
    cfg_path = tmp_path / "rig.yaml"
    cfg_path.write_text(yaml.safe_dump(entry))
    config = load_config(cfg_path)
    displays = []

    def on_runner(runner) -> None:
        runner.devices.display.bind(runner.protocol)
        displays.append(runner.devices.display)

    result = run_session(
        demo, config, SessionOptions(seed=3, duration_s=1.5, data_dir=tmp_path / "data"),
        hooks=(OnStart(on_runner),),
    )
    (display,) = displays
    assert isinstance(display, OffscreenDisplay) and not display.is_open  # closed with the session
    s = Session.open(result.path)
    assert result.run.complete
    assert len(s.frames) == display.frames_shown > 10  # one drawn frame per logged iteration
    assert len(s.timing) == len(s.frames)
    assert set(np.unique(s.frames["corridor"])) <= {0, 1}
    pos = s.frames["position_cm"]
    assert pos[-1] > pos[0]  # the virtual mouse ran: it saw the corridor move


# -- window placement (pure) ----------------------------------------------------------------------------


def _three_monitors():
    return [(0, 0, 1280, 720), (1280, 0, 1280, 720), (2560, 0, 1280, 720), (0, 720, 1920, 1080)]


def test_single_window_spans_the_monitors_the_screens_name():
    layout = DisplayLayout(
        screens=tuple(
            s.model_copy(update={"monitor": m})
            for s, m in zip(DisplayLayout().screens, (0, 1, 2), strict=True)
        )
    )
    (t,) = plan_windows(DisplayParams(layout=layout), _three_monitors())
    assert t.rect == (0, 0, 3840, 720) and t.screens == (0, 1, 2)
    assert [v.x for v in t.viewports] == [0, 1280, 2560]


def test_per_screen_windows_go_fullscreen_on_their_monitors_or_side_by_side():
    targets = plan_windows(
        DisplayParams(layout=DisplayLayout(), window="per_screen"), _three_monitors(), (10, 20)
    )
    assert [t.rect for t in targets] == [(10, 20, 1280, 720), (1290, 20, 1280, 720), (2570, 20, 1280, 720)]
    assert all(t.viewports[0].rect == (0, 0, 1280, 720) and t.monitor is None for t in targets)
    named = DisplayLayout(
        screens=tuple(
            s.model_copy(update={"monitor": m})
            for s, m in zip(DisplayLayout().screens, (2, 1, 0), strict=True)
        )
    )
    targets = plan_windows(DisplayParams(layout=named, window="per_screen"), _three_monitors())
    assert [t.rect[0] for t in targets] == [2560, 1280, 0] and [t.monitor for t in targets] == [2, 1, 0]


def test_window_placement_errors_name_the_screen_and_the_sizes():
    big = DisplayLayout(screens=(ScreenParams(monitor=3, width_px=1280, height_px=720),))
    with pytest.raises(ValueError, match=r"screens\[0\] is 1280x720 px but monitor 3 is 1920x1080"):
        plan_windows(DisplayParams(layout=big, window="per_screen"), _three_monitors())
    with pytest.raises(ValueError, match="monitor is 7 but this desktop has 4"):
        plan_windows(
            DisplayParams(layout=DisplayLayout(screens=(ScreenParams(monitor=7),))), _three_monitors()
        )
    mixed = DisplayLayout.span(2, 180.0, 1280, 720)
    mixed = DisplayLayout(screens=(mixed.screens[0].model_copy(update={"monitor": 0}), mixed.screens[1]))
    with pytest.raises(ValueError, match="every screen a monitor, or none"):
        plan_windows(DisplayParams(layout=mixed), _three_monitors())


# -- rig textures / rig render ----------------------------------------------------------------------------


def run_command(*argv: str) -> int:
    return main(list(argv))  # the `rig` entry point: its error handling included


def test_rig_textures_writes_the_sources_and_corridor_textures_as_pngs(tmp_path: Path):
    out = tmp_path / "tex"
    assert run_command("textures", "--out", str(out), "--px-per-cm", "1") == 0
    names = {p.name for p in out.glob("*.png")}
    assert {"source_leaf.png", "source_circle.png", "source_rock.png", "source_brick.png"} <= names
    assert {"corridor_leaf1.png", "corridor_leaf2.png", "corridor_grating45.png"} <= names
    img = Image.open(out / "corridor_leaf1.png")
    assert img.size == (400, 20)  # 400 cm x 20 cm at 1 px/cm
    assert run_command("textures", "--out", str(out), "--px-per-cm", "0") == 2


def test_rig_render_uses_the_gl_config_display_layout(tmp_path: Path, cache: Path):
    open_gl_or_fail()
    entry = yaml.safe_load((REPO / "config" / "sim-gl.yaml").read_text())
    entry["drivers"]["display"]["layout"] = {"screens": [s.model_dump() for s in SMALL.screens]}
    cfg = tmp_path / "gl.yaml"
    cfg.write_text(yaml.safe_dump(entry))
    png = tmp_path / "out" / "leaf1.png"
    code = run_command(
        "render",
        str(DEMO),
        "--corridor",
        "leaf1",
        "--position",
        "100",
        "-o",
        str(png),
        "--config",
        str(cfg),
        "--texture-cache",
        str(cache),
    )
    assert code == 0 and png.is_file()
    arr = np.asarray(Image.open(png))
    assert arr.shape[:2] == (H, 3 * W) and arr.std() > 10  # a textured picture, not a blank
    p2 = tmp_path / "leaf1_300.png"
    run_command(
        "render",
        str(DEMO),
        "--corridor",
        "leaf1",
        "--position",
        "300",
        "-o",
        str(p2),
        "--config",
        str(cfg),
        "--texture-cache",
        str(cache),
    )
    assert not np.array_equal(arr, np.asarray(Image.open(p2)))


def test_rig_render_without_a_gl_config_uses_the_default_three_screens(tmp_path: Path, cache: Path):
    open_gl_or_fail()
    png = tmp_path / "r.png"
    code = run_command(
        "render",
        str(DEMO),
        "--corridor",
        "circle1",
        "--position",
        "50",
        "-o",
        str(png),
        "--config",
        str(REPO / "config" / "sim.yaml"),
        "--texture-cache",
        str(cache),
    )
    assert code == 0
    assert Image.open(png).size == (DisplayParams().layout.width_px, DisplayParams().layout.height_px)


def test_rig_render_rejects_an_unknown_corridor_and_a_bad_position(tmp_path: Path, capsys):
    assert (
        run_command(
            "render", str(DEMO), "--corridor", "nope", "--position", "1", "-o", str(tmp_path / "x.png")
        )
        == 2
    )
    assert "no corridor 'nope'" in capsys.readouterr().err
    assert (
        run_command(
            "render", str(DEMO), "--corridor", "leaf1", "--position", "9999", "-o", str(tmp_path / "x.png")
        )
        == 2
    )
    assert "outside corridor" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
