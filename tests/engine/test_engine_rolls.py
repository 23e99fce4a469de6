"""Engine: imaging pre- and post-roll (grey, still, no trial) around the task."""

from __future__ import annotations

import math

from rig.engine.records import Inputs
from tests.support.engine import DT, Run, make_protocol

PROP = {"rule": "proportional", "gain": 1.0, "speed_cm_s": None, "threshold_cm_s": None, "hold_ms": None}
ROLL = {"pre_roll_s": 1.0, "post_roll_s": 0.5}  # exact in binary at DT = 1/64 s


def rolled(**over) -> Run:
    return Run.start(make_protocol(movement=PROP, imaging=ROLL, **over))


def test_pre_roll_is_grey_still_and_trialless_then_trial_0_starts():
    r = rolled()
    (start,) = r.steps[0].events
    assert start.kind == "session_start" and start.data["pre_roll_s"] == 1.0 and start.data["post_roll_s"] == 0.5
    s = r.state
    assert (s.trial, s.in_grey, s.next_corridor, s.moving) == (-1, True, -1, False)
    first = r.engine._p.corridors[s.corridor]
    assert s.position_cm == first.length_cm and math.isnan(s.cue_position_cm) and math.isnan(s.zone_start_cm)
    while r.t + DT < 1.0:  # running and licking change nothing but the log
        step = r.step(Inputs(ball_cm=50.0, licks=(r.t + DT / 2,)))
        assert step.state.trial == -1 and step.state.position_cm == first.length_cm and step.commands == ()
        assert [e.kind for e in step.events] == ["lick"]
        assert step.events[0].trial == -1 and step.events[0].data == {"anticipatory": False, "iti": True}
    assert r.state.position_cum_cm == 0.0
    step = r.step(Inputs(ball_cm=50.0))
    assert r.t == 1.0 and [e.kind for e in step.events] == ["trial_start"]
    assert step.state.trial == 0 and step.state.position_cm == 0.0 and step.events[0].data["corridor"] == first.name
    assert step.state.next_corridor >= 0  # from now on the next corridor is drawn ahead again


def test_rolls_do_not_change_the_trial_sequence_or_draws():
    plain = Run.start(make_protocol(movement=PROP))
    roll = rolled()
    for _ in range(64):
        roll.step(Inputs())
    for r in (plain, roll):
        for _ in range(10):
            r.step(Inputs(ball_cm=600.0))
    def starts(r: Run) -> list[tuple]:
        return [(e.data["corridor"], e.data["cue_position_cm"]) for e in r.of("trial_start")]

    assert starts(plain)[:10] == starts(roll)[:10]


def test_pause_holds_the_pre_roll():
    r = rolled()
    for _ in range(80):
        r.step(Inputs(paused=True))
    assert r.state.trial == -1
    r.step(Inputs())
    assert r.state.trial == 0 and r.of("trial_start")[0].t == r.t


def test_post_roll_after_the_last_trial_then_session_end():
    r = rolled(end={"max_trials": 2})
    while r.state.trial < 0:
        r.step(Inputs())
    r.step(Inputs(ball_cm=600.0))
    step = r.step(Inputs(ball_cm=600.0))
    assert [e.kind for e in step.events][-2:] == ["trial_end", "post_roll"]
    t_end = r.t
    post = step.events[-1]
    assert post.data == {"reason": "max_trials", "until": t_end + 0.5, "trials": 2}
    assert not step.state.done and step.state.in_grey and step.state.position_cm == 600.0
    cum = step.state.position_cum_cm
    while not r.state.done:
        s = r.step(Inputs(ball_cm=50.0, licks=(r.t + DT / 2,)))
        assert s.state.position_cum_cm == cum and s.commands == ()
    end = r.of("session_end")[0]
    assert end.t == t_end + 0.5 and end.data == {"reason": "max_trials", "trials": 2}
    assert all(e.data["iti"] for e in r.of("lick") if e.t > t_end)


def test_max_duration_counts_task_time_and_the_cut_trial_waits_in_the_grey():
    r = rolled(end={"max_trials": None, "max_duration_s": 2.0})
    while not r.of("post_roll"):
        r.step(Inputs(ball_cm=1.0))  # 64 cm/s: trial 0 never finishes in 2 s
    post = r.of("post_roll")[0]
    assert post.t == 3.0 and post.data["reason"] == "max_duration" and post.data["trials"] == 0
    s = r.state
    assert s.trial == 0 and s.in_grey and s.position_cm == 600.0 and s.position_cum_cm < 600.0
    assert s.next_corridor == -1 and not s.done
    while not r.state.done:
        r.step(Inputs(ball_cm=1.0))
    assert r.of("session_end")[0].t == 3.5 and r.of("trial_end") == []


def test_stop_ends_at_once_even_in_a_roll():
    r = rolled()
    r.step(Inputs())
    step = r.engine.stop(r.t, "operator")
    assert [e.kind for e in step.events] == ["session_end"] and step.state.done


def test_unresolved_rolls_mean_none_as_for_sessions_recorded_before_them():
    r = Run.start(make_protocol(movement=PROP, imaging={"pre_roll_frames": 20, "post_roll_frames": 20}))
    (start, first) = r.steps[0].events
    assert first.kind == "trial_start" and "pre_roll_s" not in start.data
    r2 = Run.start(make_protocol(movement=PROP, end={"max_trials": 1}))
    r2.step(Inputs(ball_cm=600.0))
    assert [e.kind for e in r2.steps[-1].events][-2:] == ["trial_end", "session_end"]
