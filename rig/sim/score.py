"""The behaviour cohort's learning measure, as the lab computes it, from one session's events.

The lab's analysis of the pretraining behaviour cohort (MouseLand/zhong-et-al-2025, read for the
definition only) scores a session as follows: a trial "responds" when at least one of its licks lies
between 2 m and 4 m into the corridor (both ends included); only the session's first 200 trials count;
the score of a corridor is the fraction of its trials among those that respond, for the rewarded
corridor and for the unrewarded one, and learning is their difference (rewarded - unrewarded). The
first-lick distribution is the histogram, in 10 cm bins over the 4 m texture, of the first lick of each
rewarded-corridor trial that has a lick, as a fraction of those trials.

Here trials are the ended trials of our log (the export leaves out a last trial cut short, as the lab's
arrays never hold one), positions are cm from the texture's start (grey is 400-600 cm), licks between
trials (`iti`) belong to no trial, and probe corridors are left out of both scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rig.figures.trials import trial_data

ZONE_CM = (200.0, 400.0)
FIRST_TRIALS = 200
FIRST_LICK_BIN_CM = 10.0


@dataclass(frozen=True)
class ZoneScore:
    """One session's lick response in the zone, per corridor kind, and its rewarded first licks."""

    trials: int  # ended trials scored (at most first_trials)
    rewarded_trials: int
    unrewarded_trials: int
    rewarded: float  # fraction of rewarded-corridor trials with a lick in the zone (nan: none scored)
    unrewarded: float
    first_lick_hist: tuple[float, ...]  # per FIRST_LICK_BIN_CM bin over the texture, fraction of trials
    first_lick_trials: int  # rewarded trials with a lick (the histogram's denominator)
    first_lick_median_cm: float  # median first-lick position in rewarded trials (nan: none)
    first_lick_beyond_200: float  # fraction of those first licks at 2 m or later

    @property
    def delta(self) -> float:
        return self.rewarded - self.unrewarded

    def to_dict(self) -> dict:
        return {
            "trials": self.trials, "rewarded_trials": self.rewarded_trials,
            "unrewarded_trials": self.unrewarded_trials, "rewarded": self.rewarded,
            "unrewarded": self.unrewarded, "delta": self.delta, "first_lick_hist": list(self.first_lick_hist),
            "first_lick_trials": self.first_lick_trials, "first_lick_median_cm": self.first_lick_median_cm,
            "first_lick_beyond_200": self.first_lick_beyond_200,
        }


def zone_score(events: Iterable[dict], *, zone_cm: tuple[float, float] = ZONE_CM, first_trials: int = FIRST_TRIALS,
               texture_cm: float = 400.0) -> ZoneScore:
    """Score a session from its events.jsonl records (rig.datalog.reader.read_jsonl)."""
    data = trial_data(events)
    tr, licks = data.trials, data.licks
    ended = np.flatnonzero(tr.ended)[:first_trials]
    index = tr.index[ended]
    rewarded = tr.rewarded[ended]
    scored = ~tr.probe[ended]
    lo, hi = zone_cm
    in_zone = (licks.trial >= 0) & (licks.position_cm >= lo) & (licks.position_cm <= hi)
    responding = np.isin(index, licks.trial[in_zone])

    def fraction(mask: np.ndarray) -> float:
        return float(responding[mask].mean()) if mask.any() else math.nan

    rew_mask, unrew_mask = scored & rewarded, scored & ~rewarded
    # First lick of each rewarded trial (licks are in time order, so the first per trial is the first seen).
    first: dict[int, float] = {}
    for t, p in zip(licks.trial.tolist(), licks.position_cm.tolist(), strict=True):
        if t >= 0 and t not in first:
            first[t] = p
    positions = np.array([first[i] for i in index[rew_mask].tolist() if i in first])
    bins = int(round(texture_cm / FIRST_LICK_BIN_CM))
    counts, _ = np.histogram(positions, bins=bins, range=(0.0, texture_cm))
    n_first = len(positions)
    hist = tuple((counts / n_first).tolist()) if n_first else tuple([math.nan] * bins)
    return ZoneScore(
        trials=len(ended), rewarded_trials=int(rew_mask.sum()), unrewarded_trials=int(unrew_mask.sum()),
        rewarded=fraction(rew_mask), unrewarded=fraction(unrew_mask), first_lick_hist=hist,
        first_lick_trials=n_first,
        first_lick_median_cm=float(np.median(positions)) if n_first else math.nan,
        first_lick_beyond_200=float(np.mean(positions >= 200.0)) if n_first else math.nan,
    )
