"""What the window says is true, with real runner processes (simulated rig, real time, real ZeroMQ) under a
private Xvfb: a runner killed with SIGKILL is CRASHED (the folder's counts, a fault that stays until
acknowledged, the next session can start at once); a frozen runner is STALLED and RUNNING again when it
thaws; an operator stop is STOPPED EARLY; a session that reaches its end is FINISHED. Every count shown at
the end, and the live counts the folder gave, equal `rig info`'s (rig.datalog.info.session_info)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from gui.session_state import Phase
from rig.datalog.info import session_info
from rig.datalog.reader import Session
from rig.runner.lock import read_lock
from tests.support.paths import REPO

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    base = tmp_path_factory.mktemp("states")
    w = MainWindow(REPO / "config" / "sim.yaml", base / "data", base / "locks")
    w.confirm_quit = lambda: True
    w.resize(1400, 900)
    w.show()
    w.setup_panel.set_protocol(REPO / "protocols" / "demo.yaml")
    yield w
    w.close()
    info = read_lock("sim", base / "locks")
    if info and info.pid:  # a failed test must not leave a runner behind
        os.kill(info.pid, signal.SIGKILL)


def start(qtbot, w, animal: str, duration_s: float = 120) -> int:
    w.setup_panel.animal.setEditText(animal)
    w.setup_panel.duration.setValue(duration_s)
    w.controls.start.click()
    assert w.phase is Phase.STARTING, w.controls.message.full_text
    qtbot.waitUntil(lambda: w.link is not None and w.link.live is not None and w.link.counts is not None,
                    timeout=WAIT_MS)
    assert w.status_panel.state.text() == "RUNNING"
    return int(w.link.info["pid"])


def shown_counts(w) -> dict:
    sp = w.status_panel
    rewards, manual = sp.rewards.value.text(), sp.rewards.caption.text().split()[2]
    return {"trials": int(sp.trials.value.text()), "rewards": int(rewards), "rewards_manual": int(manual),
            "water_ul": float(sp.water.value.text()), "licks": int(sp.licks.value.text())}


def rig_info_counts(folder) -> dict:
    i = session_info(Session.open(folder))
    return {"trials": i["trials"], "rewards": i["rewards"], "rewards_manual": i["rewards_manual"],
            "water_ul": round(i["water_ul"], 1), "licks": i["licks"]}, i


def test_a_killed_runner_is_crashed_with_the_folders_counts_and_a_fault_until_acknowledged(qtbot, window):
    w = window
    pid = start(qtbot, w, "K1")
    w.controls.reward.click()  # some water, so the counts are not all zero
    qtbot.waitUntil(lambda: w.link.counts.rewards >= 1, timeout=WAIT_MS)
    folder = w.session_path
    os.kill(pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: w.phase is Phase.CRASHED, timeout=5_000)  # noticed from the pid within a second
    assert w.status_panel.state.text() == "CRASHED"
    want, info = rig_info_counts(folder)
    assert not info["complete"] and info["rewards"] >= 1
    assert shown_counts(w) == want
    assert "None" not in w.controls.message.full_text and f"{info['trials']} trials" in w.controls.message.full_text
    assert w.faults.unacknowledged >= 1 and "crashed" in w.faults.banner.full_text
    assert "CRASHED" in w.summary.box.title() and f"{info['trials']} trials" in w.summary.text.text()
    # The fault stays (the window keeps watching) until someone acknowledges it.
    for _ in range(3):
        w.watch()
        qtbot.wait(50)
    assert w.faults.unacknowledged >= 1 and w.faults.banner.property("tone") == "error"
    w.faults.ack.click()
    assert w.faults.unacknowledged == 0 and w.faults.banner.property("tone") == ""
    # Ready for the next session at once: Start is enabled, Stop is not, and a start is not refused.
    assert w.controls.start.isEnabled() and not w.controls.stop.isEnabled()


def test_a_frozen_runner_is_stalled_then_running_and_an_operator_stop_is_stopped_early(qtbot, window):
    w = window
    pid = start(qtbot, w, "K1")  # right after the crash: not refused
    folder = w.session_path
    qtbot.waitUntil(lambda: w.link.last_status is not None, timeout=WAIT_MS)
    os.kill(pid, signal.SIGSTOP)
    try:
        qtbot.waitUntil(lambda: w.phase is Phase.STALLED, timeout=8_000)
        assert w.status_panel.state.text().startswith("STALLED")
        assert w.faults.unacknowledged >= 1 and "no telemetry" in w.faults.banner.full_text
    finally:
        os.kill(pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: w.phase is Phase.RUNNING, timeout=8_000)
    assert w.status_panel.state.text() == "RUNNING" and w.controls.stop.isEnabled()
    # The freeze cost display frames; the live count is the folder's, by rig info's rule.
    qtbot.waitUntil(lambda: (w.link.counts.missed_display_frames or 0) > 0, timeout=WAIT_MS)
    w.controls.stop.click()
    w.controls.stop.click()
    qtbot.waitUntil(lambda: w.phase.final, timeout=WAIT_MS)
    assert w.phase is Phase.STOPPED_EARLY and w.status_panel.state.text() == "STOPPED EARLY"
    want, info = rig_info_counts(folder)
    assert info["end_reason"] == "operator stop" and not info["complete"]
    assert shown_counts(w) == want
    tail = w.link.counts  # what the window followed live, read to the end
    assert (tail.trials, tail.rewards, tail.licks, round(tail.water_ul, 6)) == \
        (info["trials"], info["rewards"], info["licks"], info["water_ul"])
    assert tail.missed_display_frames == info["missed_display_frames"] > 0
    assert w.status_panel.missed_label.text() == f"missed frames {info['missed_display_frames']}"


def test_a_session_that_reaches_its_end_is_finished_and_the_animal_list_is_read_again(qtbot, window):
    w = window
    assert w.setup_panel.animal.findText("N1") < 0
    start(qtbot, w, "N1", duration_s=3)
    folder = w.session_path
    qtbot.waitUntil(lambda: w.phase.final, timeout=WAIT_MS)
    assert w.phase is Phase.FINISHED and w.status_panel.state.text() == "FINISHED"
    want, info = rig_info_counts(folder)
    assert info["complete"] and info["end_reason"] == "max_duration"
    assert shown_counts(w) == want
    assert w.setup_panel.animal.findText("N1") >= 0  # the new animal is offered now
    assert "FINISHED" in w.summary.text.text() and str(folder) in w.summary.text.text()
    deadline = time.monotonic() + 10
    while read_lock("sim", w.lock_dir) is not None and time.monotonic() < deadline:
        qtbot.wait(50)
