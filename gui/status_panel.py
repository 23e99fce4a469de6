"""The session's state badge, counters, loop health and faults. Everything is plain text of a fixed size:
a message never moves a button. Faults stay listed (and the banner red) until acknowledged."""

from __future__ import annotations

import time

from PyQt5 import QtCore, QtGui, QtWidgets

from gui import style
from gui.session_state import Phase
from gui.text import Message
from gui.wire import Fault, Mesoscope, Status

MAX_FAULTS = 200

PHASE_COLOURS = {
    Phase.IDLE: "#3a3f48", Phase.STARTING: "#2c4a6b", Phase.RUNNING: "#2f7d4f", Phase.PAUSED: "#9a7a22",
    Phase.STALLED: style.FAULT, Phase.FINISHED: "#2c4a6b", Phase.STOPPED_EARLY: "#8a5a22", Phase.CRASHED: style.FAULT,
}


def _tone(label: QtWidgets.QLabel, tone: str) -> None:
    if label.property("tone") != tone:
        label.setProperty("tone", tone)
        label.style().unpolish(label)
        label.style().polish(label)


def plain_label(text: str = "", object_name: str = "") -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setTextFormat(QtCore.Qt.PlainText)
    if object_name:
        label.setObjectName(object_name)
    return label


class BigNumber(QtWidgets.QWidget):
    def __init__(self, caption: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(0)
        self.value = plain_label("–", "big")
        self.value.setAlignment(QtCore.Qt.AlignCenter)
        self.value.setMinimumWidth(60)
        self.caption = plain_label(caption, "bigcaption")
        self.caption.setAlignment(QtCore.Qt.AlignCenter)
        lay.addWidget(self.value)
        lay.addWidget(self.caption)

    def set(self, text: str, caption: str | None = None) -> None:
        self.value.setText(text)
        if caption is not None:
            self.caption.setText(caption)


class StatusPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        row = QtWidgets.QHBoxLayout()
        self.state = plain_label("IDLE", "state")
        self.state.setAlignment(QtCore.Qt.AlignCenter)
        self.state.setFixedSize(150, 50)
        row.addWidget(self.state)
        self.trials = BigNumber("TRIALS")
        self.rewards = BigNumber("REWARDS")
        self.water = BigNumber("WATER (µl)")
        self.licks = BigNumber("LICKS")
        self.elapsed = BigNumber("ELAPSED")
        for w in (self.trials, self.rewards, self.water, self.licks, self.elapsed):
            row.addWidget(w, 1)
        lay.addLayout(row)
        health = QtWidgets.QHBoxLayout()
        health.setSpacing(12)
        self.loop = plain_label("loop –", "muted")
        self.missed_label = plain_label("missed frames –", "muted")
        self.disk = plain_label("disk –", "muted")
        self.drivers = plain_label("", "muted")
        self.valve = plain_label("", "muted")
        self.link = plain_label("", "muted")
        for label in (self.loop, self.missed_label, self.disk, self.drivers, self.valve, self.link):
            health.addWidget(label)
        self.mesoscope = Message(1)
        health.addWidget(self.mesoscope, 1)
        lay.addLayout(health)
        self.phase = Phase.IDLE
        self.show_phase(Phase.IDLE)

    @property
    def details(self) -> str:
        """The health line as one text (tests and the benchmark read it)."""
        parts = [w.text() for w in (self.loop, self.missed_label, self.disk, self.drivers, self.valve, self.link)]
        meso = self.mesoscope.full_text
        return " · ".join(p for p in parts if p) + (f" · {meso}" if meso else "")

    def show_phase(self, phase: Phase, note: str = "") -> None:
        self.phase = phase
        self.state.setText(phase.value + (f"\n{note}" if note else ""))
        self.state.setStyleSheet(f"background: {PHASE_COLOURS[phase]}; color: white;")

    def clear(self) -> None:
        """No numbers from an earlier session."""
        for w in (self.trials, self.rewards, self.water, self.licks, self.elapsed):
            w.set("–")
        self.rewards.set("–", "REWARDS")
        self.loop.setText("loop –")
        self.missed_label.setText("missed frames –")
        _tone(self.missed_label, "")
        self.disk.setText("disk –")
        for label in (self.drivers, self.valve, self.link):
            label.setText("")
        self.mesoscope.clear()

    def show_counts(self, trials: int, rewards: int, manual: int, water_ul: float, licks: int,
                    elapsed_s: float) -> None:
        self.trials.set(str(trials))
        self.rewards.set(str(rewards), f"REWARDS · {manual} MANUAL")
        self.water.set(f"{water_ul:.1f}")
        self.licks.set(str(licks))
        m, s = divmod(int(max(elapsed_s, 0)), 60)
        h, m = divmod(m, 60)
        self.elapsed.set(f"{h}:{m:02d}:{s:02d}")

    def show_missed(self, missed: int | None) -> None:
        """Missed display frames as `rig info` counts them (from the session folder's timing log)."""
        self.missed_label.setText("missed frames –" if missed is None else f"missed frames {missed}")
        _tone(self.missed_label, "error" if missed else "ok" if missed == 0 else "")

    def show_status(self, st: Status) -> None:
        p50, worst = st.period_ms_p50, st.period_ms_max
        self.loop.setText(f"loop {p50:.1f} ms (max {worst or 0:.1f})" if p50 is not None else "loop –")
        disk = st.free_disk_mb
        self.disk.setText(f"{disk / 1000:.1f} GB free" if disk is not None else "disk –")
        _tone(self.disk, "error" if disk is not None and disk < 1000 else "")
        self.drivers.setText(f"{len(st.drivers)} drivers" if st.drivers else "")
        self.drivers.setToolTip("\n".join(f"{k}: {v}" for k, v in st.drivers.items()))
        self.valve.setText("VALVE OPEN (flushing)" if st.valve_open else "")
        _tone(self.valve, "warn" if st.valve_open else "")
        text, tone = mesoscope_text(st.mesoscope)
        if text:
            self.mesoscope.show_text(text, error=tone == "error", warn=tone == "warn", ok=tone == "ok")
        else:
            self.mesoscope.clear()

    def show_link(self, bad_messages: int, last_bad: str) -> None:
        self.link.setText(f"telemetry: {bad_messages} bad messages dropped" if bad_messages else "")
        self.link.setToolTip(last_bad)
        _tone(self.link, "warn" if bad_messages else "")


def mesoscope_text(m: Mesoscope | None) -> tuple[str, str]:
    """The mesoscope link in the status line (frames, rate, drops, last frame's age) and its tone."""
    if m is None:
        return "", ""
    down = not m.alive or m.in_gap
    drops = m.drops + m.rejected
    tone = "error" if down else ("warn" if drops else "ok")
    state = "DOWN" if down else "imaging"
    rate_txt = f"{m.rate_hz:.1f} Hz" if m.rate_hz is not None else "– Hz"
    age_txt = f"last {m.last_frame_age_s:.1f} s ago" if m.last_frame_age_s is not None else "no frame yet"
    return f"mesoscope {state}: {m.frames} frames, {rate_txt}, drops {drops}, {age_txt}", tone


class FaultPanel(QtWidgets.QGroupBox):
    """Warnings and errors from the runner, the link and the app. Unacknowledged ones keep the banner red;
    the banner is always there (a fixed line), so nothing below it moves when a fault comes."""

    acknowledged = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Faults", parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        row = QtWidgets.QHBoxLayout()
        self.banner = Message(2)
        self.banner.setObjectName("banner")
        row.addWidget(self.banner, 1)
        self.ack = QtWidgets.QPushButton("Acknowledge")
        self.ack.setFixedSize(112, self.banner.height())
        self.ack.clicked.connect(self.acknowledge)
        self.ack.setEnabled(False)
        row.addWidget(self.ack)
        lay.addLayout(row)
        self.list = QtWidgets.QListWidget()
        self.list.setFixedHeight(62)
        self.list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(QtCore.Qt.ElideRight)
        lay.addWidget(self.list)
        self.unacknowledged = 0
        self.total = 0
        self._quiet_banner()

    def _quiet_banner(self) -> None:
        self.banner.show_text("no unacknowledged faults")
        _tone(self.banner, "")

    def add(self, fault: Fault) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(fault.wall if fault.wall is not None else time.time()))
        text = f"{when} {fault.level}: {fault.message} [{fault.source}]"
        item = QtWidgets.QListWidgetItem(text)
        item.setToolTip(text)
        item.setForeground(_brush(style.FAULT))
        self.list.insertItem(0, item)
        while self.list.count() > MAX_FAULTS:
            self.list.takeItem(self.list.count() - 1)
        self.unacknowledged += 1
        self.total += 1
        self.banner.show_text(f"⚠ {self.unacknowledged} unacknowledged fault(s); latest: {fault.message}", error=True)
        self.ack.setEnabled(True)

    def acknowledge(self) -> None:
        self.unacknowledged = 0
        self._quiet_banner()
        self.ack.setEnabled(False)
        for k in range(self.list.count()):
            item = self.list.item(k)
            if item is not None:
                item.setForeground(_brush(style.MUTED))
        self.acknowledged.emit()


def _brush(colour: str) -> QtGui.QBrush:
    return QtGui.QBrush(QtGui.QColor(colour))
