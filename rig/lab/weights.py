"""Body weights: DATA/ANIMAL/weights.jsonl, an append-only journal (rig animal ID weigh G, rig run --weight-g G).

An entry counts for a day (`date`: the session's day for a simulated curriculum, else today); the day's
weight is its last entry. A weight far from the baseline is refused as a likely typo before it is written.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Literal

from pydantic import Field

from rig.lab import journal
from rig.lab.journal import Entry, LabRecordError
from rig.lab.subjects import Subject, animal_dir, check_animal_id

WEIGHTS_FILE = "weights.jsonl"
MAX_WEIGHT_G = 2000.0
# Outside this fraction of the baseline a weight is a typo (a mouse does not lose half its weight overnight).
PLAUSIBLE_FRACTION = (0.5, 1.5)


class WeightEntry(Entry):
    date: dt.date  # the day the weight counts for
    weight_g: float = Field(gt=0, le=MAX_WEIGHT_G)
    recorded_at: str  # wall clock, when it was entered
    by: str = ""
    source: Literal["rig animal", "rig run", "rig gui"] = "rig animal"
    note: str = ""


def check_weight(weight_g: float, subject: Subject | None) -> None:
    """Refuse a weight that cannot be right (not a number, <= 0, or far from the animal's baseline)."""
    if not (isinstance(weight_g, int | float) and math.isfinite(weight_g) and 0 < weight_g <= MAX_WEIGHT_G):
        raise LabRecordError(f"weight {weight_g!r} g: give the body weight in grams (> 0, <= {MAX_WEIGHT_G:g})")
    if subject is None or subject.baseline_weight_g is None:
        return
    base = subject.baseline_weight_g
    lo, hi = PLAUSIBLE_FRACTION
    if not lo * base <= weight_g <= hi * base:
        raise LabRecordError(
            f"weight {weight_g:g} g is {weight_g / base:.0%} of {subject.id}'s baseline {base:g} g (a typo? "
            f"plausible: {lo * base:g}-{hi * base:g} g); if it is right, change the baseline first with "
            f"`rig animal {subject.id} set baseline_weight_g=...`")


def weights_path(data_dir: Path, animal: str) -> Path:
    return animal_dir(data_dir, animal) / WEIGHTS_FILE


def record_weight(data_dir: Path, animal: str, weight_g: float, day: dt.date, subject: Subject | None, *,
                  by: str = "", source: Literal["rig animal", "rig run", "rig gui"] = "rig animal",
                  note: str = "") -> WeightEntry:
    check_animal_id(animal)
    check_weight(weight_g, subject)
    entry = WeightEntry(date=day, weight_g=float(weight_g), recorded_at=journal.now_iso(), by=by, source=source,
                        note=note)
    journal.append(weights_path(data_dir, animal), entry)
    return entry


def weights(data_dir: Path, animal: str) -> list[WeightEntry]:
    return journal.read(weights_path(data_dir, animal), WeightEntry)


def weight_on(entries: list[WeightEntry], day: dt.date) -> WeightEntry | None:
    """The day's weight: its last entry."""
    of_day = [e for e in entries if e.date == day]
    return of_day[-1] if of_day else None
