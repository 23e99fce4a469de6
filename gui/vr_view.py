"""What the mouse sees, small: the rig.vr corridor renderer at low resolution, shown in a QLabel a few times
per second (live from telemetry, or at the replay viewer's playhead).

The GL context is Qt's own (a QOpenGLContext made current on a QOffscreenSurface, then wrapped by moderngl):
a process that has created an EGL context cannot open Qt GLX windows with Mesa afterwards, so the app
never makes a standalone EGL context.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from rig.protocol import Protocol
from rig.vr.geometry import ViewState
from rig.vr.params import DisplayLayout, DisplayParams, PhotodiodeParams, TextureParams

log = logging.getLogger(__name__)

SCREEN_W, SCREEN_H = 160, 90  # per screen; three screens side by side by default
PREVIEW_MS = 250  # 4 Hz: enough to follow the mouse, cheap in software GL


class PreviewError(RuntimeError):
    """No usable GL context, or the protocol cannot be drawn."""


def preview_params(screens: int = 3, width_px: int = SCREEN_W, height_px: int = SCREEN_H) -> DisplayParams:
    """The paper's three 90-degree screens, shrunk; no photodiode patch (a preview is for people)."""
    return DisplayParams(
        layout=DisplayLayout.span(screens, 90.0 * screens, width_px, height_px),
        textures=TextureParams(px_per_cm=10.0, mipmaps=True),
        photodiode=PhotodiodeParams(enabled=False, size_px=2),
    )


@dataclass(frozen=True)
class ViewPoint:
    corridor: int  # index into the protocol's corridors
    position_cm: float
    ahead: int = -1  # the next trial's corridor, drawn beyond the grey part (-1: grey ahead)


class PreviewRenderer:
    """Renders one protocol's corridors offscreen in a Qt-owned GL context. Needs a QGuiApplication."""

    def __init__(self, protocol: Protocol, params: DisplayParams | None = None) -> None:
        import moderngl

        from rig.vr.renderer import CorridorRenderer

        self.protocol = protocol
        fmt = QtGui.QSurfaceFormat()
        fmt.setVersion(3, 3)
        fmt.setProfile(QtGui.QSurfaceFormat.CoreProfile)
        self._qctx = QtGui.QOpenGLContext()
        self._qctx.setFormat(fmt)
        self._surface = QtGui.QOffscreenSurface()
        if not self._qctx.create():
            raise PreviewError("Qt could not create an OpenGL context (is a GL driver installed?)")
        self._surface.setFormat(self._qctx.format())
        self._surface.create()
        self._make_current()
        try:
            self._ctx = moderngl.create_context(require=330)
        except Exception as e:  # moderngl/glcontext raise bare Exceptions
            raise PreviewError(f"OpenGL 3.3 is not available in Qt's context: {e}") from e
        self._renderer = CorridorRenderer(self._ctx, protocol.corridors, params or preview_params())
        self._closed = False

    def _make_current(self) -> None:
        if not self._qctx.makeCurrent(self._surface):
            raise PreviewError("cannot make Qt's OpenGL context current on its offscreen surface")

    @property
    def size(self) -> tuple[int, int]:
        return self._renderer.size

    def render(self, view: ViewPoint) -> np.ndarray:
        """(H, W, 3) uint8, top row first, of corridor `view.corridor` at `view.position_cm` (clamped)."""
        corridors = self.protocol.corridors
        if not 0 <= view.corridor < len(corridors):
            raise PreviewError(f"corridor index {view.corridor} is not in protocol {self.protocol.name!r} "
                               f"({len(corridors)} corridors)")
        c = corridors[view.corridor]
        pos = min(max(float(view.position_cm), 0.0), float(c.length_cm))
        inter = self.protocol.inter_trial
        # As the rig's display does it: the next corridor shows beyond the grey part only in continuous mode.
        show_ahead = inter.mode == "continuous" and inter.show_next and 0 <= view.ahead < len(corridors)
        ahead = (corridors[view.ahead].name,) if show_ahead else ()
        self._make_current()
        return self._renderer.render(ViewState(c.name, pos, ahead=ahead))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._make_current()
        self._renderer.close()
        self._ctx.release()
        self._qctx.doneCurrent()
        self._surface.destroy()

    def __enter__(self) -> PreviewRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VRPreview(QtWidgets.QGroupBox):
    """Shows the last view point given to `show_view` (at most every PREVIEW_MS, and only when it moved)."""

    _textures_ready = QtCore.pyqtSignal(object, str)  # protocol, error ("" when fine)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("What the mouse sees", parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(0)
        self.image = QtWidgets.QLabel("no session")
        self.image.setObjectName("muted")
        self.image.setTextFormat(QtCore.Qt.PlainText)
        self.image.setAlignment(QtCore.Qt.AlignCenter)
        self.image.setFixedHeight(SCREEN_H)
        lay.addWidget(self.image)
        self.caption = QtWidgets.QLabel()
        self.caption.setObjectName("muted")
        self.caption.setTextFormat(QtCore.Qt.PlainText)
        self.caption.setAlignment(QtCore.Qt.AlignCenter)
        self.caption.hide()  # its text goes into the box's title (saves a line of height)
        lay.addWidget(self.caption)
        self.renderer: PreviewRenderer | None = None
        self.renders = 0  # pictures drawn (for tests and the benchmark)
        self.last_image: np.ndarray | None = None
        self._wanted: ViewPoint | None = None
        self._drawn: ViewPoint | None = None
        self._pending: Protocol | None = None
        self._textures_ready.connect(self._make_renderer)
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self._draw)
        self._timer.start(PREVIEW_MS)

    def set_protocol(self, protocol: Protocol | None) -> None:
        """Draw this protocol's corridors from now on (None: nothing to show). Wall textures not in the
        cache yet (seconds of work for a new protocol) are built in a worker thread first."""
        self.clear()
        if protocol is None:
            return
        self._pending = protocol
        self.image.setText("preparing the corridor textures…")
        params = preview_params()

        def build() -> None:
            from rig.vr.textures import TextureStore

            store = TextureStore(params.textures.cache_dir, params.textures.px_per_cm)
            try:
                for c in protocol.corridors:
                    if c.texture.source != "grey":
                        store.corridor(c, params.corridor.wall_height_cm)
            except (OSError, ValueError) as e:
                self._textures_ready.emit(protocol, str(e))
                return
            self._textures_ready.emit(protocol, "")

        threading.Thread(target=build, name="vr-preview-textures", daemon=True).start()

    def _make_renderer(self, protocol: Protocol, error: str) -> None:
        if protocol is not self._pending:
            return  # another protocol was chosen meanwhile
        self._pending = None
        try:
            if error:
                raise PreviewError(f"the corridor textures could not be built: {error}")
            self.renderer = PreviewRenderer(protocol)
            self.image.setText("")
        except (PreviewError, OSError, ValueError) as e:
            log.warning("VR preview unavailable: %s", e)
            self.image.setText(f"preview unavailable: {e}")
            return
        self._drawn = None
        self._draw()

    @property
    def ready(self) -> bool:
        return self.renderer is not None

    def clear(self) -> None:
        self._pending = None
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self._wanted = self._drawn = None
        self.last_image = None
        self.image.clear()
        self.image.setText("no session")
        self.caption.setText("")
        self.setTitle("What the mouse sees")

    def show_view(self, corridor: int, position_cm: float, ahead: int = -1) -> None:
        self._wanted = ViewPoint(int(corridor), round(float(position_cm), 1), int(ahead))

    def draw_now(self) -> None:
        """Draw the wanted view point at once (the replay viewer does so when seeking while paused)."""
        self._draw()

    def _draw(self) -> None:
        if self.renderer is None or self._wanted is None or self._wanted == self._drawn:
            return
        view = self._wanted
        n = len(self.renderer.protocol.corridors)
        if not (0 <= view.corridor < n and -1 <= view.ahead < n):
            self._drawn = view  # not a corridor of this protocol: nothing to draw
            return
        try:
            img = self.renderer.render(view)
        except PreviewError as e:
            self.caption.setText(str(e))
            self._drawn = view
            return
        self._drawn = view
        self.last_image = img
        self.renders += 1
        h, w = img.shape[:2]
        qimg = QtGui.QImage(img.tobytes(), w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()  # copy: img is freed
        self.image.setPixmap(QtGui.QPixmap.fromImage(qimg))
        name = self.renderer.protocol.corridors[view.corridor].name
        self.caption.setText(f"{name} · {view.position_cm:.0f} cm")
        self.setTitle(f"What the mouse sees: {self.caption.text()}")

    def pixmap_size(self) -> tuple[int, int]:
        pm = self.image.pixmap()
        return (0, 0) if pm is None or pm.isNull() else (pm.width(), pm.height())

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        self._timer.stop()
        self.clear()
        super().closeEvent(event)
