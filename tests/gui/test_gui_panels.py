"""Window panels that need no running session: pre-session checks (a real `rig check` subprocess), under a
private Xvfb."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO


def test_check_rig_lists_each_result_without_blocking_the_window(qtbot, qapp, tmp_path):
    from gui.main_window import MainWindow

    w = MainWindow(REPO / "config" / "sim.yaml", tmp_path / "data", tmp_path / "locks")
    qtbot.addWidget(w)
    w.checks.button.click()
    assert w.checks.running and not w.checks.button.isEnabled()  # returned at once; the check runs aside
    with qtbot.waitSignal(w.checks.finished, timeout=30_000) as got:
        pass
    assert got.args == [True]
    names = [c.name for c in w.checks.results]
    assert "encoder moves" in names and "valve clicks" in names
    assert w.checks.list.count() == len(names) and w.checks.list.item(0).text().startswith("✔")
    assert "all checks passed" in w.checks.summary.full_text and w.checks.button.isEnabled()


def test_check_rig_with_a_broken_config_says_what_is_wrong(qtbot, qapp, tmp_path):
    from gui.check_panel import CheckPanel

    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config" / "sim.yaml").read_text() + "\nnot_a_field: 3\n")
    panel = CheckPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.finished, timeout=30_000) as got:
        panel.run(bad, seconds=0.2)
    assert got.args == [False] and panel.results == []
    assert "exit code 2" in panel.summary.full_text and "not_a_field" in panel.summary.full_text


def test_check_output_with_a_failure_is_reported_as_failed():
    from gui.check_panel import parse_check_output

    out = ('{"config": "x", "ok": false, "results": [{"name": "encoder moves", "ok": false, '
           '"message": "no counts in 3 s"}, {"name": "cue output", "ok": true, "message": "played"}]}')
    ok, lines, summary = parse_check_output(out, "", 1)
    assert not ok and [c.ok for c in lines] == [False, True] and summary == "1 of 2 check(s) failed"


def test_status_line_shows_the_mesoscope_link(qtbot):
    from gui.status_panel import StatusPanel
    from gui.wire import decode_status

    panel = StatusPanel()
    qtbot.addWidget(panel)
    base = {"period_ms_p50": 16.7, "period_ms_max": 18.0, "missed_frames": 0, "free_disk_mb": 5e4, "drivers": {}}
    panel.show_status(decode_status(base))
    assert "mesoscope" not in panel.details  # no mesoscope hook in the runner: nothing shown
    panel.show_status(decode_status(base | {"mesoscope": {"alive": True, "frames": 120, "rate_hz": 30.0, "drops": 2,
                                                          "rejected": 0, "last_frame_age_s": 0.03, "in_gap": False}}))
    assert "mesoscope imaging: 120 frames, 30.0 Hz, drops 2, last 0.0 s ago" in panel.details
    panel.show_status(decode_status(base | {"mesoscope": {"alive": False, "frames": 120, "rate_hz": 0.0, "drops": 0,
                                                          "last_frame_age_s": 4.2, "in_gap": True}}))
    assert "mesoscope DOWN" in panel.details and "last 4.2 s ago" in panel.details
    # the loop period under the names the runner (rig.control.server) sends
    panel.show_status(decode_status({"loop_period_ms": 16.6, "loop_period_max_ms": 20.14, "drivers": {}}))
    assert panel.loop.text() == "loop 16.6 ms (max 20.1)"


def test_the_window_attaches_to_a_replay_started_by_the_runner_process(qtbot, qapp, tmp_path):
    import subprocess
    import sys

    from gui.main_window import MainWindow
    from rig import api
    from rig.datalog.reader import Session
    from rig.runner.lock import read_lock

    original = api.run(REPO / "protocols" / "demo.yaml", fast=True, max_trials=4, data_dir=tmp_path / "orig",
                       animal="P1", seed=2)
    locks = tmp_path / "locks"
    proc = subprocess.Popen([sys.executable, "-m", "rig.cli.runner_process", "--replay", str(original), "--speed", "1",
                             "--data", str(tmp_path / "data"), "--lock-dir", str(locks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        w = MainWindow(REPO / "config" / "sim.yaml", tmp_path / "data", locks)
        qtbot.addWidget(w)
        qtbot.waitUntil(lambda: w.link is not None and w.link.live is not None and len(w.link.live.frames) > 30,
                        timeout=20_000)
        info = read_lock("sim", locks)
        assert info.replay_of == str(original.resolve()) and info.pid == proc.pid
        assert "Reattached" in w.banner.full_text and w.link.hello.replay_of == str(original.resolve())
        w.controls.stop.click()
        w.controls.stop.click()
        qtbot.waitUntil(lambda: w.link.result is not None, timeout=10_000)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 1, err  # stopped early: an incomplete replay
        replay = Session.open(out.strip().splitlines()[-1])
        assert replay.header.animal == "P1-replay" and replay.footer["reason"] == "operator stop"
        w.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Real session folders: a learned train1 (60 trials), a short train1 (8 trials), a test1; a test2 for a
    mouse with no test3 yet (N1), and test3_swap2 then test2 for one that was shown swap2 (W2)."""
    from rig import api

    data = tmp_path_factory.mktemp("history")
    run = lambda proto, n, animal: api.run(REPO / "protocols" / f"{proto}.yaml", fast=True, max_trials=n,  # noqa: E731
                                           data_dir=data, animal=animal, seed=1)
    out = {"learned": run("train1_task", 60, "L1"), "short": run("train1_task", 8, "S1"),
           "test1": run("test1_task", 6, "T1"), "test2": run("test2_task", 4, "N1"), "data": data}
    run("test3_swap2_task", 4, "W2")
    out["test2_after_swap2"] = run("test2_task", 4, "W2")
    return out


def _suggest(folder):
    from gui.suggest import suggest_next
    from rig.datalog.info import session_info
    from rig.datalog.reader import Session

    s = Session.open(folder)
    return suggest_next(session_info(s), s), session_info(s)


def test_suggestion_advances_train1_when_anticipatory_licking_crossed_the_criterion(history):
    from rig.api import learning

    score = learning(history["learned"])  # the one criterion: rewarded against unrewarded anticipatory licking
    assert score.learned and score.enough and score.value >= score.threshold
    sug, _ = _suggest(history["learned"])
    assert sug.protocol == "test1_task" and sug.advance and "learned train1" in sug.reason


def test_suggestion_repeats_train1_too_short_to_judge_and_any_incomplete_session(history):
    sug, info = _suggest(history["short"])
    assert sug.protocol == "train1_task" and not sug.advance and "not learned yet" in sug.reason
    from gui.suggest import suggest_next

    again = suggest_next(info | {"complete": False, "protocol": "test2_task"})
    assert again.protocol == "test2_task" and "did not complete" in again.reason


def test_suggestion_follows_the_sequence_and_keeps_lane_and_texture_family(history):
    from gui.suggest import Suggestion, suggest_next

    sug, _ = _suggest(history["test1"])
    assert sug.protocol == "train2_task" and sug.advance
    base = {"complete": True, "trials": 300}
    assert suggest_next(base | {"protocol": "grating_test1_exposure"}).protocol == "grating_train2_exposure"
    assert suggest_next(base | {"protocol": "train2_exposure"}).protocol == "test2_exposure"
    assert suggest_next(base | {"protocol": "train2_exposure", "trials": 30}).protocol == "train2_exposure"
    assert suggest_next(base | {"protocol": "test3_swap2_exposure"}).protocol == "test3_swap2_exposure"
    assert not suggest_next(base | {"protocol": "test3_swap2_exposure"}).advance
    assert suggest_next(base | {"protocol": "demo"}).protocol == "demo"
    # "test3" without a swap and a swap on another stage are no protocols of the sequence: suggested again.
    for name in ("test3_task", "test2_swap1_task"):
        assert suggest_next(base | {"protocol": name}) == Suggestion(
            name, "the last session's protocol (not in the train1 → test3 sequence)", False)


def test_test3_suggestion_names_shipped_protocols_and_keeps_the_mouse_s_swap(history):
    from gui.suggest import protocols_run, shipped

    # No test3 in N1's history: both shipped swaps are offered, none chosen for the operator.
    sug, _ = _suggest(history["test2"])
    assert sug.advance and sug.choices == ("test3_swap1_task", "test3_swap2_task")
    assert "choose test3_swap1_task or test3_swap2_task" in sug.reason
    assert all(shipped(p, REPO / "protocols") is not None for p in sug.choices)
    # W2 was shown swap2 before: its test3 is swap2 again, read from its own session headers.
    folder = Path(history["test2_after_swap2"])
    names = protocols_run(folder.parent.parent)
    assert names == ["test3_swap2_task", "test2_task"]
    from gui.suggest import suggest_next
    from rig.datalog.info import session_info
    from rig.datalog.reader import Session

    sug = suggest_next(session_info(Session.open(folder)), None, names)
    assert sug.choices == ("test3_swap2_task",) and "swap2, the swap corridor this mouse was shown before" in sug.reason
    assert shipped(sug.protocol, REPO / "protocols") is not None
    # The exposure lane and the newest swap win; an animal folder that is not there has no history.
    exp = suggest_next({"protocol": "test2_exposure", "complete": True, "trials": 300}, None,
                       ["test3_swap1_exposure", "test3_swap2_exposure", "test2_exposure"])
    assert exp.choices == ("test3_swap2_exposure",)
    assert protocols_run(folder.parent.parent / "nobody") == []


def test_setup_panel_leaves_an_unknown_swap_to_the_operator_and_uses_a_known_one(qtbot, history):
    from gui.setup_panel import SetupPanel

    panel = SetupPanel(REPO / "config" / "sim.yaml", history["data"])
    qtbot.addWidget(panel)
    panel.animal.setEditText("N1")
    assert "suggested next: test3_swap1_task or test3_swap2_task" in panel.history.text()
    assert not panel.use_suggested.isEnabled()
    assert panel.use_suggested.text() == "choose: test3_swap1_task or test3_swap2_task"
    panel.animal.setEditText("W2")
    assert "suggested next: test3_swap2_task" in panel.history.text()
    assert panel.use_suggested.isEnabled() and panel.use_suggested.text() == "Use test3_swap2_task"
    panel.use_suggested.click()
    assert panel.protocol_path().name == "test3_swap2_task.yaml" and panel.protocol is not None


def test_setup_panel_shows_the_suggestion_and_uses_it(qtbot, history):
    from gui.setup_panel import SetupPanel

    panel = SetupPanel(REPO / "config" / "sim.yaml", history["data"])
    qtbot.addWidget(panel)
    panel.animal.setEditText("L1")
    assert "suggested next: test1_task" in panel.history.text()
    assert panel.use_suggested.isEnabled() and panel.use_suggested.text() == "Use test1_task"
    panel.use_suggested.click()
    assert panel.protocol_path().name == "test1_task.yaml" and panel.protocol is not None


def test_the_apps_lab_records_take_the_configs_lab_settings(qtbot, tmp_path):
    """The weight alert threshold and who records come from the rig config the window has open."""
    import yaml

    from gui.lab_view import RigLabRecords
    from gui.main_window import MainWindow

    cfg = yaml.safe_load((REPO / "config" / "sim.yaml").read_text())
    cfg.setdefault("lab", {}).update({"min_weight_fraction": 0.9, "experimenter": "Doe, Jane"})
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    w = MainWindow(path, tmp_path / "data", tmp_path / "locks")
    qtbot.addWidget(w)
    lab = w._make_lab()
    assert isinstance(lab, RigLabRecords) and (lab.min_weight_fraction, lab.by) == (0.9, "Doe, Jane")
