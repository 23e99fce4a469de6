"""Qt GL windows for the `gl_window` display: placement on the monitors, one shared GL context, swaps.

One QOpenGLContext serves every window (made current on each in turn); moderngl attaches to it, so the
renderer draws into the window's default framebuffer. With `window: single` one frameless window covers
all screens and the renderer lays the screens side by side in it; with `per_screen` each screen gets a
window of its own, drawn and swapped one after the other (so they change up to one screen's drawing time
apart: use `single` where the screens must change together); only the last window swaps on the vertical
blank, so a frame waits for one blank, not one per window.

Imports PyQt5 and moderngl; `rig.vr.display_driver` imports this module only when a window opens.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import moderngl
import numpy as np
from PyQt5.QtCore import QRect, Qt
from PyQt5.QtGui import QGuiApplication, QOpenGLContext, QSurface, QSurfaceFormat, QWindow

from rig.vr.geometry import ViewState
from rig.vr.window_plan import Target, plan_windows

if TYPE_CHECKING:  # display_driver imports this module when a window opens; only the types go back
    from rig.vr.display_driver import WindowDisplay
    from rig.vr.renderer import CorridorRenderer

EXPOSE_TIMEOUT_S = 5.0
NO_GL_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb")


class GLWindows:
    """The display's windows and GL context. open() -> moderngl context; present() draws and swaps."""

    def __init__(self, params: WindowDisplay.Params) -> None:
        self.params = params
        self.capture_next = False
        self.captured: np.ndarray | None = None
        self._app: QGuiApplication | None = None  # only when this object created it
        self._windows: list[QWindow] = []
        self._targets: list[Target] = []
        self._qctx: QOpenGLContext | None = None
        self._ctx: moderngl.Context | None = None
        self._fbo: moderngl.Framebuffer | None = None

    # -- opening -------------------------------------------------------------------------------------
    def open(self) -> moderngl.Context:
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> moderngl.Context:
        app = self._application()
        monitors = [_rect(s.geometry()) for s in app.screens()]
        self._targets = plan_windows(self.params, monitors, self.params.position_px)
        last = len(self._targets) - 1
        for k, target in enumerate(self._targets):
            # Only the last window waits for the vertical blank (see the module docstring).
            self._windows.append(self._window(app, target, vsync=self.params.vsync and k == last))
        self._wait_exposed(app)
        qctx = QOpenGLContext()
        qctx.setFormat(self._windows[0].requestedFormat())
        if not qctx.create():
            raise RuntimeError("Qt could not create an OpenGL context for the display window")
        self._qctx = qctx
        if not qctx.makeCurrent(self._windows[0]):
            raise RuntimeError("Qt could not make the display window's OpenGL context current")
        fmt = qctx.format()
        if (fmt.majorVersion(), fmt.minorVersion()) < (3, 3):
            raise RuntimeError(
                f"the display window got OpenGL {fmt.majorVersion()}.{fmt.minorVersion()}; need 3.3"
            )
        self._ctx = _attach_moderngl()
        self._fbo = self._ctx.detect_framebuffer()  # the default framebuffer of whichever window is current
        for w, t in zip(self._windows, self._targets, strict=True):
            got = (round(w.width() * w.devicePixelRatio()), round(w.height() * w.devicePixelRatio()))
            if got != t.rect[2:]:
                raise RuntimeError(
                    f"display window {self._windows.index(w)} is {got[0]}x{got[1]} px, the layout needs "
                    f"{t.rect[2]}x{t.rect[3]}; check monitor sizes and display scaling"
                )
        return self._ctx

    def _application(self) -> QGuiApplication:
        existing = QGuiApplication.instance()
        if isinstance(existing, QGuiApplication):
            app = existing
        elif existing is not None:  # a QCoreApplication: it has no screens and cannot show windows
            raise RuntimeError(
                "gl_window display: this process runs a Qt QCoreApplication, which cannot show windows; "
                "create a QGuiApplication (or QApplication) instead"
            )
        else:
            # Qt aborts the process when no platform plugin can start, so refuse clearly beforehand.
            platform = os.environ.get("QT_QPA_PLATFORM", "")
            if (
                sys.platform.startswith("linux")
                and not platform
                and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
            ):
                raise RuntimeError(
                    "gl_window display: no X or Wayland display (DISPLAY is not set); run under a desktop "
                    "session or Xvfb, or use the gl_offscreen display"
                )
            self._app = QGuiApplication([sys.argv[0] if sys.argv and sys.argv[0] else "rig"])
            app = self._app
        name = QGuiApplication.platformName()
        if name in NO_GL_PLATFORMS:
            raise RuntimeError(
                f"gl_window display: Qt platform {name!r} has no GL windows; use xcb (X11 or Xvfb)"
            )
        return app

    def _window(self, app: QGuiApplication, target: Target, vsync: bool) -> QWindow:
        fmt = QSurfaceFormat()
        fmt.setRenderableType(QSurfaceFormat.OpenGL)
        fmt.setVersion(3, 3)
        fmt.setProfile(QSurfaceFormat.CoreProfile)
        fmt.setSwapBehavior(QSurfaceFormat.DoubleBuffer)
        fmt.setDepthBufferSize(0)  # the corridor is convex: no depth test (rig.vr.geometry)
        fmt.setSwapInterval(1 if vsync else 0)
        w = QWindow()
        w.setSurfaceType(QSurface.OpenGLSurface)
        w.setFormat(fmt)
        w.setTitle(self.params.title)
        x, y, width, height = target.rect
        if self.params.fullscreen:
            w.setFlags(Qt.Window | Qt.FramelessWindowHint | Qt.WindowStaysOnTopHint)
            w.setCursor(Qt.BlankCursor)
        w.setGeometry(QRect(x, y, width, height))
        if self.params.fullscreen and target.monitor is not None:
            w.setScreen(app.screens()[target.monitor])
            w.showFullScreen()
        else:
            w.show()
        return w

    def _wait_exposed(self, app: QGuiApplication) -> None:
        deadline = time.monotonic() + EXPOSE_TIMEOUT_S
        while not all(w.isExposed() for w in self._windows):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the display window(s) were not shown within {EXPOSE_TIMEOUT_S:g} s")
            app.processEvents()
            time.sleep(0.005)

    # -- frames --------------------------------------------------------------------------------------
    def make_current(self, k: int) -> None:
        if self._qctx is None or not self._qctx.makeCurrent(self._windows[k]):
            raise RuntimeError(f"cannot make the GL context current on display window {k}")

    def present(self, renderer: CorridorRenderer, state: ViewState) -> None:
        """Draw every window, swap them all, and (finish_after_swap) wait until the GL has done so."""
        QGuiApplication.processEvents()  # Qt queues window-system events; drain them (cheap when idle)
        capture = self.capture_next
        fbo, qctx = self._fbo, self._qctx
        assert fbo is not None and qctx is not None and self._ctx is not None
        if capture:
            self.captured = np.zeros((renderer.size[1], renderer.size[0], 3), np.uint8)
        # Each window is drawn and swapped while the context is current on it: with Mesa's GLX a drawable's
        # back buffer does not survive making the context current on another window before its swap.
        for k, t in enumerate(self._targets):
            self.make_current(k)
            for i, vp in zip(t.screens, t.viewports, strict=True):
                renderer.draw_screen(state, i, fbo, vp)
            if capture:
                self._capture(fbo, t, renderer)
            qctx.swapBuffers(self._windows[k])
        if self.params.finish_after_swap:
            self._ctx.finish()
        self.capture_next = False

    def _capture(self, fbo: moderngl.Framebuffer, target: Target, renderer: CorridorRenderer) -> None:
        # Reads the back buffer just drawn, before the swap leaves its contents undefined.
        w, h = target.rect[2], target.rect[3]
        raw = fbo.read(viewport=(0, 0, w, h), components=3, alignment=1)
        img = np.frombuffer(raw, np.uint8).reshape(h, w, 3)[::-1]
        assert self.captured is not None
        if len(target.screens) > 1:
            self.captured[:] = img
            return
        dest = renderer.viewports[target.screens[0]]  # where this screen sits in the combined picture
        top = renderer.size[1] - (dest.y + dest.height)
        self.captured[top : top + h, dest.x : dest.x + w] = img

    # -- closing -------------------------------------------------------------------------------------
    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        self._fbo = None
        if ctx is not None:
            ctx.release()
        qctx, self._qctx = self._qctx, None
        if qctx is not None:
            qctx.doneCurrent()
        for w in self._windows:
            w.destroy()
        self._windows.clear()
        if qctx is not None:
            qctx.deleteLater()
        if self._app is not None:
            QGuiApplication.processEvents()  # let Qt delete what deleteLater() handed it


def _rect(r: QRect) -> tuple[int, int, int, int]:
    return (r.x(), r.y(), r.width(), r.height())


def _attach_moderngl() -> moderngl.Context:
    """A moderngl context on Qt's current GL context (GLX under X11, else EGL)."""
    errors = []
    for backend in (None, "egl"):
        try:
            # Any: moderngl's stubs type each **settings value as a dict, which `backend` is not.
            kw: dict[str, Any] = {} if backend is None else {"backend": backend}
            return moderngl.create_context(require=330, **kw)
        except Exception as e:  # glcontext raises bare Exceptions; try the next backend, report all
            errors.append(f"{backend or 'default'}: {e}")
    raise RuntimeError("moderngl could not attach to the window's GL context (" + "; ".join(errors) + ")")
