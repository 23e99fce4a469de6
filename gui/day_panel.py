"""The day at the rig for one animal: weight before the start, water today against the target, notes during
and after the session (DayPanel), and the end-of-session summary with the session's notes (SummaryPanel).
Both read and write through gui.lab_view.LabRecords."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from PyQt5 import QtCore, QtWidgets

from gui.inputs import NumberField
from gui.lab_view import MAX_SUPPLEMENT_UL, MAX_WEIGHT_G, LabError, LabRecords, Note, WaterDay
from gui.session_state import Outcome, Phase
from gui.text import Message


def water_text(w: WaterDay) -> str:
    total = f"rig {w.rig_ul:.1f} µl + supplement {w.supplement_ul:.0f} µl = {w.total_ul:.1f} µl"
    if w.target_ul is None:
        return f"{total} (no daily target in the animal's record)"
    short = w.short_ul or 0.0
    state = "target met" if short <= 0 else f"{short:.0f} µl short"
    return f"{total} of {w.target_ul:.0f} µl · {state}"


def summary_lines(out: Outcome, weight_g: float | None, learning: str | None, faults: int) -> list[str]:
    """The end-of-session summary as plain lines (what the panel shows and the tests read)."""
    lines = [f"{out.phase.value}: {out.reason}"]
    i = out.info
    if i is None:
        lines.append(f"the session folder cannot be read: {out.error}")
    else:
        manual = i.get("rewards_manual", 0)
        lines.append(f"{i['trials']} trials · {i['rewards']} rewards ({manual} manual) · {i['water_ul']:.1f} µl water")
        dur = float(i.get("duration_s") or 0.0)
        missed = i.get("missed_display_frames")
        lines.append(f"{int(dur // 60)} min {int(dur % 60)} s · {i.get('licks', 0)} licks"
                     + (f" · {missed} missed display frames" if missed is not None else ""))
        stages = i.get("stages") or []
        if len(stages) > 1:
            lines.append("stages: " + " → ".join(str(s) for s in stages))
    lines.append(f"weight before the start: {weight_g:.1f} g" if weight_g is not None else "no weight recorded today")
    if learning:
        lines.append(learning)
    folder_faults = int(i.get("faults", 0)) if i is not None else 0
    lines.append(f"faults: {folder_faults} in the session log, {faults} seen by the app")
    if out.folder is not None:
        lines.append(f"folder: {out.folder}")
    return lines


class DayPanel(QtWidgets.QWidget):
    note_added = QtCore.pyqtSignal(str)  # typed during a session: the window also sends it to the runner
    records_changed = QtCore.pyqtSignal()

    def __init__(self, lab: LabRecords | None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab = lab
        self.animal = ""
        self.session: Path | None = None
        self.running = False
        self.today = date.today
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.subject = Message(2)
        lay.addWidget(self.subject)

        form = QtWidgets.QFormLayout()
        row = QtWidgets.QHBoxLayout()
        self.weight_field = NumberField("weight", "g", 25.0, 0.0, MAX_WEIGHT_G, above="a mouse weighs")
        self.record_weight = QtWidgets.QPushButton("Record weight")
        row.addWidget(self.weight_field)
        row.addWidget(self.record_weight)
        row.addStretch(1)
        form.addRow("Weight", row)
        self.weight_msg = Message(1)
        form.addRow("", self.weight_msg)
        self.weight_field.message = self.weight_msg

        self.water_msg = Message(2)
        form.addRow("Water today", self.water_msg)
        self.water_bar = QtWidgets.QProgressBar()
        self.water_bar.setTextVisible(False)
        self.water_bar.setFixedHeight(8)
        form.addRow("", self.water_bar)
        row = QtWidgets.QHBoxLayout()
        self.supplement_field = NumberField("supplement", "µl", 500.0, 0.0, MAX_SUPPLEMENT_UL,
                                            above="one supplement entry takes")
        self.add_supplement = QtWidgets.QPushButton("Add supplement")
        row.addWidget(self.supplement_field)
        row.addWidget(self.add_supplement)
        row.addStretch(1)
        form.addRow("Supplement", row)
        self.supplement_msg = Message(1)
        self.supplement_field.message = self.supplement_msg
        form.addRow("", self.supplement_msg)
        lay.addLayout(form)

        notes_box = QtWidgets.QGroupBox("Notes")
        self.notes, self.note_edit, self.add_note, self.note_msg = _notes_box(
            notes_box, "a note on this session (Enter to add)", message_lines=2, list_stretch=1)
        lay.addWidget(notes_box)

        lay.addStretch(1)

        self.record_weight.clicked.connect(self._record_weight)
        self.add_supplement.clicked.connect(self._add_supplement)
        self.add_note.clicked.connect(self._add_note)
        self.note_edit.returnPressed.connect(self._add_note)
        self.weight_field.changed.connect(self._enable)
        self.supplement_field.changed.connect(self._enable)
        self.set_animal("")

    # ---- state -------------------------------------------------------------------------------------

    def set_animal(self, animal: str) -> None:
        self.animal = animal.strip()
        self.refresh()

    def set_session(self, session: Path | None, running: bool) -> None:
        self.session = Path(session) if session is not None else None
        self.running = running
        self.refresh()

    def _enable(self) -> None:
        have = self.lab is not None and bool(self.animal)
        self.record_weight.setEnabled(have and self.weight_field.value() is not None)
        self.add_supplement.setEnabled(have and self.supplement_field.value() is not None)
        self.add_note.setEnabled(have)
        self.note_edit.setEnabled(have)

    def refresh(self) -> None:
        self._enable()
        lab, animal = self.lab, self.animal
        self.notes.clear()
        if lab is None:
            self.subject.show_text("no lab records connected: weights, water and notes are not kept", warn=True)
            for m in (self.weight_msg, self.water_msg):
                m.clear()
            return
        if not animal:
            self.subject.show_text("enter an animal ID in the session setup")
            self.weight_msg.clear()
            self.water_msg.clear()
            self.water_bar.setValue(0)
            return
        try:
            subj = lab.subject(animal)
            today = self.today()
            weighing = lab.weight(animal, today)
            water = lab.water(animal, today)
            notes = lab.notes(animal, self.session) if self.session is not None else lab.notes(animal, None)
        except LabError as e:
            self.subject.show_text(f"lab records: {e}", error=True)
            return
        if subj is None:
            self.subject.show_text(f"{animal}: not in the animal registry (no baseline weight or water target)",
                                   warn=True)
        else:
            bits = [b for b in (subj.species, subj.sex, subj.strain) if b]
            restr = "water-restricted" if subj.restricted else "not restricted"
            base = f"baseline {subj.baseline_weight_g:.1f} g" if subj.baseline_weight_g else "no baseline weight"
            self.subject.show_text(f"{animal} · {' · '.join(bits + [restr, base])}")
        self._show_weight(weighing.grams if weighing else None, weighing.when if weighing else None, subj)
        self.water_msg.show_text(water_text(water), warn=bool(water.short_ul))
        target = water.target_ul or 0.0
        self.water_bar.setValue(int(min(water.total_ul / target, 1.0) * 100) if target > 0 else 0)
        self._show_notes(notes)

    def _show_weight(self, grams: float | None, when: datetime | None, subj: Any) -> None:
        if grams is None or when is None:
            need = subj is not None and subj.restricted
            self.weight_msg.show_text("no weight today" + (": weigh the animal before the session" if need else ""),
                                      warn=need)
            return
        text = f"today {grams:.1f} g at {when:%H:%M}"
        alert = False
        if subj is not None and subj.baseline_weight_g:
            frac = grams / subj.baseline_weight_g
            alert = frac < subj.weight_alert_fraction
            text += f" · {frac:.0%} of baseline" + (f" (below {subj.weight_alert_fraction:.0%}!)" if alert else "")
        self.weight_msg.show_text(text, error=alert, ok=not alert)

    def _show_notes(self, notes: list[Note]) -> None:
        self.notes.clear()
        for n in notes:
            tag = "during" if n.during else "after"
            self.notes.addItem(f"{n.when:%H:%M:%S} ({tag}) {n.text}")
        self.notes.scrollToBottom()

    # ---- actions -----------------------------------------------------------------------------------

    def weight_today(self) -> float | None:
        if self.lab is None or not self.animal:
            return None
        try:
            w = self.lab.weight(self.animal, self.today())
        except LabError:
            return None
        return w.grams if w is not None else None

    def _record_weight(self) -> None:
        g = self.weight_field.value()
        if self.lab is None or g is None:
            return
        try:
            self.lab.record_weight(self.animal, g, datetime.now())
        except LabError as e:
            self.weight_msg.show_text(str(e), error=True)
            return
        self.refresh()
        self.records_changed.emit()

    def _add_supplement(self) -> None:
        ul = self.supplement_field.value()
        if self.lab is None or ul is None:
            return
        try:
            self.lab.add_supplement(self.animal, ul, datetime.now())
        except LabError as e:
            self.supplement_msg.show_text(str(e), error=True)
            return
        self.supplement_msg.show_text(f"{ul:g} µl supplement recorded", ok=True)
        self.refresh()
        self.records_changed.emit()

    def _add_note(self) -> None:
        text = self.note_edit.text().strip()
        if self.lab is None or not text:
            return
        try:
            self.lab.add_note(self.animal, text, datetime.now(), self.session, during=self.running)
        except LabError as e:
            self.note_msg.show_text(str(e), error=True)
            return
        self.note_edit.clear()
        self.note_msg.show_text("note saved in the lab records", ok=True)
        self.refresh()
        if self.running:
            self.note_added.emit(text)


class SummaryPanel(QtWidgets.QWidget):
    """The end of the last session: how it ended, its counts (the folder's, as `rig info`), weight, learning,
    faults, and its notes, with a field for notes after the session."""

    note_added = QtCore.pyqtSignal()

    def __init__(self, day: DayPanel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.day = day
        self.outcome: Outcome | None = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.box = QtWidgets.QGroupBox("End of session")
        bl = QtWidgets.QVBoxLayout(self.box)
        self.text = QtWidgets.QLabel("no session has ended in this window yet")
        self.text.setTextFormat(QtCore.Qt.PlainText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.text.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        self.text.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        bl.addWidget(self.text)
        lay.addWidget(self.box)
        notes = QtWidgets.QGroupBox("Notes on this session")
        self.notes, self.note_edit, self.add_note, self.note_msg = _notes_box(
            notes, "a note after the session (Enter to add)", message_lines=1)
        lay.addWidget(notes)
        lay.addStretch(1)
        self.lines: list[str] = []
        self.add_note.clicked.connect(self._add_note)
        self.note_edit.returnPressed.connect(self._add_note)
        self._enable()

    def _enable(self) -> None:
        on = self.outcome is not None and self.outcome.folder is not None and self.day.lab is not None
        self.add_note.setEnabled(on)
        self.note_edit.setEnabled(on)

    def show_outcome(self, out: Outcome, learning: str | None, faults: int) -> None:
        self.outcome = out
        self.lines = summary_lines(out, self.day.weight_today(), learning, faults)
        self.text.setText("\n".join(self.lines))
        tone = {Phase.FINISHED: "ok", Phase.STOPPED_EARLY: "warn", Phase.CRASHED: "error"}.get(out.phase, "")
        self.text.setProperty("tone", tone)
        self.text.style().unpolish(self.text)
        self.text.style().polish(self.text)
        self.box.setTitle(f"End of session: {out.phase.value}")
        self._enable()
        self.refresh()

    def refresh(self) -> None:
        self.notes.clear()
        lab, out = self.day.lab, self.outcome
        if lab is None or out is None or out.folder is None or not self.day.animal:
            return
        try:
            notes = lab.notes(self.day.animal, out.folder)
        except LabError as e:
            self.note_msg.show_text(f"lab records: {e}", error=True)
            return
        for n in notes:
            self.notes.addItem(f"{n.when:%H:%M:%S} ({'during' if n.during else 'after'}) {n.text}")

    def _add_note(self) -> None:
        text = self.note_edit.text().strip()
        lab, out = self.day.lab, self.outcome
        if lab is None or out is None or out.folder is None or not text:
            return
        try:
            lab.add_note(self.day.animal, text, datetime.now(), out.folder, during=False)
        except LabError as e:
            self.note_msg.show_text(str(e), error=True)
            return
        self.note_edit.clear()
        self.note_msg.show_text("note saved in the lab records", ok=True)
        self.refresh()
        self.day.refresh()
        self.note_added.emit()


def _notes_box(box: QtWidgets.QGroupBox, placeholder: str, message_lines: int, list_stretch: int = 0
               ) -> tuple[QtWidgets.QListWidget, QtWidgets.QLineEdit, QtWidgets.QPushButton, Message]:
    """A notes group's contents: the list, a line to type a note, its Add button and a message line."""
    nl = QtWidgets.QVBoxLayout(box)
    notes = QtWidgets.QListWidget()
    notes.setWordWrap(True)
    notes.setFixedHeight(84)
    nl.addWidget(notes, list_stretch)
    row = QtWidgets.QHBoxLayout()
    edit = QtWidgets.QLineEdit()
    edit.setPlaceholderText(placeholder)
    add = QtWidgets.QPushButton("Add note")
    row.addWidget(edit, 1)
    row.addWidget(add)
    nl.addLayout(row)
    msg = Message(message_lines)
    nl.addWidget(msg)
    return notes, edit, add, msg
