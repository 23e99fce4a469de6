"""The window's layout stays put and its messages are plain text (under a private Xvfb, no session needed):
nothing moves when messages, faults or refusals appear; everything fits at 1280x720; at 800x500 the window
scrolls instead of squeezing widgets into each other; no label interprets HTML, so `<yaml>` reads `<yaml>`."""

from __future__ import annotations

import time

import pytest
from PyQt5 import QtCore, QtWidgets

from gui.session_state import Phase
from gui.wire import Fault
from tests.support.paths import REPO

LONG = "\n".join(f"line {k}: the runner said something long about /a/very/long/path/to/a/file.yaml" for k in range(12))


@pytest.fixture
def window(qapp, qtbot, tmp_path):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    w = MainWindow(REPO / "config" / "sim.yaml", tmp_path / "data", tmp_path / "locks")
    qtbot.addWidget(w)
    w.plots.set_corridors(["leaf1", "circle1"], [True, False], [600.0, 600.0], "before the cue")
    w.resize(1280, 720)
    w.show()
    qtbot.waitExposed(w)
    return w


def geometry(w: QtWidgets.QMainWindow) -> dict[str, QtCore.QRect]:
    c, f = w.controls, w.faults
    widgets = {"start": c.start, "pause": c.pause, "stop": c.stop, "reward": c.reward, "reward_ul": c.reward_ul,
               "flush": c.valve_open, "close": c.valve_close, "take_control": c.take_control, "ack": f.ack,
               "fault list": f.list, "plots": w.plots, "vr": w.vr, "stage": w.stage, "trials": w.status_panel.trials,
               "tabs": w.tabs}
    return {k: QtCore.QRect(v.mapTo(w, QtCore.QPoint(0, 0)), v.size()) for k, v in widgets.items()}


def settle(qapp) -> None:
    for _ in range(5):
        qapp.processEvents()
        time.sleep(0.01)


def test_nothing_moves_when_messages_faults_and_refusals_appear(qapp, window):
    w = window
    settle(qapp)
    before = geometry(w)
    w._say(LONG, error=True)
    for k in range(5):
        w.faults.add(Fault("ERROR", f"fault {k}: " + LONG, "rig.runner", time.time()))
    w.banner.show_text(LONG, error=True)
    w.controls.reward_ul.set_text("999")
    w.controls.control_line.show_text(LONG, warn=True)
    w.set_phase(Phase.STALLED, "12 s silent")
    w.status_panel.show_link(12345, LONG)
    w.checks.summary.show_text(LONG, error=True)
    w.stage.text.show_text(LONG)
    settle(qapp)
    after = geometry(w)
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not moved, moved


def test_everything_fits_at_1280x720(qapp, window):
    w = window
    settle(qapp)
    scroll = w.centralWidget()
    assert isinstance(scroll, QtWidgets.QScrollArea)
    assert not scroll.verticalScrollBar().isVisible() and not scroll.horizontalScrollBar().isVisible()
    inside = scroll.viewport().rect()
    for name, rect in geometry(w).items():
        top_left = scroll.viewport().mapFrom(w, rect.topLeft())
        assert inside.contains(QtCore.QRect(top_left, rect.size())), f"{name} is outside the window at 1280x720"
    for raster in w.plots.rasters:
        assert raster.vb.height() >= 55, raster.vb.height()  # the lick rasters can be read
    assert w.plots.speed.vb.height() >= 40 and w.plots.position.vb.height() >= 55
    sp = w.status_panel
    sp.show_counts(9999, 9999, 999, 99999.9, 99999, 10 * 3600)
    settle(qapp)
    for big in (sp.trials, sp.rewards, sp.water, sp.licks, sp.elapsed):
        assert big.value.width() >= big.value.sizeHint().width(), f"{big.value.text()} is clipped"


def test_at_800x500_the_window_scrolls_instead_of_overlapping(qapp, window):
    w = window
    w.resize(800, 500)
    settle(qapp)
    scroll = w.centralWidget()
    assert scroll.verticalScrollBar().isVisible() and scroll.horizontalScrollBar().isVisible()
    rects = geometry(w)
    names = list(rects)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            inter = rects[names[a]].intersected(rects[names[b]])
            nested = rects[names[a]].contains(rects[names[b]]) or rects[names[b]].contains(rects[names[a]])
            assert nested or inter.isEmpty(), f"{names[a]} overlaps {names[b]} at 800x500"


def test_messages_are_plain_text_and_show_angle_brackets_literally(qapp, window, tmp_path):
    w = window
    w._say("cannot read <yaml> in a.yaml & b <b>not bold</b>", error=True)
    m = w.controls.message
    shown = m.text().replace("\n", " ")  # as wrapped on screen
    assert m.textFormat() == QtCore.Qt.PlainText and "<yaml>" in shown and "<b>not bold</b>" in shown
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    w.setup_panel.set_protocol(bad)
    msg = w.setup_panel.protocol_msg
    assert msg.textFormat() == QtCore.Qt.PlainText and "<yaml>: YAML syntax" in msg.full_text
    assert "<yaml>" in msg.text()
    w.faults.add(Fault("ERROR", "<span style='color:red'>x</span>", "<src>", time.time()))
    # No label of the window interprets markup: the app's own texts carry none, the others are shown as typed.
    for label in w.findChildren(QtWidgets.QLabel):
        if label.textFormat() != QtCore.Qt.PlainText:
            assert "<" not in label.text(), f"{label.objectName() or label} shows markup: {label.text()[:80]}"
