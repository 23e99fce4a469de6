"""The stage in force and how far it is from its advance criterion, followed live from the session's events
(no Qt). The rules are the engine's (rig.engine.machine: `_check_advance`): a stage advances after
`after_trials` trials ended in it, or when the anticipatory fraction over its last `window` rewarded
trials reaches `anticipatory_fraction`, whichever comes first; the advance takes effect at the next trial
start (a `stage_advance` event).

When the runner reports the stage itself (planned status fields `stage`, `stage_index`, `criterion`),
`StageTracker.from_status` takes those instead: the runner is the authority, this is the fallback.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gui.wire import Status
from rig.engine.records import EventKind


@dataclass(frozen=True)
class StageRule:
    name: str
    after_trials: int | None
    anticipatory_fraction: float | None
    window: int


@dataclass(frozen=True)
class Advance:
    t: float
    trial: int
    from_name: str
    to_name: str
    reason: str


@dataclass(frozen=True)
class StageProgress:
    index: int
    name: str
    n_stages: int
    rule: StageRule | None  # None: the last stage (it lasts to the end of the session)
    trials_in_stage: int
    fraction_now: float | None  # anticipatory fraction over the last `window` rewarded trials in the stage
    rewarded_in_window: int
    last_advance: Advance | None

    def text(self) -> str:
        if self.n_stages == 1 and self.rule is None and self.name == "main":
            return "no stages: one reward rule for the whole session"
        head = f"stage {self.index + 1} of {self.n_stages}: {self.name} · {self.trials_in_stage} trials in it"
        r = self.rule
        if r is None:
            return head + (" · last stage" if self.n_stages > 1 else "")
        parts = []
        if r.after_trials is not None:
            parts.append(f"after {r.after_trials} trials ({max(r.after_trials - self.trials_in_stage, 0)} to go)")
        if r.anticipatory_fraction is not None:
            now = ("–" if self.fraction_now is None
                   else f"{self.fraction_now:.0%} over {self.rewarded_in_window} of {r.window}")
            parts.append(f"at ≥ {r.anticipatory_fraction:.0%} anticipatory licking over {r.window} rewarded "
                         f"trials (now {now})")
        return head + " · advances " + " or ".join(parts)


def rules_of(protocol: dict[str, Any]) -> list[StageRule]:
    """The stages of a protocol as recorded in a session header (a dict); one unnamed stage if it has none."""
    out = []
    for k, s in enumerate(protocol.get("stages") or ()):
        if not isinstance(s, dict):
            continue
        adv = s.get("advance") if isinstance(s.get("advance"), dict) else None
        out.append(StageRule(
            name=str(s.get("name", f"stage {k + 1}")),
            after_trials=int(adv["after_trials"]) if adv and isinstance(adv.get("after_trials"), int) else None,
            anticipatory_fraction=(float(adv["anticipatory_fraction"]) if adv
                                   and isinstance(adv.get("anticipatory_fraction"), int | float) else None),
            window=int(adv.get("window", 20)) if adv and isinstance(adv.get("window"), int) else 20,
        ))
    return out


class StageTracker:
    """Fed with every event of a session, in order."""

    def __init__(self, protocol: dict[str, Any]) -> None:
        self.rules = rules_of(protocol)
        self.index = 0
        self.trials_in_stage = 0
        self.advances: list[Advance] = []
        self._antic: deque[bool] = deque(maxlen=self._window())
        self._reported: StageProgress | None = None

    def _window(self) -> int:
        return self.rules[self.index].window if self.index < len(self.rules) else 1

    def add(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        raw = ev.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind == EventKind.STAGE_ADVANCE:
            to = data.get("to")
            if isinstance(to, int) and 0 <= to < max(len(self.rules), 1):
                self.advances.append(Advance(float(ev.get("t", 0.0)), int(ev.get("trial", 0)),
                                             str(data.get("from_name", "")), str(data.get("to_name", "")),
                                             str(data.get("reason", ""))))
                self.index = to
                self.trials_in_stage = 0
                self._antic = deque(maxlen=self._window())
        elif kind == EventKind.TRIAL_END:
            self.trials_in_stage += 1
            if data.get("rewarded"):
                self._antic.append(bool(data.get("anticipatory")))

    def from_status(self, st: Status) -> None:
        """The runner's own report, when it sends one: it wins over what the events say."""
        if st.stage is None or st.stage_index is None:
            return
        c = st.criterion
        rule = None
        if c is not None and (c.after_trials is not None or c.anticipatory_fraction is not None):
            rule = StageRule(st.stage, c.after_trials, c.anticipatory_fraction, c.window or 20)
        mine = self.progress()
        self._reported = StageProgress(
            index=st.stage_index, name=st.stage, n_stages=max(len(self.rules), st.stage_index + 1), rule=rule,
            trials_in_stage=c.trials_in_stage if c is not None and c.trials_in_stage is not None
            else mine.trials_in_stage,
            fraction_now=c.fraction_now if c is not None else mine.fraction_now,
            rewarded_in_window=mine.rewarded_in_window, last_advance=mine.last_advance)

    def progress(self) -> StageProgress:
        if self._reported is not None and self._reported.index >= self.index:
            return self._reported
        n = len(self.rules)
        rule = self.rules[self.index] if self.index < n else None
        last = rule is None or self.index == n - 1
        hist = list(self._antic)
        return StageProgress(
            index=self.index, name=rule.name if rule is not None else "main", n_stages=max(n, 1),
            rule=None if last else rule, trials_in_stage=self.trials_in_stage,
            fraction_now=(sum(hist) / len(hist)) if hist else None, rewarded_in_window=len(hist),
            last_advance=self.advances[-1] if self.advances else None)
