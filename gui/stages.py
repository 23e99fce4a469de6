"""The stage in force and how far it is from its advance (no Qt).

The runner reports it in every status (`stage`, `stage_index`, `n_stages`, `criterion`: see docs/gui.md),
computed by rig.control.stage_status from the engine's events with the engine's rules and the one learning
criterion (rig.engine.learning). That report is the authority. Until one arrives (a window attached to a
folder only, or a runner that does not send it), the same follower runs here on the session folder's events,
with the stages of the protocol recorded in the header, so both give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gui.wire import Criterion, Status, WireError, decode_criterion
from rig.control.stage_status import StageFollower
from rig.engine.records import EventKind
from rig.protocol import Advance as AdvanceRule
from rig.protocol import Stage

_WHY = {"trials": "its trial count", "criterion": "the learning criterion", "anticipatory": "anticipatory licking"}


@dataclass(frozen=True)
class Advance:
    t: float
    trial: int
    from_name: str
    to_name: str
    reason: str


def _pct(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.0%}"


def _learning_text(c: Criterion) -> str:
    """The learning criterion against where it stands, e.g. "when rewarded − unrewarded anticipatory licking
    ≥ 30% (last 40 of each kind; now 60% − 40% = +20%)"."""
    if c.measure == "dprime":
        rule = f"when d′ of rewarded against unrewarded anticipatory licking ≥ {c.threshold or 0:.2f}"
        value = "" if c.value is None else f" (d′ {c.value:.2f})"
    else:
        rule = f"when rewarded − unrewarded anticipatory licking ≥ {_pct(c.threshold)}"
        value = "" if c.value is None else f" = {c.value:+.0%}"
    window = f"last {c.window} of each kind; " if c.window else ""
    now = f"now {_pct(c.rewarded_fraction)} − {_pct(c.unrewarded_fraction)}"
    if not (c.n_rewarded or c.n_unrewarded):
        return f"{rule} ({window}no trial yet: {c.min_trials or 0} of each kind before it is judged)"
    if c.value is None:
        return (f"{rule} ({window}{now}, too few to judge: {c.n_rewarded or 0} and {c.n_unrewarded or 0} "
                f"of {c.min_trials or 0} each)")
    return f"{rule} ({window}{now}{value})"


@dataclass(frozen=True)
class StageProgress:
    index: int
    name: str
    n_stages: int
    trials_in_stage: int
    criterion: Criterion | None  # the stage's advance rule and where it stands; None: it lasts to the end
    last_advance: Advance | None

    @property
    def fraction_now(self) -> float | None:
        """The deprecated rule's anticipatory fraction over the stage's last rewarded trials."""
        return self.criterion.fraction_now if self.criterion is not None else None

    def text(self) -> str:
        if self.n_stages == 1 and self.criterion is None and self.name == "main":
            return "no stages: one reward rule for the whole session"
        head = f"stage {self.index + 1} of {self.n_stages}: {self.name} · {self.trials_in_stage} trials in it"
        c = self.criterion
        if c is None:
            if self.index < self.n_stages - 1:
                return head + " · no advance rule: it lasts to the end of the session"
            return head + (" · last stage" if self.n_stages > 1 else "")
        parts = []
        if c.after_trials is not None:
            parts.append(f"after {c.after_trials} trials ({max(c.after_trials - self.trials_in_stage, 0)} to go)")
        if c.measure is not None:
            parts.append(_learning_text(c))
        if c.anticipatory_fraction is not None:
            now = ("–" if c.fraction_now is None
                   else f"{c.fraction_now:.0%} over {c.rewarded_in_window or 0} of {c.window}")
            parts.append(f"at ≥ {c.anticipatory_fraction:.0%} anticipatory licking over {c.window} rewarded "
                         f"trials (now {now})")
        text = head + (" · advances " + " or ".join(parts) if parts else "")
        if c.pending is not None:
            text += f" · met ({_WHY.get(c.pending, c.pending)}): advances at the next trial start"
        return text


def stages_of(protocol: dict[str, Any]) -> list[Stage]:
    """The stages of a protocol as recorded in a session header (a dict). A stage whose advance rule does not
    read as one is kept by name, without a rule (it is then shown as never advancing, never guessed)."""
    out = []
    for k, s in enumerate(protocol.get("stages") or ()):
        if not isinstance(s, dict):
            continue
        name = str(s.get("name") or f"stage {k + 1}")[:64]
        adv = s.get("advance")
        try:
            rule = AdvanceRule.model_validate(adv) if isinstance(adv, dict) else None
        except ValidationError:
            rule = None
        out.append(Stage(name=name, advance=rule))
    return out


class StageTracker:
    """Fed with every event of a session, in order; and with the runner's status when it comes."""

    def __init__(self, protocol: dict[str, Any]) -> None:
        self.stages = stages_of(protocol)
        self.follower = StageFollower(self.stages)
        self.advances: list[Advance] = []
        self._reported: StageProgress | None = None

    def add(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        raw = ev.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not isinstance(kind, str):
            return
        before = self.follower.index
        self.follower.add(kind, data)
        if kind == EventKind.STAGE_ADVANCE and self.follower.index != before:
            t, trial = ev.get("t", 0.0), ev.get("trial", 0)
            self.advances.append(Advance(float(t) if isinstance(t, int | float) else 0.0,
                                         int(trial) if isinstance(trial, int) else 0,
                                         str(data.get("from_name", "")), str(data.get("to_name", "")),
                                         str(data.get("reason", ""))))

    def from_status(self, st: Status) -> None:
        """The runner's own report, when it sends one: it wins over what the events say."""
        if st.stage is None or st.stage_index is None:
            return
        mine = self.progress(own=True)
        c = st.criterion
        trials = c.trials_in_stage if c is not None and c.trials_in_stage is not None else None
        if trials is None:  # the last stage carries no criterion: the folder's count, when it is the same stage
            trials = mine.trials_in_stage if mine.index == st.stage_index else 0
        n = st.n_stages if st.n_stages is not None else max(len(self.stages), 1)
        self._reported = StageProgress(index=st.stage_index, name=st.stage, n_stages=max(n, st.stage_index + 1),
                                       trials_in_stage=trials, criterion=c, last_advance=mine.last_advance)

    def progress(self, own: bool = False) -> StageProgress:
        """The runner's report when it has one for this stage or a later one (the folder may lag behind it);
        else what the folder's events say (`own`: always the latter)."""
        f = self.follower
        if not own and self._reported is not None and self._reported.index >= f.index:
            return self._reported
        try:
            crit = decode_criterion(f.criterion())
        except WireError:  # the follower's own numbers are always in range; kept safe all the same
            crit = None
        return StageProgress(index=f.index, name=f.name, n_stages=max(len(self.stages), 1),
                             trials_in_stage=f.trials_in_stage, criterion=crit,
                             last_advance=self.advances[-1] if self.advances else None)
