"""Replay viewer export buttons: NWB, MouseLand and the summary PNG, each written in a worker thread (an
NWB export of a long session takes seconds) with the result or the error shown when it is done."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path

from PyQt5 import QtCore, QtWidgets

from gui import style

KINDS = {"nwb": ("NWB", ".nwb"), "mouseland": ("MouseLand", ".npy"), "summary": ("Summary PNG", ".png")}


def default_output(session: Path, kind: str) -> Path:
    """Beside the session folder (never inside it: the folder is the record): ANIMAL_DATE_NNN.ext."""
    session = Path(session)
    stem = f"{session.parent.parent.name}_{session.parent.name}_{session.name}"
    return session.parent / f"{stem}{KINDS[kind][1]}"


def exporter(kind: str) -> Callable[[Path, Path], Path]:
    """The function writing one kind of export: (session folder, output file) -> written file."""
    if kind == "nwb":
        from rig.export.nwb import export_nwb

        return lambda s, out: export_nwb(s, out)
    if kind == "mouseland":
        from rig.export.mouseland import export_session

        def mouseland(s: Path, out: Path) -> Path:
            export_session(s, out)
            return out

        return mouseland
    if kind == "summary":
        from rig.figures import render_session

        return lambda s, out: render_session(s, out)
    raise ValueError(f"unknown export kind {kind!r}; known: {', '.join(KINDS)}")


class ExportBar(QtWidgets.QWidget):
    done = QtCore.pyqtSignal(str, bool, str)  # kind, ok, written path or error

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        caption = QtWidgets.QLabel("Export:")
        caption.setObjectName("muted")
        lay.addWidget(caption)
        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        for kind, (label, _) in KINDS.items():
            b = QtWidgets.QPushButton(label)
            b.clicked.connect(lambda _=False, k=kind: self._ask(k))
            self.buttons[kind] = b
            lay.addWidget(b)
        self.message = QtWidgets.QLabel()
        self.message.setObjectName("muted")
        self.message.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        lay.addWidget(self.message, 1)
        self.session: Path | None = None
        self.busy: set[str] = set()
        self.done.connect(self._finished)
        self.set_session(None)

    def set_session(self, session: Path | None) -> None:
        self.session = Path(session) if session is not None else None
        for kind, b in self.buttons.items():
            b.setEnabled(self.session is not None and kind not in self.busy)

    def _ask(self, kind: str) -> None:
        if self.session is None:
            return
        label, ext = KINDS[kind]
        suggested = str(default_output(self.session, kind))
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export {label}", suggested, f"{label} (*{ext})")
        if path:
            self.export(kind, Path(path))

    def export(self, kind: str, out: Path) -> None:
        """Write `kind` for the open session to `out` in a worker thread; `done` reports the outcome."""
        if self.session is None or kind in self.busy:
            return
        write = exporter(kind)
        session = self.session
        self.busy.add(kind)
        self.buttons[kind].setEnabled(False)
        self.message.setText(f"writing {KINDS[kind][0]} → {out}…")

        def work() -> None:
            try:
                written = write(session, out)
            except Exception as e:  # noqa: BLE001 - any failure is shown to the operator, never swallowed
                self.done.emit(kind, False, f"{type(e).__name__}: {e}")
                return
            self.done.emit(kind, True, str(written))

        threading.Thread(target=work, name=f"export-{kind}", daemon=True).start()

    def _finished(self, kind: str, ok: bool, text: str) -> None:
        self.busy.discard(kind)
        self.buttons[kind].setEnabled(self.session is not None)
        label, text = KINDS[kind][0], html.escape(text)
        if ok:
            self.message.setText(f"<span style='color:{style.OK}'>✔ {label} written: {text}</span>")
        else:
            self.message.setText(f"<span style='color:{style.FAULT}'>✖ {label} export failed: {text}</span>")
