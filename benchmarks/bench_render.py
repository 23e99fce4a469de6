"""Offscreen render time per frame: one 1920x1080 screen and three 1280x720 screens.

    python benchmarks/bench_render.py [--frames N] [--anisotropy A] [--no-mipmaps]

Each figure is wall-clock time per frame over N frames of a corridor moving forward 1 cm per frame:
- draw+finish: draw all screens, then glFinish (the GL has really finished; no pixels copied back),
- draw+readback: draw, then read the pixels back into a numpy array (what `render()` returns).
Texture building is reported separately (first build and from the disk cache).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from rig.protocol import Corridor, Texture
from rig.vr.geometry import ViewState
from rig.vr.params import DisplayLayout, DisplayParams, ScreenParams, TextureParams
from rig.vr.renderer import CorridorRenderer, standalone_context
from rig.vr.textures import TextureStore, paper_textures

LAYOUTS = {
    "1 x 1920x1080": DisplayLayout(
        screens=(ScreenParams(yaw_deg=0, hfov_deg=120, width_px=1920, height_px=1080),)
    ),
    "3 x 1280x720": DisplayLayout(),
}


def per_frame(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    times: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, max(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--anisotropy", type=float, default=1.0)
    ap.add_argument("--no-mipmaps", action="store_true")
    args = ap.parse_args()

    corridors = [
        Corridor(name="leaf1", texture=Texture(source="leaf", exemplar=1)),
        Corridor(name="circle1", texture=Texture(source="circle", exemplar=1)),
    ]
    ctx = standalone_context()
    print(f"GL: {ctx.info['GL_RENDERER']} / {ctx.info['GL_VERSION']}")
    with tempfile.TemporaryDirectory() as cache:
        store = TextureStore(cache, px_per_cm=10.0)
        t = time.perf_counter()
        for tex in paper_textures().values():
            store.get(tex, 400.0, 20.0)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for tex in paper_textures().values():
            store.get(tex, 400.0, 20.0)
        warm = time.perf_counter() - t
        print(
            f"textures: {len(paper_textures())} corridor textures at 10 px/cm: first build {cold:.2f} s, "
            f"from cache {warm * 1e3:.0f} ms"
        )

        for label, layout in LAYOUTS.items():
            params = DisplayParams(
                layout=layout, textures=TextureParams(anisotropy=args.anisotropy, mipmaps=not args.no_mipmaps)
            )
            t = time.perf_counter()
            with CorridorRenderer(ctx, corridors, params, store) as r:
                setup = time.perf_counter() - t

                def state(i: int) -> ViewState:
                    return ViewState("leaf1", 300.0 + (i % 250), frame=i, ahead=("circle1",))

                def finish(i: int, r: CorridorRenderer = r) -> None:
                    r.draw_offscreen(state(i))

                def readback(i: int, r: CorridorRenderer = r) -> None:
                    r.render(state(i))

                r.draw_offscreen(state(0))  # warm up: shader compile, first upload
                fin_med, fin_max = per_frame(finish, args.frames)
                rb_med, rb_max = per_frame(readback, args.frames)
            print(f"{label}: renderer setup {setup * 1e3:.0f} ms")
            print(
                f"  draw+finish   median {fin_med:6.1f} ms ({1e3 / fin_med:5.1f} fps), max {fin_max:6.1f} ms"
            )
            print(f"  draw+readback median {rb_med:6.1f} ms ({1e3 / rb_med:5.1f} fps), max {rb_max:6.1f} ms")
    ctx.release()


if __name__ == "__main__":
    main()
