"""The learning criterion: one implementation for stage advance, the app's suggestion and the scripting API.

A mouse has learned a discrimination when it licks in anticipation of water in the rewarded corridors
more often than in the unrewarded ones. Anticipatory licking in rewarded corridors alone is no measure:
a naive mouse that licks spontaneously scores high in every corridor (issue 13: 0.78 rewarded against
0.66 unrewarded). So the criterion compares the two kinds of corridor, as the lab does (Zhong et al.
2025, fig. 5: "reward - non-reward" lick response):

- an outcome is one finished trial: was its corridor a rewarded one, did it have an anticipatory lick
  (the engine's per-trial flag: a lick before the cue, before cue + delay, or before the reward zone);
  probe trials do not count (they test generalisation, not the learned discrimination);
- over the latest `window` outcomes of each kind, the fraction with an anticipatory lick;
- `difference` = rewarded fraction - unrewarded fraction; `dprime` = z(rewarded) - z(unrewarded), each
  rate taken as (k + 0.5) / (n + 1) (the log-linear correction, so 0 and 1 stay finite);
- nothing is judged before both kinds have `min_trials` outcomes; then learned = measure >= threshold.

Pure: no I/O. Outcomes come from the engine as trials end, or from a session's logged events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from rig.protocol import Criterion, Protocol

__all__ = ["Criterion", "Outcome", "Score", "Tracker", "criterion_of", "outcomes_from_events", "score"]

DEFAULT = Criterion()
_Z = NormalDist().inv_cdf


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished, non-probe trial as the criterion sees it."""

    rewarded: bool  # the corridor is a rewarded one (in exposure: where reward was due)
    anticipatory: bool  # the trial had an anticipatory lick


@dataclass(frozen=True, slots=True)
class Score:
    """The criterion applied to a set of outcomes."""

    measure: str
    threshold: float
    min_trials: int
    n_rewarded: int
    n_unrewarded: int
    rewarded_fraction: float  # NaN without rewarded outcomes
    unrewarded_fraction: float  # NaN without unrewarded outcomes
    value: float  # the measure; NaN until both kinds have min_trials outcomes

    @property
    def enough(self) -> bool:
        return self.n_rewarded >= self.min_trials and self.n_unrewarded >= self.min_trials

    @property
    def learned(self) -> bool:
        return self.enough and self.value >= self.threshold

    def describe(self) -> str:
        """One line for people: both fractions, the measure against its threshold, or what is missing."""
        def frac(x: float) -> str:
            return "-" if math.isnan(x) else f"{x:.0%}"

        name = "difference" if self.measure == "difference" else "d'"
        fractions = (f"anticipatory licking {frac(self.rewarded_fraction)} of {self.n_rewarded} rewarded-corridor "
                     f"against {frac(self.unrewarded_fraction)} of {self.n_unrewarded} unrewarded-corridor trials")
        if not self.enough:
            return f"{fractions}; too few to judge (at least {self.min_trials} of each needed)"
        shown = f"{self.value:+.0%}" if self.measure == "difference" else f"{self.value:.2f}"
        limit = f"{self.threshold:.0%}" if self.measure == "difference" else f"{self.threshold:.2f}"
        return f"{fractions}: {name} {shown} ({'≥' if self.learned else '<'} {limit})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None), e.g. for a stage_advance event or `rig info`."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"measure": self.measure, "threshold": self.threshold, "min_trials": self.min_trials,
                "n_rewarded": self.n_rewarded, "n_unrewarded": self.n_unrewarded,
                "rewarded_fraction": num(self.rewarded_fraction),
                "unrewarded_fraction": num(self.unrewarded_fraction), "value": num(self.value),
                "learned": self.learned}


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def _dprime(k1: int, n1: int, k2: int, n2: int) -> float:
    return _Z((k1 + 0.5) / (n1 + 1)) - _Z((k2 + 0.5) / (n2 + 1))


def _score(criterion: Criterion, k_r: int, n_r: int, k_u: int, n_u: int) -> Score:
    value = math.nan
    if n_r >= criterion.min_trials and n_u >= criterion.min_trials:
        value = k_r / n_r - k_u / n_u if criterion.measure == "difference" else _dprime(k_r, n_r, k_u, n_u)
    return Score(criterion.measure, criterion.threshold, criterion.min_trials, n_r, n_u, _rate(k_r, n_r),
                 _rate(k_u, n_u), value)


def score(outcomes: Iterable[Outcome], criterion: Criterion = DEFAULT) -> Score:
    """The criterion over outcomes given in trial order (only the latest `window` of each kind count)."""
    tracker = Tracker(criterion)
    for o in outcomes:
        tracker.add(o.rewarded, o.anticipatory)
    return tracker.score()


class Tracker:
    """The latest `window` outcomes of each kind, kept as trials end (the engine's incremental form)."""

    __slots__ = ("criterion", "_rewarded", "_unrewarded")

    def __init__(self, criterion: Criterion = DEFAULT) -> None:
        self.criterion = criterion
        self._rewarded: deque[bool] = deque(maxlen=criterion.window)
        self._unrewarded: deque[bool] = deque(maxlen=criterion.window)

    def add(self, rewarded: bool, anticipatory: bool) -> None:
        (self._rewarded if rewarded else self._unrewarded).append(bool(anticipatory))

    def score(self) -> Score:
        r, u = self._rewarded, self._unrewarded
        return _score(self.criterion, sum(r), len(r), sum(u), len(u))


def outcomes_from_events(events: Iterable[Mapping[str, Any]]) -> list[Outcome]:
    """Outcomes of a logged session (events.jsonl records): every trial_end of a non-probe corridor."""
    out = []
    for e in events:
        if e.get("kind") != "trial_end":
            continue
        data = e.get("data") or {}
        if not isinstance(data, Mapping) or data.get("probe"):
            continue
        out.append(Outcome(bool(data.get("rewarded")), bool(data.get("anticipatory"))))
    return out


def criterion_of(protocol: Protocol) -> Criterion:
    """The criterion a protocol judges learning by: its last stage criterion, else the default."""
    for stage in reversed(protocol.stages):
        if stage.advance is not None and stage.advance.criterion is not None:
            return stage.advance.criterion
    return DEFAULT
