"""The `gl_window` display in real Qt GL windows on a private Xvfb server (Mesa software GL through GLX).

Each test starts a child Python process on the Xvfb display (Qt binds a process to one display for
good), which opens the display, draws and swaps, and saves what it read back: the back buffer before
the swap (`captured`) and the window's contents on the X server after the swap (`grabbed`). The parent
compares both with the same view rendered offscreen. Needs the `Xvfb` binary (apt-get install xvfb):
without it these tests fail rather than skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rig.runner.hooks import OnStart
from tests.support.paths import REPO

DEMO = REPO / "protocols" / "demo.yaml"
W, H = 160, 90
POSITIONS = (100.0, 101.0, 102.0, 250.0)  # the last one is captured and grabbed


@pytest.fixture(scope="module")
def xvfb():
    from rig.vr.xvfb import Xvfb, XvfbError

    server = Xvfb(1024, 768)
    try:
        server.start()
    except XvfbError as e:
        pytest.fail(f"the GL window tests need an X server: {e}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("textures")


def run_child(xvfb, *args: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "tests.vr.test_vr_display_window", *args],
        env=xvfb.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"child failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def expected_frame(cache: Path, position: float, frame: int) -> np.ndarray:
    from rig.loading import load_protocol
    from rig.vr.geometry import ViewState
    from rig.vr.renderer import CorridorRenderer, standalone_context

    try:
        ctx = standalone_context()
    except RuntimeError as e:
        pytest.fail(f"these tests need an offscreen EGL OpenGL 3.3 context: {e}")
    try:
        with CorridorRenderer(ctx, load_protocol(DEMO).corridors, _params(cache)) as r:
            return r.render(ViewState("leaf1", position, frame=frame, trial_start=frame == 0))
    finally:
        ctx.release()


@pytest.mark.parametrize("window", ["single", "per_screen"])
def test_window_display_draws_the_corridor_and_swaps_it_onto_the_screen(
    xvfb, cache: Path, tmp_path: Path, window
):
    out = tmp_path / "frames.npz"
    res = run_child(xvfb, "show", window, str(cache), str(out))
    assert res["windows"] == (1 if window == "single" else 3)
    assert res["frames_shown"] == len(POSITIONS)
    assert res["reopened"] is True  # a second open in the same process works after close
    assert res["platform"] == "xcb" and res["self_test_ok"]
    got = np.load(out)
    want = expected_frame(cache, POSITIONS[-1], len(POSITIONS) - 1)
    other = expected_frame(cache, POSITIONS[0], len(POSITIONS) - 1)
    assert got["captured"].shape == want.shape == (H, 3 * W, 3)
    assert want.std() > 10  # a textured corridor, not a blank picture
    # Software GL in a window and offscreen may round one level apart; the picture is the same.
    assert np.abs(got["captured"].astype(int) - want).max() <= 1
    assert np.abs(got["grabbed"].astype(int) - want).max() <= 1  # what the X server shows after the swap
    assert np.abs(got["grabbed"].astype(int) - other).max() > 50


def test_realtime_sim_session_in_a_gl_window_logs_every_frame_it_showed(xvfb, cache: Path, tmp_path: Path):
    from rig.datalog.reader import Session

    res = run_child(xvfb, "session", "single", str(cache), str(tmp_path / "data"))
    s = Session.open(Path(res["path"]))
    assert res["complete"] and len(s.frames) == res["frames_shown"] > 10
    assert len(s.timing) == len(s.frames)


# -- the child process ---------------------------------------------------------------------------------


def _params(cache: Path, window: str = "single"):
    from rig.vr.display_driver import WindowDisplay
    from rig.vr.params import DisplayLayout

    return WindowDisplay.Params(
        layout=DisplayLayout.span(3, 270.0, W, H),
        window=window,
        textures={"px_per_cm": 2.0, "cache_dir": str(cache)},
    )


def _grab(windows) -> np.ndarray:
    from PyQt5.QtGui import QGuiApplication, QImage

    parts = []
    for w in windows:
        img = (
            QGuiApplication.primaryScreen()
            .grabWindow(w.winId())
            .toImage()
            .convertToFormat(QImage.Format_RGB888)
        )
        ptr = img.constBits()
        ptr.setsize(img.sizeInBytes())
        rows = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
        parts.append(rows[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy())
    return np.concatenate(parts, axis=1)


def _child_show(window: str, cache: Path, out: Path) -> dict:
    from PyQt5.QtGui import QGuiApplication

    from drivers.base import View
    from drivers.registry import DriverContext
    from rig.loading import load_protocol
    from rig.runner.clock import RealClock
    from rig.vr.display_driver import WindowDisplay

    protocol = load_protocol(DEMO)
    d = WindowDisplay(_params(cache, window), DriverContext(clock=RealClock()))
    d.bind(protocol)
    with d:
        for k, pos in enumerate(POSITIONS):
            if k == len(POSITIONS) - 1:
                d.request_capture()
            d.show(View(0.0, 0, "leaf1", pos, False, True))
        windows = d._windows._windows  # noqa: SLF001 - the test reads the real windows back
        grabbed = _grab(windows)
        np.savez(out, captured=d.captured, grabbed=grabbed)
        result = {
            "windows": len(windows),
            "frames_shown": d.frames_shown,
            "platform": QGuiApplication.platformName(),
            "self_test_ok": all(c.ok for c in d.self_test()),
        }
    d2 = WindowDisplay(_params(cache, window), DriverContext(clock=RealClock()))
    d2.bind(protocol)
    with d2:
        d2.show(View(0.0, 0, "leaf1", 1.0, False, True))
        result["reopened"] = d2.frames_shown == 1
    return result


def _child_session(cache: Path, data: Path) -> dict:
    import yaml

    import rig.vr.display_driver  # noqa: F401 - registers the gl display types
    from rig.loading import load_config, load_protocol
    from rig.runner.session import SessionOptions, run_session

    entry = yaml.safe_load((REPO / "config" / "sim-gl.yaml").read_text())
    p = _params(cache)
    entry["drivers"]["display"]["layout"] = p.layout.model_dump()
    entry["drivers"]["display"]["textures"] = p.textures.model_dump()
    cfg = data / "rig.yaml"
    data.mkdir(parents=True)
    cfg.write_text(yaml.safe_dump(entry))
    shown = []

    def on_runner(runner) -> None:
        runner.devices.display.bind(runner.protocol)
        shown.append(runner.devices.display)

    res = run_session(
        load_protocol(DEMO),
        load_config(cfg),
        SessionOptions(seed=2, duration_s=1.0, data_dir=data),
        hooks=(OnStart(on_runner),),
    )
    return {"path": str(res.path), "complete": res.run.complete, "frames_shown": shown[0].frames_shown}


if __name__ == "__main__":
    what, window, cache_dir, dest = sys.argv[1:5]
    if what == "show":
        outcome = _child_show(window, Path(cache_dir), Path(dest))
    else:
        outcome = _child_session(Path(cache_dir), Path(dest))
    print(json.dumps(outcome))
