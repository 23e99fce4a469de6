"""The GL display drivers' timing: offscreen render time, and the runner's frame-to-frame timing in a
real-time session drawing into a Qt GL window on a private Xvfb server.

    python benchmarks/bench_display.py [--seconds 600] [--screen 1280x720] [--window single|per_screen]
                                       [--frames 120] [--skip-offscreen] [--skip-window]

- offscreen: `gl_offscreen` show() (draw every screen + glFinish) per frame, for one 1920x1080 screen
  and for three screens of --screen size.
- window: `rig run demo` on the simulated rig (config/sim-gl.yaml, three screens of --screen size, 270
  degrees) on the real clock for --seconds, drawing into a gl_window under Xvfb (Mesa software GL, no
  vsync). The interval between successive swap returns is what the mouse's frame rate would be; a frame
  is dropped when an interval spans more than 1.5 display periods (each extra period counts one).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rig.engine.records import Step
from rig.runner.hooks import LoopHook

if TYPE_CHECKING:
    from rig.runner.loop import Runner, RunResult
    from rig.vr.display_driver import WindowDisplay
    from rig.vr.params import DisplayLayout

REPO = Path(__file__).resolve().parent.parent


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def three_screens(w: int, h: int) -> DisplayLayout:
    from rig.vr.params import DisplayLayout, ScreenParams

    return DisplayLayout(
        screens=tuple(
            ScreenParams(name=n, yaw_deg=y, hfov_deg=90.0, width_px=w, height_px=h)
            for n, y in (("left", -90.0), ("centre", 0.0), ("right", 90.0))
        )
    )


def bench_offscreen(frames: int, screen: tuple[int, int]) -> None:
    from drivers.base import View
    from drivers.registry import DriverContext
    from rig.loading import load_protocol
    from rig.runner.clock import RealClock
    from rig.vr.display_driver import OffscreenDisplay
    from rig.vr.params import DisplayLayout, ScreenParams

    protocol = load_protocol(REPO / "protocols" / "demo.yaml")
    layouts = {
        "1 x 1920x1080": DisplayLayout(screens=(ScreenParams(hfov_deg=120, width_px=1920, height_px=1080),)),
        f"3 x {screen[0]}x{screen[1]}": three_screens(*screen),
    }
    for label, layout in layouts.items():
        d = OffscreenDisplay(OffscreenDisplay.Params(layout=layout), DriverContext(clock=RealClock()))
        d.bind(protocol)
        with d:
            d.show(View(0.0, 0, "leaf1", 0.0, False, True))  # warm up: shaders, texture upload
            times = []
            for i in range(frames):
                t = time.perf_counter()
                d.show(View(0.0, 0, "leaf1", 50.0 + (i % 500), False, True))
                times.append(time.perf_counter() - t)
            assert d._ctx is not None  # noqa: SLF001 - open
            renderer = d._ctx.info["GL_RENDERER"]  # noqa: SLF001 - report which GL did the work
        ms = np.array(times) * 1e3
        print(
            f"offscreen {label} ({renderer}): show() p50 {np.median(ms):.1f} ms "
            f"({1e3 / np.median(ms):.0f} fps), p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms"
        )


class SwapTimes(LoopHook):
    """Loop hook: the session time each iteration's swap returned (the display's last_swap_t)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self._display: WindowDisplay | None = None

    def start(self, runner: Runner) -> None:
        from rig.vr.display_driver import WindowDisplay

        display = runner.devices.display
        if not isinstance(display, WindowDisplay):
            raise TypeError(f"this benchmark needs a gl_window display, got {type(display).__name__}")
        display.bind(runner.protocol)  # the display needs the protocol's corridors
        self._display = display

    def iteration(self, i: int, t: float, step: Step) -> None:
        assert self._display is not None  # start() ran
        self.t.append(self._display.last_swap_t)

    def end(self, runner: Runner, result: RunResult | None) -> None:
        pass


def bench_window(seconds: float, screen: tuple[int, int], window: str) -> None:
    """Runs the session in a child process on a private Xvfb (a process that has made an EGL context,
    as the offscreen part does, cannot then make a Qt GLX context current with Mesa)."""
    from rig.vr.xvfb import Xvfb

    layout = three_screens(*screen)
    server = Xvfb(layout.width_px, layout.height_px)  # per_screen windows sit side by side too
    with server:
        cmd = [
            sys.executable,
            __file__,
            "--window-child",
            "--seconds",
            str(seconds),
            "--screen",
            f"{screen[0]}x{screen[1]}",
            "--window",
            window,
        ]
        r = subprocess.run(cmd, env=server.env())
    if r.returncode != 0:
        raise SystemExit(f"windowed run failed (exit {r.returncode})")


def run_window_session(seconds: float, layout: DisplayLayout, window: str) -> None:
    import yaml

    import rig.vr.display_driver  # noqa: F401 - registers the gl display types
    from rig.datalog.reader import Session
    from rig.loading import load_config, load_protocol
    from rig.runner.session import SessionOptions, run_session

    entry = yaml.safe_load((REPO / "config" / "sim-gl.yaml").read_text())
    entry["drivers"]["display"]["layout"] = layout.model_dump()
    entry["drivers"]["display"]["window"] = window
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "rig.yaml"
        cfg_path.write_text(yaml.safe_dump(entry))
        config = load_config(cfg_path)
        period = 1.0 / config.frame_rate_hz
        hook = SwapTimes()
        t0 = time.perf_counter()
        res = run_session(
            load_protocol(REPO / "protocols" / "demo.yaml"),
            config,
            SessionOptions(seed=1, max_trials=1_000_000, duration_s=seconds, data_dir=Path(tmp) / "data"),
            hooks=(hook,),
        )
        wall = time.perf_counter() - t0
        timing = Session.open(res.path).timing
    swaps = np.array(hook.t[1:])  # the first frame includes building the renderer's textures
    dt = np.diff(swaps) * 1e3
    late = dt > 1.5 * period * 1e3
    dropped = int(np.sum(np.round(dt[late] / (period * 1e3)) - 1))
    work = np.asarray(timing["work_s"]) * 1e3
    print(
        f"window ({window}, 3 x {layout.screens[0].width_px}x{layout.screens[0].height_px}, Xvfb, "
        f"{config.frame_rate_hz:g} Hz): {len(swaps)} frames in {wall:.0f} s"
    )
    print(
        f"  frame interval p50 {np.median(dt):.2f} ms, p99 {np.percentile(dt, 99):.2f} ms, "
        f"max {dt.max():.2f} ms; intervals > 1.5 periods: {int(late.sum())}; dropped frames: {dropped}"
    )
    print(
        f"  runner missed_frames {res.run.missed_frames}; "
        f"iteration work p50 {statistics.median(work):.2f} ms, p99 {np.percentile(work, 99):.2f} ms, "
        f"max {work.max():.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0, help="windowed session length (default 600)")
    ap.add_argument(
        "--screen", type=parse_size, default=(1280, 720), help="each screen's size (default 1280x720)"
    )
    ap.add_argument("--window", choices=("single", "per_screen"), default="single")
    ap.add_argument("--frames", type=int, default=120, help="offscreen frames per layout")
    ap.add_argument("--skip-offscreen", action="store_true")
    ap.add_argument("--skip-window", action="store_true")
    ap.add_argument("--window-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.window_child:
        run_window_session(args.seconds, three_screens(*args.screen), args.window)
        return
    if not args.skip_offscreen:
        bench_offscreen(args.frames, args.screen)
    if not args.skip_window:
        bench_window(args.seconds, args.screen, args.window)


if __name__ == "__main__":
    main()
