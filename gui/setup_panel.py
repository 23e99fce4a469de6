"""Session setup: rig config, animal (with its history), protocol (validated inline), experimenter, notes.

Nothing shown here outlives what it describes: the protocol is checked again when its file changes or
disappears (and at start), the animal's history is that of exactly the ID typed (no inline completion
turning "M" into "M1"), the animal list is read again after each session, and a change of rig config
says so (`config_changed`) so the window can drop the previous config's check results.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PyQt5 import QtCore, QtWidgets

from gui.launcher import SessionSetup
from gui.suggest import Suggestion, protocols_run, shipped, suggest_next
from gui.text import Message
from rig.config import RigConfig
from rig.loading import LoadError, load_config, load_protocol, validate_files
from rig.protocol import Protocol

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
HISTORY_SESSIONS = 5


def shipped_protocols() -> list[Path]:
    return sorted((REPO / "protocols").glob("*.yaml"))


def animal_history(data_dir: Path, animal: str, n: int = HISTORY_SESSIONS) -> list[dict[str, Any]]:
    """The animal's last n sessions (newest first) as rig.datalog.info dicts; unreadable ones are noted."""
    from rig.datalog.info import find_sessions, session_info
    from rig.datalog.reader import Session, SessionError

    try:
        folders = find_sessions(data_dir / animal)
    except FileNotFoundError:
        return []
    out = []
    for folder in reversed(folders[-n:]):
        try:
            out.append(session_info(Session.open(folder)))
        except SessionError as e:
            out.append({"path": str(folder), "error": str(e)})
    return out


def _suggest(last: dict[str, Any], animal_dir: Path) -> Suggestion | None:
    """gui.suggest.suggest_next for the newest history entry (opening its folder to judge learning; the
    animal's whole history for test3's swap corridor)."""
    from rig.datalog.reader import Session, SessionError

    if "error" in last:
        return None
    try:
        session = Session.open(last["path"])
    except SessionError:
        session = None
    return suggest_next(last, session, protocols_run(animal_dir))


class SetupPanel(QtWidgets.QGroupBox):
    changed = QtCore.pyqtSignal()
    config_changed = QtCore.pyqtSignal(str)  # the config file now chosen
    animal_changed = QtCore.pyqtSignal(str)

    def __init__(self, config_path: Path, data_dir: Path | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Session setup", parent)
        self._data_override = data_dir
        self.config: RigConfig | None = None
        self.protocol: Protocol | None = None
        self._config_loaded = ""
        self._protocol_stamp: tuple[str, float | None] | None = None
        form = QtWidgets.QFormLayout(self)
        form.setLabelAlignment(QtCore.Qt.AlignRight)

        self.config_edit = QtWidgets.QLineEdit(str(config_path))
        browse_cfg = QtWidgets.QPushButton("…")
        browse_cfg.setFixedWidth(30)
        browse_cfg.clicked.connect(self._browse_config)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.config_edit)
        row.addWidget(browse_cfg)
        form.addRow("Rig config", row)
        self.config_msg = Message(2)
        form.addRow("", self.config_msg)

        self.animal = QtWidgets.QComboBox()
        self.animal.setEditable(True)
        self.animal.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        line = self.animal.lineEdit()
        assert line is not None
        line.setPlaceholderText("animal ID")
        completer = self.animal.completer()
        if completer is not None:
            # Suggest known animals in a popup, never by completing the text typed (M would become M1).
            completer.setCompletionMode(QtWidgets.QCompleter.PopupCompletion)
            completer.setCaseSensitivity(QtCore.Qt.CaseSensitive)
        form.addRow("Animal", self.animal)
        self.history = QtWidgets.QLabel()
        self.history.setObjectName("muted")
        self.history.setTextFormat(QtCore.Qt.PlainText)
        self.history.setWordWrap(True)
        self.history.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        self.history.setFixedHeight(self.history.fontMetrics().lineSpacing() * (HISTORY_SESSIONS + 3) + 4)
        self.history.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        form.addRow("", self.history)
        self.suggestion: Suggestion | None = None
        self.suggested: str | None = None
        self.use_suggested = QtWidgets.QPushButton()
        self.use_suggested.setEnabled(False)
        self.use_suggested.setText("no suggestion")
        self.use_suggested.clicked.connect(self._use_suggested)
        form.addRow("", self.use_suggested)

        self.protocol_box = QtWidgets.QComboBox()
        for p in shipped_protocols():
            self.protocol_box.addItem(p.stem, str(p))
        browse_p = QtWidgets.QPushButton("…")
        browse_p.setFixedWidth(30)
        browse_p.clicked.connect(self._browse_protocol)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.protocol_box, 1)
        row.addWidget(browse_p)
        form.addRow("Protocol", row)
        self.protocol_msg = Message(3)
        form.addRow("", self.protocol_msg)

        limits = QtWidgets.QHBoxLayout()
        self.max_trials = QtWidgets.QSpinBox()
        self.max_trials.setRange(0, 100000)
        self.max_trials.setSpecialValueText("protocol")
        self.duration = QtWidgets.QDoubleSpinBox()
        self.duration.setRange(0, 7 * 24 * 3600)
        self.duration.setDecimals(0)
        self.duration.setSpecialValueText("protocol")
        self.duration.setSuffix(" s")
        limits.addWidget(QtWidgets.QLabel("trials"))
        limits.addWidget(self.max_trials)
        limits.addWidget(QtWidgets.QLabel("time"))
        limits.addWidget(self.duration)
        form.addRow("Limits", limits)

        self.experimenter = QtWidgets.QLineEdit()
        self.experimenter.setPlaceholderText("who runs the session")
        form.addRow("Experimenter", self.experimenter)
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("notes stored in the session header")
        self.notes.setFixedHeight(54)
        form.addRow("Notes", self.notes)

        self.config_edit.editingFinished.connect(self._load_config)
        self.animal.currentTextChanged.connect(self._animal_changed)
        self.protocol_box.currentIndexChanged.connect(self._validate_protocol)
        self._load_config()
        if self.protocol_box.findText("demo") >= 0:
            self.protocol_box.setCurrentIndex(self.protocol_box.findText("demo"))
        self._validate_protocol()

    # ---- values ------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path | None:
        if self._data_override is not None:
            return self._data_override
        return Path(self.config.data_dir).expanduser() if self.config is not None else None

    @property
    def rig_name(self) -> str | None:
        return self.config.name if self.config is not None else None

    @property
    def animal_id(self) -> str:
        return self.animal.currentText().strip()

    def protocol_path(self) -> Path:
        return Path(self.protocol_box.currentData())

    def set_protocol(self, path: Path) -> None:
        i = self.protocol_box.findData(str(path))
        if i < 0:
            self.protocol_box.addItem(Path(path).stem, str(path))
            i = self.protocol_box.count() - 1
        self.protocol_box.setCurrentIndex(i)
        self._validate_protocol()

    def setup(self) -> SessionSetup:
        """The session as set up; raises ValueError naming what is missing or invalid. The files are
        checked again here: what was valid when chosen may have changed or gone since."""
        self._load_config()
        if self.config is None:
            raise ValueError(f"rig config: {self.config_msg.full_text}")
        self._validate_protocol()
        if self.protocol is None:
            raise ValueError(f"protocol: {self.protocol_msg.full_text}")
        animal = self.animal_id
        if not animal or "/" in animal or animal.startswith("."):
            raise ValueError("animal ID: enter a name (no '/', not starting with '.')")
        return SessionSetup(
            protocol=self.protocol_path().resolve(), config=Path(self.config_edit.text()).resolve(),
            rig_name=self.config.name, animal=animal, data_dir=self.data_dir,
            experimenter=self.experimenter.text().strip(), notes=self.notes.toPlainText().strip(),
            max_trials=self.max_trials.value() or None, duration_s=self.duration.value() or None,
        )

    # ---- reactions ---------------------------------------------------------------------------------

    def _browse_config(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Rig config", str(REPO / "config"), "YAML (*.yaml)")
        if path:
            self.config_edit.setText(path)
            self._load_config()

    def _browse_protocol(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Protocol", str(REPO / "protocols"), "YAML (*.yaml)")
        if path:
            self.set_protocol(Path(path))

    def _load_config(self) -> None:
        text = self.config_edit.text()
        changed = text != self._config_loaded
        self._config_loaded = text
        try:
            self.config = load_config(Path(text))
        except LoadError as e:
            self.config = None
            self.config_msg.show_text("✖ " + "\n".join(str(p) for p in e.problems), error=True)
        else:
            self.config_msg.show_text(f"✔ rig {self.config.name} · {self.config.frame_rate_hz:g} Hz · "
                                      f"data in {self.data_dir}", ok=True)
            self.refresh_animals()
        if changed:
            self.config_changed.emit(text)
        self.changed.emit()

    def refresh_animals(self) -> None:
        """The animals in the data folder, read again (a session may have added one); the text typed stays."""
        current = self.animal.currentText()
        self.animal.blockSignals(True)
        self.animal.clear()
        d = self.data_dir
        if d is not None and d.is_dir():
            self.animal.addItems(sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
        self.animal.setEditText(current)
        self.animal.blockSignals(False)
        self._animal_changed(current)

    def _animal_changed(self, animal: str) -> None:
        animal = animal.strip()
        self.suggestion = None
        self.suggested = None
        self.use_suggested.setEnabled(False)
        self.use_suggested.setText("no suggestion")
        self.animal_changed.emit(animal)
        d = self.data_dir
        if not animal or d is None:
            self.history.setText("")
            return
        sessions = animal_history(d, animal)
        if not sessions:
            self.history.setText(f"{animal}: a new animal, no sessions yet")
            return
        lines = []
        for s in sessions:
            if "error" in s:
                lines.append(f"{Path(s['path']).name}: unreadable")
                continue
            when = (s.get("start_time") or "")[:10]
            ok = "" if s.get("complete") else " · incomplete"
            lines.append(f"{when} {s.get('protocol')} · {s.get('stage') or ''} · {s.get('trials')} trials · "
                         f"{s.get('water_ul', 0):.0f} µl{ok}")
        suggestion = _suggest(sessions[0], d / animal)
        shown = " or ".join(suggestion.choices) if suggestion is not None else ""
        hint = f"\nsuggested next: {shown} ({suggestion.reason})" if suggestion is not None else ""
        self.history.setText(f"{animal}, last sessions:\n" + "\n".join(lines) + hint)
        self.history.setToolTip(self.history.text())
        self.suggestion = suggestion
        self.suggested = suggestion.protocol if suggestion is not None else None
        if suggestion is not None and len(suggestion.choices) > 1:
            # Not ours to choose (test3's swap corridor, per mouse): the operator picks one from the list.
            self.use_suggested.setText("choose: " + " or ".join(suggestion.choices))
            return
        path = shipped(suggestion.protocol, REPO / "protocols") if suggestion is not None else None
        if suggestion is not None and path is not None:
            self.use_suggested.setEnabled(True)
            self.use_suggested.setText(f"Use {suggestion.protocol}")

    def _use_suggested(self) -> None:
        path = shipped(self.suggestion.protocol, REPO / "protocols") if self.suggestion is not None else None
        if path is not None:
            self.set_protocol(path)

    def _stamp(self, path: Path) -> tuple[str, float | None]:
        try:
            return str(path), os.stat(path).st_mtime
        except OSError:
            return str(path), None

    def recheck(self) -> None:
        """Validate the protocol again if its file changed or disappeared since it was last checked."""
        if self.protocol_box.count() and self._stamp(self.protocol_path()) != self._protocol_stamp:
            self._validate_protocol()

    def _validate_protocol(self) -> None:
        path = self.protocol_path() if self.protocol_box.count() else None
        if path is None:
            self.protocol = None
            self.protocol_msg.show_text("✖ no protocol chosen", error=True)
            return
        self._protocol_stamp = self._stamp(path)
        if self._protocol_stamp[1] is None:
            self.protocol = None
            self.protocol_msg.show_text(f"✖ {path}: the file does not exist (any more)", error=True)
            self.changed.emit()
            return
        problems = validate_files([path])
        if problems:
            self.protocol = None
            self.protocol_msg.show_text("✖ " + "\n".join(str(p) for p in problems), error=True)
        else:
            try:
                self.protocol = load_protocol(path)
            except LoadError as e:  # changed between the two reads
                self.protocol = None
                self.protocol_msg.show_text("✖ " + "\n".join(str(p) for p in e.problems), error=True)
                self.changed.emit()
                return
            p = self.protocol
            corridors = ", ".join(c.name + ("*" if c.rewarded else "") for c in p.corridors)
            end = []
            if p.end.max_trials:
                end.append(f"{p.end.max_trials} trials")
            if p.end.max_duration_s:
                end.append(f"{p.end.max_duration_s / 60:g} min")
            self.protocol_msg.show_text(f"✔ valid · {p.kind} · {corridors} · ends after {' or '.join(end) or '?'}",
                                        ok=True)
        self.changed.emit()
