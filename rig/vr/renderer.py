"""The corridor renderer: draws a `ViewState` with moderngl into any framebuffer, on every screen.

It takes a moderngl.Context and knows nothing of windows: a Qt GL window passes its own framebuffer to
`draw()` (one window spanning all screens) or calls `draw_screen()` per window; tests, previews and the
benchmark use `render()`, which draws into an offscreen framebuffer and reads the pixels back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

import moderngl
import numpy as np

from rig.protocol import Corridor
from rig.vr.geometry import Surface, ViewState, segments, surfaces
from rig.vr.layout import Viewport, projection, view_matrix, viewports
from rig.vr.params import DisplayParams
from rig.vr.photodiode import Patch, patch_for, patch_rect
from rig.vr.textures import TextureStore

_SCENE_VS = """
#version 330
uniform mat4 u_mvp;
uniform vec3 u_origin;
uniform vec3 u_axis_s;
uniform vec3 u_axis_t;
uniform vec2 u_u;
in vec2 in_st;
out vec2 v_uv;
void main() {
    vec3 p = u_origin + in_st.x * u_axis_s + in_st.y * u_axis_t;
    v_uv = vec2(mix(u_u.x, u_u.y, in_st.x), in_st.y);
    gl_Position = u_mvp * vec4(p, 1.0);
}
"""

# Texture rows run top of wall first, so the wall's top (t = 1) samples v = 0.
_SCENE_FS = """
#version 330
uniform sampler2D u_tex;
uniform bool u_textured;
uniform float u_level;
uniform float u_luminance;
uniform float u_inv_gamma;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 c = u_textured ? texture(u_tex, vec2(v_uv.x, 1.0 - v_uv.y)).rgb : vec3(u_level);
    f_color = vec4(pow(c * u_luminance, vec3(u_inv_gamma)), 1.0);
}
"""

_PATCH_VS = """
#version 330
in vec2 in_st;
void main() { gl_Position = vec4(in_st * 2.0 - 1.0, 0.0, 1.0); }
"""

_PATCH_FS = """
#version 330
uniform int u_mode;
uniform int u_check;
out vec4 f_color;
void main() {
    float v = float(u_mode);
    if (u_mode == 2) {
        ivec2 q = ivec2(gl_FragCoord.xy) / u_check;
        v = float((q.x + q.y) % 2);
    }
    f_color = vec4(v, v, v, 1.0);
}
"""


class _GLObject(Protocol):
    """Any moderngl object the renderer owns (program, buffer, vertex array, texture, framebuffer...)."""

    def release(self) -> None: ...


_Obj = TypeVar("_Obj", bound=_GLObject)


class CorridorRenderer:
    """Draws one protocol's corridors for a display layout; close it (or use `with`) to free GL objects."""

    def __init__(
        self,
        ctx: moderngl.Context,
        corridors: Sequence[Corridor],
        params: DisplayParams | None = None,
        store: TextureStore | None = None,
    ) -> None:
        self.ctx = ctx
        self.params = params if params is not None else DisplayParams()
        self.corridors = {c.name: c for c in corridors}
        if len(self.corridors) != len(corridors):
            raise ValueError("corridor names must be unique")
        self.store = store or TextureStore(self.params.textures.cache_dir, self.params.textures.px_per_cm)
        self.viewports = viewports(self.params.layout)
        view = self.params.corridor
        self._near = view.near_cm
        # Geometry is cut at view_distance ahead and behind, so the far plane only needs to contain it.
        self._far = (
            1.01 * math.sqrt(view.view_distance_cm**2 + view.width_cm**2 + view.wall_height_cm**2) + 1.0
        )
        self._mvp = [
            (projection(s, self._near, self._far) @ view_matrix(s)).astype("f4")
            for s in self.params.layout.screens
        ]
        self._released = False
        self._fbo: moderngl.Framebuffer | None = None
        self._objects: list[_GLObject] = []
        self._scene = self._keep(ctx.program(vertex_shader=_SCENE_VS, fragment_shader=_SCENE_FS))
        self._patch = self._keep(ctx.program(vertex_shader=_PATCH_VS, fragment_shader=_PATCH_FS))
        quad = self._keep(ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype="f4").tobytes()))
        self._scene_vao = self._keep(ctx.vertex_array(self._scene, [(quad, "2f", "in_st")]))
        self._patch_vao = self._keep(ctx.vertex_array(self._patch, [(quad, "2f", "in_st")]))
        self._scene["u_luminance"] = self.params.luminance
        self._scene["u_inv_gamma"] = 1.0 / self.params.gamma
        self._scene["u_tex"] = 0
        self._u_mvp = _uniform(self._scene, "u_mvp")
        self._textures: dict[str, moderngl.Texture] = {}
        for c in corridors:
            if c.texture.source != "grey":
                self._textures[c.name] = self._upload(self.store.corridor(c, view.wall_height_cm))

    def _keep(self, obj: _Obj) -> _Obj:
        self._objects.append(obj)
        return obj

    def _upload(self, arr: np.ndarray) -> moderngl.Texture:
        h, w = arr.shape[:2]
        tex = self._keep(self.ctx.texture((w, h), 3, np.ascontiguousarray(arr).tobytes(), alignment=1))
        opts = self.params.textures
        if opts.mipmaps:
            tex.build_mipmaps()
            tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        else:
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.anisotropy = min(opts.anisotropy, self.ctx.max_anisotropy)
        tex.repeat_x = False
        tex.repeat_y = False
        return tex

    # -- drawing ---------------------------------------------------------------------------------
    def surfaces(self, state: ViewState) -> list[Surface]:
        view = self.params.corridor
        return surfaces(segments(self.corridors, state, view.view_distance_cm), view)

    def _background(self) -> float:
        level = self.params.corridor.background_level * self.params.luminance
        corrected: float = level ** (1.0 / self.params.gamma)
        return corrected

    def draw_screen(
        self, state: ViewState, index: int, fbo: moderngl.Framebuffer, viewport: Viewport
    ) -> None:
        """Draw screen `index` of the layout into `viewport` of `fbo` (with its photodiode patch if any)."""
        self._check_open()
        fbo.use()
        bg = self._background()
        fbo.clear(bg, bg, bg, 1.0, viewport=viewport.rect)
        self.ctx.viewport = viewport.rect
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE | moderngl.BLEND)
        self._u_mvp.write(self._mvp[index].T.tobytes())
        for s in self.surfaces(state):
            self._draw_surface(s)
        pd = self.params.photodiode
        if pd.enabled and pd.screen == index:
            self._draw_patch(patch_for(state.frame, state.trial_start), patch_rect(pd, viewport))

    def draw(self, state: ViewState, fbo: moderngl.Framebuffer) -> None:
        """Draw every screen side by side into `fbo` (of the layout's total size)."""
        for i, vp in enumerate(self.viewports):
            self.draw_screen(state, i, fbo, vp)

    def _draw_surface(self, s: Surface) -> None:
        prog = self._scene
        prog["u_origin"] = s.origin
        prog["u_axis_s"] = s.axis_s
        prog["u_axis_t"] = s.axis_t
        tex = self._textures.get(s.texture) if s.texture is not None else None
        prog["u_textured"] = tex is not None
        prog["u_level"] = s.level
        if tex is not None:
            prog["u_u"] = (s.u0, s.u1)
            tex.use(0)
        self._scene_vao.render(moderngl.TRIANGLE_STRIP)

    def _draw_patch(self, patch: Patch, rect: tuple[int, int, int, int]) -> None:
        self.ctx.viewport = rect
        self._patch["u_mode"] = int(patch)
        self._patch["u_check"] = self.params.photodiode.checker_px
        self._patch_vao.render(moderngl.TRIANGLE_STRIP)

    # -- offscreen ---------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the combined picture."""
        return self.params.layout.width_px, self.params.layout.height_px

    def offscreen(self) -> moderngl.Framebuffer:
        """The renderer's own offscreen framebuffer (created on first use)."""
        self._check_open()
        if self._fbo is None:
            rb = self._keep(self.ctx.renderbuffer(self.size, components=4))
            self._fbo = self._keep(self.ctx.framebuffer(color_attachments=[rb]))
        return self._fbo

    def draw_offscreen(self, state: ViewState) -> None:
        """Draw into the offscreen framebuffer and wait for the GL to finish (no readback)."""
        self.draw(state, self.offscreen())
        self.ctx.finish()

    def render(self, state: ViewState) -> np.ndarray:
        """The picture across all screens as an (H, W, 3) uint8 array, top row first."""
        fbo = self.offscreen()
        self.draw(state, fbo)
        w, h = self.size
        raw = fbo.read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)[::-1].copy()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._released:
            raise RuntimeError("renderer is closed")

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        for obj in reversed(self._objects):
            obj.release()
        self._objects.clear()
        self._textures.clear()
        self._fbo = None

    def __enter__(self) -> CorridorRenderer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _uniform(prog: moderngl.Program, name: str) -> moderngl.Uniform:
    member = prog[name]
    if not isinstance(member, moderngl.Uniform):
        raise TypeError(f"shader member {name!r} is not a uniform")
    return member


def standalone_context(backend: str = "egl") -> moderngl.Context:
    """An offscreen GL 3.3+ context (EGL by default: no display server needed)."""
    # Any: moderngl's stubs type each **settings value as a dict, which `backend` is not.
    settings: dict[str, Any] = {"backend": backend}
    try:
        return moderngl.create_standalone_context(require=330, **settings)
    except Exception as e:  # glcontext raises bare Exceptions; re-raise with what to install
        raise RuntimeError(
            f"cannot create a standalone {backend} OpenGL context ({e}); on Debian/Ubuntu install "
            "libegl1 libgl1-mesa-dri libegl-mesa0 (Mesa software GL works)"
        ) from e
