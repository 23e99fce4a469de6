"""Nothing stale on screen, inputs that say why they refuse, rewards told apart, and the plots' cosmetics (under a
private Xvfb, on real session folders; the one start spawns a real runner process)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gui.session_state import Phase
from rig.loading import find_file
from tests.support.paths import REPO

STAGED = str(REPO / "examples" / "staged_zone_task.yaml")  # a protocol whose stage advances


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Real folders: a demo session of animal M1 with two manual rewards, a no-cue staged session, an
    exposure session; and one run with a rig config whose valve allows 400 ms."""
    from rig.loading import load_config, load_protocol
    from rig.runner.loop import Operator
    from rig.runner.session import SessionOptions, run_session
    from tests.support.operator_script import OperatorScript

    data = tmp_path_factory.mktemp("stale")
    config = load_config(REPO / "config" / "sim.yaml")

    def run(proto: str, animal: str, trials: int, hooks=(), cfg=config):
        return run_session(load_protocol(find_file(proto, "protocols")), cfg,
                           SessionOptions(animal=animal, seed=3, fast=True, max_trials=trials, data_dir=data),
                           hooks=hooks).path

    script = OperatorScript({100: [Operator("manual_reward", 3.0)], 900: [Operator("manual_reward", 4.0)]})
    small_valve = tmp_path_factory.mktemp("cfg") / "small-valve.yaml"
    small_valve.write_text((REPO / "config" / "sim.yaml").read_text().replace("max_open_ms: 1000",
                                                                              "max_open_ms: 400"))
    return {"data": data, "demo": run("demo", "M1", 6, (script,)), "nocue": run(STAGED, "Z1", 4),
            "exposure": run("train1_exposure", "E1", 4),
            "small_valve": run("demo", "V1", 1, cfg=load_config(small_valve))}


@pytest.fixture
def window(qapp, qtbot, sessions, tmp_path):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    w = MainWindow(REPO / "config" / "sim.yaml", sessions["data"], tmp_path / "locks", lab_factory=None)
    w.confirm_quit = lambda: True
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    return w


def live_from(folder):
    from gui.live_data import LiveData
    from rig.datalog.reader import Session

    s = Session.open(folder)
    live = LiveData([c["name"] for c in s.header.protocol["corridors"]], capacity=len(s.frames))
    live.load_session(s)
    return live


# ---- stale state -------------------------------------------------------------------------------------------


def test_starting_a_session_clears_the_previous_sessions_plots_and_counters(qtbot, window, sessions):
    w = window
    live = live_from(sessions["demo"])
    w.plots.set_corridors(live.corridors, [True, False], [600.0, 600.0])
    w.plots.show_snapshot(live.snapshot())
    w.status_panel.show_counts(6, 5, 2, 14.5, 80, 100.0)
    w.stage.text.show_text("stage of the previous session")
    assert len(w.plots.speed_curve.getData()[0]) > 0
    w.setup_panel.animal.setEditText("S1")
    w.start_session()
    try:
        assert w.phase is Phase.STARTING and w.status_panel.state.text() == "STARTING"
        xs, _ = w.plots.speed_curve.getData()
        assert xs is None or len(xs) == 0
        assert all(len(d.getData()[0]) == 0 for d in w.plots.lick_dots)
        assert w.status_panel.trials.value.text() == "–" and w.status_panel.water.value.text() == "–"
        assert w.stage.text.full_text == "no session"
    finally:
        w.proc.kill()
        w.proc.wait(10)
    qtbot.waitUntil(lambda: w.phase is Phase.IDLE, timeout=5000)  # the window noticed the runner's end
    assert "did not start" in w.controls.message.full_text


def test_a_protocol_file_deleted_after_it_was_validated_is_no_longer_valid(window, tmp_path):
    w = window
    mine = tmp_path / "mine.yaml"
    shutil.copy(REPO / "protocols" / "demo.yaml", mine)
    w.setup_panel.set_protocol(mine)
    assert "valid" in w.setup_panel.protocol_msg.full_text and w.setup_panel.protocol is not None
    mine.unlink()
    w.watch()  # the window's once-a-second look around
    assert "does not exist" in w.setup_panel.protocol_msg.full_text and "valid" not in \
        w.setup_panel.protocol_msg.full_text
    with pytest.raises(ValueError, match="does not exist"):
        w.setup_panel.setup()
    w.setup_panel.animal.setEditText("S2")
    w.start_session()
    assert w.proc is None and "does not exist" in w.controls.message.full_text


def test_switching_the_rig_config_drops_the_previous_configs_check_results(qtbot, window):
    w = window
    with qtbot.waitSignal(w.checks.finished, timeout=30_000):
        w.checks.run(REPO / "config" / "sim.yaml", seconds=0.2)
    assert w.checks.results and w.checks.list.count() > 0
    w.setup_panel.config_edit.setText(str(REPO / "config" / "sim-naive.yaml"))
    w.setup_panel.config_edit.editingFinished.emit()
    assert w.checks.results == [] and w.checks.list.count() == 0 and w.checks.ok is None
    assert w.checks.summary.full_text == "not checked yet for sim-naive.yaml"


def test_the_animal_box_never_completes_an_id_into_another_animals(qtbot, window, sessions):
    w = window
    sp = w.setup_panel
    assert sp.animal.findText("M1") >= 0
    sp.animal.setEditText("")
    line = sp.animal.lineEdit()
    line.setFocus()
    qtbot.keyClicks(line, "M")
    assert sp.animal.currentText() == "M" and line.text() == "M"
    assert sp.history.text().startswith("M: a new animal") and "demo" not in sp.history.text()
    qtbot.keyClicks(line, "1")
    assert "M1, last sessions" in sp.history.text() and "demo" in sp.history.text()


# ---- inputs and rewards ------------------------------------------------------------------------------------


def test_the_reward_box_says_why_it_refuses_a_volume(window):
    c = window.controls
    c.session_controls(True)
    for text, why in (("999", "999 µl is more than the rig allows for the manual reward (50 µl at most)"),
                      ("0", "0 µl: the manual reward must be more than 0 µl"),
                      ("-2", "-2 µl: the manual reward must be more than 0 µl"),
                      ("lots", "'lots' is not a number"), ("", "enter the manual reward in µl")):
        c.reward_ul.set_text(text)
        assert c.reward_ul.value() is None and c.reward_ul.problem == why
        assert c.input_msg.full_text == why and not c.reward.isEnabled() and c.reward.toolTip() == why
        assert c.reward_ul.edit.text() == text  # what was typed stays; nothing is silently changed
    c.reward_ul.set_text("2.5")
    assert c.reward_ul.value() == 2.5 and c.reward.isEnabled() and c.input_msg.full_text == ""


def test_the_flush_box_allows_what_the_sessions_valve_allows(window, sessions):
    from gui.main_window import session_facts
    from gui.wire import decode_hello

    c = window.controls
    c.session_controls(True)
    for folder, limit in ((sessions["demo"], 1.0), (sessions["small_valve"], 0.4)):
        _, _, limits, source = session_facts(decode_hello({"session": str(folder)}))
        assert limits.flush_s_max == limit and source == "the valve's max_open_ms"
        c.set_limits(limits, source)
        c.flush_s.set_text("60")
        assert not c.valve_open.isEnabled()
        assert c.flush_s.problem == f"60 s is more than the rig allows for the flush ({limit:g} s at most)"
        c.flush_s.set_text(f"{limit:g}")
        assert c.valve_open.isEnabled()
    # When the runner reports its limits (the hello's `limits`), those are the ones.
    _, _, limits, source = session_facts(decode_hello({"session": str(sessions["demo"]),
                                                       "limits": {"flush_s_max": 0.25,
                                                                  "manual_reward_ul_max": 10}}))
    assert (limits.flush_s_max, limits.manual_reward_ul_max, source) == (0.25, 10.0, "reported by the runner")


def test_manual_rewards_look_different_from_task_rewards_in_the_raster(window, sessions):
    from rig.datalog.reader import Session

    s = Session.open(sessions["demo"])
    rewards = [e for e in s.events if e["kind"] == "reward"]
    manual = [e for e in rewards if e["data"]["source"] == "manual"]
    assert len(manual) == 2 and len(rewards) > 2
    live = live_from(sessions["demo"])
    p = window.plots
    p.set_corridors(live.corridors, [True, False], [600.0, 600.0])
    p.show_snapshot(live.snapshot())
    shown_manual = sum(len(m.getData()[0]) for m in p.manual_marks)
    shown_task = sum(len(m.getData()[0]) for m in p.reward_marks)
    assert (shown_manual, shown_task) == (2, len(rewards) - 2)
    assert p.manual_marks[0].opts["symbol"] != p.reward_marks[0].opts["symbol"]
    assert "manual reward" in p.legend.text


# ---- cosmetics ---------------------------------------------------------------------------------------------


def test_the_water_axis_reads_plain_microlitres_from_zero_when_no_water_was_given(window):
    from gui.live_data import LiveData

    p = window.plots
    live = LiveData(["leaf1", "circle1"])
    live.add_frames({c: np.arange(100.0) for c in ("i", "t", "pos", "speed", "trial")} | {
        "corridor": np.zeros(100), "grey": np.zeros(100)})
    p.set_corridors(live.corridors, [True, False], [600.0, 600.0])
    p.show_snapshot(live.snapshot())
    lo, hi = p.water.vb.viewRange()[1]
    assert lo == 0 and hi == 5
    axis = p.water.getAxis("left")
    axis.setRange(lo, hi)
    assert "x0.001" not in axis.labelString() and not axis.autoSIPrefix


def test_trial_axes_tick_whole_trials_only(window, sessions):
    live = live_from(sessions["demo"])
    p = window.plots
    p.set_corridors(live.corridors, [True, False], [600.0, 600.0], "before the cue")
    p.show_snapshot(live.snapshot())
    for axis in (p.rasters[0].getAxis("left"), p.anticipation.getAxis("bottom")):
        for lo, hi in ((-0.5, 5.5), (0, 2), (10, 13)):
            ticks = [v for _, values in axis.tickValues(lo, hi, 300) for v in values]
            assert ticks and all(float(v).is_integer() for v in ticks), (lo, hi, ticks)


def test_no_lick_before_the_cue_plot_for_a_protocol_without_a_cue(window, sessions):
    from gui.plots import anticipation_label
    from rig.datalog.reader import Session
    from rig.loading import load_protocol

    none = load_protocol(REPO / "protocols" / "pretrain_none_exposure.yaml").model_dump(mode="json")
    none["reward"] = None
    assert anticipation_label(Session.open(sessions["demo"]).header.protocol) == "before the cue"
    assert anticipation_label(Session.open(sessions["nocue"]).header.protocol) == "before the reward zone"
    assert anticipation_label(none) is None
    p = window.plots
    p.set_corridors(["leaf1", "circle1"], [True, False], [600.0, 600.0],
                    anticipation_label(Session.open(sessions["nocue"]).header.protocol))
    assert p.anticipation is not None and "before the reward zone" in p.anticipation.titleLabel.text
    assert "cue" not in p.anticipation.titleLabel.text
    p.set_corridors(["grey"], [False], [600.0], None)
    assert p.anticipation is None


def test_a_gap_in_the_frames_is_not_bridged_by_a_line(window):
    from gui.live_data import LiveData

    live = LiveData(["leaf1"])
    for start in (0, 200):  # loop iterations 100..199 never arrived (telemetry lost)
        i = np.arange(start, start + 100.0)
        live.add_frames({"i": i, "t": i / 60, "pos": i % 600, "speed": np.full(100, 20.0), "trial": 0 * i,
                         "corridor": 0 * i, "grey": 0 * i})
    p = window.plots
    p.set_corridors(live.corridors, [True], [600.0])
    p.show_snapshot(live.snapshot())
    for curve in (p.speed_curve, p.position_curves[0]):
        x, y = curve.getData()
        assert len(x) == 201 and np.isnan(y[100])  # a break where the frames are missing
        assert np.isfinite(y[:100]).all() and np.isfinite(y[101:]).all()
    assert p.speed_curve.opts["connect"] == "finite"
