"""Display drivers that draw the corridor with the moderngl renderer (config `display: {type: ...}`).

- `gl_offscreen`: a standalone EGL context; every frame is drawn into an offscreen framebuffer and
  finished (glFinish). For tests, benchmarks and rigs without a screen attached.
- `gl_window`: Qt GL windows, fullscreen on the configured monitors (one window spanning them all, or
  one per screen); `show()` draws, swaps the buffers and returns the session time after the swap.

Both turn the runner's `drivers.base.View` into a `rig.vr.geometry.ViewState`: they count frames (the
photodiode patch's parity), mark a trial's first frame (the patch's checkerboard) and, in continuous
protocols, draw the previous trial's corridor behind the mouse and the next trial's corridor
(`View.ahead_corridor`, which the runner fills when `inter_trial.show_next`) beyond the current one's
grey part, as far as the view distance reaches. In pause protocols the world ahead stays grey.

The renderer needs the protocol's corridors, which a driver does not get from its config: the driver
takes them from `DriverContext.protocol` when the context has one, else from `bind(protocol)` (before
or after open). On a simulated rig the virtual mouse still sees every view (as with the `sim` display).

This module imports neither moderngl nor PyQt5 at import time (the driver registry imports it eagerly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from drivers.base import CheckResult, ClockMap, View
from drivers.registry import DriverContext, register
from rig.protocol import Protocol
from rig.vr.geometry import ViewState
from rig.vr.params import DisplayParams

if TYPE_CHECKING:  # imported when a display opens, not with the registry
    import moderngl
    import numpy as np

    from rig.vr.qt_window import GLWindows
    from rig.vr.renderer import CorridorRenderer

GL_DISPLAY_TYPES = ("gl_offscreen", "gl_window")


def display_params(params: DisplayParams) -> DisplayParams:
    """The plain DisplayParams inside a gl driver's Params (drops the driver's own fields)."""
    fields = DisplayParams.model_fields
    return DisplayParams.model_validate({k: v for k, v in params.model_dump().items() if k in fields})


class FrameTracker:
    """Turns the runner's views into view states: frame counter, trial starts, the corridors behind and
    ahead."""

    def __init__(self, continuous: bool = True) -> None:
        self.continuous = continuous
        self.frame = 0  # frames shown so far; the next view gets this number
        self._trial: int | None = None
        self._corridor: str | None = None  # the current trial's corridor
        self._behind: str | None = None

    def next(self, view: View) -> ViewState:
        trial_start = view.trial != self._trial
        if trial_start:
            # In a continuous protocol the corridor just left stays visible behind the mouse.
            self._behind = self._corridor if self.continuous else None
            self._trial = view.trial
            self._corridor = view.corridor
        state = ViewState(
            corridor=view.corridor,
            position_cm=view.position_cm,
            frame=self.frame,
            trial_start=trial_start,
            ahead=(view.ahead_corridor,) if self.continuous and view.ahead_corridor is not None else (),
            behind=self._behind,
        )
        self.frame += 1
        return state


class _GLDisplay:
    """Lifecycle shared by the GL displays: open the GL, build the renderer once corridors are known,
    show views, close everything in reverse order."""

    kind: ClassVar[str] = ""

    def __init__(self, params: DisplayParams, context: DriverContext) -> None:
        self.params = params
        self.clock = ClockMap()  # show() returns session time already
        self._session_clock = context.clock
        self._world = context.world
        self._protocol: Protocol | None = None
        self._tracker = FrameTracker()
        self._ctx: moderngl.Context | None = None
        self._renderer: CorridorRenderer | None = None
        self._open = False
        self.last_swap_t = float("nan")  # session time show() returned last (for hooks and benchmarks)
        if context.protocol is not None:  # opaque in DriverContext: drivers.registry never names rig types
            self.bind(self._as_protocol(context.protocol, "DriverContext.protocol must be"))

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def frames_shown(self) -> int:
        return self._tracker.frame

    def _as_protocol(self, protocol: object, what: str) -> Protocol:
        if not isinstance(protocol, Protocol):
            raise TypeError(f"{self.kind} display: {what} a rig.protocol.Protocol, got {type(protocol)}")
        return protocol

    def bind(self, protocol: Protocol) -> None:
        """Tell the display which protocol's corridors it draws (builds the renderer if already open)."""
        protocol = self._as_protocol(protocol, "bind() needs")  # callers outside mypy's reach pass anything
        if (
            self._renderer is not None
            and self._protocol is not None
            and protocol.corridors != self._protocol.corridors
        ):
            raise RuntimeError(
                f"{self.kind} display already draws the corridors of protocol {self._protocol.name!r}; "
                f"{protocol.name!r} has others"
            )
        self._protocol = protocol
        self._tracker.continuous = protocol.inter_trial.mode == "continuous"  # keeps the frame count
        if self._open and self._renderer is None:
            self._build_renderer()

    def open(self) -> None:
        if self._open:
            return
        self._open_gl()
        self._open = True
        try:
            if self._protocol is not None:
                self._build_renderer()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            if self._renderer is not None:
                self._make_current()
                self._renderer.close()
        finally:
            self._renderer = None
            self._close_gl()

    def __enter__(self) -> _GLDisplay:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build_renderer(self) -> None:
        from rig.vr.renderer import CorridorRenderer

        assert self._protocol is not None and self._ctx is not None
        self._make_current()
        self._renderer = CorridorRenderer(self._ctx, self._protocol.corridors, display_params(self.params))

    # -- frames ------------------------------------------------------------------------------------
    def show(self, view: View) -> float:
        """Draw the view; returns the session time at which drawing (and the swap) finished."""
        if not self._open:
            raise RuntimeError(f"{self.kind} display is not open; call open() first")
        if self._renderer is None:
            raise RuntimeError(
                f"{self.kind} display does not know the protocol's corridors: call bind(protocol) before the "
                "first frame (or give DriverContext a protocol)"
            )
        state = self._tracker.next(view)
        self._present(self._renderer, state)
        t = self._session_clock.now()
        self.last_swap_t = t
        if self._world is not None:
            self._world.see(view)  # the virtual mouse on a simulated rig sees what was drawn
        return t

    def self_test(self) -> list[CheckResult]:
        name = f"{self.kind} display"
        if self._open and self._ctx is not None:
            return [CheckResult(name, True, _gl_description(self._ctx))]
        try:
            self.open()
        except Exception as e:  # a check reports what failed instead of raising
            return [CheckResult(name, False, str(e))]
        try:
            assert self._ctx is not None  # open() made it
            return [CheckResult(name, True, _gl_description(self._ctx))]
        finally:
            self.close()

    # -- for subclasses ---------------------------------------------------------------------------
    def _open_gl(self) -> None:
        raise NotImplementedError

    def _close_gl(self) -> None:
        raise NotImplementedError

    def _make_current(self) -> None:
        pass

    def _present(self, renderer: CorridorRenderer, state: ViewState) -> None:
        raise NotImplementedError


def _gl_description(ctx: moderngl.Context) -> str:
    info = ctx.info
    return f"{info['GL_RENDERER']} / {info['GL_VERSION']}"


@register("display", "gl_offscreen")
class OffscreenDisplay(_GLDisplay):
    """Draws every frame into an offscreen framebuffer of a standalone EGL context and waits for the GL
    to finish; `snapshot()` reads the last frame back."""

    kind = "gl_offscreen"

    class Params(DisplayParams):
        backend: Literal["egl"] = Field("egl", description="standalone context backend")

    params: Params

    def _open_gl(self) -> None:
        from rig.vr.renderer import standalone_context

        self._ctx = standalone_context(self.params.backend)

    def _close_gl(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.release()

    def _present(self, renderer: CorridorRenderer, state: ViewState) -> None:
        renderer.draw_offscreen(state)

    def snapshot(self) -> np.ndarray:
        """The last frame drawn, (H, W, 3) uint8, top row first."""
        import numpy as np

        if self._renderer is None or self.frames_shown == 0:
            raise RuntimeError("gl_offscreen display has not drawn a frame yet")
        w, h = self._renderer.size
        raw = self._renderer.offscreen().read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)[::-1].copy()


@register("display", "gl_window")
class WindowDisplay(_GLDisplay):
    """Qt GL windows on the configured monitors; see rig.vr.qt_window for how they are placed."""

    kind = "gl_window"

    class Params(DisplayParams):
        vsync: bool = Field(True, description="swap on the monitor's vertical blank")
        finish_after_swap: bool = Field(
            True, description="glFinish after the swap, so show() returns once the swap has really happened"
        )
        fullscreen: bool = Field(
            True, description="frameless windows covering the monitors; false: ordinary windows (development)"
        )
        position_px: tuple[int, int] = Field(
            (0, 0), description="top-left corner of the first window when screens name no monitor"
        )
        title: str = "corridor-rig"

    params: Params

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self._windows: GLWindows | None = None

    def _open_gl(self) -> None:
        from rig.vr.qt_window import GLWindows

        windows = GLWindows(self.params)
        self._windows = windows
        try:
            self._ctx = windows.open()
        except BaseException:
            self._windows = None
            raise

    def _close_gl(self) -> None:
        windows, self._windows = self._windows, None
        self._ctx = None
        if windows is not None:
            windows.close()

    def _gl_windows(self) -> GLWindows:
        if self._windows is None:
            raise RuntimeError("gl_window display is not open; call open() first")
        return self._windows

    def _make_current(self) -> None:
        self._gl_windows().make_current(0)

    def _present(self, renderer: CorridorRenderer, state: ViewState) -> None:
        self._gl_windows().present(renderer, state)

    def request_capture(self) -> None:
        """Read the next frame's pixels back from the window framebuffer, before the swap (for tests)."""
        self._gl_windows().capture_next = True

    @property
    def captured(self) -> np.ndarray | None:
        """The captured frame (H, W, 3) uint8, top row first, or None; per_screen: side by side."""
        return None if self._windows is None else self._windows.captured
