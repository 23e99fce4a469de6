"""The stage panel's numbers without the runner's report (gui.stages): the protocol's stages read back from a
real session header and followed over its logged events give exactly the runner's status fields."""

from __future__ import annotations

from rig import api
from rig.control.stage_status import StageFollower
from rig.datalog.reader import Session
from rig.loading import load_protocol
from tests.control.test_stage_status import STAGES, staged_protocol


def test_the_folder_fallback_matches_the_runner_s_follower_event_by_event(tmp_path):
    from gui.stages import StageTracker
    from gui.wire import decode_criterion

    path = staged_protocol(tmp_path, "train1_task", STAGES, end={"max_trials": 500})
    session = Session.open(api.run(path, fast=True, max_trials=60, data_dir=tmp_path / "d", animal="G", seed=1))
    gui = StageTracker(session.header.protocol)
    runner = StageFollower(load_protocol(path).stages)
    texts = set()
    for ev in session.events:
        gui.add(dict(ev))
        runner.add(ev["kind"], ev["data"])
        p, st = gui.progress(), runner.status()
        assert (p.name, p.index, p.n_stages, p.criterion) == (st["stage"], st["stage_index"], st["n_stages"],
                                                             decode_criterion(st["criterion"]))
        texts.add(p.text())
    assert [a.reason for a in gui.advances] == ["trials", "criterion", "anticipatory"]
    assert any(t.startswith("stage 2 of 4: learn") and "too few to judge" in t for t in texts)
    assert any("learning criterion): advances at the next trial start" in t for t in texts)
    assert any(t.startswith("stage 3 of 4: old") and "at ≥ 50% anticipatory licking over 5 rewarded" in t
               for t in texts)
    assert gui.progress().text().endswith("· last stage")


def test_a_stage_rule_that_does_not_read_is_kept_by_name_without_a_rule():
    from gui.stages import StageTracker

    t = StageTracker({"stages": [{"name": "a", "advance": {"after_trials": "many"}}, {"name": "b"}, "junk"]})
    assert [s.name for s in t.stages] == ["a", "b"] and t.progress().criterion is None
    assert t.progress().text() == (
        "stage 1 of 2: a · 0 trials in it · no advance rule: it lasts to the end of the session")
