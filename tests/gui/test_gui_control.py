"""The window's side of session control, against a stand-in runner speaking the control protocol on real
ZeroMQ sockets (tests/gui/fake_runner.py), under a private Xvfb: one controlling window (others view only,
or take control explicitly), notes during a session (sent to the runner and kept in the lab records), the
stage and its criterion live, and a question before quitting mid-session."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import pytest
from PyQt5 import QtCore, QtWidgets

from gui.lab_view import Note, Subject, WaterDay, Weighing
from tests.gui.fake_runner import FakeRunner
from tests.support.paths import REPO

CORRIDORS = ["leaf1", "circle1"]


class FakeLab:
    """gui.lab_view.LabRecords in memory."""

    def __init__(self) -> None:
        self.weights: list[tuple[str, float, datetime]] = []
        self.supplements: list[tuple[str, float, datetime]] = []
        self.note_list: list[tuple[str, Note]] = []

    def subject(self, animal: str) -> Subject | None:
        return Subject(animal, restricted=True, baseline_weight_g=25.0, water_target_ul=1000.0)

    def weight(self, animal: str, day: date) -> Weighing | None:
        mine = [Weighing(g, t) for a, g, t in self.weights if a == animal and t.date() == day]
        return mine[-1] if mine else None

    def record_weight(self, animal: str, grams: float, when: datetime) -> None:
        self.weights.append((animal, grams, when))

    def water(self, animal: str, day: date) -> WaterDay:
        supp = sum(v for a, v, t in self.supplements if a == animal and t.date() == day)
        return WaterDay(day, 300.0, supp, 1000.0, 1)

    def add_supplement(self, animal: str, volume_ul: float, when: datetime) -> None:
        self.supplements.append((animal, volume_ul, when))

    def notes(self, animal: str, session: Path | None) -> list[Note]:
        key = str(session) if session is not None else None
        return [n for a, n in self.note_list if a == animal and n.session == key]

    def add_note(self, animal: str, text: str, when: datetime, session: Path | None, during: bool) -> None:
        self.note_list.append((animal, Note(when, text, str(session) if session is not None else None, during)))


@pytest.fixture(scope="module")
def staged_folder(tmp_path_factory):
    """A real no-cue session whose first stage hands over after 3 trials (the advance of issue 15)."""
    from rig import api

    data = tmp_path_factory.mktemp("ctl")
    text = (REPO / "examples" / "staged_zone_task.yaml").read_text().replace("after_trials: 300", "after_trials: 3")
    proto = data / "nocue_fast_advance.yaml"
    proto.write_text(text)
    return api.run(proto, fast=True, max_trials=6, data_dir=data / "data", animal="F1", seed=2)


def attach(qapp, qtbot, runner: FakeRunner, tmp_path: Path, lab: FakeLab | None = None):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    w = MainWindow(REPO / "config" / "sim.yaml", tmp_path / "data", tmp_path / "locks",
                   lab_factory=(lambda d: lab) if lab is not None else None)
    qtbot.addWidget(w)
    w.confirm_quit = lambda: True
    w.show()
    w.attach(runner.info, reattached=True)  # a session this window did not start

    def ready() -> bool:
        runner.publish("status", {"i": 1, "running": True})
        return w.link is not None and w.link.live is not None and w.link.hello is not None

    qtbot.waitUntil(ready, timeout=10_000)
    return w


def test_a_second_window_is_view_only_until_it_takes_control(qapp, qtbot, staged_folder, tmp_path):
    runner = FakeRunner(staged_folder, CORRIDORS, controller=False, controlled_by="the window of pid 4242 on rigpc")
    try:
        w = attach(qapp, qtbot, runner, tmp_path)
        c = w.controls
        assert "view only: the session is controlled by the window of pid 4242 on rigpc" == c.control_line.full_text
        assert not any(b.isEnabled() for b in (c.pause, c.stop, c.reward, c.valve_open, c.valve_close))
        assert c.take_control.isEnabled()
        w.command("pause")  # asked anyway (a script, a shortcut): refused in the window, nothing sent
        assert "view only" in c.message.full_text and all(r["action"] != "pause" for r in runner.requests)
        runner.grant_control = False
        c.take_control.click()
        qtbot.waitUntil(lambda: "could not take control" in c.message.full_text, timeout=5000)
        assert "the controlling window refused" in c.message.full_text and not c.pause.isEnabled()
        runner.grant_control = True
        c.take_control.click()
        qtbot.waitUntil(lambda: c.pause.isEnabled(), timeout=5000)
        assert c.control_line.full_text == "this window controls the session" and not c.take_control.isEnabled()
        assert runner.wait_request("take_control")
        c.pause.click()
        assert runner.wait_request("pause")
    finally:
        runner.close()


def test_a_window_whose_control_is_taken_by_another_becomes_view_only(qapp, qtbot, staged_folder, tmp_path):
    """The runner publishes `control` when a client takes control; the window asks its hello again and, no
    longer the controller, goes view only. Frames of the imaging pre-roll (trial -1) are good frames."""
    runner = FakeRunner(staged_folder, CORRIDORS)
    try:
        w = attach(qapp, qtbot, runner, tmp_path)
        c = w.controls
        qtbot.waitUntil(lambda: c.pause.isEnabled(), timeout=5000)
        hellos = sum(r.get("action") == "hello" for r in runner.requests)
        runner.controller, runner.controlled_by = False, "the window of pid 99 on rigpc"
        runner.publish("control", {"controlled_by": "the window of pid 99 on rigpc", "before": "this one"})
        qtbot.waitUntil(lambda: "view only" in c.control_line.full_text, timeout=5000)
        assert sum(r.get("action") == "hello" for r in runner.requests) == hellos + 1
        assert not c.pause.isEnabled()
        runner.publish("state", {"i": [2, 3], "t": [0.03, 0.05], "pos": [600.0, 600.0], "speed": [0.0, 0.0],
                                 "trial": [-1, -1], "corridor": [0, 0], "grey": [1, 1]})
        runner.publish("status", {"i": 3, "running": True})
        qtbot.wait(300)
        assert w.link is not None and w.link.bad_messages == 0, w.link.last_bad
    finally:
        runner.close()


def test_a_note_typed_during_the_session_goes_to_the_runner_and_the_lab_records(qapp, qtbot, staged_folder, tmp_path):
    runner = FakeRunner(staged_folder, CORRIDORS)
    lab = FakeLab()
    try:
        w = attach(qapp, qtbot, runner, tmp_path, lab)
        day = w.day
        assert day.running and day.session == Path(staged_folder)
        day.note_edit.setText("mouse groomed a lot <after the cue>")
        day.add_note.click()
        req = runner.wait_request("note")
        assert req["text"] == "mouse groomed a lot <after the cue>"
        (animal, note), = lab.note_list
        assert animal == "F1" and note.during and note.session == str(Path(staged_folder))
        qtbot.waitUntil(lambda: "logged by the runner" in day.note_msg.full_text, timeout=5000)
        assert day.notes.count() == 1 and "<after the cue>" in day.notes.item(0).text()
    finally:
        runner.close()


def test_the_stage_and_its_criterion_show_live(qapp, qtbot, staged_folder, tmp_path):
    runner = FakeRunner(staged_folder, CORRIDORS)
    try:
        w = attach(qapp, qtbot, runner, tmp_path)
        # From the folder's events (before the runner's status says anything): the advance at trial 3.
        qtbot.waitUntil(lambda: "advanced passive → active at trial 3" in w.stage.advance.full_text, timeout=5000)
        assert w.stage.text.full_text.startswith("stage 2 of 2: active")
        # The runner's report (status fields stage, stage_index, n_stages, criterion) is what is shown.
        runner.publish("status", {"i": 2, "running": True, "stage": "active", "stage_index": 1, "n_stages": 3,
                                  "criterion": {"trials_in_stage": 12, "after_trials": 100, "pending": None,
                                                "measure": "difference", "threshold": 0.3, "min_trials": 20,
                                                "window": 40, "n_rewarded": 7, "n_unrewarded": 5,
                                                "rewarded_fraction": 0.5, "unrewarded_fraction": 0.2,
                                                "value": None, "learned": False}})
        qtbot.waitUntil(lambda: "12 trials in it" in w.stage.text.full_text, timeout=5000)
        assert w.stage.text.full_text == (
            "stage 2 of 3: active · 12 trials in it · advances after 100 trials (88 to go) or when rewarded − "
            "unrewarded anticipatory licking ≥ 30% (last 40 of each kind; now 50% − 20%, too few to judge: 7 and 5 "
            "of 20 each)")
        runner.publish("status", {"i": 3, "running": True, "stage": "active", "stage_index": 1, "n_stages": 3,
                                  "criterion": {"trials_in_stage": 40, "after_trials": 100, "pending": "criterion",
                                                "measure": "difference", "threshold": 0.3, "min_trials": 20,
                                                "window": 40, "n_rewarded": 21, "n_unrewarded": 20,
                                                "rewarded_fraction": 0.75, "unrewarded_fraction": 0.4,
                                                "value": 0.35, "learned": True}})
        qtbot.waitUntil(lambda: "= +35%" in w.stage.text.full_text, timeout=5000)
        assert w.stage.text.full_text.endswith(
            "(last 40 of each kind; now 75% − 40% = +35%) · met (the learning criterion): advances at the next trial "
            "start")
        # A report of an earlier stage than the folder's is ignored (the folder is newer).
        runner.publish("status", {"i": 4, "running": True, "stage": "passive", "stage_index": 0, "n_stages": 3,
                                  "criterion": {"after_trials": 3, "trials_in_stage": 1}})
        runner.publish("status", {"i": 5, "running": True, "stage": "active", "stage_index": 1, "n_stages": 3,
                                  "criterion": {"trials_in_stage": 41}})
        qtbot.waitUntil(lambda: "41 trials in it" in w.stage.text.full_text, timeout=5000)
        # A criterion that does not decode is a bad message, counted and dropped; the panel keeps the last good one.
        runner.publish("status", {"i": 6, "running": True, "stage": "active", "stage_index": 1,
                                  "criterion": {"measure": "coin flip"}})
        qtbot.waitUntil(lambda: w.link is not None and w.link.bad_messages > 0, timeout=5000)
        assert "41 trials in it" in w.stage.text.full_text
    finally:
        runner.close()


def test_quitting_mid_session_asks_first(qapp, qtbot, staged_folder, tmp_path):
    from gui.main_window import MainWindow

    runner = FakeRunner(staged_folder, CORRIDORS)
    try:
        w = attach(qapp, qtbot, runner, tmp_path)
        w.confirm_quit = MainWindow._ask_quit.__get__(w)  # the real question
        answers = iter(["Cancel", "Quit, keep the session running"])
        asked: list[str] = []

        def answer() -> None:
            box = QtWidgets.QApplication.activeModalWidget()
            if not isinstance(box, QtWidgets.QMessageBox):
                QtCore.QTimer.singleShot(50, answer)
                return
            asked.append(box.text())
            want = next(answers)
            next(b for b in box.buttons() if b.text() == want).click()

        QtCore.QTimer.singleShot(50, answer)
        assert w.close() is False and w.isVisible()  # cancelled: still attached
        assert w.attached and "A session is running" in asked[0]
        QtCore.QTimer.singleShot(50, answer)
        assert w.close() is True and len(asked) == 2
        time.sleep(0.1)
        assert w.link is None  # detached; the session itself is not touched
    finally:
        runner.close()
