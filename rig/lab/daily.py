"""An animal's daily log (`rig animal ID`): per day its weight against the baseline, the water from the rig
plus supplements against the target, its sessions, stage and learning, and alerts.

Read from the registry record, the weight, water and note journals and the sessions' own logs (header,
footer, events and commands only, so weeks of sessions read quickly); nothing is written. Alerts: a
weight below the rig config's lab.min_weight_fraction of the baseline; on a restricted day, no weight, or
less water than the target (today: how much is still to give).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.config import LabSettings
from rig.lab.notes import NoteEntry, notes
from rig.lab.subjects import Subject, animal_dir, load_subject
from rig.lab.water import SupplementEntry, supplements
from rig.lab.weights import WeightEntry, weight_on, weights


@dataclass(frozen=True)
class SessionLine:
    folder: str  # DATE/NNN
    protocol: str
    stages: tuple[str, ...]
    complete: bool
    trials: int
    rewards: int
    water_ml: float


@dataclass(frozen=True)
class DayLog:
    date: dt.date
    weight_g: float | None
    baseline_g: float | None
    rig_ml: float
    supplement_ml: float
    target_ml: float | None  # restricted days only
    sessions: tuple[SessionLine, ...]
    # anticipatory-lick fraction over the day's ended trials: rewarded and unrewarded (non-probe) corridors
    anticipatory_rewarded: float | None
    anticipatory_unrewarded: float | None
    notes: tuple[NoteEntry, ...]
    alerts: tuple[str, ...]

    @property
    def total_ml(self) -> float:
        return round(self.rig_ml + self.supplement_ml, 6)

    @property
    def weight_fraction(self) -> float | None:
        if self.weight_g is None or not self.baseline_g:
            return None
        return self.weight_g / self.baseline_g

    @property
    def trials(self) -> int:
        return sum(s.trials for s in self.sessions)

    @property
    def rewards(self) -> int:
        return sum(s.rewards for s in self.sessions)

    @property
    def stage(self) -> str:
        """Protocol (and its last stage) of the day's last session."""
        if not self.sessions:
            return ""
        last = self.sessions[-1]
        stages = [s for s in last.stages if s]
        return f"{last.protocol} ({stages[-1]})" if stages else last.protocol


@dataclass(frozen=True)
class AnimalLog:
    animal: str
    folder: Path
    subject: Subject | None
    settings: LabSettings
    today: dt.date
    days: tuple[DayLog, ...]
    skipped: tuple[str, ...] = field(default_factory=tuple)  # sessions that could not be read, and why

    @property
    def alerts(self) -> list[tuple[dt.date, str]]:
        return [(d.date, a) for d in self.days for a in d.alerts]

    def to_json(self) -> dict[str, Any]:
        return {
            "animal": self.animal, "folder": str(self.folder), "today": self.today.isoformat(),
            "subject": self.subject.model_dump(mode="json") if self.subject is not None else None,
            "min_weight_fraction": self.settings.min_weight_fraction,
            "days": [{
                "date": d.date.isoformat(), "weight_g": d.weight_g, "weight_fraction": _round(d.weight_fraction, 4),
                "rig_ml": d.rig_ml, "supplement_ml": d.supplement_ml, "total_ml": d.total_ml,
                "target_ml": d.target_ml, "trials": d.trials, "rewards": d.rewards, "stage": d.stage,
                "anticipatory_rewarded": _round(d.anticipatory_rewarded, 4),
                "anticipatory_unrewarded": _round(d.anticipatory_unrewarded, 4),
                "sessions": [s.__dict__ | {"stages": list(s.stages)} for s in d.sessions],
                "notes": [n.model_dump(mode="json", exclude_none=True) for n in d.notes],
                "alerts": list(d.alerts),
            } for d in self.days],
            "skipped": list(self.skipped),
        }

    def text(self) -> str:
        lines = [self._heading()]
        s = self.subject
        if s is None:
            lines.append(f"not in the registry: add it with `rig animal {self.animal} add --sex M|F|U|O ...`")
        elif s.restricted:
            lines.append(f"water restriction since {s.water_restriction_start}; baseline {s.baseline_weight_g:g} g; "
                         f"target {s.daily_water_target_ml:g} ml/day; alert below "
                         f"{self.settings.min_weight_fraction:.0%} of baseline")
        elif s.baseline_weight_g:
            lines.append(f"not water-restricted; baseline {s.baseline_weight_g:g} g; alert below "
                         f"{self.settings.min_weight_fraction:.0%} of baseline")
        else:
            lines.append("not water-restricted")
        lines.append("")
        if not self.days:
            lines.append("no records yet (no sessions, weights, water or notes)")
            return "\n".join(lines)
        head = (f"  {'date':<10}  {'weight g':>14}  {'rig ml':>6}  {'suppl ml':>8}  {'total/target ml':>15}  "
                f"{'sess':>4}  {'trials':>6}  {'rewards':>7}  {'antic. rew/unrew':>16}  protocol (stage)")
        lines.append(head)
        for d in self.days:
            frac = d.weight_fraction
            weight = "-" if d.weight_g is None else f"{d.weight_g:g}" + (f" ({frac:.1%})" if frac else "")
            target = f"{d.total_ml:.2f}/{d.target_ml:.2f}" if d.target_ml is not None else f"{d.total_ml:.2f}"
            antic = f"{_pct(d.anticipatory_rewarded)}/{_pct(d.anticipatory_unrewarded)}" if d.sessions else "-"
            mark = "!" if d.alerts else " "
            lines.append(f"{mark} {d.date.isoformat():<10}  {weight:>14}  {d.rig_ml:6.2f}  {d.supplement_ml:8.2f}  "
                         f"{target:>15}  {len(d.sessions):4d}  {d.trials:6d}  {d.rewards:7d}  {antic:>16}  "
                         f"{d.stage or '-'}")
        alerts = self.alerts
        lines += ["", f"alerts ({len(alerts)}):" if alerts else "alerts: none"]
        lines += [f"  {day.isoformat()}  {a}" for day, a in alerts]
        all_notes = [n for d in self.days for n in d.notes]
        if all_notes:
            lines += ["", "notes:"]
            for n in all_notes:
                who = f" [{n.by}]" if n.by else ""
                where = f" ({n.session})" if n.session else ""
                lines.append(f"  {n.date.isoformat()}{where}{who}  {n.text}")
        for problem in self.skipped:
            lines.append(f"warning: session left out: {problem}")
        return "\n".join(lines)

    def _heading(self) -> str:
        s = self.subject
        if s is None:
            return f"{self.animal}  ({self.folder})"
        parts = [s.species, {"M": "male", "F": "female", "U": "sex unknown", "O": "sex other"}[s.sex]]
        if s.date_of_birth is not None:
            parts.append(f"born {s.date_of_birth} ({(self.today - s.date_of_birth).days} days old today)")
        if s.strain:
            parts.append(f"strain {s.strain}")
        if s.genotype:
            parts.append(f"genotype {s.genotype}")
        return f"{self.animal}: {', '.join(parts)}  ({self.folder})"


def _round(x: float | None, n: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, n)


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _sessions(folder: Path, skipped: list[str]) -> dict[dt.date, list[Any]]:
    """The animal's readable session records by day (rig.figures.learning.SessionRecord)."""
    from rig.datalog.info import find_sessions
    from rig.datalog.reader import SessionError
    from rig.figures.learning import session_record
    from rig.figures.trials import TrialDataError

    out: dict[dt.date, list[Any]] = {}
    if not folder.is_dir():
        return out
    for p in find_sessions(folder):
        try:
            rec = session_record(p)
        except (SessionError, TrialDataError) as e:
            skipped.append(str(e))
            continue
        out.setdefault(dt.date.fromisoformat(rec.date), []).append(rec)
    return out


def _alerts(day: dt.date, today: dt.date, subject: Subject | None, weight: WeightEntry | None, total_ml: float,
            settings: LabSettings) -> list[str]:
    out: list[str] = []
    base = subject.baseline_weight_g if subject is not None else None
    if weight is not None and base and weight.weight_g < settings.min_weight_fraction * base:
        out.append(f"weight {weight.weight_g:g} g is {weight.weight_g / base:.1%} of the baseline {base:g} g "
                   f"(alert below {settings.min_weight_fraction:.0%})")
    if subject is None or not subject.restricted_on(day) or day > today:
        return out
    if weight is None:
        out.append("no weight recorded on a restricted day")
    target = subject.daily_water_target_ml
    if target is not None and total_ml < target - 1e-9:
        if day == today:
            out.append(f"water so far {total_ml:.2f} ml of the {target:g} ml target: give {target - total_ml:.2f} "
                       "ml more today")
        else:
            out.append(f"water {total_ml:.2f} ml, below the {target:g} ml target by {target - total_ml:.2f} ml")
    return out


def animal_log(data_dir: Path, animal: str, settings: LabSettings | None = None, *, today: dt.date | None = None,
               last_days: int | None = None) -> AnimalLog:
    """The daily log of an animal (registered or not) from its folder under data_dir."""
    settings = settings or LabSettings()
    today = today or dt.date.today()
    folder = animal_dir(data_dir, animal)
    subject = load_subject(data_dir, animal)
    ws: list[WeightEntry] = weights(data_dir, animal)
    sups: list[SupplementEntry] = supplements(data_dir, animal)
    ns: list[NoteEntry] = notes(data_dir, animal)
    skipped: list[str] = []
    by_day = _sessions(folder, skipped)
    dates = set(by_day) | {e.date for e in ws} | {e.date for e in sups} | {n.date for n in ns}
    if subject is not None and subject.restricted and subject.water_restriction_start is not None:
        # every restricted day up to today (or the last record) gets a row: a day without records is news
        first = min([subject.water_restriction_start, *dates])
        last = max([today, *dates])
        dates |= {first + dt.timedelta(days=k) for k in range((last - first).days + 1)
                  if first + dt.timedelta(days=k) >= subject.water_restriction_start}
    rows: list[DayLog] = []
    for day in sorted(dates):
        recs = by_day.get(day, [])
        weight = weight_on(ws, day)
        rig_ml = round(sum(r.water_ul for r in recs) / 1000.0, 6)
        sup_ml = round(sum(e.volume_ml for e in sups if e.date == day), 6)
        rew_n = rew_a = un_n = un_a = 0
        for r in recs:
            for c in r.corridors.values():
                if c.probe:
                    continue
                if c.rewarded:
                    rew_n, rew_a = rew_n + c.trials, rew_a + c.anticipatory
                else:
                    un_n, un_a = un_n + c.trials, un_a + c.anticipatory
        restricted = subject is not None and subject.restricted_on(day)
        rows.append(DayLog(
            date=day, weight_g=weight.weight_g if weight is not None else None,
            baseline_g=subject.baseline_weight_g if subject is not None else None,
            rig_ml=rig_ml, supplement_ml=sup_ml,
            target_ml=subject.daily_water_target_ml if restricted and subject is not None else None,
            sessions=tuple(SessionLine(f"{r.date}/{r.session:03d}", r.protocol, r.stages, r.complete, r.trials,
                                       r.rewards, round(r.water_ul / 1000.0, 6)) for r in recs),
            anticipatory_rewarded=rew_a / rew_n if rew_n else None,
            anticipatory_unrewarded=un_a / un_n if un_n else None,
            notes=tuple(n for n in ns if n.date == day),
            alerts=tuple(_alerts(day, today, subject, weight, round(rig_ml + sup_ml, 6), settings)),
        ))
    if last_days is not None:
        rows = rows[-last_days:] if last_days > 0 else []
    return AnimalLog(animal, folder, subject, settings, today, tuple(rows), tuple(skipped))
