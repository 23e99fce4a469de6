"""Session setup: rig config, animal (with its history), protocol (validated inline), experimenter, notes."""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt5 import QtCore, QtWidgets

from gui import style
from gui.launcher import SessionSetup
from gui.suggest import shipped, suggest_next
from rig.loading import LoadError, load_config, load_protocol, validate_files

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
HISTORY_SESSIONS = 5


def shipped_protocols() -> list[Path]:
    return sorted((REPO / "protocols").glob("*.yaml"))


def animal_history(data_dir: Path, animal: str, n: int = HISTORY_SESSIONS) -> list[dict]:
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


def _suggest(last: dict):
    """gui.suggest.suggest_next for the newest history entry (opening its folder to judge learning)."""
    from rig.datalog.reader import Session, SessionError

    if "error" in last:
        return None
    try:
        session = Session.open(last["path"])
    except SessionError:
        session = None
    return suggest_next(last, session)


class SetupPanel(QtWidgets.QGroupBox):
    changed = QtCore.pyqtSignal()

    def __init__(self, config_path: Path, data_dir: Path | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Session setup", parent)
        self._data_override = data_dir
        self.config = None
        self.protocol = None
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
        self.config_msg = QtWidgets.QLabel(wordWrap=True)
        form.addRow("", self.config_msg)

        self.animal = QtWidgets.QComboBox(editable=True)
        self.animal.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        self.animal.lineEdit().setPlaceholderText("animal ID")
        form.addRow("Animal", self.animal)
        self.history = QtWidgets.QLabel(wordWrap=True, objectName="muted")
        self.history.setTextFormat(QtCore.Qt.RichText)
        form.addRow("", self.history)
        self.suggestion = None
        self.use_suggested = QtWidgets.QPushButton()
        self.use_suggested.hide()
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
        self.protocol_msg = QtWidgets.QLabel(wordWrap=True)
        self.protocol_msg.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        form.addRow("", self.protocol_msg)

        limits = QtWidgets.QHBoxLayout()
        self.max_trials = QtWidgets.QSpinBox(minimum=0, maximum=100000, specialValueText="protocol")
        self.duration = QtWidgets.QDoubleSpinBox(minimum=0, maximum=7 * 24 * 3600, decimals=0,
                                                 specialValueText="protocol", suffix=" s")
        limits.addWidget(QtWidgets.QLabel("trials"))
        limits.addWidget(self.max_trials)
        limits.addWidget(QtWidgets.QLabel("time"))
        limits.addWidget(self.duration)
        form.addRow("Limits", limits)

        self.experimenter = QtWidgets.QLineEdit(placeholderText="who runs the session")
        form.addRow("Experimenter", self.experimenter)
        self.notes = QtWidgets.QPlainTextEdit(placeholderText="notes stored in the session header")
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

    def protocol_path(self) -> Path:
        return Path(self.protocol_box.currentData())

    def set_protocol(self, path: Path) -> None:
        i = self.protocol_box.findData(str(path))
        if i < 0:
            self.protocol_box.addItem(Path(path).stem, str(path))
            i = self.protocol_box.count() - 1
        self.protocol_box.setCurrentIndex(i)

    def setup(self) -> SessionSetup:
        """The session as set up; raises ValueError naming what is missing or invalid."""
        if self.config is None:
            raise ValueError(f"rig config: {self.config_msg.text()}")
        if self.protocol is None:
            raise ValueError("protocol: fix the problems shown under it first")
        animal = self.animal.currentText().strip()
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
        try:
            self.config = load_config(Path(self.config_edit.text()))
        except LoadError as e:
            self.config = None
            _show(self.config_msg, False, "<br>".join(str(p) for p in e.problems))
        else:
            _show(self.config_msg, True, f"rig <b>{self.config.name}</b> · {self.config.frame_rate_hz:g} Hz · "
                                         f"data in {self.data_dir}")
            self._list_animals()
        self.changed.emit()

    def _list_animals(self) -> None:
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
        d = self.data_dir
        if not animal or d is None:
            self.history.setText("")
            return
        sessions = animal_history(d, animal)
        if not sessions:
            self.history.setText("new animal: no sessions yet")
            return
        lines = []
        for s in sessions:
            if "error" in s:
                lines.append(f"{Path(s['path']).name}: unreadable")
                continue
            when = (s.get("start_time") or "")[:10]
            ok = "" if s.get("complete") else f" <span style='color:{style.WARN}'>incomplete</span>"
            lines.append(f"{when} <b>{s.get('protocol')}</b> · {s.get('stage') or ''} · {s.get('trials')} trials · "
                         f"{s.get('water_ul', 0):.0f} µl{ok}")
        suggestion = _suggest(sessions[0])
        hint = (f"<br>suggested next: <b>{suggestion.protocol}</b> ({suggestion.reason})"
                if suggestion is not None else "")
        self.history.setText("last sessions:<br>" + "<br>".join(lines) + hint)
        self.suggested = suggestion.protocol if suggestion is not None else None
        self.suggestion = suggestion
        path = shipped(suggestion.protocol, REPO / "protocols") if suggestion is not None else None
        self.use_suggested.setVisible(path is not None)
        self.use_suggested.setText(f"Use {suggestion.protocol}" if suggestion is not None else "")

    def _use_suggested(self) -> None:
        path = shipped(self.suggestion.protocol, REPO / "protocols") if self.suggestion is not None else None
        if path is not None:
            self.set_protocol(path)

    def _validate_protocol(self) -> None:
        path = self.protocol_path() if self.protocol_box.count() else None
        if path is None:
            self.protocol = None
            _show(self.protocol_msg, False, "no protocol chosen")
            return
        problems = validate_files([path])
        if problems:
            self.protocol = None
            _show(self.protocol_msg, False, "<br>".join(str(p) for p in problems))
        else:
            self.protocol = load_protocol(path)
            p = self.protocol
            corridors = ", ".join(c.name + ("*" if c.rewarded else "") for c in p.corridors)
            end = []
            if p.end.max_trials:
                end.append(f"{p.end.max_trials} trials")
            if p.end.max_duration_s:
                end.append(f"{p.end.max_duration_s / 60:g} min")
            _show(self.protocol_msg, True, f"valid · {p.kind} · {corridors} · ends after {' or '.join(end) or '?'}")
        self.changed.emit()


def _show(label: QtWidgets.QLabel, ok: bool, text: str) -> None:
    colour = style.OK if ok else style.FAULT
    mark = "✔" if ok else "✖"
    label.setText(f"<span style='color:{colour}'>{mark}</span> {text}")
    label.setProperty("valid", ok)
