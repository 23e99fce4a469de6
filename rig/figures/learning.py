"""Learning across sessions: one record per session and per day, read from the event logs only.

Only header.json, footer.json, events.jsonl, commands.jsonl and valve.jsonl are read (not the large binary streams),
so summarising weeks of 2-hour sessions stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rig.datalog.info import find_sessions
from rig.datalog.reader import HEADER, SessionError, read_footer, read_header, read_jsonl
from rig.datalog.water import water_from_records
from rig.figures.trials import TrialDataError, trial_data

ARROW = "\u2192"


@dataclass(frozen=True)
class CorridorScore:
    trials: int  # ended trials
    anticipatory: int  # of which with an anticipatory lick
    rewarded: bool
    probe: bool

    @property
    def fraction(self) -> float:
        return self.anticipatory / self.trials if self.trials else float("nan")


@dataclass(frozen=True)
class SessionRecord:
    path: Path
    date: str  # YYYY-MM-DD
    session: int
    protocol: str
    kind: str
    stages: tuple[str, ...]  # stage names in order of first visit ("" when the protocol has none)
    complete: bool
    trials: int  # ended trials
    rewards: int
    water_ul: float
    corridors: dict[str, CorridorScore]


@dataclass
class DayRecord:
    date: str
    sessions: list[SessionRecord] = field(default_factory=list)

    @property
    def trials(self) -> int:
        return sum(s.trials for s in self.sessions)

    @property
    def water_ul(self) -> float:
        return sum(s.water_ul for s in self.sessions)

    @property
    def rewards(self) -> int:
        return sum(s.rewards for s in self.sessions)

    @property
    def protocols(self) -> list[str]:
        return list(dict.fromkeys(s.protocol for s in self.sessions))

    @property
    def label(self) -> str:
        """Protocol (and stages, when the protocol has them) of the day's sessions, in order."""
        parts = []
        for s in self.sessions:
            stages = [x for x in s.stages if x]
            parts.append(f"{s.protocol} ({ARROW.join(stages)})" if stages else s.protocol)
        return " + ".join(dict.fromkeys(parts))

    def corridors(self) -> dict[str, CorridorScore]:
        """Scores pooled over the day's sessions."""
        out: dict[str, CorridorScore] = {}
        for s in self.sessions:
            for name, c in s.corridors.items():
                prev = out.get(name)
                out[name] = c if prev is None else CorridorScore(
                    prev.trials + c.trials, prev.anticipatory + c.anticipatory,
                    prev.rewarded or c.rewarded, prev.probe and c.probe,
                )
        return out


def session_record(path: str | Path) -> SessionRecord:
    """The per-session learning facts of one session folder."""
    path = Path(path)
    header = read_header(path)
    footer, _ = read_footer(path)  # bounded like every session read; a damaged footer: not complete
    events, _ = read_jsonl(path / "events.jsonl")
    commands, _ = read_jsonl(path / "commands.jsonl")
    valve, _ = read_jsonl(path / "valve.jsonl")
    protocol = header.protocol
    data = trial_data(events)
    tr = data.trials
    ended = tr.ended
    corridors = {}
    for name in tr.corridors():
        m = (tr.corridor == name) & ended
        first = int(np.flatnonzero(tr.corridor == name)[0])
        corridors[name] = CorridorScore(int(m.sum()), int(tr.anticipatory[m].sum()), bool(tr.rewarded[first]),
                                        bool(tr.probe[first]))
    water = water_from_records(commands, valve, "valve.jsonl" in header.files).delivered_ul  # the valve's truth
    return SessionRecord(
        path=path,
        date=header.date,
        session=header.session,
        protocol=str(protocol.get("name") or "?"),
        kind=str(protocol.get("kind") or "?"),
        stages=tuple(dict.fromkeys(tr.stage_name.tolist())),
        complete=bool(isinstance(footer, dict) and footer.get("complete") is True),
        trials=int(ended.sum()),
        rewards=int(np.sum(~data.rewards.withheld)) if len(data.rewards) else 0,
        water_ul=round(water, 6),
        corridors=corridors,
    )


def animal_days(animal_dir: str | Path, skipped: list[str] | None = None) -> list[DayRecord]:
    """One record per day with sessions under ANIMAL_DIR, oldest first.

    A session that cannot be read raises SessionError, unless a `skipped` list is given: then the problem
    is appended to it and the session left out. Raises FileNotFoundError when the folder does not exist
    and SessionError when no readable session is found."""
    paths = find_sessions(animal_dir)
    if not paths:
        raise SessionError(
            f"{animal_dir}: no sessions found (expected ANIMAL/YYYY-MM-DD/NNN folders holding {HEADER})"
        )
    days: dict[str, DayRecord] = {}
    for p in paths:
        try:
            rec = session_record(p)
        except (SessionError, TrialDataError) as e:
            if skipped is None:
                raise
            skipped.append(str(e))
            continue
        days.setdefault(rec.date, DayRecord(rec.date)).sessions.append(rec)
    if not days:
        first = f"; the first: {skipped[0]}" if skipped else ""
        raise SessionError(f"{animal_dir}: none of its {len(paths)} session(s) could be read{first}")
    return [days[d] for d in sorted(days)]
