"""The rig's history: every valve calibration (accepted or refused), every `rig check` and every prime,
appended to DATA/rig-NAME.history.jsonl (DATA: the config's data_dir, NAME: the config's name).

It lives in the data directory, beside the animals, because that is the lab's kept and backed-up record
(configs are often files in a source checkout); a file, not a folder, so it is never taken for an
animal. The config's valve_calibration carries the id and date of the calibration in force; this
journal holds each one's weighings, fit and who did it, so a session's calibration id leads here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, RootModel

from rig.config import CalibrationPoint, RigConfig
from rig.lab import journal
from rig.lab.journal import Entry


def history_path(data_dir: Path, rig_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in rig_name) or "rig"
    return Path(data_dir) / f"rig-{safe}.history.jsonl"


def config_history_path(config: RigConfig, data_dir: Path | None = None) -> Path:
    return history_path(Path(data_dir if data_dir is not None else config.data_dir).expanduser(), config.name)


class Weighing(Entry):
    """One duration's water: tare and filled tube weights, or only the net water (grams)."""

    duration_ms: float
    net_g: float
    tare_g: float | None = None
    filled_g: float | None = None
    ul_per_opening: float


class CalibrationRecord(Entry):
    kind: Literal["calibration"] = "calibration"
    recorded_at: str
    by: str = ""
    rig: str
    config: str
    date: dt.date
    accepted: bool  # the fit passed every check
    written: bool  # and went into the config (not a dry run)
    id: str | None = None  # accepted ones: the id the config and every later session header carry
    reason: str = ""  # refused ones: why
    pulses: int
    interval_ms: float
    weighings: tuple[Weighing, ...]
    points: tuple[CalibrationPoint, ...]
    slope_ul_per_ms: float | None = None
    intercept_ul: float | None = None
    residuals_ul: tuple[float, ...] = ()


class CheckLine(Entry):
    name: str
    ok: bool
    message: str


class CheckRecord(Entry):
    kind: Literal["check"] = "check"
    recorded_at: str
    by: str = ""
    rig: str
    config: str
    ok: bool
    results: tuple[CheckLine, ...]


class PrimeRecord(Entry):
    kind: Literal["prime"] = "prime"
    recorded_at: str
    by: str = ""
    rig: str
    config: str
    seconds: float  # asked for
    pulse_ms: float
    gap_ms: float
    pulses: int  # openings made
    open_s: float  # total opening time
    complete: bool
    reason: str = ""


HistoryEntry = Annotated[CalibrationRecord | CheckRecord | PrimeRecord, Field(discriminator="kind")]


class _Line(RootModel[HistoryEntry]):
    pass


def append(path: Path, entry: CalibrationRecord | CheckRecord | PrimeRecord) -> None:
    journal.append(path, entry)


def read(path: Path) -> list[CalibrationRecord | CheckRecord | PrimeRecord]:
    return [line.root for line in journal.read(path, _Line)]


def calibrations(path: Path) -> list[CalibrationRecord]:
    return [e for e in read(path) if isinstance(e, CalibrationRecord)]
