"""Replay viewer: open a session folder and watch it as it happened, with the live window's plots.

The whole session is loaded once into a gui.live_data.LiveData; the playhead only chooses how much of it
`snapshot(t)` shows, so seeking anywhere (backwards too) costs the same as one redraw.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from gui.export_bar import ExportBar
from gui.live_data import LiveData
from gui.plots import PlotPanel, anticipation_label
from gui.session_state import Phase
from gui.status_panel import StatusPanel
from gui.text import Message
from gui.vr_view import VRPreview
from rig.datalog.reader import Session, SessionError
from rig.protocol import Protocol

SPEEDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
TICK_MS = 50
SLIDER_STEPS_PER_S = 10


class ReplayWindow(QtWidgets.QMainWindow):
    def __init__(self, path: Path | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("corridor-rig · replay")
        self.session: Session | None = None
        self.live: LiveData | None = None
        self.t = 0.0
        self.t0 = 0.0
        self.t_end = 0.0
        self.playing = False
        self._wall = time.monotonic()

        bar = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open session…")
        self.open_button.clicked.connect(self._browse)
        self.play_button = QtWidgets.QPushButton("▶  Play")
        self.play_button.setMinimumWidth(90)
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.valueChanged.connect(self._slider_moved)
        self.time_label = QtWidgets.QLabel("0:00 / 0:00")
        self.time_label.setMinimumWidth(110)
        self.speed = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.trial_box = QtWidgets.QSpinBox()
        self.trial_box.setRange(0, 0)
        self.trial_box.setPrefix("trial ")
        self.go_button = QtWidgets.QPushButton("Go")
        self.go_button.clicked.connect(lambda: self.jump_to_trial(self.trial_box.value()))
        for w in (self.open_button, self.play_button):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        for widget in (self.time_label, self.speed, self.trial_box, self.go_button):
            bar.addWidget(widget)

        self.status_panel = StatusPanel()
        self.info = Message(2)
        self.plots = PlotPanel(x_label="s before the playhead")
        self.vr = VRPreview()
        self.exports = ExportBar()
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.addLayout(bar)
        lay.addWidget(self.status_panel)
        lay.addWidget(self.info)
        lay.addWidget(self.exports)
        lay.addWidget(self.vr)
        lay.addWidget(self.plots, 1)
        self.setCentralWidget(central)

        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(TICK_MS)
        if path is not None:
            self.open(path)

    # ---- loading -----------------------------------------------------------------------------------

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Session folder (DATA/ANIMAL/DATE/NNN)")
        if path:
            try:
                self.open(Path(path))
            except SessionError as e:
                QtWidgets.QMessageBox.warning(self, "Not a session", str(e))

    def open(self, path: Path) -> None:
        """Load a session folder; raises rig.datalog.reader.SessionError for anything unreadable."""
        session = Session.open(path)
        protocol = session.header.protocol
        corridors = [c.get("name", f"corridor {k}") for k, c in enumerate(protocol.get("corridors", []))]
        rewarded = [bool(c.get("rewarded")) for c in protocol.get("corridors", [])]
        lengths = [float(c.get("texture_length_cm", 0)) + float(c.get("grey_length_cm", 0))
                   for c in protocol.get("corridors", [])]
        live = LiveData(corridors, capacity=max(len(session.frames), 1))
        live.load_session(session)
        self.session, self.live = session, live
        t = session.frames["t"]
        self.t0, self.t_end = (float(t[0]), float(t[-1])) if len(t) else (0.0, 0.0)
        self.plots.set_corridors(corridors, rewarded, lengths, anticipation_label(protocol))
        self.slider.blockSignals(True)
        self.slider.setRange(0, int(np.ceil((self.t_end - self.t0) * SLIDER_STEPS_PER_S)))
        self.slider.blockSignals(False)
        from rig.datalog.info import session_info

        info = session_info(session)
        self.trial_box.setMaximum(max(live.trial_starts.n - 1, 0))
        h = session.header
        state = "complete" if session.complete else f"INCOMPLETE ({info['end_reason']})"
        # The counts are `rig info`'s: trials ended (a trial cut short by the end is not one), not started.
        self.info.show_text(f"{path} · {h.animal} · {protocol.get('name')} ({protocol.get('kind')}) · seed "
                            f"{h.seed} · {h.start_time[:19]} · {state} · {info['trials']} trials · "
                            f"{info['rewards']} rewards · {info['water_ul']:.1f} µl")
        self.setWindowTitle(f"corridor-rig · replay · {h.animal} · {protocol.get('name')} · {path.name}")
        self.status_panel.show_phase(Phase.FINISHED if session.complete else Phase.STOPPED_EARLY)
        self.status_panel.show_missed(info.get("missed_display_frames"))  # the session's, as `rig info`
        self.vr.set_protocol(_protocol(session))
        self.exports.set_session(path)
        self.seek(self.t0)

    # ---- transport ---------------------------------------------------------------------------------

    @property
    def speed_factor(self) -> float:
        return float(self.speed.currentData())

    def set_speed(self, factor: float) -> None:
        self.speed.setCurrentIndex(SPEEDS.index(factor))

    def toggle_play(self) -> None:
        self.play(not self.playing)

    def play(self, on: bool = True) -> None:
        if self.live is None:
            return
        if on and self.t >= self.t_end:
            self.seek(self.t0)
        self.playing = on
        self._wall = time.monotonic()
        self.play_button.setText("❚❚  Pause" if on else "▶  Play")

    def seek(self, t: float) -> None:
        if self.live is None:
            return
        self.t = min(max(t, self.t0), self.t_end)
        self.slider.blockSignals(True)
        self.slider.setValue(int(round((self.t - self.t0) * SLIDER_STEPS_PER_S)))
        self.slider.blockSignals(False)
        self.draw()

    def jump_to_trial(self, trial: int) -> None:
        if self.live is None:
            return
        trials = self.live.trial_starts.col("trial")
        times = self.live.trial_starts.col("t")
        hit = np.flatnonzero(trials == trial)
        if len(hit):
            self.seek(float(times[hit[0]]))

    def _slider_moved(self, value: int) -> None:
        self.seek(self.t0 + value / SLIDER_STEPS_PER_S)

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._wall = now - self._wall, now
        if self.playing and self.live is not None:
            self.seek(self.t + dt * self.speed_factor)
            if self.t >= self.t_end:
                self.play(False)

    def draw(self) -> None:
        assert self.live is not None
        snap = self.live.snapshot(self.t)
        self.plots.show_snapshot(snap)
        if snap.frames.shape[1]:
            self.vr.show_view(int(snap.frames[5, -1]), float(snap.frames[2, -1]), snap.next_corridor)
            if not self.playing:  # a seek while paused shows its picture at once
                self.vr.draw_now()
        manual = sum(len(p[0]) for p in snap.manual_rewards.values())
        self.status_panel.show_counts(snap.trials, snap.rewards_n, manual, snap.water_ul, snap.licks_n,
                                      self.t - self.t0)
        self.time_label.setText(f"{_mmss(self.t - self.t0)} / {_mmss(self.t_end - self.t0)}")
        if self.trial_box.maximum() and not self.trial_box.hasFocus():
            self.trial_box.blockSignals(True)
            self.trial_box.setValue(snap.trial)
            self.trial_box.blockSignals(False)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        self._timer.stop()
        self.vr.clear()
        super().closeEvent(event)


def _protocol(session: Session) -> Protocol | None:
    """The protocol a session was run with (from its header), for the VR preview; None if it is invalid."""
    from rig.loading import LoadError, protocol_from_dict

    try:
        return protocol_from_dict(session.header.protocol, source=str(session.path))
    except LoadError:
        return None


def _mmss(s: float) -> str:
    m, s = divmod(int(max(s, 0)), 60)
    return f"{m}:{s:02d}"
