"""The app's view of the lab records (animal, weight, water today, notes), behind one narrow interface.

The lab records themselves (animal registry, weights, supplements, calibration history, notes) belong to
`rig.lab`. The app reads and writes them only through `LabRecords` below (tests give it fakes).

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
                                               it too, in operator.jsonl); False: after it

Writes raise LabError with a message for the operator; nothing is ever edited in place.

`RigLabRecords` implements it on rig.lab: the registry, weights, supplements and notes that `rig animal`
shows and the NWB export reads, with the rig's water taken from the session folders
(rig.datalog.info.session_info, `rig info`'s counts). It never writes inside a session folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")
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


# ---- the lab records of rig.lab ----------------------------------------------------------------------


class RigLabRecords:
    """LabRecords on rig.lab: the registry (DATA/ANIMAL/animal.yaml), weights.jsonl, water.jsonl and
    notes.jsonl beside it, the same records `rig animal` shows and the NWB export reads; the rig's water from
    the session folders (`rig info`'s delivered water). Nothing is written inside a session folder."""

    def __init__(self, data_dir: Path, min_weight_fraction: float = 0.8, by: str = "") -> None:
        self.data_dir = Path(data_dir)
        self.min_weight_fraction = min_weight_fraction  # the rig config's lab.min_weight_fraction
        self.by = by or _user()

    def _lab(self, what: str, call: Callable[[], T]) -> T:
        from rig.errors import BadInput

        try:
            return call()
        except (BadInput, ValueError) as e:  # LabRecordError is a BadInput; pydantic's errors ValueErrors
            raise LabError(f"{what}: {e}") from None
        except OSError as e:
            raise LabError(f"{what}: {e}") from None

    def subject(self, animal: str) -> Subject | None:
        from rig.lab.subjects import load_subject

        s = self._lab(f"animal {animal}", lambda: load_subject(self.data_dir, check_animal(animal)))
        if s is None:
            return None
        target = s.daily_water_target_ml
        return Subject(animal=animal, restricted=s.restricted_on(date.today()), baseline_weight_g=s.baseline_weight_g,
                       water_target_ul=target * 1000.0 if target is not None else None,
                       weight_alert_fraction=self.min_weight_fraction, species=s.species, sex=s.sex,
                       strain=s.strain or "")

    def weight(self, animal: str, day: date) -> Weighing | None:
        from rig.lab.weights import weight_on, weights

        w = weight_on(self._lab(f"weights of {animal}", lambda: weights(self.data_dir, check_animal(animal))), day)
        if w is None:
            return None
        try:
            when = datetime.fromisoformat(w.recorded_at)
        except ValueError:
            when = datetime.combine(w.date, datetime.min.time())
        return Weighing(w.weight_g, when)

    def record_weight(self, animal: str, grams: float, when: datetime) -> None:
        from rig.lab.subjects import load_subject
        from rig.lab.weights import record_weight

        grams = check_weight(grams)
        a = check_animal(animal)
        self._lab("weight not recorded", lambda: record_weight(
            self.data_dir, a, grams, when.date(), load_subject(self.data_dir, a), by=self.by, source="rig gui"))

    def water(self, animal: str, day: date) -> WaterDay:
        from rig.lab.water import supplement_ml_on, supplements

        a = check_animal(animal)
        rig_ul, n = _rig_water(self.data_dir / a, day)
        supp_ml = supplement_ml_on(self._lab(f"water of {a}", lambda: supplements(self.data_dir, a)), day)
        subj = self.subject(a)
        return WaterDay(day, round(rig_ul, 6), round(supp_ml * 1000.0, 6), subj.water_target_ul if subj else None, n)

    def add_supplement(self, animal: str, volume_ul: float, when: datetime) -> None:
        from rig.lab.water import record_supplement

        ml = check_supplement(volume_ul) / 1000.0
        self._lab("supplement not recorded",
                  lambda: record_supplement(self.data_dir, check_animal(animal), ml, when.date(), by=self.by))

    def notes(self, animal: str, session: Path | None) -> list[Note]:
        from rig.lab.notes import notes

        a = check_animal(animal)
        key = self._session_key(a, session)
        out = []
        for n in self._lab(f"notes of {a}", lambda: notes(self.data_dir, a)):
            if n.session != key:
                continue
            try:
                when = datetime.fromisoformat(n.recorded_at)
            except ValueError:
                when = datetime.combine(n.date, datetime.min.time())
            out.append(Note(when, n.text, str(session) if session is not None else None, n.during))
        return out

    def add_note(self, animal: str, text: str, when: datetime, session: Path | None, during: bool) -> None:
        from rig.lab.notes import add_note

        a, text = check_animal(animal), check_note(text)
        key = self._session_key(a, session)
        self._lab("note not saved", lambda: add_note(self.data_dir, a, text, when.date(), by=self.by, session=key,
                                                     during=during))

    def _session_key(self, animal: str, session: Path | None) -> str | None:
        """DATE/NNN of a session folder of this animal under the data directory (how notes name sessions)."""
        if session is None:
            return None
        folder = Path(session).resolve()
        if folder.parent.parent != (self.data_dir / animal).resolve():
            raise LabError(f"{session} is not a session of {animal} in {self.data_dir}")
        return f"{folder.parent.name}/{folder.name}"


def _rig_water(animal_dir: Path, day: date) -> tuple[float, int]:
    """The water the rig gave on `day` (`rig info`'s delivered water of that day's folders, running ones
    included) and how many sessions."""
    from rig.datalog.info import find_sessions, session_info
    from rig.datalog.reader import Session, SessionError

    rig_ul, n = 0.0, 0
    try:
        folders = [f for f in find_sessions(animal_dir) if f.parent.name == day.isoformat()]
    except FileNotFoundError:
        folders = []
    for folder in folders:
        try:
            info = session_info(Session.open(folder))
        except (SessionError, OSError):
            continue
        rig_ul += float(info.get("water_ul") or 0.0)
        n += 1
    return rig_ul, n


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
