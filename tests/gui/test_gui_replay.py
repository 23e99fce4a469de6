"""Replay viewer and session setup panel, under a private Xvfb, on real session folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig import api
from rig.datalog.reader import Session, SessionError
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("replay")
    return api.run(REPO / "protocols" / "demo.yaml", fast=True, max_trials=6, data_dir=data, animal="R1", seed=3)


@pytest.fixture
def viewer(qtbot, qapp, finished):
    from gui import style
    from gui.replay_viewer import ReplayWindow

    style.apply(qapp)
    w = ReplayWindow(finished)
    qtbot.addWidget(w)
    w.show()
    return w


def test_seek_shows_the_session_up_to_the_playhead(viewer, finished):
    s = Session.open(finished)
    ends = [e["t"] for e in s.events if e["kind"] == "trial_end"]
    t = (ends[2] + ends[3]) / 2  # between the third and fourth trial ends
    viewer.seek(t)
    assert viewer.status_panel.trials.value.text() == "3"
    rewards = sum(1 for e in s.events if e["kind"] == "reward" and e["t"] <= t)
    assert viewer.status_panel.rewards.value.text() == str(rewards)
    assert viewer.status_panel.rewards.caption.text() == "REWARDS · 0 MANUAL"
    xs, _ = viewer.plots.speed_curve.getData()
    # x is seconds before the playhead: the speed trace ends there
    assert np.nanmax(xs) <= 0 and np.nanmax(xs) > -0.1
    licks_shown = sum(len(d.getData()[0]) for d in viewer.plots.lick_dots)
    licks = sum(1 for e in s.events if e["kind"] == "lick" and not e["data"]["iti"] and e["t"] <= t)
    assert licks_shown == licks
    viewer.seek(0.0)  # and back again
    assert viewer.status_panel.trials.value.text() == "0"


def test_jump_to_trial(viewer, finished):
    s = Session.open(finished)
    start4 = next(e["t"] for e in s.events if e["kind"] == "trial_start" and e["trial"] == 4)
    viewer.trial_box.setValue(4)
    viewer.go_button.click()
    assert viewer.t == pytest.approx(start4)
    assert viewer.status_panel.trials.value.text() == "4"


def test_play_advances_the_playhead_at_the_chosen_speed_and_stops_at_the_end(qtbot, viewer):
    assert [viewer.speed.itemData(k) for k in range(viewer.speed.count())] == [0.25, 0.5, 1, 2, 5, 10, 20]
    viewer.set_speed(20.0)
    viewer.seek(viewer.t_end - 1.0)
    viewer.play_button.click()
    assert viewer.playing
    qtbot.waitUntil(lambda: not viewer.playing, timeout=5000)  # 1 s of session at 20x
    assert viewer.t == viewer.t_end and viewer.play_button.text().endswith("Play")


def test_a_folder_that_is_not_a_session_is_refused(viewer, tmp_path):
    with pytest.raises(SessionError, match="no header.json"):
        viewer.open(tmp_path)


def test_setup_panel_validates_the_protocol_inline_and_shows_animal_history(qtbot, qapp, tmp_path, finished):
    from gui.setup_panel import SetupPanel

    data = finished.parents[2]  # DATA/ANIMAL/DATE/NNN
    panel = SetupPanel(REPO / "config" / "sim.yaml", data)
    qtbot.addWidget(panel)
    assert panel.animal.findText("R1") >= 0  # animals in the data folder are offered
    panel.animal.setEditText("R1")
    assert "demo" in panel.history.text() and "6 trials" in panel.history.text()

    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "protocols" / "demo.yaml").read_text().replace("speed_cm_s: 60", "speed_cm_s: -5"))
    panel.set_protocol(bad)
    assert f"{bad}:" in panel.protocol_msg.full_text and "speed_cm_s" in panel.protocol_msg.full_text
    with pytest.raises(ValueError, match="protocol: .*speed_cm_s"):
        panel.setup()
    panel.set_protocol(REPO / "protocols" / "demo.yaml")
    assert "valid" in panel.protocol_msg.full_text
    setup = panel.setup()
    assert setup.animal == "R1" and setup.rig_name == "sim" and setup.data_dir == data
    panel.animal.setEditText("")
    with pytest.raises(ValueError, match="animal ID"):
        panel.setup()


def test_live_data_ring_buffer_keeps_the_newest_frames_in_order():
    from gui.live_data import RingBuffer

    r = RingBuffer(("i",), 5)
    r.extend({"i": [1, 2, 3]})
    r.extend({"i": [4, 5, 6, 7]})
    assert r.ordered()[0].tolist() == [3, 4, 5, 6, 7]
    r.extend({"i": np.arange(10, 22)})
    r.extend({"i": [99]})
    assert r.ordered()[0].tolist() == [18, 19, 20, 21, 99]


def test_vr_preview_shows_the_corridor_at_the_playhead(qtbot, viewer, finished):
    s = Session.open(finished)
    f = s.frames
    # Two playhead times in different corridors (or far apart in one): the pictures must differ.
    k1 = int(np.flatnonzero(f["position_cm"] > 40)[0])
    k2 = int(np.flatnonzero((f["corridor"] != f["corridor"][k1]) & (f["position_cm"] > 40))[0])
    qtbot.waitUntil(lambda: viewer.vr.ready, timeout=20_000)  # textures are prepared in a worker thread
    viewer.seek(float(f["t"][k1]))
    assert viewer.vr.renders >= 1
    first = viewer.vr.last_image.copy()
    assert first.shape == (90, 480, 3) and first.std() > 10  # a textured corridor, not a blank picture
    name1 = s.header.protocol["corridors"][int(f["corridor"][k1])]["name"]
    assert viewer.vr.caption.text().startswith(name1)
    viewer.seek(float(f["t"][k2]))
    assert not np.array_equal(first, viewer.vr.last_image)
    assert viewer.vr.pixmap_size() == (480, 90)


def test_export_buttons_write_nwb_mouseland_and_summary_png_in_a_worker_thread(qtbot, viewer, finished, tmp_path):
    from gui.export_bar import default_output

    bar = viewer.exports
    assert all(b.isEnabled() for b in bar.buttons.values())
    assert default_output(finished, "nwb").parent == finished.parent  # beside the session, not inside it
    outs = {"nwb": tmp_path / "s.nwb", "mouseland": tmp_path / "s.npy", "summary": tmp_path / "s.png"}
    results = {}
    bar.done.connect(lambda kind, ok, text: results.__setitem__(kind, (ok, text)))
    for kind, out in outs.items():
        bar.export(kind, out)
        assert not bar.buttons[kind].isEnabled()  # returned at once; the export runs aside
    qtbot.waitUntil(lambda: len(results) == 3, timeout=60_000)
    assert all(ok for ok, _ in results.values()), results
    assert outs["nwb"].stat().st_size > 1000 and outs["summary"].read_bytes()[:4] == b"\x89PNG"
    beh = np.load(outs["mouseland"], allow_pickle=True).item()
    assert len(beh) == 1
    assert "written" in bar.message.text() and all(b.isEnabled() for b in bar.buttons.values())


def test_a_failed_export_is_shown(qtbot, viewer, tmp_path):
    bar = viewer.exports
    with qtbot.waitSignal(bar.done, timeout=20_000) as got:
        bar.export("nwb", tmp_path / "wrong-suffix.txt")
    assert got.args[0] == "nwb" and got.args[1] is False and ".nwb" in got.args[2]
    assert "export failed" in bar.message.text()


def test_vr_preview_draws_the_next_trials_corridor_beyond_the_grey_part(qtbot, viewer, finished):
    from gui.vr_view import ViewPoint

    s = Session.open(finished)
    start = next(e for e in s.events if e["kind"] == "trial_start" and e["trial"] == 2)
    nxt = start["data"]["next_corridor_index"]
    assert nxt is not None
    viewer.seek(start["t"] + 0.5)
    assert viewer.live.snapshot(viewer.t).next_corridor == nxt  # the playhead knows the corridor ahead
    qtbot.waitUntil(lambda: viewer.vr.ready, timeout=20_000)
    r = viewer.vr.renderer
    corridor = r.protocol.corridors[start["data"]["corridor_index"]]
    near_end = corridor.length_cm - 5.0  # in the grey part, looking at what follows it
    grey_ahead = r.render(ViewPoint(start["data"]["corridor_index"], near_end))
    textured_ahead = r.render(ViewPoint(start["data"]["corridor_index"], near_end, ahead=nxt))
    assert textured_ahead.std() > grey_ahead.std() + 5  # textured walls ahead instead of grey


def test_the_replay_header_gives_rig_infos_counts_for_a_session_cut_mid_trial(qtbot, qapp, tmp_path):
    """A session ended by its time limit has a trial that started and never ended: it is not a trial."""
    from gui.replay_viewer import ReplayWindow
    from rig.datalog.info import session_info

    folder = api.run(REPO / "protocols" / "demo.yaml", fast=True, duration_s=45, data_dir=tmp_path, animal="R2",
                     seed=3)
    s = Session.open(folder)
    info = session_info(s)
    starts = sum(1 for e in s.events if e["kind"] == "trial_start")
    assert starts == info["trials"] + 1  # the case of issue 15: 14 started, 13 trials
    w = ReplayWindow(folder)
    qtbot.addWidget(w)
    text = w.info.full_text
    assert f"· {info['trials']} trials ·" in text and f"{starts} trials" not in text
    assert f"{info['rewards']} rewards · {info['water_ul']:.1f} µl" in text
    w.seek(w.t_end)
    assert w.status_panel.trials.value.text() == str(info["trials"])
    assert w.status_panel.licks.value.text() == str(info["licks"])
