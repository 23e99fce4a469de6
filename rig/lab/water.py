"""Water: supplements given outside the rig (DATA/ANIMAL/water.jsonl, append-only), and the check that a
protocol's reward volumes can be delivered as logged by a rig's valve and its calibration.

The rig's own water comes from the sessions (rig.lab.daily reads it); a supplement is what the
experimenter gives by hand (`rig animal ID supplement ML`), counted for a day like a weight.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

from pydantic import Field

from rig.config import RigConfig
from rig.lab import journal
from rig.lab.journal import Entry, LabRecordError
from rig.lab.subjects import animal_dir, check_animal_id
from rig.protocol import Protocol, Reward
from rig.yamlload import Loaded, Path_, Problem, YamlError, format_path, load_yaml

WATER_FILE = "water.jsonl"
MAX_SUPPLEMENT_ML = 10.0  # more than a mouse drinks in days: a typo (ul for ml?)
_TOLERANCE_UL = 1e-9


class SupplementEntry(Entry):
    date: dt.date  # the day the water counts for
    volume_ml: float = Field(gt=0, le=MAX_SUPPLEMENT_ML)
    recorded_at: str
    by: str = ""
    note: str = ""


def water_path(data_dir: Path, animal: str) -> Path:
    return animal_dir(data_dir, animal) / WATER_FILE


def record_supplement(data_dir: Path, animal: str, volume_ml: float, day: dt.date, *, by: str = "",
                      note: str = "") -> SupplementEntry:
    check_animal_id(animal)
    if not (isinstance(volume_ml, int | float) and math.isfinite(volume_ml) and 0 < volume_ml <= MAX_SUPPLEMENT_ML):
        raise LabRecordError(f"supplement {volume_ml!r} ml: give the water in millilitres (> 0, at most "
                             f"{MAX_SUPPLEMENT_ML:g} ml; 0.5 ml is 500 ul)")
    entry = SupplementEntry(date=day, volume_ml=float(volume_ml), recorded_at=journal.now_iso(), by=by, note=note)
    journal.append(water_path(data_dir, animal), entry)
    return entry


def supplements(data_dir: Path, animal: str) -> list[SupplementEntry]:
    return journal.read(water_path(data_dir, animal), SupplementEntry)


def supplement_ml_on(entries: list[SupplementEntry], day: dt.date) -> float:
    return round(sum(e.volume_ml for e in entries if e.date == day), 6)


# ---- reward volumes against the valve ----------------------------------------------------------------


def _lines(path: str | os.PathLike[str] | None) -> Loaded | None:
    if path is None:
        return None
    try:
        return load_yaml(path)
    except YamlError:
        return None  # the file was loaded a moment ago; without its lines the problems say line 0


def _reward_rules(protocol: Protocol) -> list[tuple[Path_, Reward]]:
    """Every reward rule with its key path in the protocol file (stages' own rules first)."""
    out: list[tuple[Path_, Reward]] = [(("stages", i, "reward"), s.reward)
                                       for i, s in enumerate(protocol.stages) if s.reward is not None]
    if protocol.reward is not None:
        out.append((("reward",), protocol.reward))
    return out


def check_reward_volumes(
    protocol: Protocol, config: RigConfig, protocol_file: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> list[Problem]:
    """Problems (FILE:LINE: field: message) with a protocol's reward volumes on a rig: a volume outside the
    calibrated range (extrapolated, so not known to be delivered), or one whose opening is longer than the
    valve's max_open_ms (the valve would cut it, and the log would record water never given)."""
    pfile, cfile = str(protocol_file or "<protocol>"), str(config_file or "<config>")
    plines, clines = _lines(protocol_file), _lines(config_file)

    def pline(path: Path_) -> int:
        return plines.line_of(path) if plines is not None else 0

    def cline(path: Path_) -> int:
        return clines.line_of(path) if clines is not None else 0

    cal = config.valve_calibration
    lo, hi = cal.volume_range_ul
    cal_at = f"{cfile}:{cline(('valve_calibration', 'points'))}"
    params = config.driver_params("valve") if "valve" in config.drivers else None
    max_ms = getattr(params, "max_open_ms", None)
    max_key: Path_ = ("drivers", "valve", "max_open_ms")
    out: list[Problem] = []
    for loc, rule in _reward_rules(protocol):
        key = (*loc, "volume_ul")
        field, v = format_path(key), rule.volume_ul
        where = f"{pfile}:{pline(key)}"
        if len(cal.points) > 1 and not lo - _TOLERANCE_UL <= v <= hi + _TOLERANCE_UL:
            out.append(Problem(pfile, pline(key), field,
                               f"{v:g} ul is outside the valve calibration's range {lo:g}-{hi:g} ul ({cal_at}): "
                               "the opening would be extrapolated, so the water logged is not known to be given; "
                               "calibrate over the volumes the protocol gives"))
        ms = cal.duration_ms(v)
        if not ms > 0:
            out.append(Problem(pfile, pline(key), field,
                               f"the valve calibration ({cal_at}) gives a {ms:g} ms opening for {v:g} ul: "
                               "nothing would be delivered; recalibrate"))
        elif isinstance(max_ms, int | float) and ms > max_ms:
            slope, intercept = cal.fit()
            cut_ul = max(0.0, slope * max_ms + intercept)
            default = "" if clines is not None and max_key in clines.lines else " (the driver's default)"
            out.append(Problem(pfile, pline(key), field,
                               f"{v:g} ul needs a {ms:.3g} ms opening, longer than the valve's max_open_ms "
                               f"{max_ms:g} ms ({cfile}:{cline(max_key)}); lower the volume or raise max_open_ms"))
            out.append(Problem(cfile, cline(max_key), format_path(max_key),
                               f"{max_ms:g} ms{default} is shorter than the {ms:.3g} ms that {v:g} ul needs "
                               f"({where} {field}): every such reward would be cut to about {cut_ul:.3g} ul"))
    return out
