"""The virtual mouse: running and licking statistics, expertise-dependent licking, determinism.

Licking tests that fix an expertise use `learning_rate=0`: since issue 14 the mouse learns from every
trial (no water in a rewarded corridor extinguishes its expectation), and these tests measure the
behaviour of one level of expertise. Learning itself is tested in test_sim_learning.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from drivers.base import LickEdge, View
from rig.config import SimMouse
from rig.sim.mouse import LICK_CONTACT_S, VirtualMouse

TEXTURE_CM = 400.0
GREY_CM = 200.0


def trace(mouse: VirtualMouse, seconds: float, dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Speed and bout flag of every internal step over `seconds`."""
    speed, running = [], []
    for k in range(1, round(seconds / dt) + 1):
        mouse.run_until(k * dt)
        s = mouse.state
        speed.append(s.speed_cm_s)
        running.append(s.running)
    return np.array(speed), np.array(running)


def onsets(edges: list[LickEdge]) -> list[float]:
    return [e.t for e in edges if e.onset]


@dataclass
class Trial:
    rewarded: bool
    cue_cm: float
    licks_before_cue: int = 0
    lick_positions: list[float] = field(default_factory=list)


def run_corridors(mouse: VirtualMouse, n_trials: int, seed: int = 0) -> list[Trial]:
    """A minimal task loop at 60 Hz: alternating rewarded/unrewarded corridors, the paper's gated
    movement (60 cm/s while the mouse runs faster than 6 cm/s), a cue per corridor, no water."""
    rng = np.random.default_rng(seed)
    period = 1 / 60
    trials = [Trial(i % 2 == 0, float(rng.uniform(50, 350))) for i in range(n_trials)]
    i, t, pos, cued = 0, 0.0, 0.0, False
    while i < n_trials:
        t += period
        mouse.run_until(t)
        tr = trials[i]
        for lick_t in onsets(mouse.take_licks(t)):
            assert lick_t <= t
            tr.lick_positions.append(pos)
            if not cued:
                tr.licks_before_cue += 1
        if mouse.state.speed_cm_s > 6.0:
            pos += 60.0 * period
        if not cued and pos >= tr.cue_cm:
            mouse.hear_cue(t)
            cued = True
        if pos >= TEXTURE_CM + GREY_CM:
            i, pos, cued = i + 1, 0.0, False
            if i == n_trials:
                break
            tr = trials[i]
        name = "leaf1" if tr.rewarded else "circle1"
        mouse.see(View(t, i, name, pos, pos >= TEXTURE_CM, tr.rewarded))
    return trials


def test_running_speed_within_bouts_is_near_the_configured_speed() -> None:
    mouse = VirtualMouse(SimMouse(run_speed_cm_s=30.0, bout_s=10.0, pause_s=2.0), seed=1)
    speed, running = trace(mouse, 600.0)
    assert running.any() and not running.all()
    assert speed[running].mean() == pytest.approx(30.0, rel=0.08)


def test_pause_fraction_follows_the_bout_and_pause_means() -> None:
    mouse = VirtualMouse(SimMouse(bout_s=4.0, pause_s=2.0), seed=2)
    _, running = trace(mouse, 1200.0)
    assert 1.0 - running.mean() == pytest.approx(2.0 / 6.0, abs=0.06)


def test_no_pauses_when_the_mean_pause_is_zero() -> None:
    mouse = VirtualMouse(SimMouse(bout_s=1.0, pause_s=0.0), seed=2)
    _, running = trace(mouse, 60.0)
    assert running.all()


def test_speed_is_never_negative_and_ramps_instead_of_jumping() -> None:
    mouse = VirtualMouse(SimMouse(run_speed_cm_s=40.0, bout_s=3.0, pause_s=1.0), seed=3)
    speed, running = trace(mouse, 300.0)
    assert speed.min() >= 0.0
    accel = np.diff(speed) / 0.01
    assert np.abs(accel).max() < 400.0  # a jump to 40 cm/s in one 10 ms step would be 4000 cm/s^2
    # From a standstill the mouse needs 100-300 ms to reach 90 % of its bout speed.
    starts = np.flatnonzero(~running[:-1] & running[1:]) + 1
    rise = []
    for s in starts:
        if s + 100 > len(speed) or speed[s] > 1.0 or not running[s : s + 100].all():
            continue
        target = speed[s + 50 : s + 100].mean()  # where it settles, 0.5-1 s in
        rise.append((np.argmax(speed[s:] >= 0.9 * target)) * 0.01)
    assert len(rise) >= 10
    assert 0.1 <= np.median(rise) <= 0.3


def test_baseline_lick_rate_matches_the_configured_rate() -> None:
    mouse = VirtualMouse(SimMouse(expertise=0.5, lick_rate_hz=1.0), seed=4)  # no view yet: baseline only
    mouse.run_until(1000.0)
    n = len(onsets(mouse.take_licks(1000.0)))
    assert n == pytest.approx(1000, rel=0.1)


def test_licks_are_alternating_onset_offset_pairs_with_short_contacts() -> None:
    mouse = VirtualMouse(SimMouse(lick_rate_hz=3.0), seed=5)
    mouse.give_water(10.0, 50.0)
    mouse.run_until(300.0)
    edges = mouse.take_licks(300.0)
    assert len(edges) > 100 and len(edges) % 2 == 0
    assert [e.onset for e in edges] == [True, False] * (len(edges) // 2)
    t = np.array([e.t for e in edges])
    assert np.all(np.diff(t) > 0)
    contact = t[1::2] - t[0::2]
    lo, hi = LICK_CONTACT_S
    assert contact.min() >= lo and contact.max() <= hi


def test_expert_licks_more_before_the_cue_in_rewarded_than_unrewarded_corridors() -> None:
    mouse = VirtualMouse(SimMouse(expertise=1.0, lick_rate_hz=0.3, pause_s=0.5, learning_rate=0.0), seed=6)
    trials = run_corridors(mouse, 120, seed=6)
    rew = [tr for tr in trials if tr.rewarded]
    unrew = [tr for tr in trials if not tr.rewarded]
    frac_rew = np.mean([tr.licks_before_cue > 0 for tr in rew])
    frac_unrew = np.mean([tr.licks_before_cue > 0 for tr in unrew])
    # The cue comes anywhere in 0.5-3.5 m and the expert's ramp rises near the mean water position (~2.2
    # m), so it licks before the cue in about half the rewarded trials and almost never elsewhere.
    assert frac_rew > 0.4
    assert frac_rew - frac_unrew > 0.35
    # ... and the licking ramps up through the texture: more in the second half than the first.
    pos = np.concatenate([tr.lick_positions for tr in rew])
    assert np.sum((pos >= 200) & (pos < 400)) > 2 * np.sum(pos < 200)


def test_naive_mouse_licks_alike_in_rewarded_and_unrewarded_corridors() -> None:
    mouse = VirtualMouse(SimMouse(expertise=0.0, lick_rate_hz=2.0, pause_s=0.5), seed=7)
    trials = run_corridors(mouse, 160, seed=7)
    rew = np.mean([tr.licks_before_cue for tr in trials if tr.rewarded])
    unrew = np.mean([tr.licks_before_cue for tr in trials if not tr.rewarded])
    assert rew > 1.0
    assert rew / unrew == pytest.approx(1.0, abs=0.25)


def cue_responses(expertise: float, rewarded: bool, n: int = 200) -> float:
    """Fraction of cues followed by a lick within 1 s (no spontaneous licking), in leaf1 (rewarded) or
    circle1, for a mouse that knows both corridors."""
    mouse = VirtualMouse(SimMouse(expertise=expertise, lick_rate_hz=0.0, learning_rate=0.0), seed=8,
                         anticipation_peak_hz=0.0)
    mouse.meet("leaf1", True)
    mouse.meet("circle1", False)
    hits = 0
    for i in range(n):
        t = 3.0 * i + 1.0
        mouse.run_until(t)
        mouse.see(View(t, i, "leaf1" if rewarded else "circle1", 200.0, False, rewarded))
        mouse.hear_cue(t)
        mouse.run_until(t + 1.0)
        hits += bool(onsets(mouse.take_licks(t + 1.0)))
        mouse.run_until(t + 2.9)
        mouse.take_licks(t + 2.9)
    return hits / n


def test_expert_answers_a_cue_in_a_rewarded_corridor_with_licks() -> None:
    assert cue_responses(1.0, rewarded=True) > 0.85
    assert cue_responses(1.0, rewarded=False) < 0.05


def test_naive_mouse_sometimes_answers_a_cue() -> None:
    frac = cue_responses(0.0, rewarded=True)
    assert 0.03 < frac < 0.25
    assert cue_responses(0.0, rewarded=False) == pytest.approx(frac, abs=0.1)


def test_water_brings_a_consummatory_burst_at_six_to_eight_hz() -> None:
    for seed in range(5):
        mouse = VirtualMouse(SimMouse(lick_rate_hz=0.0), seed=seed)
        mouse.run_until(10.0)
        assert mouse.take_licks(10.0) == []
        mouse.give_water(10.0, 40.0)
        mouse.run_until(14.0)
        t = np.array(onsets(mouse.take_licks(14.0)))
        assert t[0] - 10.0 < 0.3
        assert 6 <= len(t) <= 26  # 6-8 Hz for 1-3 s
        assert 1 / 9 <= np.median(np.diff(t)) <= 1 / 5.5
        assert t[-1] - t[0] <= 3.0


def test_water_ends_anticipation_for_the_rest_of_the_trial() -> None:
    mouse = VirtualMouse(SimMouse(expertise=1.0, lick_rate_hz=0.0), seed=9, anticipation_peak_hz=8.0)
    mouse.see(View(0.0, 3, "leaf1", 390.0, False, True))
    mouse.give_water(0.0, 40.0)
    mouse.run_until(5.0)
    mouse.take_licks(5.0)  # the drinking burst
    mouse.run_until(20.0)
    assert mouse.take_licks(20.0) == []
    mouse.see(View(20.0, 4, "leaf1", 390.0, False, True))  # next trial: anticipating again
    mouse.run_until(25.0)
    assert len(onsets(mouse.take_licks(25.0))) > 10


def test_same_seed_and_calls_give_the_same_mouse() -> None:
    def run(seed: int) -> tuple[list[LickEdge], np.ndarray]:
        mouse = VirtualMouse(SimMouse(lick_rate_hz=2.0), seed=seed)
        ts = np.arange(1, 3001) / 100.0
        licks = []
        for k in range(0, 3000, 7):
            mouse.run_until(ts[k])
            if k == 700:
                mouse.give_water(float(ts[k]), 30.0)
            licks += mouse.take_licks(float(ts[k]))
        mouse.run_until(30.0)
        return licks, mouse.distance_at(ts[2990:])

    a, b, c = run(11), run(11), run(12)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[0] != c[0] and not np.array_equal(a[1], c[1])


def test_distance_is_the_integral_of_speed() -> None:
    mouse = VirtualMouse(SimMouse(), seed=10)
    ts = np.arange(1, 2001) * 0.005
    mouse.run_until(10.0)
    d = mouse.distance_at(ts)
    assert np.all(np.diff(d) >= 0)
    twin = VirtualMouse(SimMouse(), seed=10)
    speeds = []
    for k in range(1000):  # the 10 ms steps starting at 0 .. 9.99 s
        twin.run_until(k * 0.01)
        speeds.append(twin.state.speed_cm_s)
    assert d[-1] == pytest.approx(sum(speeds) * 0.01, rel=1e-9)


def test_distance_cannot_be_asked_ahead_of_the_simulation() -> None:
    mouse = VirtualMouse(SimMouse(), seed=1)
    mouse.run_until(1.0)
    with pytest.raises(ValueError, match="simulated to"):
        mouse.distance_at(np.array([2.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texture_length_cm": 0.0}, "texture_length_cm"),
        ({"anticipation": {"leaf2": 1.5}}, "anticipation\\['leaf2'\\]"),
        ({"anticipation_peak_hz": -1.0}, "anticipation_peak_hz"),
        ({"step_s": 0.2}, "step_s"),
        ({"reward_prior_cm": (250.0, 0.0)}, "reward_prior_cm"),
    ],
)
def test_bad_settings_are_refused_with_their_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VirtualMouse(SimMouse(), seed=1, **kwargs)


def test_anticipation_weights_make_a_probe_corridor_half_recognised() -> None:
    def licks_in(name: str, rewarded: bool) -> int:
        mouse = VirtualMouse(SimMouse(expertise=1.0, lick_rate_hz=0.0, learning_rate=0.0), seed=12,
                             anticipation={"leaf2": 0.5})
        n = 0
        for i in range(200):
            mouse.see(View(float(i), i, name, 300.0, False, rewarded))
            mouse.run_until(i + 1.0)
            n += len(onsets(mouse.take_licks(i + 1.0)))
        return n

    full, half, none = licks_in("leaf1", True), licks_in("leaf2", False), licks_in("circle1", False)
    assert none == 0
    assert 0.3 * full < half < 0.7 * full
