"""A 500-trial simulated session with a scripted mouse: the engine's statistics add up."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

from rig.engine.records import Inputs
from tests.support.engine import Run, make_protocol

DT = 1 / 32  # s: a coarse frame keeps the 160,000-frame session quick


def test_500_trial_session_with_a_running_mouse_that_licks_after_the_cue():
    corridors = [
        {"name": "leaf1", "texture": {"source": "leaf"}, "rewarded": True},
        {"name": "circle1", "texture": {"source": "circle"}},
        {"name": "leaf2", "texture": {"source": "leaf", "exemplar": 2}, "probe": True},
    ]
    p = make_protocol(corridors=corridors, order={"max_repeat": 3, "probe_fraction": 0.1}, end={"max_trials": 500})
    r = Run.start(p, seed=2025)
    run = Inputs(ball_cm=30.0 * DT)  # constant running at 30 cm/s: the gate holds open
    frame = 0
    steps = 0
    while not r.state.done:
        frame += 1
        st = r.state
        # the mouse licks every 4th frame once it has heard the cue, until the grey part
        if st.cue_played and not st.in_grey and frame % 4 == 0:
            r.step(Inputs(ball_cm=run.ball_cm, licks=(r.t + DT / 2,)), DT)
        else:
            r.step(run, DT)
        steps += 1
    ends = r.of("trial_end")
    assert len(ends) == 500 and r.of("session_end")[0].data["reason"] == "max_trials"
    assert math.isclose(r.state.position_cum_cm, 500 * 600.0)

    # every trial has its cue, inside the cue range
    cues = r.of("cue")
    assert len(cues) == 500 and all(50.0 <= e.position_cm <= 350.0 for e in cues)

    # rewards: exactly the rewarded-corridor trials with a lick after the cue, before the grey
    cue_t = {e.trial: e.t for e in cues}
    licked_after_cue = {
        e.trial for e in r.of("lick") if e.t >= cue_t[e.trial] and e.position_cm < 400.0 and not e.data["iti"]
    }
    rewarded_trials = {e.trial for e in ends if e.data["rewarded"]}
    rewards = r.of("reward")
    assert len(rewards) == len(rewarded_trials & licked_after_cue) == len(rewarded_trials)
    assert Counter(e.trial for e in rewards) == {k: 1 for k in rewarded_trials}
    assert all(e.data["source"] == "task" and e.data["volume_ul"] == 2.5 for e in rewards)
    valves = [c for c in r.commands if c.kind == "valve"]
    assert len(valves) == len(rewards) and math.fsum(c.volume_ul for c in valves) == 2.5 * len(rewards)
    assert [e.data["rewards"] for e in ends] == [int(e.data["rewarded"]) for e in ends]

    # the mouse never licks before the cue: no anticipatory trials
    assert not any(e.data["anticipatory"] for e in ends)
    assert sum(e.data["licks"] for e in ends) == len([e for e in r.of("lick") if not e.data["iti"]])

    # trial order: probes at 10 %, the two ordinary corridors about equal, runs of at most 3
    names = [e.data["corridor"] for e in ends]
    n_probe = names.count("leaf2")
    assert abs(n_probe - 50) <= 5 * math.sqrt(500 * 0.1 * 0.9)
    ordinary = [n for n in names if n != "leaf2"]
    assert abs(ordinary.count("leaf1") - len(ordinary) / 2) <= 5 * math.sqrt(len(ordinary) / 4)
    assert max(len(list(g)) for _, g in itertools.groupby(ordinary)) <= 3
    assert all(e.data["probe"] == (e.data["corridor"] == "leaf2") for e in ends)

    # each trial's events come in the corridor's order
    per_trial = defaultdict(list)
    for e in r.events:
        if e.kind in ("trial_start", "cue", "grey_start", "trial_end"):
            per_trial[e.trial].append(e.kind)
    assert all(v == ["trial_start", "cue", "grey_start", "trial_end"] for v in per_trial.values())
    # at 60 cm/s a 600 cm corridor takes 10 s: 320 frames of 1/32 s, plus the two frames before the
    # gate opened (speed above threshold from frame 1, hold 62.5 ms reached at frame 3)
    assert steps == 500 * 320 + 2
