"""Engine: reward rules, exposure, manual rewards, anticipatory licks, stages."""

from __future__ import annotations

import pytest

from rig.engine.records import Inputs
from tests.support.engine import DT, Run, make_protocol, one_corridor

PROP = {"rule": "proportional", "gain": 1.0, "speed_cm_s": None, "threshold_cm_s": None, "hold_ms": None}
CUE_100 = {"position_cm": [100.0, 100.0]}
ALTERNATE = {"mode": "fixed", "sequence": ["leaf1", "circle1"]}


def lick_now(r: Run, **kw) -> Inputs:
    """Inputs with one lick in the middle of the next frame (judged at the position before the frame)."""
    return Inputs(licks=(r.t + DT / 2,), **kw)


def kinds(step) -> list[str]:
    return [e.kind for e in step.events]


# ---------------------------------------------------------------------------- active_after_cue


def active(**over) -> Run:
    return Run.start(make_protocol(movement=PROP, corridors=one_corridor(True), cue=CUE_100, **over))


def test_active_lick_before_cue_is_not_rewarded_lick_after_is():
    r = active()
    s = r.step(lick_now(r, ball_cm=50.0))
    assert kinds(s) == ["lick"] and s.events[0].data["anticipatory"] is True and s.commands == ()
    assert kinds(r.step(Inputs(ball_cm=60.0))) == ["cue"]
    t_lick = r.t + DT / 2
    s = r.step(lick_now(r))
    assert kinds(s) == ["lick", "reward"]
    lick, rew = s.events
    assert lick.data["anticipatory"] is False
    assert rew.t == t_lick and rew.position_cm == 110.0 and rew.trial == 0
    assert rew.data == {"volume_ul": 2.5, "duration_ms": 10.0, "rule": "active_after_cue", "source": "task"}
    (cmd,) = [c for c in s.commands if c.kind == "valve"]
    assert (cmd.t, cmd.duration_ms, cmd.volume_ul, cmd.source) == (t_lick, 10.0, 2.5, "task")
    assert r.state.rewards_in_trial == 1
    assert kinds(r.step(lick_now(r))) == ["lick"]  # max_per_trial = 1


def test_active_lick_earlier_in_the_cue_frame_is_before_the_cue_but_a_lick_at_the_cue_time_counts():
    r = active()
    r.step(Inputs(ball_cm=90.0))
    s = r.step(Inputs(ball_cm=20.0, licks=(r.t + DT / 2, r.t + DT)))  # the 2nd lick is at the frame time
    assert kinds(s) == ["lick", "cue", "lick", "reward"]
    assert s.events[0].data["anticipatory"] is True and s.events[2].data["anticipatory"] is False


def test_active_window_closes_at_texture_end():
    r = active(reward={"max_per_trial": 5})
    r.step(Inputs(ball_cm=399.0))
    assert kinds(r.step(lick_now(r))) == ["lick", "reward"]
    r.step(Inputs(ball_cm=2.0))
    assert r.state.in_grey
    assert kinds(r.step(lick_now(r))) == ["lick"]


def test_max_per_trial_caps_rewards_and_resets_each_trial():
    r = active(reward={"max_per_trial": 3})
    r.step(Inputs(ball_cm=150.0))
    s = r.step(Inputs(licks=tuple(r.t + DT * k / 6 for k in range(1, 6))))
    assert kinds(s).count("lick") == 5 and kinds(s).count("reward") == 3
    assert r.state.rewards_in_trial == 3
    s = r.step(Inputs(ball_cm=600.0))
    assert r.state.trial == 1 and r.state.rewards_in_trial == 0
    assert r.of("trial_end")[0].data["rewards"] == 3
    r.step(lick_now(r))
    assert r.state.rewards_in_trial == 1


def test_unrewarded_corridor_never_pays():
    r = Run.start(make_protocol(movement=PROP, cue=CUE_100, order=ALTERNATE, reward={"max_per_trial": 9}))
    r.step(Inputs(ball_cm=600.0))  # leaf1 without licks
    assert r.of("trial_start")[-1].data["corridor"] == "circle1"
    r.step(Inputs(ball_cm=150.0))
    s = r.step(Inputs(licks=tuple(r.t + DT * k / 6 for k in range(1, 6))))
    assert kinds(s) == ["lick"] * 5 and s.commands == ()
    assert r.of("reward") == [] and r.state.rewards_in_trial == 0


# ---------------------------------------------------------------------------- passive_after_cue


def passive(delay_ms: float, **over) -> Run:
    return Run.start(
        make_protocol(
            movement=PROP,
            corridors=one_corridor(True),
            cue=CUE_100,
            reward={"mode": "passive_after_cue", "delay_ms": delay_ms, **over},
        )
    )


def test_passive_reward_fires_at_first_frame_after_cue_plus_delay_without_licks():
    r = passive(250.0)  # 16 frames of 1/64 s
    r.step(Inputs(ball_cm=120.0))
    t_cue = r.of("cue")[0].t
    for _ in range(15):
        assert kinds(r.step(Inputs())) == []
    s = r.step(Inputs())
    assert kinds(s) == ["reward"] and s.events[0].t == r.t == t_cue + 0.25
    assert s.events[0].data["rule"] == "passive_after_cue"
    assert [c.kind for c in s.commands] == ["valve"]
    for _ in range(40):
        assert r.step(lick_now(r)).commands == ()


def test_passive_with_zero_delay_pays_in_the_cue_frame_and_only_once():
    r = passive(0.0, max_per_trial=4)
    s = r.step(Inputs(ball_cm=120.0))
    assert kinds(s) == ["cue", "reward"]
    assert [c.kind for c in s.commands] == ["cue", "valve"]
    assert kinds(r.step(lick_now(r))) == ["lick"]


def test_passive_reward_not_yet_due_at_trial_end_is_dropped():
    r = passive(5000.0)
    r.step(Inputs(ball_cm=620.0))
    for _ in range(400):
        r.step(Inputs())
    assert r.of("reward") == [] and r.of("trial_end")[0].data["rewards"] == 0


def test_passive_reward_not_yet_due_is_not_paid_in_the_inter_trial_pause():
    r = Run.start(
        make_protocol(
            movement=PROP,
            corridors=one_corridor(True),
            cue=CUE_100,
            reward={"mode": "passive_after_cue", "delay_ms": 200.0},
            inter_trial={"mode": "pause", "pause_s": 2.0},
        )
    )
    r.step(Inputs(ball_cm=620.0))
    for _ in range(150):  # 2.3 s: past the reward's due time and the pause
        r.step(Inputs())
    assert r.state.trial == 1 and r.of("reward") == [] and [c.kind for c in r.commands] == ["cue"]


def test_passive_reward_waits_for_operator_unpause():
    r = passive(100.0)
    r.step(Inputs(ball_cm=120.0))
    for _ in range(20):
        assert r.step(Inputs(paused=True)).commands == ()
    s = r.step(Inputs())
    assert kinds(s) == ["reward"]


# ---------------------------------------------------------------------------- zone modes


def zone(mode: str, **reward) -> Run:
    return Run.start(
        make_protocol(
            movement=PROP,
            corridors=one_corridor(True),
            cue=None,
            reward={"mode": mode, "zone_start_cm": [200.0, 200.0], **reward},
        )
    )


def test_zone_active_pays_licks_inside_the_zone_only():
    r = zone("zone_active", zone_length_cm=50.0, max_per_trial=5)
    assert r.state.zone_start_cm == 200.0
    r.step(Inputs(ball_cm=150.0))
    s = r.step(lick_now(r))
    assert kinds(s) == ["lick"] and s.events[0].data["anticipatory"] is True
    r.step(Inputs(ball_cm=50.0))  # at 200: zone start is inside
    assert kinds(r.step(lick_now(r, ball_cm=49.0))) == ["lick", "reward"]
    assert kinds(r.step(lick_now(r, ball_cm=1.0))) == ["lick", "reward"]  # judged at 249
    assert kinds(r.step(lick_now(r))) == ["lick"]  # at 250: zone end is outside
    assert r.of("reward")[0].data["rule"] == "zone_active"


def test_zone_active_default_zone_runs_to_texture_end():
    r = zone("zone_active")
    r.step(Inputs(ball_cm=399.5))
    assert kinds(r.step(lick_now(r))) == ["lick", "reward"]


def test_zone_passive_pays_on_entering_the_zone_once():
    r = zone("zone_passive", max_per_trial=3)
    assert kinds(r.step(Inputs(ball_cm=199.0))) == []
    s = r.step(Inputs(ball_cm=2.0))
    assert kinds(s) == ["reward"] and s.events[0].position_cm == 200.0 and s.events[0].t == r.t
    assert kinds(r.step(lick_now(r, ball_cm=10.0))) == ["lick"]
    r.step(Inputs(ball_cm=400.0))
    assert r.state.trial == 1 and len(r.of("reward")) == 1
    r.step(Inputs(ball_cm=300.0))
    assert len(r.of("reward")) == 2


# ---------------------------------------------------------------------------- exposure twin


def twin_script(r: Run, n: int) -> list[Inputs]:
    """Mixed running and licking, independent of the engine's responses."""
    out = []
    for k in range(n):
        licks = (r.t + DT * (k + 0.5),) if k % 5 == 0 else ()
        out.append(Inputs(ball_cm=8.0 if (k // 40) % 4 != 3 else 0.0, licks=licks))
    return out


REWARD_RULES = [
    {"mode": "active_after_cue", "max_per_trial": 2},
    {"mode": "passive_after_cue", "delay_ms": 300.0},
    {"mode": "zone_active", "zone_start_cm": [150.0, 300.0], "zone_length_cm": 60.0, "max_per_trial": 3},
    {"mode": "zone_passive", "zone_start_cm": [150.0, 300.0]},
]


@pytest.mark.parametrize("rule", REWARD_RULES, ids=[r["mode"] for r in REWARD_RULES])
def test_exposure_withholds_exactly_where_the_task_rewards(rule):
    runs = {}
    for kind in ("task", "exposure"):
        r = Run.start(make_protocol(kind=kind, movement=PROP, reward=rule, end={"max_trials": 60}), seed=3)
        for inp in twin_script(r, 4000):
            r.step(inp)
        runs[kind] = r
    task, expo = runs["task"], runs["exposure"]
    assert len(task.of("reward")) >= 10 and len(task.of("trial_end")) >= 20
    assert expo.of("reward") == [] and [c for c in expo.commands if c.kind == "valve"] == []
    assert [(e.t, e.trial, e.position_cm, e.data) for e in task.of("reward")] == [
        (e.t, e.trial, e.position_cm, e.data) for e in expo.of("reward_withheld")
    ]
    # everything else is identical (trial_end's delivered count aside), and so are the states

    def rest(r: Run, skip: str) -> list:
        return [
            (e.t, e.kind, e.trial, e.position_cm, {k: v for k, v in e.data.items() if k != "rewards"})
            for e in r.events
            if e.kind not in (skip, "session_start")
        ]

    assert rest(expo, "reward_withheld") == rest(task, "reward")
    assert [e.data["rewards"] for e in task.of("trial_end")] == [e.data["rewards_due"] for e in task.of("trial_end")]
    assert [c for c in task.commands if c.kind == "cue"] == expo.commands
    assert [s.state for s in task.steps] == [s.state for s in expo.steps]
    assert all(e.data["rewards"] == 0 for e in expo.of("trial_end"))


# ---------------------------------------------------------------------------- manual rewards


@pytest.mark.parametrize("kind", ["task", "exposure"])
def test_manual_rewards_are_always_delivered(kind):
    r = Run.start(make_protocol(kind=kind, movement=PROP, cue=CUE_100))
    s = r.step(Inputs(manual_rewards_ul=(3.0, 1.0)))
    assert kinds(s) == ["reward", "reward"]
    assert [e.data for e in s.events] == [
        {"volume_ul": 3.0, "duration_ms": 12.0, "rule": None, "source": "manual"},
        {"volume_ul": 1.0, "duration_ms": 4.0, "rule": None, "source": "manual"},
    ]
    assert [(c.kind, c.volume_ul, c.duration_ms, c.source, c.t) for c in s.commands] == [
        ("valve", 3.0, 12.0, "manual", r.t),
        ("valve", 1.0, 4.0, "manual", r.t),
    ]
    assert r.state.rewards_in_trial == 0
    s = r.step(Inputs(paused=True, manual_rewards_ul=(2.0,)))
    assert kinds(s) == ["reward"] and s.commands[0].source == "manual"


def test_manual_rewards_do_not_count_against_max_per_trial():
    r = Run.start(make_protocol(movement=PROP, corridors=one_corridor(True), cue=CUE_100))
    r.step(Inputs(ball_cm=150.0, manual_rewards_ul=(2.0, 2.0)))
    s = r.step(lick_now(r))
    assert kinds(s) == ["lick", "reward"] and s.events[1].data["source"] == "task"
    r.step(Inputs(ball_cm=500.0))
    assert r.of("trial_end")[0].data["manual_rewards"] == 2 and r.of("trial_end")[0].data["rewards"] == 1


def test_bad_manual_reward_volume_is_an_error():
    r = Run.start(make_protocol())
    with pytest.raises(ValueError, match="manual reward volume"):
        r.step(Inputs(manual_rewards_ul=(-1.0,)))


# ---------------------------------------------------------------------------- anticipatory licking


def test_anticipatory_flag_per_trial_active_mode():
    r = Run.start(make_protocol(movement=PROP, cue=CUE_100, order=ALTERNATE))
    r.step(lick_now(r, ball_cm=300.0))  # trial 0 (leaf1): lick at 0, before the cue
    r.step(Inputs(ball_cm=300.0))
    r.step(Inputs(ball_cm=150.0))  # trial 1 (circle1) past its cue
    r.step(lick_now(r, ball_cm=450.0))  # lick after the cue only
    ends = r.of("trial_end")
    assert [(e.data["corridor"], e.data["anticipatory"], e.data["licks"]) for e in ends] == [
        ("leaf1", True, 1),
        ("circle1", False, 1),
    ]
    assert ends[0].data["rewarded"] is True and ends[1].data["rewarded"] is False


def test_anticipatory_window_in_passive_mode_runs_to_cue_plus_delay():
    r = passive(500.0)
    r.step(Inputs(ball_cm=120.0))
    r.step(lick_now(r))  # trial 0: after the cue but before cue + delay: still anticipatory
    for _ in range(40):
        r.step(Inputs())
    r.step(Inputs(ball_cm=600.0))
    r.step(Inputs(ball_cm=120.0))  # trial 1: wait past cue + delay, then lick
    for _ in range(40):
        r.step(Inputs())
    r.step(lick_now(r, ball_cm=600.0))
    assert len(r.of("reward")) == 2
    assert [e.data["anticipatory"] for e in r.of("trial_end")] == [True, False]


def test_anticipatory_window_in_zone_mode_ends_at_zone_start():
    r = zone("zone_active")
    r.step(lick_now(r, ball_cm=199.0))
    r.step(Inputs(ball_cm=401.0))
    r.step(Inputs(ball_cm=210.0))
    r.step(lick_now(r, ball_cm=400.0))  # lick at 210: in the zone, not anticipatory
    assert [e.data["anticipatory"] for e in r.of("trial_end")] == [True, False]


# ---------------------------------------------------------------------------- stages

STAGES_BY_TRIALS = [
    {"name": "s1", "reward": {"mode": "passive_after_cue"}, "advance": {"after_trials": 3}},
    {"name": "s2"},
]


def test_stage_advances_after_n_trials_at_the_next_trial_start():
    r = Run.start(make_protocol(movement=PROP, corridors=one_corridor(True), cue=CUE_100, stages=STAGES_BY_TRIALS))
    for _ in range(3):
        r.step(Inputs(ball_cm=600.0))  # passive rule: every trial pays without licks
    assert len(r.of("reward")) == 3 and r.state.stage == 1 and r.state.trial == 3
    ks = r.kinds()
    i = ks.index("stage_advance")
    assert ks[i - 1 : i + 2] == ["trial_end", "stage_advance", "trial_start"]
    adv = r.of("stage_advance")[0]
    assert adv.data == {"from": 0, "to": 1, "from_name": "s1", "to_name": "s2", "reason": "trials"}
    assert adv.trial == 3
    assert [e.data["stage"] for e in r.of("trial_start")] == [0, 0, 0, 1]
    assert r.of("trial_start")[-1].data["stage_name"] == "s2"
    for _ in range(5):  # stage s2 uses the protocol's active rule: no licks, no reward
        r.step(Inputs(ball_cm=600.0))
    assert len(r.of("reward")) == 3 and len(r.of("stage_advance")) == 1


def anticipation_run(fraction: float, window: int, antic_from: int, n_trials: int, **over) -> Run:
    stages = [
        {"name": "learn", "advance": {"anticipatory_fraction": fraction, "window": window}},
        {"name": "expert"},
    ]
    r = Run.start(make_protocol(movement=PROP, cue=CUE_100, stages=stages, **over))
    for k in range(n_trials):
        # one frame per trial; a lick in the frame is judged at position 0: before the cue
        r.step(lick_now(r, ball_cm=600.0) if k >= antic_from else Inputs(ball_cm=600.0))
    return r


def test_stage_advances_when_anticipatory_fraction_is_reached():
    r = anticipation_run(0.8, 5, antic_from=3, n_trials=12, corridors=one_corridor(True))
    (adv,) = r.of("stage_advance")
    # trials 3..6 anticipatory: after trial 6 the last 5 are F T T T T = 0.8
    assert adv.trial == 7 and adv.data["reason"] == "anticipatory"
    assert r.state.stage == 1


def test_anticipatory_advance_needs_a_full_window():
    r = anticipation_run(0.5, 5, antic_from=0, n_trials=12, corridors=one_corridor(True))
    (adv,) = r.of("stage_advance")
    assert adv.trial == 5


def test_anticipatory_advance_counts_rewarded_corridors_only():
    # alternate leaf1/circle1; the mouse anticipates in circle1 (odd trials) only
    stages = [{"name": "learn", "advance": {"anticipatory_fraction": 0.2, "window": 3}}, {"name": "expert"}]
    r = Run.start(make_protocol(movement=PROP, cue=CUE_100, stages=stages, order=ALTERNATE))
    for k in range(30):
        r.step(lick_now(r, ball_cm=600.0) if k % 2 else Inputs(ball_cm=600.0))
    assert r.of("stage_advance") == [] and r.state.stage == 0
    assert sum(e.data["anticipatory"] for e in r.of("trial_end")) == 15


def test_no_advance_below_the_fraction_and_last_stage_never_advances():
    r = anticipation_run(0.9, 10, antic_from=10**6, n_trials=40, corridors=one_corridor(True))
    assert r.of("stage_advance") == []
    r = anticipation_run(0.5, 2, antic_from=0, n_trials=40, corridors=one_corridor(True))
    assert len(r.of("stage_advance")) == 1 and r.state.stage == 1


def test_zone_rule_in_a_later_stage_draws_zone_starts_from_then_on():
    stages = [
        {"name": "a", "advance": {"after_trials": 2}},
        {"name": "b", "reward": {"mode": "zone_passive", "zone_start_cm": [200.0, 300.0]}},
    ]
    r = Run.start(make_protocol(movement=PROP, corridors=one_corridor(True), cue=CUE_100, stages=stages))
    for _ in range(4):
        r.step(Inputs(ball_cm=600.0))
    zs = [e.data["zone_start_cm"] for e in r.of("trial_start")]
    assert zs[:2] == [None, None] and all(200.0 <= z <= 300.0 for z in zs[2:])
    assert [e.data["rule"] for e in r.of("reward")] == ["zone_passive", "zone_passive"]
