"""One frame of what the mouse sees, written to a PNG (the `rig render` command)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from rig.protocol import Protocol
from rig.vr.geometry import ViewState
from rig.vr.params import DisplayLayout, DisplayParams
from rig.vr.renderer import CorridorRenderer, standalone_context
from rig.vr.textures import TextureStore


def render_preview(
    protocol: Protocol,
    corridor_name: str,
    position_cm: float,
    layout: DisplayLayout | None,
    out_png: str | Path,
    *,
    params: DisplayParams | None = None,
    ahead: Sequence[str] = (),
    store: TextureStore | None = None,
) -> Path:
    """Render `corridor_name` at `position_cm` across all screens of `layout` (default: params' layout,
    else the paper's three screens) to `out_png`; `ahead` names the corridors that follow (else grey).
    The photodiode patch is left out: a preview is for people."""
    names = [c.name for c in protocol.corridors]
    if corridor_name not in names:
        raise ValueError(f"protocol {protocol.name!r} has no corridor {corridor_name!r}; it has {names}")
    for n in ahead:
        if n not in names:
            raise ValueError(f"ahead names corridor {n!r}, which protocol {protocol.name!r} does not define")
    corridor = protocol.corridor(corridor_name)
    if not 0 <= position_cm <= corridor.length_cm:
        raise ValueError(
            f"position {position_cm} cm is outside corridor {corridor_name!r} (0-{corridor.length_cm} cm)"
        )
    base = params if params is not None else DisplayParams()
    update: dict[str, Any] = {"photodiode": base.photodiode.model_copy(update={"enabled": False, "screen": 0})}
    if layout is not None:
        update["layout"] = layout
    params = DisplayParams.model_validate(
        {**base.model_dump(), **{k: v.model_dump() for k, v in update.items()}}
    )
    out = Path(out_png)
    ctx = standalone_context()
    try:
        with CorridorRenderer(ctx, protocol.corridors, params, store) as r:
            img = r.render(ViewState(corridor_name, position_cm, ahead=tuple(ahead)))
    finally:
        ctx.release()
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out, optimize=True)
    return out
