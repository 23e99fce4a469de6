"""The stage in force and its advance criterion in the runner's status (rig.control.stage_status): followed
from the engine's events by the engine's rules and the one learning criterion, checked against the engine's
own stage_advance events in real session folders, and live over real CURVE-authenticated ZeroMQ."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import api
from rig.control.stage_status import StageFollower
from rig.datalog.reader import Session
from rig.loading import load_protocol
from tests.control.test_control_channel import LiveSession
from tests.support.paths import REPO

STAGES = [
    {"name": "count", "advance": {"after_trials": 3}},
    {"name": "learn", "advance": {"criterion": {"window": 20, "min_trials": 8, "threshold": 0.3}}},
    {"name": "old", "advance": {"anticipatory_fraction": 0.5, "window": 5}},
    {"name": "last"},
]


def staged_protocol(tmp: Path, base: str, stages: list[dict[str, Any]], **changes: Any) -> Path:
    doc = yaml.safe_load((REPO / "protocols" / f"{base}.yaml").read_text())
    doc.update(name=f"staged_{base}", stages=stages, **changes)
    path = tmp / f"staged_{base}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _same_score(mine: dict[str, Any], engine: dict[str, Any]) -> None:
    for k, v in engine.items():
        if isinstance(v, float):
            assert mine[k] == pytest.approx(v, abs=1e-6), k
        else:
            assert mine[k] == v, k


@pytest.mark.parametrize("seed", [1, 2])
def test_the_follower_predicts_every_advance_the_engine_makes_and_no_other(tmp_path, seed):
    """A real fast session through all three rules (after_trials, the learning criterion, the deprecated
    anticipatory fraction): replaying its logged events, the follower is in the engine's stage at every
    trial, has an advance pending exactly when the engine advances at the next trial start, for the same
    reason, and for the criterion with the score the engine logged."""
    path = staged_protocol(tmp_path, "train1_task", STAGES, end={"max_trials": 500})
    folder = api.run(path, fast=True, max_trials=80, data_dir=tmp_path / "data", animal="F", seed=seed)
    session = Session.open(folder)
    follower = StageFollower(load_protocol(path).stages)
    reasons = []
    advanced = False
    for ev in session.events:
        kind, data = ev["kind"], ev["data"]
        if kind == "stage_advance":
            assert follower.pending == data["reason"], ev
            if data["reason"] == "criterion":
                crit = follower.criterion()
                assert crit is not None and crit["learned"] is True
                _same_score(crit, data["score"])
            if data["reason"] == "anticipatory":
                crit = follower.criterion()
                assert crit is not None and crit["fraction_now"] >= 0.5 and crit["rewarded_in_window"] == 5
            if data["reason"] == "trials":
                assert follower.trials_in_stage == 3
            reasons.append(data["reason"])
            advanced = True
        elif kind == "trial_start":
            if not advanced:
                assert follower.pending is None, ev  # the engine did not advance: nothing was met
            advanced = False
            assert data["stage"] == follower.index == (follower.status()["stage_index"])
            assert data["stage_name"] == follower.name
        elif kind == "trial_end":
            assert data["stage"] == follower.index
        follower.add(kind, data)
    assert reasons == ["trials", "criterion", "anticipatory"]  # every rule was exercised
    assert follower.status() == {"stage": "last", "stage_index": 3, "n_stages": 4, "criterion": None}


def test_the_criterion_is_reported_before_enough_trials_without_a_judgement():
    follower = StageFollower(load_protocol(REPO / "protocols" / "train1_task.yaml").stages)
    assert follower.status() == {"stage": "main", "stage_index": 0, "n_stages": 1, "criterion": None}
    from rig.protocol import Stage

    f = StageFollower([Stage.model_validate(s) for s in STAGES[1:]])
    f.add("trial_end", {"rewarded": True, "anticipatory": True, "probe": False})
    f.add("trial_end", {"rewarded": True, "anticipatory": False, "probe": True})  # a probe: not judged
    f.add("trial_end", "not a dict")  # a malformed record counts as a plain trial, never crashes
    c = f.criterion()
    assert c is not None
    assert (c["measure"], c["threshold"], c["min_trials"], c["window"]) == ("difference", 0.3, 8, 20)
    assert (c["trials_in_stage"], c["n_rewarded"], c["n_unrewarded"]) == (3, 1, 1)
    assert c["rewarded_fraction"] == 1.0 and c["unrewarded_fraction"] == 0.0
    assert c["value"] is None and c["learned"] is False and c["pending"] is None
    f.add("stage_advance", {"to": 7})  # beyond the protocol's stages: ignored
    f.add("stage_advance", {"to": True})
    assert f.index == 0


def test_the_live_status_carries_the_stage_and_its_criterion_as_the_events_say(tmp_path):
    """Real time, short corridors with a pause between trials: the status over ZeroMQ reports stage 0
    counting towards its after_trials, the advance pending in the pause, then stage 1 with the learning
    criterion; every status equals the follower fed with the session's logged events up to that status's
    iteration."""
    stages = [{"name": "warmup", "advance": {"after_trials": 2}},
              {"name": "learn", "advance": {"criterion": {"window": 10, "min_trials": 5}}}, {"name": "last"}]
    corridors = yaml.safe_load((REPO / "protocols" / "demo.yaml").read_text())["corridors"]
    for c in corridors:
        c.update(texture_length_cm=40, grey_length_cm=10)
    path = staged_protocol(tmp_path, "demo", stages, corridors=corridors,
                           cue={"position_cm": [5, 20], "duration_ms": 100, "frequency_hz": 4000},
                           inter_trial={"mode": "pause", "pause_s": 0.5},  # the pending advance is seen
                           end={"max_trials": 6, "max_duration_s": 60})
    live = LiveSession(tmp_path, duration_s=30.0, protocol_path=path, status_hz=10.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and live.thread.is_alive():
            live.collect(0.2)
        live.collect(0.5)
    finally:
        session = live.finish()
    statuses = [b for t, b in live.messages if t == "status"]
    assert len(statuses) > 10 and statuses[-1]["running"] is False
    seen = {(s["stage_index"], s["stage"]) for s in statuses}
    assert {(0, "warmup"), (1, "learn")} <= seen
    follower = StageFollower(load_protocol(path).stages)
    events = iter(session.events)
    pending: dict[str, Any] | None = next(events, None)
    for st in statuses:
        while pending is not None and pending["i"] <= st["i"]:
            follower.add(pending["kind"], pending["data"])
            pending = next(events, None)
        assert {k: st[k] for k in ("stage", "stage_index", "n_stages", "criterion")} == follower.status(), st
    warm = [s["criterion"] for s in statuses if s["stage_index"] == 0]
    assert warm[0]["after_trials"] == 2 and "measure" not in warm[0]
    assert any(c["pending"] == "trials" for c in warm)  # met at the 2nd trial's end, taken at the next start
    learn = [s["criterion"] for s in statuses if s["stage_index"] == 1]
    assert learn[-1]["measure"] == "difference" and learn[-1]["min_trials"] == 5
    assert learn[-1]["trials_in_stage"] > 0
    assert all(isinstance(s["criterion"]["value"], float) or s["criterion"]["value"] is None for s in statuses
               if s["stage_index"] == 1)
    assert not any(isinstance(v, float) and math.isnan(v) for s in statuses for v in (s["criterion"] or {}).values())
