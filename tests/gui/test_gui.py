"""The control app driving a real runner process (simulated rig, real time, real ZeroMQ on 127.0.0.1), under
a private Xvfb. The tests run in file order on one session: start, watch, reward, pause/resume, refuse a
second start, detach and reattach, stop."""

from __future__ import annotations

import os
import time

import pytest

from rig.datalog.reader import Session
from rig.runner.lock import read_lock
from tests.support.paths import REPO

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def rig_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("gui")
    return {"data": base / "data", "locks": base / "locks"}


def make_window(qapp, rig_dirs):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    w = MainWindow(REPO / "config" / "sim.yaml", rig_dirs["data"], rig_dirs["locks"])
    w.confirm_quit = lambda: True  # closing mid-session detaches (the question itself is tested elsewhere)
    w.resize(1400, 900)
    w.show()
    return w


@pytest.fixture(scope="module")
def window(qapp, rig_dirs):
    w = make_window(qapp, rig_dirs)
    yield w
    w.close()
    info = read_lock("sim", rig_dirs["locks"])
    if info and info.pid:  # a failed test must not leave a runner behind
        os.kill(info.pid, 15)


def wait_for(qtbot, cond, timeout=WAIT_MS):
    qtbot.waitUntil(cond, timeout=timeout)


def test_start_from_gui_updates_plots_and_counters(qtbot, window):
    w = window
    w.setup_panel.animal.setEditText("M7")
    w.setup_panel.set_protocol(REPO / "protocols" / "demo.yaml")
    w.setup_panel.duration.setValue(120)
    w.controls.start.click()
    wait_for(qtbot, lambda: w.link is not None and w.link.live is not None)
    live = w.link.live
    wait_for(qtbot, lambda: len(live.frames) > 120 and w.plots.draws > 5)
    assert w.status_panel.state.text() == "RUNNING"
    assert not w.controls.start.isEnabled() and w.controls.reward.isEnabled()
    xs, _ = w.plots.speed_curve.getData()
    assert xs is not None and len(xs) > 100  # the speed plot shows the frames that came in
    wait_for(qtbot, lambda: w.status_panel.elapsed.value.text() not in ("–", "0:00:00"))
    wait_for(qtbot, lambda: "loop" in w.status_panel.details)
    assert w.session_path is not None and (w.session_path / "header.json").exists()


def test_live_vr_preview_follows_the_mouse(qtbot, window):
    w = window
    wait_for(qtbot, lambda: w.vr.renders >= 3)  # redrawn as the position moves, a few times per second
    assert w.vr.pixmap_size() == (480, 90) and w.vr.last_image.std() > 5
    frames = w.link.live.frames.ordered()
    names = w.link.hello.corridors
    assert w.vr.caption.text().split(" · ")[0] in names
    assert frames.shape[1] > 0


def test_manual_reward_is_acknowledged_and_logged(qtbot, window):
    w = window
    w.controls.reward_ul.set_text("4")
    w.controls.reward.click()
    wait_for(qtbot, lambda: any("✔ manual_reward" in w.controls.log.item(k).text()
                                for k in range(w.controls.log.count())))
    wait_for(qtbot, lambda: w.status_panel.rewards.value.text() not in ("–", "0"))
    wait_for(qtbot, lambda: "1 MANUAL" in w.status_panel.rewards.caption.text())  # counted from the folder
    wait_for(qtbot, lambda: any(o["action"] == "manual_reward" for o in Session.open(w.session_path).operator))
    op = next(o for o in Session.open(w.session_path).operator if o["action"] == "manual_reward")
    assert op["data"]["volume_ul"] == 4.0
    assert w.link.live.rewards.n >= 1  # the reward mark reached the plots


def test_pause_and_resume(qtbot, window):
    w = window
    w.controls.pause.click()
    wait_for(qtbot, lambda: w.status_panel.state.text() == "PAUSED")
    assert w.controls.pause.text().endswith("Resume")
    wait_for(qtbot, lambda: w.link.last_status is not None and w.link.last_status.paused is True)
    w.controls.pause.click()
    wait_for(qtbot, lambda: w.status_panel.state.text() == "RUNNING" and w.link.last_status.paused is False)


def test_second_start_is_refused(qtbot, qapp, window, rig_dirs):
    other = make_window(qapp, rig_dirs)
    try:
        # The second window attaches to the running session by itself; asking it to start another is refused.
        wait_for(qtbot, lambda: other.link is not None)
        other.link.close()
        other.link = None
        other.setup_panel.animal.setEditText("M8")
        other.start_session()
        assert "already running a session" in other.controls.message.full_text
        assert other.proc is None
    finally:
        other.close()


def test_closing_the_window_keeps_the_session_and_a_new_window_reattaches(qtbot, qapp, window, rig_dirs):
    w = window
    info = read_lock("sim", rig_dirs["locks"])
    session_path = w.session_path
    frames_before = len(w.link.live.frames)
    w.close()
    time.sleep(0.5)
    assert os.path.exists(f"/proc/{info.pid}")  # the runner lives on
    again = make_window(qapp, rig_dirs)
    try:
        wait_for(qtbot, lambda: again.link is not None and again.link.live is not None)
        assert again.session_path == session_path
        assert again.banner.isVisible() and "Reattached" in again.banner.full_text
        live = again.link.live
        # Backfilled from the folder: it starts at the session's first frames, not where the window attached.
        assert live.frames.ordered()[0][0] <= 2 and len(live.frames) > frames_before
        wait_for(qtbot, lambda: again.plots.draws > 2)
        i0 = live.last_i
        wait_for(qtbot, lambda: live.last_i > i0 + 30)  # telemetry keeps coming after the backfill
        i = live.frames.ordered()[0]
        assert (i[1:] - i[:-1] == 1).all()  # no gap and no duplicate between backfill and telemetry

        # The window that started the session controlled it; a reattached one views until it takes over.
        wait_for(qtbot, lambda: not again.link.controller and again.controls.take_control.isVisible())
        again.controls.take_control.click()
        wait_for(qtbot, lambda: again.link.controller)
        again.controls.stop.click()
        assert "again" in again.controls.stop.text()  # stop asks for a second click
        again.controls.stop.click()
        wait_for(qtbot, lambda: again.link.result is not None)
        assert again.status_panel.state.text() == "STOPPED EARLY"  # an operator stop is not a completed session
        wait_for(qtbot, lambda: read_lock("sim", rig_dirs["locks"]) is None)
        wait_for(qtbot, lambda: Session.open(session_path).footer is not None)
        s = Session.open(session_path)
        actions = [o["action"] for o in s.operator if o["action"] != "take_control"]
        assert actions == ["manual_reward", "pause", "resume", "stop"]
        assert s.footer["reason"] == "operator stop"
        assert again.controls.start.isEnabled()
    finally:
        again.close()
