"""The control app's main window: set up, start and steer a session running in its own process; watch it live.

The window never owns the session: it starts a runner process (gui.launcher), then talks to it only through
gui.session_link. Closing the window detaches (after asking, while a session runs); a new window finds
the running session through the rig's lock file (rig.runner.lock.read_lock) and reattaches.

What the window says is true (gui.session_state): RUNNING / PAUSED from the runner's status, STALLED when
telemetry stops while the runner lives, and at the end FINISHED, STOPPED EARLY or CRASHED from the session
folder, whose counts then replace the live ones (they are `rig info`'s). A crashed runner leaves a fault
that stays until acknowledged, and the window is ready for the next session at once.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt5 import QtCore, QtGui, QtWidgets

from gui.check_panel import CheckPanel
from gui.control_panel import ControlPanel
from gui.day_panel import DayPanel, SummaryPanel
from gui.lab_view import LabRecords, RigLabRecords
from gui.launcher import Spawner, lock_info, start_runner, tail
from gui.plots import PlotPanel, anticipation_label
from gui.session_link import SessionLink
from gui.session_state import Outcome, Phase
from gui.setup_panel import SetupPanel
from gui.stages import StageProgress
from gui.status_panel import FaultPanel, StatusPanel
from gui.text import Message
from gui.vr_view import VRPreview
from gui.wire import End, Fault, Hello, Limits, Reply, Status
from rig.protocol import Protocol
from rig.runner.lock import RigBusy, default_lock_dir

if TYPE_CHECKING:
    from rig.config import LabSettings

log = logging.getLogger(__name__)

REFRESH_MS = 100  # plots and counters at 10 Hz
WATCH_MS = 1000  # look for a session to attach to (started elsewhere, or before this window opened)
DAY_REFRESH_S = 10.0  # the animal's water today, during a session
START_TIMEOUT_S = 30.0
STOP_CONFIRM_MS = 3000
MIN_SIZE = (1280, 720)  # below this the window scrolls rather than squeezing widgets into each other
LEFT_WIDTH = 400

LabFactory = Callable[[Path], LabRecords]


class StageBox(QtWidgets.QGroupBox):
    """The stage in force and its criterion, live; an advance is announced for a while."""

    ANNOUNCE_S = 30.0

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Stage", parent)
        lay = QtWidgets.QVBoxLayout(self)
        self.text = Message(4)
        self.advance = Message(2)
        lay.addWidget(self.text)
        lay.addWidget(self.advance)
        lay.addStretch(1)
        self.clear()

    def clear(self) -> None:
        self.text.show_text("no session")
        self.advance.clear()

    def show_progress(self, p: StageProgress | None, t_now: float) -> None:
        if p is None:
            return
        self.text.show_text(p.text())
        a = p.last_advance
        if a is None:
            self.advance.clear()
        else:
            recent = t_now - a.t < self.ANNOUNCE_S
            why = {"trials": "its trial count", "criterion": "the learning criterion",
                   "anticipatory": "anticipatory licking"}.get(a.reason, a.reason)
            self.advance.show_text(f"{'▲ ' if recent else ''}advanced {a.from_name} → {a.to_name} at trial {a.trial} "
                                   f"(t = {a.t:.0f} s, by {why})", ok=recent)


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, config_path: Path, data_dir: Path | None = None, lock_dir: Path | None = None,
                 lab_factory: LabFactory | None = RigLabRecords, spawner: Spawner | None = None) -> None:
        """spawner: starts runners at the app's original priority (gui.launcher); without one they are
        started from the GUI thread and inherit its priority."""
        super().__init__()
        self.spawner = spawner
        self.setWindowTitle("corridor-rig")
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.link: SessionLink | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._runner_log: Path | None = None
        self._starting_since: float | None = None
        self._drawn_version = -1
        self._paused = False
        self._last_seen_session: str | None = None
        self._next_day_refresh = 0.0
        self._faults_base = 0
        self.phase = Phase.IDLE
        self.session_path: Path | None = None
        self.outcome: Outcome | None = None
        self._lab_factory = lab_factory
        self.confirm_quit: Callable[[], bool] = self._ask_quit

        self.setup_panel = SetupPanel(Path(config_path), data_dir)
        self.controls = ControlPanel()
        self.checks = CheckPanel()
        self.faults = FaultPanel()
        self.day = DayPanel(self._make_lab())
        self.summary = SummaryPanel(self.day)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(_scrolled(self.setup_panel), "Setup")
        self.tabs.addTab(_scrolled(self.checks), "Checks")
        self.day_scroll = _scrolled(self.day)
        self.tabs.addTab(self.day_scroll, "Animal's day")
        self.summary_scroll = _scrolled(self.summary)
        self.tabs.addTab(self.summary_scroll, "End of session")
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.tabs, 1)
        ll.addWidget(self.controls)
        ll.addWidget(self.faults)
        left.setFixedWidth(LEFT_WIDTH)

        self.status_panel = StatusPanel()
        self.banner = Message(1)  # always there (one line), so nothing moves when it says something
        self.plots = PlotPanel()
        self.vr = VRPreview()
        self.vr.setFixedWidth(500)
        self.stage = StageBox()
        mid = QtWidgets.QHBoxLayout()
        mid.addWidget(self.vr)
        mid.addWidget(self.stage, 1)
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.status_panel)
        rl.addWidget(self.banner)
        rl.addLayout(mid)
        rl.addWidget(self.plots, 1)

        content = QtWidgets.QWidget()
        cl = QtWidgets.QHBoxLayout(content)
        cl.setContentsMargins(6, 6, 6, 6)
        cl.addWidget(left)
        cl.addWidget(right, 1)
        content.setMinimumSize(MIN_SIZE[0] - 24, MIN_SIZE[1] - 70)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.setCentralWidget(scroll)
        self.statusBar().showMessage("idle")

        c = self.controls
        c.start.clicked.connect(self.start_session)
        c.pause.clicked.connect(self.toggle_pause)
        c.stop.clicked.connect(self.stop_clicked)
        c.reward.clicked.connect(self._manual_reward)
        c.valve_open.clicked.connect(self._flush)
        c.valve_close.clicked.connect(lambda: self.command("valve_close"))
        c.take_control.clicked.connect(self._take_control)
        c.session_controls(False)
        self._stop_armed = False
        self.checks.button.clicked.connect(self.check_rig)
        self.setup_panel.config_changed.connect(self._config_changed)
        self.setup_panel.animal_changed.connect(self._animal_changed)
        self.day.note_added.connect(self._note_during_session)
        self.day.set_animal(self.setup_panel.animal_id)

        self._refresh_timer = QtCore.QTimer(self)
        self._refresh_timer.timeout.connect(self.refresh)
        self._refresh_timer.start(REFRESH_MS)
        self._watch_timer = QtCore.QTimer(self)
        self._watch_timer.timeout.connect(self.watch)
        self._watch_timer.start(WATCH_MS)
        self.watch()

    # ---- helpers -----------------------------------------------------------------------------------

    def _make_lab(self) -> LabRecords | None:
        d = self.setup_panel.data_dir
        if self._lab_factory is None or d is None:
            return None
        if self._lab_factory is RigLabRecords:  # the rig config's lab settings: alert threshold, who records
            lab = self._config_lab()
            if lab is not None:
                return RigLabRecords(d, lab.min_weight_fraction, by=lab.experimenter or "")
        return self._lab_factory(d)

    def _config_lab(self) -> LabSettings | None:
        from rig.loading import load_config
        from rig.yamlload import LoadError

        try:
            return load_config(Path(self.setup_panel.config_edit.text())).lab
        except (LoadError, OSError):
            return None  # the setup panel says what is wrong with the config

    @property
    def rig_name(self) -> str | None:
        return self.setup_panel.rig_name

    @property
    def attached(self) -> bool:
        """A session is attached and not over."""
        return self.link is not None and self.link.result is None

    def set_phase(self, phase: Phase, note: str = "") -> None:
        self.phase = phase
        self.status_panel.show_phase(phase, note)
        live = phase in (Phase.RUNNING, Phase.PAUSED, Phase.STALLED)
        controller = self.link.controller if self.link is not None else True
        self.controls.show_control(live, controller, self.link.hello.controlled_by
                                   if self.link is not None and self.link.hello is not None else None)
        self.controls.start.setEnabled(not phase.live)

    def _say(self, text: str, error: bool = False) -> None:
        self.controls.message.show_text(text, error=error)
        self.controls.add_log(("✖ " if error else "") + text.splitlines()[0] if text else "")
        self.statusBar().showMessage(text.splitlines()[0] if text else "")

    def _config_changed(self, config: str) -> None:
        self.checks.reset(config)
        self.day.lab = self._make_lab()
        self.day.refresh()
        self.summary.refresh()

    def _animal_changed(self, animal: str) -> None:
        if not self.attached:
            self.day.set_animal(animal)

    # ---- starting and attaching --------------------------------------------------------------------

    def start_session(self) -> None:
        if self.attached or self._starting_since is not None:
            self._say("a session is running on this rig already; stop it before starting another", error=True)
            return
        try:
            setup = self.setup_panel.setup()
            self.proc, self._runner_log = start_runner(setup, self.lock_dir, self.spawner)
        except (ValueError, RigBusy, OSError) as e:
            self._say(f"Not started: {e}", error=True)
            return
        self._detach()
        self._clear_session_view()
        self._starting_since = time.monotonic()
        self.set_phase(Phase.STARTING)
        self.day.set_animal(setup.animal)
        self._say(f"starting {setup.protocol.stem} for {setup.animal} (runner pid {self.proc.pid})")

    def _clear_session_view(self) -> None:
        """Nothing of the previous session stays on screen once another one starts."""
        self.plots.clear()
        self.status_panel.clear()
        self.stage.clear()
        self.vr.clear()
        self.banner.clear()
        self.session_path = None
        self.outcome = None
        self._drawn_version = -1
        self.setWindowTitle("corridor-rig")

    def check_rig(self) -> None:
        """Run `rig check` on the chosen config; not while a session holds the rig's devices."""
        if self.attached or self._starting_since is not None:
            self._say("the rig is running a session; check it before or after", error=True)
            return
        config = Path(self.setup_panel.config_edit.text())
        if not config.is_file():
            self._say(f"rig config {config} does not exist", error=True)
            return
        self.tabs.setCurrentIndex(1)
        self.checks.run(config)

    def watch(self) -> None:
        """Follow a starting runner; find a running session to attach to; re-check the chosen protocol."""
        self.setup_panel.recheck()
        name = self.rig_name
        if name is None:
            return
        if self._starting_since is not None:
            self._watch_start(name)
            return
        if not self.attached:
            try:
                info = lock_info(name, self.lock_dir)
            except RigBusy as e:
                self.banner.show_text(str(e), error=True)
                info = None
            if info and info.get("telemetry") and info.get("session") and str(info["session"]) != \
                    self._last_seen_session:
                self.attach(info, reattached=True)
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None  # reaped
        if self.attached and time.monotonic() > self._next_day_refresh:
            self._next_day_refresh = time.monotonic() + DAY_REFRESH_S
            self.day.refresh()

    def _watch_start(self, name: str) -> None:
        assert self.proc is not None and self._starting_since is not None
        try:
            info = lock_info(name, self.lock_dir)
        except RigBusy:
            info = None
        if info and info.get("pid") == self.proc.pid and info.get("session") and info.get("telemetry"):
            self._starting_since = None
            self.attach(info, reattached=False)
        elif self.proc.poll() is not None:
            self._starting_since = None
            log_text = tail(self._runner_log) if self._runner_log is not None else ""
            self._say(f"The session did not start (runner exit code {self.proc.returncode}):\n{log_text}",
                      error=True)
            self.set_phase(Phase.IDLE)
        elif time.monotonic() - self._starting_since > START_TIMEOUT_S:
            self._starting_since = None
            self._say(f"The runner (pid {self.proc.pid}) did not report within {START_TIMEOUT_S:g} s; "
                      f"see {self._runner_log}", error=True)
            self.set_phase(Phase.IDLE)

    def attach(self, info: dict[str, Any], reattached: bool) -> None:
        self._detach()
        self._clear_session_view()
        link = SessionLink(info, self)
        self.link = link
        self.session_path = Path(info["session"])
        self._last_seen_session = str(info["session"])
        link.attached.connect(self._on_attached)
        link.status.connect(self._on_status)
        link.fault.connect(self._on_fault)
        link.ended.connect(self._on_ended)
        link.over.connect(self._on_over)
        link.stalled.connect(self._on_stalled)
        link.resumed.connect(self._on_resumed)
        link.reply.connect(self._on_reply)
        link.control.connect(self._on_control)
        self._paused = False
        self._faults_base = self.faults.total
        self.set_phase(Phase.RUNNING)
        animal = str(info.get("animal") or "")
        self.day.set_animal(animal)
        self.day.set_session(self.session_path, running=True)
        self._say(f"attached to {animal} · {info.get('protocol')} (runner pid {info.get('pid')})")
        if reattached:
            self.banner.show_text(f"Reattached to the session running on rig {info.get('rig')}: {animal} · "
                                  f"{info.get('protocol')} (runner pid {info.get('pid')})")
        else:
            link.take_control()  # the window that started the session controls it; others view, or take over
        self.statusBar().showMessage(f"session folder: {self.session_path}")

    def _detach(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link.deleteLater()
            self.link = None

    def _on_attached(self, hello: Hello) -> None:
        protocol_dict, protocol, limits, source = session_facts(hello)
        label = anticipation_label(protocol_dict) if protocol_dict is not None else "before the cue"
        self.plots.set_corridors(hello.corridors, hello.rewarded, hello.lengths_cm, label)
        self.setWindowTitle(f"corridor-rig · {hello.rig} · {hello.animal} · {hello.protocol}")
        self.vr.set_protocol(protocol)
        self.controls.set_limits(limits, source)
        self._drawn_version = -1

    # ---- commands ----------------------------------------------------------------------------------

    def command(self, action: str, **params: Any) -> None:
        if self.link is None or not self.attached:
            self._say("no session attached", error=True)
            return
        if not self.link.controller:
            self._say("view only: take control of the session first", error=True)
            return
        self.controls.add_log(f"→ {action} {_fmt(params)}")
        self.link.send(action, **params)

    def _manual_reward(self) -> None:
        v = self.controls.reward_ul.value()
        if v is None:
            self._say(f"no reward: {self.controls.reward_ul.problem}", error=True)
            return
        self.command("manual_reward", volume_ul=v)

    def _flush(self) -> None:
        v = self.controls.flush_s.value()
        if v is None:
            self._say(f"no flush: {self.controls.flush_s.problem}", error=True)
            return
        self.command("valve_open", close_after_s=v)

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

    def _take_control(self) -> None:
        if self.link is None:
            return

        def done(r: Reply) -> None:
            if not r.ok:
                self._say(f"could not take control: {r.error}", error=True)

        self.link.take_control(done)

    def _note_during_session(self, text: str) -> None:
        if self.link is None or not self.attached:
            return

        def done(r: Reply) -> None:
            if r.ok:
                self.day.note_msg.show_text("note saved in the lab records and logged by the runner", ok=True)
            else:
                self.day.note_msg.show_text(f"note saved in the lab records; the runner did not log it: {r.error}",
                                            warn=True)

        self.link.note(text, done)

    def _on_reply(self, reply: Reply) -> None:
        action = reply.action
        if action == "hello":
            return
        if reply.ok:
            self.controls.add_log(f"✔ {action} (iteration {reply.body.get('i')})")
            if action in ("pause", "resume"):
                self._set_paused(action == "pause")
        elif action == "note":  # said in the Day panel; here only the gist
            self.controls.add_log("note kept in the lab records only: the runner did not log it")
        else:
            self.controls.add_log(f"✖ {action}: {reply.error}")
            if action != "take_control":  # said where it was asked for
                self.faults.add(Fault("COMMAND", f"{action}: {reply.error}", "app", time.time()))
                self._say(f"{action} refused: {reply.error}", error=True)

    def _on_control(self, controller: bool, controlled_by: object) -> None:
        self.set_phase(self.phase)

    # ---- telemetry ---------------------------------------------------------------------------------

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.controls.pause.setText("▶  Resume" if paused else "❚❚  Pause")
        if self.attached and self.phase in (Phase.RUNNING, Phase.PAUSED):
            self.set_phase(Phase.PAUSED if paused else Phase.RUNNING)

    def _on_status(self, st: Status) -> None:
        self.status_panel.show_status(st)
        live = self.link.live if self.link is not None else None
        if live is not None and st.stage is not None:
            live.stages.from_status(st)
            self.stage.show_progress(live.stages.progress(), st.t)
        if st.running and st.paused != self._paused:
            self._set_paused(st.paused)

    def _on_fault(self, fault: Fault) -> None:
        self.faults.add(fault)

    def _on_stalled(self, seconds: float) -> None:
        if not self.attached:
            return
        self.set_phase(Phase.STALLED, f"{seconds:.0f} s silent")
        self.faults.add(Fault("LINK", f"no telemetry for {seconds:.0f} s; the runner process is alive", "app",
                              time.time()))

    def _on_resumed(self) -> None:
        if self.attached:
            self.set_phase(Phase.PAUSED if self._paused else Phase.RUNNING)
            self._say("telemetry is back")

    def _on_ended(self, end: End) -> None:
        self.controls.session_controls(False)
        self._say(f"the runner reports the end of the session ({end.reason}); reading the folder…")

    def _on_over(self, out: Outcome) -> None:
        self.outcome = out
        self._set_paused(False)
        self.set_phase(out.phase)
        i = out.info
        if i is not None:
            elapsed = float(i.get("duration_s") or 0.0)
            self.status_panel.show_counts(i["trials"], i["rewards"], i.get("rewards_manual", 0), i["water_ul"],
                                          i["licks"], elapsed)
            self.status_panel.show_missed(i.get("missed_display_frames"))
        self._say(out.summary_line(), error=out.phase is Phase.CRASHED)
        if out.phase is Phase.CRASHED:
            pid = self.link.info.get("pid") if self.link is not None else None
            self.faults.add(Fault("CRASH", f"the session crashed (runner pid {pid}): {out.summary_line()}", "app",
                                  time.time()))
        learning = _learning(out)
        self.day.set_session(self.session_path, running=False)
        self.summary.show_outcome(out, learning, self.faults.total - self._faults_base)
        self.tabs.setCurrentWidget(self.summary_scroll)
        self.setup_panel.refresh_animals()
        if self.proc is not None:
            self.proc.poll()  # reap a runner we started

    def refresh(self) -> None:
        link = self.link
        if link is None or link.live is None:
            return
        self.status_panel.show_link(link.bad_messages, link.last_bad)
        live = link.live
        if live.version == self._drawn_version:
            return
        self._drawn_version = live.version
        snap = live.snapshot()
        self.plots.show_snapshot(snap)
        if snap.frames.shape[1]:
            self.vr.show_view(int(snap.frames[5, -1]), float(snap.frames[2, -1]), snap.next_corridor)
        self.stage.show_progress(snap.stage, snap.t)
        counts = link.counts
        if counts is not None and link.result is None:
            # Counts from the session folder, by `rig info`'s rules; elapsed from the newest frame.
            self.status_panel.show_counts(counts.trials, counts.rewards, counts.rewards_manual,
                                          round(counts.water_ul, 6), counts.licks, snap.t)
            self.status_panel.show_missed(counts.missed_display_frames)

    # ---- closing -----------------------------------------------------------------------------------

    def _ask_quit(self) -> bool:
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Question)
        box.setWindowTitle("A session is running")
        box.setText("A session is running on this rig. Quit the app anyway?")
        box.setInformativeText("The session keeps running in its own process; a new window reattaches to it. "
                               "To end it, use Stop first.")
        quit_button = box.addButton("Quit, keep the session running", QtWidgets.QMessageBox.AcceptRole)
        box.addButton("Cancel", QtWidgets.QMessageBox.RejectRole)
        box.setDefaultButton(QtWidgets.QMessageBox.Cancel)
        box.exec_()
        return box.clickedButton() is quit_button

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        if (self.attached or self._starting_since is not None) and not self.confirm_quit():
            event.ignore()
            return
        # Detach only: the session runs on in its own process, and a new window will reattach to it.
        self._refresh_timer.stop()
        self._watch_timer.stop()
        self._detach()
        self.vr.clear()
        super().closeEvent(event)


def _scrolled(w: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    s = QtWidgets.QScrollArea()
    s.setWidget(w)
    s.setWidgetResizable(True)
    s.setFrameShape(QtWidgets.QFrame.NoFrame)
    s.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
    return s


def session_facts(hello: Hello) -> tuple[dict[str, Any] | None, Protocol | None, Limits, str]:
    """From the session folder's header: the protocol (as recorded, and validated for the VR preview), and
    what the operator may ask for (the runner's limits when it reports them, else the session's rig config)."""
    from rig.control.server import MAX_MANUAL_REWARD_UL
    from rig.datalog.reader import SessionError, read_header
    from rig.loading import LoadError, protocol_from_dict

    protocol_dict: dict[str, Any] | None = None
    protocol = None
    flush_max: float | None = None
    if hello.session:
        try:
            header = read_header(Path(hello.session))
            protocol_dict = header.protocol
            flush_max = _max_open_s(header.config)
            protocol = protocol_from_dict(header.protocol, source=str(hello.session))
        except (SessionError, LoadError, OSError) as e:
            log.warning("the session's header cannot be read fully: %s", e)
    if hello.limits is not None:
        return protocol_dict, protocol, hello.limits, "reported by the runner"
    if flush_max is not None:
        return protocol_dict, protocol, Limits(MAX_MANUAL_REWARD_UL, flush_max), "the valve's max_open_ms"
    return protocol_dict, protocol, Limits(MAX_MANUAL_REWARD_UL, Limits().flush_s_max), "a default"


def _max_open_s(config: dict[str, Any]) -> float | None:
    """The valve's max_open_ms (as seconds) of a rig config recorded in a session header."""
    from pydantic import ValidationError

    from rig.config import RigConfig

    try:
        params = RigConfig.model_validate(config).driver_params("valve")
    except (ValidationError, ValueError, KeyError):
        return None
    ms = getattr(params, "max_open_ms", None)
    return float(ms) / 1000.0 if isinstance(ms, int | float) and ms > 0 else None


def _learning(out: Outcome) -> str | None:
    """The session's anticipatory licking and the suggested next protocol, for the summary."""
    from gui.suggest import anticipatory_fraction, protocols_run, suggest_next
    from rig.datalog.reader import Session, SessionError

    if out.folder is None or out.info is None:
        return None
    try:
        s = Session.open(out.folder)
    except SessionError:
        return None
    frac, n = anticipatory_fraction(s)
    sug = suggest_next(out.info, s, protocols_run(Path(out.folder).parent.parent))  # DATA/ANIMAL/DATE/NNN
    head = f"anticipatory licking {frac:.0%} of the last {n} rewarded trials" if frac is not None else \
        "no rewarded trial finished"
    return head + (f" · next: {' or '.join(sug.choices)} ({sug.reason})" if sug is not None else "")


def _fmt(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
