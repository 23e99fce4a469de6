"""The stage in force and how far it is from its advance, followed from the engine's events (the status's
`stage`, `stage_index`, `n_stages` and `criterion` fields).

The engine keeps its stage bookkeeping to itself (rig.engine.machine is pure and has no accessor for it), so
this follows the same rules from what it emits, with the same learning criterion (rig.engine.learning.Tracker):

- each `trial_end` counts one trial in the stage; a rewarded-corridor trial feeds the deprecated rule's
  window (probes included, as the engine does); a non-probe trial feeds the criterion's Tracker;
- after each `trial_end` the stage's advance is checked in the engine's order (after_trials, then the
  criterion, else the deprecated anticipatory fraction); a rule met makes the advance `pending`: the
  engine takes it at the next trial start, with a `stage_advance` event, which starts the next stage here.
  The last stage never advances.

Pure: no I/O, no clock. tests/control checks it against the engine's own stage_advance events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from rig.engine.learning import Tracker
from rig.engine.records import EventKind
from rig.protocol import Advance, Stage

__all__ = ["StageFollower"]


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


class StageFollower:
    """Fed with every event of one session, in order (`add`); `status()` is what the runner reports."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.index = 0
        self.trials_in_stage = 0
        self.pending: str | None = None  # the rule met: the stage advances at the next trial start
        self._antic: deque[bool] = deque()
        self._tracker: Tracker | None = None
        self._enter(0)

    @property
    def advance(self) -> Advance | None:
        """The rule of the stage in force; None for the last stage (and a protocol without stages)."""
        if self.index >= len(self.stages) - 1:
            return None
        return self.stages[self.index].advance

    @property
    def name(self) -> str:
        return self.stages[self.index].name if self.index < len(self.stages) else "main"

    def _enter(self, index: int) -> None:
        self.index = index
        self.trials_in_stage = 0
        self.pending = None
        adv = self.stages[index].advance if index < len(self.stages) else None
        self._antic = deque(maxlen=adv.window if adv is not None else 1)
        self._tracker = Tracker(adv.criterion) if adv is not None and adv.criterion is not None else None

    def add(self, kind: str, data: Mapping[str, Any] | None) -> None:
        d: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        if kind == EventKind.STAGE_ADVANCE:
            to = d.get("to")
            if isinstance(to, int) and not isinstance(to, bool) and 0 <= to < len(self.stages):
                self._enter(to)
        elif kind == EventKind.TRIAL_END:
            self._trial_end(bool(d.get("rewarded")), bool(d.get("probe")), bool(d.get("anticipatory")))

    def _trial_end(self, rewarded: bool, probe: bool, anticipatory: bool) -> None:
        self.trials_in_stage += 1
        if rewarded:
            self._antic.append(anticipatory)
        if self._tracker is not None and not probe:
            self._tracker.add(rewarded, anticipatory)
        adv = self.advance
        if adv is None:
            return
        if adv.after_trials is not None and self.trials_in_stage >= adv.after_trials:
            self.pending = "trials"
        elif self._tracker is not None:
            if self._tracker.score().learned:
                self.pending = "criterion"
        elif adv.anticipatory_fraction is not None and len(self._antic) >= adv.window:
            if sum(self._antic) / adv.window >= adv.anticipatory_fraction:
                self.pending = "anticipatory"

    def criterion(self) -> dict[str, Any] | None:
        """The advance rule of the stage in force and where the session stands against it (JSON-ready; None
        for the last stage, which lasts to the end of the session)."""
        adv = self.advance
        if adv is None:
            return None
        out: dict[str, Any] = {"trials_in_stage": self.trials_in_stage, "after_trials": adv.after_trials,
                               "pending": self.pending}
        if self._tracker is not None:
            s = self._tracker.score()
            out.update(measure=s.measure, threshold=s.threshold, min_trials=s.min_trials,
                       window=self._tracker.criterion.window, n_rewarded=s.n_rewarded, n_unrewarded=s.n_unrewarded,
                       rewarded_fraction=_num(s.rewarded_fraction), unrewarded_fraction=_num(s.unrewarded_fraction),
                       value=_num(s.value), learned=s.learned)
        elif adv.anticipatory_fraction is not None:
            hist = self._antic
            out.update(anticipatory_fraction=adv.anticipatory_fraction, window=adv.window,
                       rewarded_in_window=len(hist), fraction_now=_num(sum(hist) / len(hist) if hist else math.nan))
        return out

    def status(self) -> dict[str, Any]:
        return {"stage": self.name, "stage_index": self.index, "n_stages": max(len(self.stages), 1),
                "criterion": self.criterion()}
