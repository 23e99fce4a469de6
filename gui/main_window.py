"""The control app's main window: set up, start and steer a session running in its own process; watch it live.

The window never owns the session: it starts a runner process (gui.launcher), then talks to it only over
ZeroMQ (gui.session_link). Closing the window detaches; a new window finds the running session through the
rig's lock file (rig.runner.lock.read_lock) and reattaches, backfilling its plots from the session folder.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

from PyQt5 import QtCore, QtWidgets

from gui.check_panel import CheckPanel
from gui.launcher import start_runner, tail
from gui.plots import PlotPanel
from gui.session_link import SessionLink
from gui.setup_panel import SetupPanel
from gui.status_panel import FaultPanel, StatusPanel
from gui.vr_view import VRPreview
from rig.runner.lock import LockInfo, RigBusy, default_lock_dir, read_lock

log = logging.getLogger(__name__)

REFRESH_MS = 50  # plots and counters at 20 Hz
WATCH_MS = 1000  # look for a session to attach to (started elsewhere, or before this window opened)
START_TIMEOUT_S = 30.0
STOP_CONFIRM_MS = 3000


class ControlPanel(QtWidgets.QGroupBox):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Control", parent)
        grid = QtWidgets.QGridLayout(self)
        self.start = QtWidgets.QPushButton("▶  Start session", objectName="start")
        self.start.setMinimumHeight(36)
        self.pause = QtWidgets.QPushButton("❚❚  Pause")
        self.stop = QtWidgets.QPushButton("■  Stop", objectName="stop")
        for b in (self.pause, self.stop):
            b.setMinimumHeight(30)
        grid.addWidget(self.start, 0, 0, 1, 4)
        grid.addWidget(self.pause, 1, 0, 1, 2)
        grid.addWidget(self.stop, 1, 2, 1, 2)
        self.reward_ul = QtWidgets.QDoubleSpinBox(minimum=0.5, maximum=20.0, singleStep=0.5, value=2.5, suffix=" µl")
        self.reward = QtWidgets.QPushButton("Manual reward", objectName="reward")
        grid.addWidget(self.reward_ul, 2, 0, 1, 2)
        grid.addWidget(self.reward, 2, 2, 1, 2)
        self.flush_s = QtWidgets.QDoubleSpinBox(minimum=0.1, maximum=60.0, singleStep=0.5, value=1.0,
                                                suffix=" s", decimals=1)
        self.flush_s.setToolTip("the valve closes by itself after this time (at most the valve's max_open_ms)")
        self.valve_open = QtWidgets.QPushButton("Flush: open")
        self.valve_close = QtWidgets.QPushButton("close")
        grid.addWidget(self.flush_s, 3, 0, 1, 2)
        grid.addWidget(self.valve_open, 3, 2)
        grid.addWidget(self.valve_close, 3, 3)
        self.message = QtWidgets.QLabel(wordWrap=True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        grid.addWidget(self.message, 4, 0, 1, 4)
        self.log = QtWidgets.QListWidget()
        self.log.setMaximumHeight(90)
        grid.addWidget(self.log, 5, 0, 1, 4)

    def session_controls(self, enabled: bool) -> None:
        for b in (self.pause, self.stop, self.reward, self.valve_open, self.valve_close):
            b.setEnabled(enabled)


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, config_path: Path, data_dir: Path | None = None, lock_dir: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("corridor-rig")
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.link: SessionLink | None = None
        self.proc: subprocess.Popen | None = None
        self._starting_since: float | None = None
        self._drawn_version = -1
        self._paused = False
        self.session_path: Path | None = None

        self.setup_panel = SetupPanel(Path(config_path), data_dir)
        self.controls = ControlPanel()
        self.checks = CheckPanel()
        self.faults = FaultPanel()
        # Setup and checks scroll when the screen is short; Control and Faults never scroll out of sight.
        setup = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(setup)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.setup_panel)
        sl.addWidget(self.checks)
        sl.addStretch(1)
        setup_scroll = QtWidgets.QScrollArea()
        setup_scroll.setWidget(setup)
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        setup_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(setup_scroll, 1)
        ll.addWidget(self.controls)
        ll.addWidget(self.faults)
        left.setFixedWidth(420)

        self.status_panel = StatusPanel()
        self.banner = QtWidgets.QLabel(objectName="banner_info")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.plots = PlotPanel()
        self.vr = VRPreview()
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.status_panel)
        rl.addWidget(self.banner)
        rl.addWidget(self.vr)
        rl.addWidget(self.plots, 1)

        central = QtWidgets.QWidget()
        cl = QtWidgets.QHBoxLayout(central)
        cl.addWidget(left)
        cl.addWidget(right, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("idle")

        c = self.controls
        c.start.clicked.connect(self.start_session)
        c.pause.clicked.connect(self.toggle_pause)
        c.stop.clicked.connect(self.stop_clicked)
        c.reward.clicked.connect(lambda: self.command("manual_reward", volume_ul=c.reward_ul.value()))
        c.valve_open.clicked.connect(lambda: self.command("valve_open", close_after_s=c.flush_s.value()))
        c.valve_close.clicked.connect(lambda: self.command("valve_close"))
        c.session_controls(False)
        self._stop_armed = False
        self.checks.button.clicked.connect(self.check_rig)

        self._refresh_timer = QtCore.QTimer(self)
        self._refresh_timer.timeout.connect(self.refresh)
        self._refresh_timer.start(REFRESH_MS)
        self._watch_timer = QtCore.QTimer(self)
        self._watch_timer.timeout.connect(self.watch)
        self._watch_timer.start(WATCH_MS)
        self.watch()

    # ---- starting and attaching --------------------------------------------------------------------

    @property
    def rig_name(self) -> str | None:
        return self.setup_panel.rig_name

    def start_session(self) -> None:
        if self.link is not None and self.link.finished is None:
            self._say("a session is attached already; stop it before starting another", error=True)
            return
        try:
            setup = self.setup_panel.setup()
            self.proc, self._runner_log = start_runner(setup, self.lock_dir)
        except (ValueError, RigBusy, OSError) as e:
            self._say(f"Not started: {e}", error=True)
            return
        self._detach()
        self._starting_since = time.monotonic()
        self.status_panel.show_state("STARTING")
        self.controls.start.setEnabled(False)
        self._say(f"starting {setup.protocol.stem} for {setup.animal} (runner pid {self.proc.pid})")

    def check_rig(self) -> None:
        """Run `rig check` on the chosen config; not while a session holds the rig's devices."""
        if self.link is not None and self.link.finished is None or self._starting_since is not None:
            self._say("the rig is running a session; check it before or after", error=True)
            return
        config = Path(self.setup_panel.config_edit.text())
        if not config.is_file():
            self._say(f"rig config {config} does not exist", error=True)
            return
        self.checks.run(config)

    def watch(self) -> None:
        """Follow a starting runner; find a running session to attach to; notice one that died silently."""
        name = self.rig_name
        if name is None:
            return
        if self._starting_since is not None:
            assert self.proc is not None
            info = _lock_dict(read_lock(name, self.lock_dir))
            if info and info.get("pid") == self.proc.pid and info.get("session") and info.get("telemetry"):
                self._starting_since = None
                self.attach(info, reattached=False)
            elif self.proc.poll() is not None:
                self._starting_since = None
                self._say(f"The session did not start (runner exit code {self.proc.returncode}):\n"
                          f"{tail(self._runner_log)}", error=True)
                self.status_panel.show_state("IDLE")
                self.controls.start.setEnabled(True)
            elif time.monotonic() - self._starting_since > START_TIMEOUT_S:
                self._starting_since = None
                self._say(f"The runner (pid {self.proc.pid}) did not report within {START_TIMEOUT_S:g} s; "
                          f"see {self._runner_log}", error=True)
                self.controls.start.setEnabled(True)
            return
        if self.link is None or self.link.finished is not None:
            info = _lock_dict(read_lock(name, self.lock_dir))
            if info and info.get("telemetry") and info.get("session") and str(info.get("session")) != str(
                self.session_path if self.link is not None else ""
            ):
                self.attach(info, reattached=True)
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None  # reaped

    def attach(self, info: dict, reattached: bool) -> None:
        self._detach()
        self.link = SessionLink(info, self)
        self.session_path = Path(info["session"])
        self.link.attached.connect(self._on_attached)
        self.link.status.connect(self._on_status)
        self.link.fault.connect(self.faults.add)
        self.link.ended.connect(self._on_ended)
        self.link.lost.connect(self._on_lost)
        self.link.reply.connect(self._on_reply)
        self._drawn_version = -1
        self.controls.start.setEnabled(False)
        self.controls.session_controls(True)
        self.status_panel.show_state("RUNNING")
        self._say(f"attached to {info.get('animal')} · {info.get('protocol')} (runner pid {info.get('pid')})")
        if reattached:
            self.banner.setText(f"Reattached to the session running on rig {info.get('rig')}: "
                                f"{info.get('animal')} · {info.get('protocol')} (runner pid {info.get('pid')})")
            self.banner.show()
        self.statusBar().showMessage(f"session folder: {self.session_path}")

    def _detach(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link.deleteLater()
            self.link = None
        self.banner.hide()

    def _on_attached(self, hello: dict) -> None:
        self.plots.set_corridors(list(hello.get("corridors", [])), list(hello.get("rewarded", [])),
                                list(hello.get("lengths_cm", [])))
        self.setWindowTitle(f"corridor-rig · {hello.get('rig')} · {hello.get('animal')} · {hello.get('protocol')}")
        self.vr.set_protocol(session_protocol(hello.get("session")))

    # ---- commands ----------------------------------------------------------------------------------

    def command(self, action: str, **params) -> None:
        if self.link is None:
            self._say("no session attached", error=True)
            return
        self.controls.log.insertItem(0, f"{time.strftime('%H:%M:%S')} → {action} {_fmt(params)}")
        self.link.send(action, **params)

    def toggle_pause(self) -> None:
        self.command("resume" if self._paused else "pause")

    def stop_clicked(self) -> None:
        if not self._stop_armed:
            self._stop_armed = True
            self.controls.stop.setText("■  Click again to stop")
            QtCore.QTimer.singleShot(STOP_CONFIRM_MS, self._disarm_stop)
            return
        self._disarm_stop()
        self.command("stop")

    def _disarm_stop(self) -> None:
        self._stop_armed = False
        self.controls.stop.setText("■  Stop")

    def _on_reply(self, reply: dict) -> None:
        action = reply.get("action")
        if action == "hello":
            return
        if reply.get("ok"):
            self.controls.log.insertItem(0, f"{time.strftime('%H:%M:%S')} ✔ {action} (iteration {reply.get('i')})")
            if action in ("pause", "resume"):
                self._set_paused(action == "pause")
        else:
            self.controls.log.insertItem(0, f"{time.strftime('%H:%M:%S')} ✖ {action}: {reply.get('error')}")
            self.faults.add({"level": "COMMAND", "message": f"{action}: {reply.get('error')}", "source": "app"})

    # ---- telemetry ---------------------------------------------------------------------------------

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.controls.pause.setText("▶  Resume" if paused else "❚❚  Pause")
        if self.link is not None and self.link.finished is None:
            self.status_panel.show_state("PAUSED" if paused else "RUNNING")

    def _on_status(self, st: dict) -> None:
        self.status_panel.show_status(st)
        if st.get("running", True) and bool(st.get("paused")) != self._paused:
            self._set_paused(bool(st.get("paused")))

    def _on_ended(self, end: dict) -> None:
        self.status_panel.show_state("FINISHED")
        self.controls.session_controls(False)
        self.controls.start.setEnabled(True)
        self._say(f"Session ended: {end.get('reason')} · {end.get('trials')} trials · {end.get('rewards')} rewards · "
                  f"{end.get('water_ul', 0):.1f} µl · folder {self.session_path}")
        self._set_paused(False)
        self.status_panel.show_state("FINISHED")

    def _on_lost(self, seconds: float) -> None:
        if self.rig_name is not None and read_lock(self.rig_name, self.lock_dir) is None:
            self._on_ended({"reason": "the runner is gone (see the session folder)"})
            return
        self.status_panel.show_state("NO TELEMETRY")
        self.faults.add({"level": "LINK", "message": f"no telemetry for {seconds:.0f} s", "source": "app"})

    def refresh(self) -> None:
        link = self.link
        if link is None or link.live is None:
            return
        live = link.live
        if live.version == self._drawn_version:
            return
        self._drawn_version = live.version
        snap = live.snapshot()
        self.plots.show_snapshot(snap)
        if snap.frames.shape[1]:
            self.vr.show_view(int(snap.frames[5, -1]), float(snap.frames[2, -1]), snap.next_corridor)
        # Counters from the same data as the plots (the 2 Hz status would lag them by up to 0.5 s).
        self.status_panel.show_counts(snap.trials, snap.rewards_n, snap.water_ul, snap.licks_n, snap.t)

    def _say(self, text: str, error: bool = False) -> None:
        from gui import style

        colour = style.FAULT if error else style.MUTED
        self.controls.message.setText(f"<span style='color:{colour}'>{_html(text)}</span>")
        self.statusBar().showMessage(text.splitlines()[0] if text else "")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Detach only: the session runs on in its own process, and a new window will reattach to it.
        self._refresh_timer.stop()
        self._watch_timer.stop()
        self._detach()
        self.vr.clear()
        super().closeEvent(event)


def session_protocol(folder: str | Path | None):
    """The protocol a session folder was run with (from its header), or None when it cannot be read."""
    from rig.datalog.reader import Session, SessionError
    from rig.loading import LoadError, protocol_from_dict

    if not folder:
        return None
    try:
        return protocol_from_dict(Session.open(folder).header.protocol, source=str(folder))
    except (SessionError, LoadError) as e:
        log.warning("no VR preview: the protocol in %s cannot be read: %s", folder, e)
        return None


def _fmt(params: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def _lock_dict(info: LockInfo | None) -> dict[str, Any] | None:
    return None if info is None else info.model_dump()
