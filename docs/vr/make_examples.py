"""Regenerate the example textures and renders in docs/vr/ (small PNGs for people to look at).

python docs/vr/make_examples.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from rig.protocol import Corridor, Texture
from rig.vr.geometry import ViewState
from rig.vr.params import CorridorView, DisplayParams, PhotodiodeParams
from rig.vr.renderer import CorridorRenderer, standalone_context
from rig.vr.textures import TextureStore, write_textures

HERE = Path(__file__).resolve().parent
SCALE = 0.5  # renders are drawn at full size (3 x 1280x720) and halved for the docs


def main() -> None:
    write_textures(HERE / "textures", px_per_cm=2.0)
    corridors = [
        Corridor(name="leaf1", texture=Texture(source="leaf", exemplar=1)),
        Corridor(name="circle1", texture=Texture(source="circle", exemplar=1)),
        Corridor(name="rock1", texture=Texture(source="rock", exemplar=1)),
        Corridor(name="brick1", texture=Texture(source="brick", exemplar=1)),
        Corridor(name="grating45", texture=Texture(source="grating", angle_deg=45.0, period_cm=10.0)),
    ]
    shots = [
        ("render_leaf1_100cm.png", ViewState("leaf1", 100.0), {}),
        ("render_circle1_340cm_leaf1_ahead.png", ViewState("circle1", 340.0, ahead=("leaf1",)), {}),
        ("render_rock1_200cm_ceiling.png", ViewState("rock1", 200.0), {"ceiling": True}),
        ("render_brick1_150cm.png", ViewState("brick1", 150.0), {}),
        (
            "render_grating45_560cm_grey_part_next_ahead.png",
            ViewState("grating45", 560.0, ahead=("grating45",)),
            {},
        ),
        ("render_leaf1_photodiode_trial_start.png", ViewState("leaf1", 100, trial_start=True), {"pd": True}),
    ]
    ctx = standalone_context()
    with tempfile.TemporaryDirectory() as cache:
        store = TextureStore(cache, px_per_cm=10.0)
        for name, state, opts in shots:
            params = DisplayParams(
                corridor=CorridorView(ceiling=bool(opts.get("ceiling"))),
                photodiode=PhotodiodeParams(enabled=bool(opts.get("pd")), size_px=64, checker_px=8),
            )
            with CorridorRenderer(ctx, corridors, params, store) as r:
                img = r.render(state)
            small = Image.fromarray(img).resize(
                (int(img.shape[1] * SCALE), int(img.shape[0] * SCALE)), Image.LANCZOS
            )
            # 64 grey levels: visually identical, and the PNGs stay small
            q = (np.asarray(small.convert("L")) // 4 * 4).astype(np.uint8)
            Image.fromarray(q).save(HERE / name, optimize=True)
    ctx.release()


if __name__ == "__main__":
    main()
