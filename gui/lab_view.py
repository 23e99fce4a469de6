"""The app's view of the lab records (animal, weight, water today, notes), behind one narrow interface.

The lab records themselves (animal registry, weights, supplements, calibration history, notes after a
session) belong to `rig.lab` (issue 13). The app reads and writes them only through `LabRecords` below,
so wiring the app to `rig.lab` is one adapter class implementing it, passed to MainWindow(lab=...).

The interface (every method is quick: called from the Qt thread, on small files):

    subject(animal) -> Subject | None          the registry entry, or None for an animal not registered
    weight(animal, day) -> Weighing | None     the last weight recorded that day
    record_weight(animal, grams, when) -> None
    water(animal, day) -> WaterDay             rig water (from that day's session folders, running ones
                                               included) + supplements, against the daily target
    add_supplement(animal, volume_ul, when) -> None
    notes(animal, session) -> list[Note]       notes of one session folder (session=None: the animal's
                                               notes not tied to a session), oldest first
    add_note(animal, text, when, session, during) -> None
                                               during=True: typed while the session ran (the runner logs
                                               it too once it has a `note` command); False: after it

Writes raise LabError with a message for the operator; nothing is ever edited in place.

`FileLabRecords` is the interim implementation until rig.lab lands: append-only JSON lines in
DATA/ANIMAL/lab-records.jsonl (weights, supplements, notes) and an optional DATA/ANIMAL/subject.json,
with the rig's water taken from the session folders (rig.datalog.info.session_info, `rig info`'s
counts). It stores nothing a session folder holds and never writes inside one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from gui.wire import WireError, decode_json

MAX_NOTE_CHARS = 10_000
MAX_WEIGHT_G = 200.0
MAX_SUPPLEMENT_UL = 10_000.0


class LabError(RuntimeError):
    """A lab record could not be read or written; the message says what and where."""


@dataclass(frozen=True)
class Subject:
    animal: str
    restricted: bool = False  # water-restricted: a weight is needed before each session
    baseline_weight_g: float | None = None
    water_target_ul: float | None = None  # daily water target (rig + supplements)
    weight_alert_fraction: float = 0.8  # warn below this fraction of the baseline weight
    species: str = ""
    sex: str = ""
    strain: str = ""


@dataclass(frozen=True)
class Weighing:
    grams: float
    when: datetime


@dataclass(frozen=True)
class WaterDay:
    day: date
    rig_ul: float
    supplement_ul: float
    target_ul: float | None
    sessions: int = 0

    @property
    def total_ul(self) -> float:
        return self.rig_ul + self.supplement_ul

    @property
    def short_ul(self) -> float | None:
        """How much is missing to the target (0 when met), None without a target."""
        return None if self.target_ul is None else max(self.target_ul - self.total_ul, 0.0)


@dataclass(frozen=True)
class Note:
    when: datetime
    text: str
    session: str | None
    during: bool


class LabRecords(Protocol):
    def subject(self, animal: str) -> Subject | None: ...
    def weight(self, animal: str, day: date) -> Weighing | None: ...
    def record_weight(self, animal: str, grams: float, when: datetime) -> None: ...
    def water(self, animal: str, day: date) -> WaterDay: ...
    def add_supplement(self, animal: str, volume_ul: float, when: datetime) -> None: ...
    def notes(self, animal: str, session: Path | None) -> list[Note]: ...
    def add_note(self, animal: str, text: str, when: datetime, session: Path | None, during: bool) -> None: ...


# ---- checks shared by every implementation ----------------------------------------------------------


def check_weight(grams: float) -> float:
    if isinstance(grams, bool) or not isinstance(grams, int | float) or not math.isfinite(grams):
        raise LabError(f"weight {grams!r} is not a number")
    if not 0 < grams <= MAX_WEIGHT_G:
        raise LabError(f"weight {grams:g} g is not a mouse's weight (more than 0, at most {MAX_WEIGHT_G:g} g)")
    return float(grams)


def check_supplement(volume_ul: float) -> float:
    if isinstance(volume_ul, bool) or not isinstance(volume_ul, int | float) or not math.isfinite(volume_ul):
        raise LabError(f"supplement {volume_ul!r} is not a number")
    if not 0 < volume_ul <= MAX_SUPPLEMENT_UL:
        raise LabError(f"supplement {volume_ul:g} µl: more than 0, at most {MAX_SUPPLEMENT_UL:g} µl")
    return float(volume_ul)


def check_note(text: str) -> str:
    text = text.strip()
    if not text:
        raise LabError("the note is empty")
    if len(text) > MAX_NOTE_CHARS:
        raise LabError(f"the note is {len(text)} characters long (at most {MAX_NOTE_CHARS})")
    return text


def check_animal(animal: str) -> str:
    a = animal.strip()
    if not a or "/" in a or a.startswith(".") or len(a) > 64:
        raise LabError(f"animal ID {animal!r}: a name without '/', not starting with '.'")
    return a


# ---- the interim file store ---------------------------------------------------------------------------


RECORDS = "lab-records.jsonl"
SUBJECT = "subject.json"


class FileLabRecords:
    """Interim LabRecords on files in the data directory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def _records(self, animal: str) -> list[dict[str, Any]]:
        path = self.data_dir / check_animal(animal) / RECORDS
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise LabError(f"{path}: cannot read: {e}") from None
        out = []
        for line in raw.splitlines():
            try:
                rec = decode_json(line)
            except WireError:
                continue  # a damaged line is skipped; the others still count
            if isinstance(rec.get("when"), str) and isinstance(rec.get("kind"), str):
                out.append(rec)
        return out

    def _append(self, animal: str, rec: dict[str, Any]) -> None:
        folder = self.data_dir / check_animal(animal)
        path = folder / RECORDS
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(rec, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise LabError(f"{path}: cannot write: {e}") from None

    @staticmethod
    def _when(rec: dict[str, Any]) -> datetime | None:
        try:
            return datetime.fromisoformat(rec["when"])
        except (KeyError, ValueError):
            return None

    def subject(self, animal: str) -> Subject | None:
        path = self.data_dir / check_animal(animal) / SUBJECT
        try:
            d = decode_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, WireError) as e:
            raise LabError(f"{path}: {e}") from None

        def num(key: str) -> float | None:
            v = d.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

        return Subject(animal=animal, restricted=d.get("restricted") is True,
                       baseline_weight_g=num("baseline_weight_g"), water_target_ul=num("water_target_ul"),
                       weight_alert_fraction=num("weight_alert_fraction") or 0.8,
                       species=str(d.get("species", "")), sex=str(d.get("sex", "")), strain=str(d.get("strain", "")))

    def weight(self, animal: str, day: date) -> Weighing | None:
        best = None
        for rec in self._records(animal):
            when = self._when(rec)
            g = rec.get("grams")
            if rec["kind"] == "weight" and when is not None and when.date() == day and isinstance(g, int | float):
                best = Weighing(float(g), when)
        return best

    def record_weight(self, animal: str, grams: float, when: datetime) -> None:
        self._append(animal, {"kind": "weight", "grams": check_weight(grams), "when": when.isoformat()})

    def water(self, animal: str, day: date) -> WaterDay:
        from rig.datalog.info import find_sessions, session_info
        from rig.datalog.reader import Session, SessionError

        rig_ul, n = 0.0, 0
        try:
            folders = [f for f in find_sessions(self.data_dir / check_animal(animal))
                       if f.parent.name == day.isoformat()]
        except FileNotFoundError:
            folders = []
        for folder in folders:
            try:
                info = session_info(Session.open(folder))
            except (SessionError, OSError):
                continue
            rig_ul += float(info.get("water_ul") or 0.0)
            n += 1
        supplement = sum(float(r["volume_ul"]) for r in self._records(animal)
                         if r["kind"] == "supplement" and type(r.get("volume_ul")) in (int, float)
                         and (w := self._when(r)) is not None and w.date() == day)
        subj = self.subject(animal)
        return WaterDay(day, round(rig_ul, 6), round(supplement, 6), subj.water_target_ul if subj else None, n)

    def add_supplement(self, animal: str, volume_ul: float, when: datetime) -> None:
        self._append(animal, {"kind": "supplement", "volume_ul": check_supplement(volume_ul),
                              "when": when.isoformat()})

    def notes(self, animal: str, session: Path | None) -> list[Note]:
        key = str(Path(session).resolve()) if session is not None else None
        out = []
        for rec in self._records(animal):
            when = self._when(rec)
            if rec["kind"] == "note" and when is not None and rec.get("session") == key:
                out.append(Note(when, str(rec.get("text", "")), key, rec.get("during") is True))
        return out

    def add_note(self, animal: str, text: str, when: datetime, session: Path | None, during: bool) -> None:
        key = str(Path(session).resolve()) if session is not None else None
        self._append(animal, {"kind": "note", "text": check_note(text), "when": when.isoformat(),
                              "session": key, "during": during})
