"""The learning criterion (rig.engine.learning): rewarded against unrewarded corridors, one implementation
for stage advance, the app's suggestion and the scripting API."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from rig import api
from rig.engine.learning import Outcome, Tracker, criterion_of, outcomes_from_events, score
from rig.engine.records import Inputs
from rig.protocol import Criterion
from tests.support.engine import DT, Run, make_protocol
from tests.support.paths import REPO

PROP = {"rule": "proportional", "gain": 1.0, "speed_cm_s": None, "threshold_cm_s": None, "hold_ms": None}
ALTERNATE = {"mode": "fixed", "sequence": ["leaf1", "circle1"]}


def outcomes(n_rew: int, k_rew: int, n_unrew: int, k_unrew: int) -> list[Outcome]:
    """Interleaved outcomes: k of n anticipatory in each kind."""
    rew = [Outcome(True, i < k_rew) for i in range(n_rew)]
    unrew = [Outcome(False, i < k_unrew) for i in range(n_unrew)]
    out = [o for pair in zip(rew, unrew, strict=False) for o in pair]
    return out + rew[len(unrew):] + unrew[len(rew):]


def test_the_naive_mouse_of_issue_13_does_not_pass():
    # 0.78 rewarded against 0.66 unrewarded: "learned train1" under the old rewarded-only rule
    whole = Criterion(window=50)
    sc = score(outcomes(50, 39, 50, 33), whole)
    assert (sc.rewarded_fraction, sc.unrewarded_fraction) == (0.78, 0.66)
    assert sc.enough and not sc.learned and sc.value == pytest.approx(0.12)
    assert "difference +12% (< 30%)" in sc.describe()
    assert not score(outcomes(50, 39, 50, 33), Criterion(measure="dprime", threshold=1.0, window=50)).learned


def test_an_expert_passes_by_difference_and_by_dprime():
    sc = score(outcomes(40, 36, 40, 8))
    assert sc.learned and sc.value == pytest.approx(0.9 - 0.2)
    d = score(outcomes(40, 36, 40, 8), Criterion(measure="dprime", threshold=1.0))
    from statistics import NormalDist

    z = NormalDist().inv_cdf
    assert d.learned and d.value == pytest.approx(z(36.5 / 41) - z(8.5 / 41))
    perfect = score(outcomes(40, 40, 40, 0), Criterion(measure="dprime", threshold=1.0))
    assert math.isfinite(perfect.value) and perfect.learned  # the log-linear correction keeps 0 and 1 finite


def test_nothing_is_judged_before_min_trials_of_each_kind():
    sc = score(outcomes(40, 40, 19, 0))
    assert not sc.enough and not sc.learned and math.isnan(sc.value)
    assert "too few" in sc.describe() and sc.as_dict()["value"] is None
    assert score(outcomes(20, 20, 20, 0)).learned


def test_only_the_latest_window_of_each_kind_counts():
    tracker = Tracker(Criterion(window=10, min_trials=10))
    for _ in range(30):
        tracker.add(True, False)
        tracker.add(False, True)  # early on the mouse licks the wrong way ...
    for _ in range(10):
        tracker.add(True, True)
        tracker.add(False, False)  # ... then learns
    sc = tracker.score()
    assert (sc.n_rewarded, sc.n_unrewarded, sc.value) == (10, 10, 1.0)


def test_criterion_values_are_checked():
    with pytest.raises(ValidationError, match="at most 1"):
        Criterion(threshold=1.5)
    assert Criterion(measure="dprime", threshold=1.5).threshold == 1.5
    with pytest.raises(ValidationError, match="more than the window"):
        Criterion(window=10, min_trials=20)


def test_outcomes_from_logged_events_skip_probes_and_unfinished_trials():
    events = [
        {"kind": "trial_end", "data": {"rewarded": True, "probe": False, "anticipatory": True}},
        {"kind": "trial_end", "data": {"rewarded": False, "probe": True, "anticipatory": True}},
        {"kind": "trial_start", "data": {"rewarded": False}},
        {"kind": "trial_end", "data": {"rewarded": False, "probe": False, "anticipatory": False}},
    ]
    assert outcomes_from_events(events) == [Outcome(True, True), Outcome(False, False)]


# ---- stage advance in the engine ---------------------------------------------------------------------


def criterion_run(lick_in_rewarded: bool, lick_in_unrewarded: bool, n_trials: int = 60) -> Run:
    crit = {"measure": "difference", "threshold": 0.5, "window": 10, "min_trials": 10}
    stages = [{"name": "learn", "advance": {"criterion": crit}}, {"name": "expert"}]
    r = Run.start(make_protocol(movement=PROP, cue={"position_cm": [100.0, 100.0]}, stages=stages, order=ALTERNATE))
    for k in range(n_trials):
        rewarded = k % 2 == 0  # leaf1, circle1, leaf1, ...
        lick = lick_in_rewarded if rewarded else lick_in_unrewarded
        # one frame per trial; a lick in the frame is judged at position 0: before the cue
        r.step(Inputs(ball_cm=600.0, licks=(r.t + DT / 2,)) if lick else Inputs(ball_cm=600.0))
    return r


def test_a_mouse_licking_everywhere_never_advances():
    r = criterion_run(True, True)
    assert r.of("stage_advance") == [] and r.state.stage == 0
    assert all(e.data["anticipatory"] for e in r.of("trial_end"))


def test_a_discriminating_mouse_advances_with_its_score_logged():
    r = criterion_run(True, False)
    (adv,) = r.of("stage_advance")
    # 10 of each kind are needed: trial 19 (the 10th unrewarded) completes the window
    assert adv.trial == 20 and adv.data["reason"] == "criterion" and r.state.stage == 1
    sc = adv.data["score"]
    assert (sc["n_rewarded"], sc["n_unrewarded"], sc["value"], sc["learned"]) == (10, 10, 1.0, True)


def test_criterion_of_a_protocol_is_its_last_stage_criterion_else_the_default():
    crit = {"measure": "dprime", "threshold": 1.2}
    p = make_protocol(stages=[{"name": "a", "advance": {"criterion": crit}}, {"name": "b"}])
    assert criterion_of(p) == Criterion(measure="dprime", threshold=1.2)
    assert criterion_of(make_protocol()) == Criterion()
    legacy = make_protocol(stages=[{"name": "a", "advance": {"anticipatory_fraction": 0.6, "window": 30}},
                                   {"name": "b"}])
    assert criterion_of(legacy) == Criterion()  # the deprecated rule still loads, but judges nothing here


# ---- the scripting API and a simulated mouse ------------------------------------------------------------


def test_api_learning_and_trials_on_simulated_mice(tmp_path):
    """A naive simulated mouse licks alike in both corridors and does not pass; an expert one does."""
    runs = {}
    for label, config in (("naive", "sim-naive.yaml"), ("expert", "sim.yaml")):
        runs[label] = api.run(REPO / "protocols" / "train1_task.yaml", REPO / "config" / config, fast=True,
                              max_trials=100, data_dir=tmp_path, seed=3, animal=label)
    naive, expert = api.learning(runs["naive"]), api.learning(runs["expert"])
    assert naive.enough and not naive.learned, naive.describe()
    assert naive.rewarded_fraction > 0.2  # it does lick before the cue: spontaneous licking alone
    assert expert.learned, expert.describe()
    table = api.trials(runs["expert"])
    assert len(table) == 100 and table["complete"].all() and list(table["trial"]) == list(range(100))
    rewarded = table["rewarded_corridor"] & ~table["probe"]
    assert expert.rewarded_fraction == pytest.approx(table["anticipatory"][rewarded][-40:].mean())
    assert set(table["corridor"]) == {"leaf1", "circle1"} and (table["rewards"][rewarded] > 0).mean() > 0.8
