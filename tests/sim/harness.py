"""A minimal task loop for the virtual mouse without the engine: corridors, the paper's gated movement,
and a reward rule, so that learning-dependent licking can be measured quickly and exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drivers.base import View
from rig.sim.mouse import VirtualMouse

TEXTURE_CM = 400.0
GREY_CM = 200.0


@dataclass
class Trial:
    corridor: str
    rewarded: bool
    cue_cm: float  # cue position (inf: no cue)
    zone_cm: float  # reward zone start (inf: no zone)
    licks_before_cue: int = 0
    lick_positions: list[float] = field(default_factory=list)
    water_cm: float = float("nan")

    @property
    def first_lick_cm(self) -> float:
        return self.lick_positions[0] if self.lick_positions else float("nan")


def run_trials(
    mouse: VirtualMouse,
    n_trials: int,
    *,
    seed: int = 0,
    rule: str = "none",
    corridors: tuple[tuple[str, bool], ...] = (("leaf1", True), ("circle1", False)),
    cue: bool = True,
    start_trial: int = 0,
    t0: float = 0.0,
) -> tuple[list[Trial], float]:
    """Alternate the corridors for n_trials at 60 Hz; the corridor moves at 60 cm/s while the mouse runs
    faster than 6 cm/s. `rule`: "none" (no water), "zone_passive" (water on entering the zone in rewarded
    corridors), "zone_active" (water at the first lick in the zone). Returns the trials and the end time."""
    rng = np.random.default_rng(seed)
    period = 1 / 60
    trials = []
    for i in range(n_trials):
        name, rewarded = corridors[i % len(corridors)]
        cue_cm = float(rng.uniform(50, 350)) if cue else float("inf")
        zone = float(rng.uniform(200, 300)) if rule != "none" else float("inf")
        trials.append(Trial(name, rewarded, cue_cm, zone))
    i, t, pos, cued, paid = 0, t0, 0.0, False, False
    while i < n_trials:
        t += period
        mouse.run_until(t)
        tr = trials[i]
        for e in mouse.take_licks(t):
            if not e.onset:
                continue
            tr.lick_positions.append(pos)
            if not cued:
                tr.licks_before_cue += 1
            if rule == "zone_active" and tr.rewarded and not paid and tr.zone_cm <= pos < TEXTURE_CM:
                mouse.give_water(t, 25.0)
                tr.water_cm, paid = pos, True
        if mouse.state.speed_cm_s > 6.0:
            pos += 60.0 * period
        if not cued and pos >= tr.cue_cm:
            mouse.hear_cue(t)
            cued = True
        if rule == "zone_passive" and tr.rewarded and not paid and pos >= tr.zone_cm:
            mouse.give_water(t, 25.0)
            tr.water_cm, paid = pos, True
        if pos >= TEXTURE_CM + GREY_CM:
            i, pos, cued, paid = i + 1, 0.0, False, False
            if i == n_trials:
                break
            tr = trials[i]
        mouse.see(View(t, start_trial + i, tr.corridor, pos, pos >= TEXTURE_CM, tr.rewarded))
    return trials, t


def lick_fraction(trials: list[Trial], lo: float = 0.0, hi: float = TEXTURE_CM) -> float:
    """Fraction of trials with a lick at a position in [lo, hi)."""
    return float(np.mean([any(lo <= p < hi for p in tr.lick_positions) for tr in trials]))
