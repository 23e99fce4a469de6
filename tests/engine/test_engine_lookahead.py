"""Engine lookahead: the next trial's corridor is known one trial early (State.next_corridor), the
corridor sequence is the one the trial order draws on its own, and the runner hands the next corridor
to the display only when the protocol's inter_trial.show_next asks for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig.engine.records import Inputs
from rig.engine.trialorder import TrialOrder
from rig.loading import load_config, load_protocol
from rig.runner.hooks import LoopHook
from rig.runner.session import SessionOptions, run_session
from tests.support.engine import Run, make_protocol
from tests.support.paths import REPO

PROP = {"rule": "proportional", "gain": 1.0, "speed_cm_s": None, "threshold_cm_s": None, "hold_ms": None}
ONE_TRIAL = Inputs(ball_cm=600.0)  # default corridors: 400 cm texture + 200 cm grey

THREE = [
    {"name": "leaf1", "texture": {"source": "leaf"}, "rewarded": True},
    {"name": "circle1", "texture": {"source": "circle"}},
    {"name": "probe1", "texture": {"source": "leaf", "exemplar": 2}, "probe": True},
]
ORDERS = {
    "pseudorandom_with_probes": {"mode": "pseudorandom", "max_repeat": 2, "probe_fraction": 0.2, "probe_start": 3},
    "blocks": {"mode": "blocks", "block_size": 4, "max_repeat": None},
    "fixed": {"mode": "fixed", "sequence": ["circle1", "leaf1", "leaf1"], "max_repeat": None},
}


def trials(protocol, seed: int, n: int) -> tuple[list[int], list[int], list]:
    """(corridor per trial, next_corridor per trial, trial_start events) over n trials, one step each."""
    r = Run.start(protocol, seed=seed)
    corridors, nexts = [r.state.corridor], [r.state.next_corridor]
    while len(corridors) < n and not r.state.done:
        s = r.step(ONE_TRIAL).state
        if s.done:
            break
        corridors.append(s.corridor)
        nexts.append(s.next_corridor)
    return corridors, nexts, r.of("trial_start")


def plain_order(protocol, seed: int, n: int) -> list[int]:
    """The sequence TrialOrder draws by itself from the engine's trial-order stream (no lookahead)."""
    order_ss = np.random.SeedSequence(seed).spawn(3)[0]
    order = TrialOrder(protocol.order, protocol.corridors, np.random.default_rng(order_ss))
    return [next(order) for _ in range(n)]


@pytest.mark.parametrize("order", list(ORDERS))
def test_next_corridor_is_the_corridor_the_following_trial_shows(order):
    p = make_protocol(movement=PROP, cue=None, corridors=THREE, order=ORDERS[order],
                      reward={"mode": "zone_active", "zone_start_cm": [100.0, 200.0]})
    corridors, nexts, starts = trials(p, seed=11, n=80)
    assert len(corridors) == 80
    assert nexts[:-1] == corridors[1:]
    assert all(0 <= k < len(THREE) for k in nexts)
    # the trial_start event records the corridor that was announced ahead
    assert [e.data["next_corridor_index"] for e in starts][:-1] == corridors[1:]


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("seed", [0, 5, 123456])
def test_lookahead_leaves_the_corridor_sequence_as_the_trial_order_draws_it(order, seed):
    p = make_protocol(movement=PROP, corridors=THREE, order=ORDERS[order])
    corridors, _, _ = trials(p, seed=seed, n=60)
    assert corridors == plain_order(p, seed, 60)


def test_stage_changes_do_not_change_the_corridor_order():
    stages = [
        {"name": "s1", "reward": {"mode": "passive_after_cue"}, "advance": {"after_trials": 2}},
        {"name": "s2", "reward": {"mode": "zone_passive", "zone_start_cm": [100.0, 300.0]},
         "advance": {"after_trials": 3}},
        {"name": "s3"},
    ]
    plain = make_protocol(movement=PROP)
    staged = make_protocol(movement=PROP, stages=stages)
    c_plain, n_plain, _ = trials(plain, seed=9, n=30)
    c_staged, n_staged, starts = trials(staged, seed=9, n=30)
    assert starts[-1].data["stage"] == 2  # the stages really changed
    assert c_staged == c_plain and n_staged == n_plain


def test_the_last_trial_under_max_trials_has_no_next_corridor():
    r = Run.start(make_protocol(movement=PROP, end={"max_trials": 3}), seed=2)
    nexts = [r.state.next_corridor]
    for _ in range(2):
        nexts.append(r.step(ONE_TRIAL).state.next_corridor)
    assert r.state.trial == 2 and not r.state.done
    assert nexts[0] >= 0 and nexts[1] >= 0 and nexts[2] == -1
    assert r.of("trial_start")[-1].data["next_corridor_index"] is None
    assert r.step(ONE_TRIAL).state.done


def test_next_corridor_holds_through_the_trial_and_the_inter_trial_pause():
    p = make_protocol(movement=PROP, inter_trial={"mode": "pause", "pause_s": 0.5})
    r = Run.start(p, seed=4)
    announced = r.state.next_corridor
    seen = {r.step(Inputs(ball_cm=100.0)).state.next_corridor for _ in range(6)}  # to the corridor end
    assert r.kinds()[-1] == "trial_end" and r.state.trial == 0
    seen |= {r.step(Inputs()).state.next_corridor for _ in range(10)}  # the pause
    assert seen == {announced}
    r.run_until(lambda s: s.trial == 1, Inputs())
    assert r.state.corridor == announced


# ---------------------------------------------------------------------------- the runner's view


class AheadRecorder(LoopHook):
    """A loop hook recording, per iteration, the engine's next corridor and what the display was asked
    to draw ahead (the sim display keeps the last view it showed)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str | None, bool]] = []
        self._display = None

    def start(self, runner) -> None:
        self._display = runner.devices.display

    def iteration(self, i: int, t: float, step) -> None:
        view = self._display.last_view
        self.rows.append((step.state.next_corridor, view.ahead_corridor, step.state.done))

    def end(self, runner, result) -> None:
        pass


@pytest.mark.parametrize("show_next", [True, False])
def test_runner_passes_the_next_corridor_to_the_display_only_when_show_next(tmp_path: Path, show_next: bool):
    demo = load_protocol(REPO / "protocols" / "demo.yaml")
    inter = demo.inter_trial.model_copy(update={"show_next": show_next})
    demo = demo.model_copy(update={"inter_trial": inter})
    config = load_config(REPO / "config" / "sim.yaml")
    rec = AheadRecorder()
    result = run_session(demo, config, SessionOptions(seed=3, fast=True, max_trials=3, data_dir=tmp_path),
                         hooks=(rec,))
    assert result.run.trials == 3
    names = [c.name for c in demo.corridors]
    live = [(nxt, ahead) for nxt, ahead, done in rec.rows if not done]
    assert live and any(nxt >= 0 for nxt, _ in live)
    if show_next:
        assert all(ahead == (names[nxt] if nxt >= 0 else None) for nxt, ahead in live)
    else:
        assert all(ahead is None for _, ahead in live)
