"""What the lab records give a session as it starts, and what they refuse.

`prepare_lab` reads the animal's registry record, its weights and water of the day and the rig's
calibration; it refuses (LabRecordError, exit 2) an implausible weight, an unregistered animal when the
rig config asks for registered ones, and a water-restricted animal without a weight for the day when
the config's lab.missing_weight is "refuse" (with "warn" it only says so). The result fills the session
header (subject, weight_g, water, calibration); `record_weight` then journals the weight given at the start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.config import RigConfig
from rig.datalog.header import CalibrationRef, WaterFacts
from rig.lab.journal import LabRecordError
from rig.lab.subjects import Subject, animal_dir, load_subject
from rig.lab.water import supplement_ml_on, supplements
from rig.lab.weights import check_weight, record_weight, weight_on, weights


@dataclass(frozen=True)
class SessionLab:
    subject: Subject | None
    weight_g: float | None  # at the start: given now, else the day's recorded weight
    weight_given: bool  # given with the session (rig run --weight-g): to be journaled
    water: WaterFacts | None
    calibration: CalibrationRef
    experimenter: str  # the config's default experimenter, for sessions started without one
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def header_update(self) -> dict[str, Any]:
        """The SessionFacts fields this fills (rig.datalog.header)."""
        return {"subject": self.subject.facts() if self.subject is not None else None,
                "weight_g": self.weight_g, "water": self.water, "calibration": self.calibration}

    def record_weight(self, data_dir: Path, animal: str, day: dt.date | None) -> None:
        if self.weight_given and self.weight_g is not None:
            record_weight(data_dir, animal, self.weight_g, day or dt.date.today(), self.subject, source="rig run",
                          by=self.experimenter)


def calibration_ref(config: RigConfig) -> CalibrationRef:
    cal = config.valve_calibration
    return CalibrationRef(id=cal.ref_id, date=cal.date.isoformat() if cal.date else None)


def rig_water_ml(data_dir: Path, animal: str, day: dt.date) -> float:
    """Water the rig gave the animal in that day's sessions (as their logs record it)."""
    from rig.datalog.reader import SessionError
    from rig.figures.learning import session_record
    from rig.figures.trials import TrialDataError

    folder = animal_dir(data_dir, animal) / day.isoformat()
    total = 0.0
    for s in sorted(folder.glob("[0-9][0-9][0-9]*")) if folder.is_dir() else ():
        try:
            total += session_record(s).water_ul
        except (SessionError, TrialDataError):
            continue  # a session that cannot be read gave no water we can count; rig animal reports it
    return round(total / 1000.0, 6)


def prepare_lab(config: RigConfig, data_dir: Path, animal: str, *, weight_g: float | None = None,
                day: dt.date | None = None) -> SessionLab:
    """The lab facts of a session about to start; raises LabRecordError / LoadError to refuse it."""
    day = day or dt.date.today()
    lab = config.lab
    subject = load_subject(data_dir, animal)
    warnings: list[str] = []
    if subject is None and lab.require_registered:
        raise LabRecordError(f"{animal} is not in the registry ({animal_dir(data_dir, animal)}/animal.yaml) and the "
                             f"rig config's lab.require_registered is true: add it with `rig animal {animal} add ...`")
    if weight_g is not None:
        check_weight(weight_g, subject)
    recorded = weight_on(weights(data_dir, animal), day)
    weight = weight_g if weight_g is not None else (recorded.weight_g if recorded is not None else None)
    restricted = subject is not None and subject.restricted_on(day)
    if restricted and weight is None:
        msg = (f"{animal} is water-restricted and has no weight for {day}: give --weight-g G, or record it with "
               f"`rig animal {animal} weigh G`")
        if lab.missing_weight == "refuse":
            raise LabRecordError(msg + " (the rig config's lab.missing_weight is refuse)")
        warnings.append(msg)
    if subject is not None and subject.baseline_weight_g and weight is not None \
            and weight < lab.min_weight_fraction * subject.baseline_weight_g:
        warnings.append(f"{animal} weighs {weight:g} g, {weight / subject.baseline_weight_g:.1%} of its baseline "
                        f"{subject.baseline_weight_g:g} g (alert below {lab.min_weight_fraction:.0%})")
    water = None
    if subject is not None:
        water = WaterFacts(target_ml=subject.daily_water_target_ml if restricted else None,
                           rig_ml=rig_water_ml(data_dir, animal, day),
                           supplement_ml=supplement_ml_on(supplements(data_dir, animal), day))
    return SessionLab(subject, weight, weight_g is not None, water, calibration_ref(config), lab.experimenter or "",
                      tuple(warnings))
