"""Counters, loop health and faults. Faults stay listed (and the banner red) until acknowledged."""

from __future__ import annotations

import time

from PyQt5 import QtCore, QtWidgets

from gui import style

MAX_FAULTS = 200


class BigNumber(QtWidgets.QWidget):
    def __init__(self, caption: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.setSpacing(0)
        self.value = QtWidgets.QLabel("–", objectName="big")
        self.value.setAlignment(QtCore.Qt.AlignCenter)
        cap = QtWidgets.QLabel(caption, objectName="bigcaption")
        cap.setAlignment(QtCore.Qt.AlignCenter)
        lay.addWidget(self.value)
        lay.addWidget(cap)

    def set(self, text: str) -> None:
        self.value.setText(text)


class StatusPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.state = QtWidgets.QLabel("IDLE", objectName="state")
        self._set_state("IDLE", "#3a3f48")
        row.addWidget(self.state)
        self.trials = BigNumber("TRIALS")
        self.rewards = BigNumber("REWARDS")
        self.water = BigNumber("WATER (µl)")
        self.licks = BigNumber("LICKS")
        self.elapsed = BigNumber("ELAPSED")
        for w in (self.trials, self.rewards, self.water, self.licks, self.elapsed):
            row.addWidget(w, 1)
        lay.addLayout(row)
        self.details = QtWidgets.QLabel(objectName="muted")
        self.details.setTextFormat(QtCore.Qt.RichText)
        self.details.setWordWrap(True)
        lay.addWidget(self.details)

    def _set_state(self, text: str, colour: str) -> None:
        self.state.setText(text)
        self.state.setStyleSheet(f"background: {colour}; color: white;")

    def show_state(self, text: str) -> None:
        colours = {"RUNNING": "#2f7d4f", "PAUSED": "#9a7a22", "FINISHED": "#2c4a6b", "IDLE": "#3a3f48",
                   "STARTING": "#2c4a6b", "NO TELEMETRY": style.FAULT, "STOPPED": "#2c4a6b"}
        self._set_state(text, colours.get(text, "#3a3f48"))

    def show_counts(self, trials: int, rewards: int, water_ul: float, licks: int, elapsed_s: float) -> None:
        self.trials.set(str(trials))
        self.rewards.set(str(rewards))
        self.water.set(f"{water_ul:.1f}")
        self.licks.set(str(licks))
        m, s = divmod(int(elapsed_s), 60)
        h, m = divmod(m, 60)
        self.elapsed.set(f"{h}:{m:02d}:{s:02d}")

    def show_status(self, st: dict) -> None:
        period = st.get("period_ms_p50")
        worst = st.get("period_ms_max")
        missed = st.get("missed_frames", 0)
        loop = f"loop {period:.1f} ms (max {worst:.1f})" if period is not None else "loop –"
        miss_col = style.FAULT if missed else style.OK
        disk = st.get("free_disk_mb")
        disk_txt = f"{disk / 1000:.1f} GB free" if disk is not None else "disk –"
        disk_col = style.FAULT if disk is not None and disk < 1000 else style.MUTED
        drivers = st.get("drivers") or {}
        drv = " ".join(f"{k}" for k in drivers)
        valve = f" · <span style='color:{style.WARN}'>VALVE OPEN (flushing)</span>" if st.get("valve_open") else ""
        self.details.setText(
            f"{loop} · <span style='color:{miss_col}'>missed frames {missed}</span> · "
            f"<span style='color:{disk_col}'>{disk_txt}</span> · drivers <span style='color:{style.OK}'>"
            f"● {drv or '–'}</span>{valve}{mesoscope_text(st.get('mesoscope'))}"
        )


def mesoscope_text(m: dict | None) -> str:
    """The mesoscope link in the status line: frames, rate, drops, last frame's age (red when down)."""
    if not m:
        return ""
    rate = m.get("rate_hz")
    age = m.get("last_frame_age_s")
    down = not m.get("alive") or m.get("in_gap")
    drops = int(m.get("drops") or 0) + int(m.get("rejected") or 0)
    colour = style.FAULT if down else (style.WARN if drops else style.OK)
    state = "DOWN" if down else "imaging"
    rate_txt = f"{rate:.1f} Hz" if rate is not None else "– Hz"
    age_txt = f"last {age:.1f} s ago" if age is not None else "no frame yet"
    return (f" · <span style='color:{colour}'>mesoscope {state}: {m.get('frames', 0)} frames, {rate_txt}, "
            f"drops {drops}, {age_txt}</span>")


class FaultPanel(QtWidgets.QGroupBox):
    """Warnings and errors from the runner (and the link). Unacknowledged ones keep a red banner up."""

    acknowledged = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Faults", parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.banner = QtWidgets.QLabel(objectName="banner_fault")
        self.banner.setWordWrap(True)
        self.banner.hide()
        lay.addWidget(self.banner)
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(110)
        lay.addWidget(self.list)
        self.ack = QtWidgets.QPushButton("Acknowledge all")
        self.ack.clicked.connect(self.acknowledge)
        self.ack.setEnabled(False)
        lay.addWidget(self.ack)
        self.unacknowledged = 0

    def add(self, fault: dict) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(fault.get("wall", time.time())))
        text = f"{when} {fault.get('level', 'FAULT')}: {fault.get('message', '')} [{fault.get('source', '')}]"
        item = QtWidgets.QListWidgetItem(text)
        item.setForeground(_brush(style.FAULT))
        self.list.insertItem(0, item)
        while self.list.count() > MAX_FAULTS:
            self.list.takeItem(self.list.count() - 1)
        self.unacknowledged += 1
        self.banner.setText(f"⚠ {self.unacknowledged} unacknowledged fault(s) — latest: {fault.get('message', '')}")
        self.banner.show()
        self.ack.setEnabled(True)

    def acknowledge(self) -> None:
        self.unacknowledged = 0
        self.banner.hide()
        self.ack.setEnabled(False)
        for k in range(self.list.count()):
            self.list.item(k).setForeground(_brush(style.MUTED))
        self.acknowledged.emit()


def _brush(colour: str):
    from PyQt5 import QtGui

    return QtGui.QBrush(QtGui.QColor(colour))
