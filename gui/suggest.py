"""The next protocol to run for an animal, from its last session: the paper's stage sequence
train1 -> test1 -> train2 -> test2 -> test3, keeping the animal's lane (task / exposure) and texture family
(natural / grating_). test3 is shipped as one protocol per swap corridor (test3_swap1_*, test3_swap2_*): a
mouse sees one swap corridor only, so the swap it was shown before (the newest test3_swapN session in its
history) is kept; a mouse without one is offered both, and the operator chooses.

- An incomplete last session is repeated.
- A training stage (train1, train2) is advanced from when the task animal has learned it, by the learning
  criterion of rig.engine.learning (anticipatory licking in rewarded against unrewarded corridors; the
  protocol's own last stage criterion when it has one). Exposure
  animals have no learning readout: they follow the sequence after a complete session of at least
  MIN_EXPOSURE_TRIALS trials (their task cohort sets the days; the operator decides).
- A probe stage (test1, test2) is one recording: the next stage follows. test3 is the last one: a test3
  session is suggested again as it was (same swap).
- Protocols outside the sequence (demo, pretraining, no-cue) are suggested again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rig.engine.records import EventKind

if TYPE_CHECKING:
    from rig.datalog.reader import Session

SEQUENCE = ("train1", "test1", "train2", "test2", "test3")
ADVANCE_FRACTION = 0.7
ADVANCE_WINDOW = 20
MIN_EXPOSURE_TRIALS = 100
SWAPS = (1, 2)  # the swap corridors test3 is shipped with (protocols/test3_swapN_{task,exposure}.yaml)
_NAME = re.compile(r"^(?P<family>grating_)?(?P<stage>train1|test1|train2|test2|test3)(?:_swap(?P<swap>\d+))?"
                   r"_(?P<lane>task|exposure)$")


@dataclass(frozen=True)
class Suggestion:
    protocol: str  # a protocol name (protocols/NAME.yaml when shipped); the first of `options`
    reason: str
    advance: bool  # moves to the next stage
    options: tuple[str, ...] = ()  # more than one: the operator must choose (test3's swap, not yet known)

    @property
    def choices(self) -> tuple[str, ...]:
        """Every protocol suggested: one, or the alternatives the operator chooses from."""
        return self.options or (self.protocol,)


def previous_swap(protocols: Iterable[str]) -> int | None:
    """The swap corridor of the newest test3_swapN protocol among `protocols` (oldest first), if any."""
    swap = None
    for name in protocols:
        m = _NAME.match(str(name))
        if m is not None and m.group("stage") == "test3" and m.group("swap") is not None:
            swap = int(m.group("swap"))
    return swap


def protocols_run(animal_dir: Path) -> list[str]:
    """The protocol names of an animal's sessions, oldest first, from their headers alone (unreadable
    headers are left out; a folder that is not there has no history)."""
    from rig.datalog.info import find_sessions
    from rig.datalog.reader import SessionError, read_header

    try:
        folders = find_sessions(animal_dir)
    except (FileNotFoundError, SessionError):
        return []
    names = []
    for folder in folders:
        try:
            names.append(read_header(folder).protocol_name)
        except (SessionError, OSError, ValueError):
            continue
    return names


def anticipatory_fraction(session: Session, window: int = ADVANCE_WINDOW) -> tuple[float | None, int]:
    """(fraction of the last `window` rewarded-corridor trials with a lick before the cue, trials counted);
    None when the session has no finished trial in a rewarded corridor. `session`: rig.datalog.reader.Session."""
    corridors = session.header.protocol.get("corridors") or []
    rewarded = {k for k, c in enumerate(corridors) if c.get("rewarded")}
    corridor, anticipated, done = 0, False, []
    for ev in session.events:
        kind, data = ev.get("kind"), ev.get("data") or {}
        if kind == EventKind.TRIAL_START:
            corridor, anticipated = int(data.get("corridor_index", 0)), False
        elif kind == EventKind.LICK and not data.get("iti") and data.get("anticipatory"):
            anticipated = True
        elif kind == EventKind.TRIAL_END and corridor in rewarded:
            done.append(anticipated)
    last = done[-window:]
    return (float(np.mean(last)) if last else None), len(last)


def _criterion(protocol: dict[str, Any]) -> tuple[float, int]:
    stages = protocol.get("stages") or []
    adv = (stages[-1].get("advance") or {}) if stages else {}
    if adv.get("anticipatory_fraction"):
        return float(adv["anticipatory_fraction"]), int(adv.get("window", ADVANCE_WINDOW))
    return ADVANCE_FRACTION, ADVANCE_WINDOW


def _test3(family: str, lane: str, history: Iterable[str], why: str) -> Suggestion:
    swap = previous_swap(history)
    if swap is not None:
        return Suggestion(f"{family}test3_swap{swap}_{lane}", f"{why}; swap{swap}, the swap corridor this mouse "
                          "was shown before", True)
    options = tuple(f"{family}test3_swap{k}_{lane}" for k in SWAPS)
    return Suggestion(options[0], f"{why}; no swap corridor in this mouse's history: choose "
                      + " or ".join(options), True, options)


def suggest_next(last_info: dict[str, Any], last_session: Session | None = None,
                 history: Iterable[str] = ()) -> Suggestion | None:
    """The suggestion after the session `last_info` (a rig.datalog.info dict); `last_session` (its
    rig.datalog.reader.Session) is needed to judge a training stage of a task animal; `history`: the
    protocol names of the animal's sessions, oldest first (`protocols_run`), for test3's swap corridor."""
    name = last_info.get("protocol")
    if not name:
        return None
    if not last_info.get("complete"):
        return Suggestion(name, "the last session did not complete: repeat it", False)
    m = _NAME.match(str(name))
    if m is None:
        return Suggestion(name, "the last session's protocol (not in the train1 → test3 sequence)", False)
    family, stage, lane = m.group("family") or "", m.group("stage"), m.group("lane")
    if (stage == "test3") != (m.group("swap") is not None):
        return Suggestion(name, "the last session's protocol (not in the train1 → test3 sequence)", False)
    k = SEQUENCE.index(stage)
    if k == len(SEQUENCE) - 1:
        return Suggestion(name, "test3 is the last stage of the sequence (same swap corridor)", False)
    if SEQUENCE[k + 1] == "test3":
        return _test3(family, lane, history, f"{stage} is a single probe recording: next stage")
    following = f"{family}{SEQUENCE[k + 1]}_{lane}"
    if stage.startswith("test"):
        return Suggestion(following, f"{stage} is a single probe recording: next stage", True)
    if lane == "exposure":
        trials = int(last_info.get("trials") or 0)
        if trials >= MIN_EXPOSURE_TRIALS:
            return Suggestion(following, f"exposure lane: {trials} trials of {stage} done (follow the task cohort)",
                              True)
        return Suggestion(name, f"exposure lane: only {trials} trials of {stage} (< {MIN_EXPOSURE_TRIALS})", False)
    if last_session is None:
        return Suggestion(name, "the last session could not be read to judge learning: repeat it", False)
    from rig.api import learning  # the one learning criterion (rig.engine.learning), as stage advance uses it

    score = learning(last_session)
    if score.learned:
        return Suggestion(following, f"learned {stage}: {score.describe()}", True)
    return Suggestion(name, f"not learned yet: {score.describe()}", False)


def shipped(protocol: str, protocols_dir: Path) -> Path | None:
    path = Path(protocols_dir) / f"{protocol}.yaml"
    return path if path.is_file() else None
