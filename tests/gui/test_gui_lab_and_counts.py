"""The day at the rig (gui.day_panel on the gui.lab_view interface: a fake implementing it, and the interim file
store) and the counts the app follows from a session folder (gui.folder_tail), which must be `rig info`'s for
every kind of session and at every point of a folder being written (under a private Xvfb, real folders)."""

from __future__ import annotations

import json
import random
from datetime import date, datetime

import pytest

from gui.lab_view import LabError, RigLabRecords
from gui.session_state import Outcome, Phase, outcome
from gui.wire import End
from rig.datalog.info import session_info
from rig.datalog.reader import Session
from rig.loading import find_file
from tests.gui.test_gui_control import FakeLab
from tests.support.paths import REPO

STAGED = str(REPO / "examples" / "staged_zone_task.yaml")  # a protocol whose stage advances


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from rig.loading import load_config, load_protocol
    from rig.runner.loop import Operator
    from rig.runner.session import SessionOptions, run_session
    from tests.support.operator_script import OperatorScript

    data = tmp_path_factory.mktemp("counts")
    config = load_config(REPO / "config" / "sim.yaml")

    def run(proto: str, animal: str, trials: int, hooks=(), **kw):
        return run_session(load_protocol(find_file(proto, "protocols")), config,
                           SessionOptions(animal=animal, seed=5, fast=True, max_trials=trials, data_dir=data, **kw),
                           hooks=hooks).path

    manual = OperatorScript({50: [Operator("manual_reward", 3.0)], 80: [Operator("manual_reward", 1.5)],
                             700: [Operator("stop")]})
    return {"data": data, "demo": run("demo", "A1", 8), "manual_stop": run("demo", "A1", 8, (manual,)),
            "nocue": run(STAGED, "A2", 5), "exposure": run("train1_exposure", "A3", 5),
            "pause_iti": run("test1_task", "A4", 4)}


KEYS = ("trials", "rewards", "rewards_manual", "water_ul", "licks", "iterations")


def tail_counts(folder) -> dict:
    from gui.folder_tail import FolderTail

    t = FolderTail(folder)
    t.poll()
    c = t.counts
    return {"trials": c.trials, "rewards": c.rewards, "rewards_manual": c.rewards_manual,
            "water_ul": round(c.water_ul, 6), "licks": c.licks, "iterations": c.iterations}


@pytest.mark.parametrize("name", ["demo", "manual_stop", "nocue", "exposure", "pause_iti"])
def test_the_folder_counts_are_rig_infos(folders, name):
    info = session_info(Session.open(folders[name]))
    assert tail_counts(folders[name]) == {k: info[k] for k in KEYS}
    if name == "manual_stop":
        assert info["rewards_manual"] == 2 and not info["complete"]


def test_the_folder_counts_are_rig_infos_at_every_point_of_the_writing(folders, tmp_path):
    """The folder copied in random pieces, records and lines cut anywhere: after each piece the counts equal
    rig info's for what the piece holds (rig.datalog.reader drops the same partial tails)."""
    from gui.folder_tail import FolderTail

    src = folders["manual_stop"]
    dst = tmp_path / "A1" / src.parent.name / src.name
    dst.mkdir(parents=True)
    for name in json.loads((src / "header.json").read_text())["files"]:  # the writer makes them all first
        (dst / name).touch()
    (dst / "header.json").write_bytes((src / "header.json").read_bytes())
    names = ["events.jsonl", "commands.jsonl", "valve.jsonl", "licks.bin", "timing.bin", "frames.bin", "ball.bin",
             "frame_clock.bin", "operator.jsonl", "faults.jsonl"]
    data = {n: (src / n).read_bytes() for n in names if (src / n).exists()}
    done = {n: 0 for n in data}
    tail = FolderTail(dst)
    rng = random.Random(4)
    while any(done[n] < len(data[n]) for n in data):
        for n in data:
            step = rng.randint(0, max(len(data[n]) // 6, 1))
            chunk = data[n][done[n]:done[n] + step]
            with open(dst / n, "ab") as f:
                f.write(chunk)
            done[n] += len(chunk)
        tail.poll()
        info = session_info(Session.open(dst))
        c = tail.counts
        assert (c.trials, c.rewards, c.rewards_manual, round(c.water_ul, 6), c.licks, c.iterations) == \
            tuple(info[k] for k in KEYS)
    assert tail.counts.trials == session_info(Session.open(src))["trials"]


def test_the_outcome_of_a_folder(folders, tmp_path):
    done = outcome(folders["demo"], End(True, "max_trials"), runner_gone=True)
    assert done.phase is Phase.FINISHED and done.info["trials"] == 8
    stopped = outcome(folders["manual_stop"], None, runner_gone=True)
    assert stopped.phase is Phase.STOPPED_EARLY and stopped.reason == "operator stop"
    crashed = outcome(tmp_path / "nowhere", None, runner_gone=True)
    assert crashed.phase is Phase.CRASHED and crashed.info is None and "cannot be read" in crashed.summary_line()
    loop_crash = outcome(folders["demo"], End(None, "crashed: see the runner log"), runner_gone=True)
    assert loop_crash.phase is Phase.CRASHED


# ---- the day at the rig -------------------------------------------------------------------------------------


@pytest.fixture
def panel(qtbot):
    from gui.day_panel import DayPanel

    lab = FakeLab()
    p = DayPanel(lab)
    qtbot.addWidget(p)
    p.resize(400, 700)
    p.show()
    p.set_animal("D1")
    return p, lab


def test_the_day_panel_records_the_weight_before_the_start_against_the_baseline(panel):
    p, lab = panel
    assert p.weight_msg.full_text == "no weight today: weigh the animal before the session"
    p.weight_field.set_text("24")
    p.record_weight.click()
    assert [(a, g) for a, g, _ in lab.weights] == [("D1", 24.0)]
    assert "today 24.0 g" in p.weight_msg.full_text and "96% of baseline" in p.weight_msg.full_text
    p.weight_field.set_text("18")
    p.record_weight.click()
    assert "72% of baseline (below 80%!)" in p.weight_msg.full_text and p.weight_msg.property("tone") == "error"
    p.weight_field.set_text("300")
    assert not p.record_weight.isEnabled()
    assert p.weight_msg.full_text == "300 g is more than a mouse weighs (200 g at most)"


def test_the_day_panel_shows_water_today_against_the_target_with_supplements(panel):
    p, lab = panel
    assert p.water_msg.full_text == "rig 300.0 µl + supplement 0 µl = 300.0 µl of 1000 µl · 700 µl short"
    p.supplement_field.set_text("700")
    p.add_supplement.click()
    assert lab.supplements[0][:2] == ("D1", 700.0)
    assert p.water_msg.full_text.endswith("= 1000.0 µl of 1000 µl · target met") and p.water_bar.value() == 100


def test_the_end_of_session_summary(panel, folders):
    p, lab = panel
    p.weight_field.set_text("24.5")
    p.record_weight.click()
    p.set_session(folders["manual_stop"], running=False)
    from gui.day_panel import SummaryPanel

    s = SummaryPanel(p)
    assert not s.add_note.isEnabled()  # no session has ended yet
    out = outcome(folders["manual_stop"], None, runner_gone=True)
    s.show_outcome(out, "anticipatory licking 50% of the last 4 rewarded trials", faults=1)
    s.note_edit.setText("licked the spout dry")
    s.add_note.click()
    assert lab.note_list[0][1].during is False  # typed after the session
    info = out.info
    text = s.text.text()
    assert s.box.title() == "End of session: STOPPED EARLY"
    assert f"{info['trials']} trials · {info['rewards']} rewards (2 manual) · {info['water_ul']:.1f} µl water" in text
    assert "weight before the start: 24.5 g" in text and "anticipatory licking 50%" in text
    assert f"faults: {info['faults']} in the session log, 1 seen by the app" in text
    assert s.notes.count() == 1 and "(after) licked the spout dry" in s.notes.item(0).text()
    assert p.notes.count() == 1  # the day's list shows it too


def test_the_apps_lab_records_are_rig_labs_and_take_the_rigs_water_from_the_folders(folders, tmp_path):
    """What the app records (weight, supplement, notes) is what `rig animal` and the NWB export read."""
    import shutil

    from rig.lab import notes, subjects, water, weights
    from rig.lab.daily import animal_log

    data = tmp_path / "data"
    shutil.copytree(folders["data"] / "A1", data / "A1")
    lab = RigLabRecords(data, by="Doe, Jane")
    day = date.fromisoformat(folders["demo"].parent.name)
    when = datetime.combine(day, datetime.min.time()).replace(hour=9)
    assert lab.subject("A1") is None and lab.weight("A1", day) is None
    subjects.create_subject(data, subjects.Subject(
        id="A1", sex="F", restricted=True, water_restriction_start=day, baseline_weight_g=25.0,
        daily_water_target_ml=1.0))
    lab.record_weight("A1", 23.5, when)
    lab.add_supplement("A1", 400, when)
    session = data / "A1" / folders["demo"].parent.name / folders["demo"].name
    lab.add_note("A1", "first note", when, session, during=True)
    lab.add_note("A1", "after the session", when, session, during=False)
    assert lab.weight("A1", day).grams == 23.5
    rig = sum(session_info(Session.open(f))["water_ul"] for f in (data / "A1" / day.isoformat()).iterdir())
    w = lab.water("A1", day)
    assert (w.rig_ul, w.supplement_ul, w.target_ul, w.sessions) == (round(rig, 6), 400.0, 1000.0, 2)
    assert [(n.text, n.during) for n in lab.notes("A1", session)] == [("first note", True),
                                                                    ("after the session", False)]
    assert lab.subject("A1").restricted and lab.subject("A1").baseline_weight_g == 25.0
    # rig.lab's own records hold them, as `rig animal A1` reads them
    assert [(e.weight_g, e.source, e.by) for e in weights.weights(data, "A1")] == [(23.5, "rig gui", "Doe, Jane")]
    assert water.supplement_ml_on(water.supplements(data, "A1"), day) == 0.4
    assert [n.session for n in notes.notes(data, "A1")] == [f"{session.parent.name}/{session.name}"] * 2
    today = animal_log(data, "A1", today=day).days[-1]
    assert (today.date, today.weight_g, today.supplement_ml, len(today.notes)) == (day, 23.5, 0.4, 2)
    for bad, call in (("weight 0 g", lambda: lab.record_weight("A1", 0, when)),
                      ("baseline", lambda: lab.record_weight("A1", 2.5, when)),  # rig.lab's plausibility check
                      ("the note is empty", lambda: lab.add_note("A1", "  ", when, None, False)),
                      ("animal ID", lambda: lab.add_note("../x", "hi", when, None, False)),
                      ("supplement", lambda: lab.add_supplement("A1", float("nan"), when)),
                      ("not a session of A1", lambda: lab.add_note("A1", "x", when, tmp_path, False))):
        with pytest.raises(LabError, match=bad):
            call()


def test_summary_lines_of_a_crash_without_a_readable_folder():
    from gui.day_panel import summary_lines

    out = Outcome(Phase.CRASHED, "the runner process is gone", None, None, "no session folder was announced")
    lines = summary_lines(out, None, None, 2)
    assert lines[0] == "CRASHED: the runner process is gone"
    assert "the session folder cannot be read: no session folder was announced" in lines
    assert "no weight recorded today" in lines
