"""A rig config whose valve calibration cannot be trusted is refused by `rig validate` and every loader,
with FILE:LINE: field: message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rig.cli.main import main
from rig.config import CalibrationPoint, ValveCalibration, calibration_id
from tests.support.paths import REPO

POINTS = """\
valve_calibration:
  points:
    - {duration_ms: 10, volume_ul: 1.0}
    - {duration_ms: 25, volume_ul: 2.5}
    - {duration_ms: 50, volume_ul: 5.0}
"""


def sim_with(tmp_path: Path, calibration: str) -> Path:
    text = (REPO / "config" / "sim.yaml").read_text()
    start = text.index("valve_calibration:")
    end = text.index("drivers:")
    out = tmp_path / "rig.yaml"
    out.write_text(text[:start] + calibration + text[end:])
    return out


@pytest.mark.parametrize(("calibration", "line", "field", "words"), [
    # not monotonic
    (POINTS.replace("volume_ul: 2.5", "volume_ul: 0.9"), 8, "valve_calibration.points",
     "volume must increase with duration: 25 ms gives 0.9 ul, not more than 10 ms (1 ul)"),
    (POINTS.replace("duration_ms: 25", "duration_ms: 10"), 8, "valve_calibration.points", "two points at 10 ms"),
    # the large offset: 10 ms -> 4 ul, 20 ms -> 4.1 ul (every reward would be a 0 ms opening)
    ("valve_calibration:\n  points:\n    - {duration_ms: 10, volume_ul: 4.0}\n"
     "    - {duration_ms: 20, volume_ul: 4.1}\n", 8, "valve_calibration.points",
     "implausible intercept: the line gives 3.9 ul at 0 ms"),
    # poor fit
    (POINTS.replace("volume_ul: 2.5", "volume_ul: 1.6"), 8, "valve_calibration.points",
     "poor fit: 10 ms measured 1 ul but the line gives 0.633 ul (37% off"),
    # an id that does not belong to the points, or half of id/date
    (POINTS.replace("  points:", "  id: cal-0000000000\n  date: 2026-11-01\n  points:"), 8,
     "valve_calibration.id", "'cal-0000000000' does not match the points and date"),
    (POINTS.replace("  points:", "  date: 2026-11-01\n  points:"), 7, "valve_calibration.id",
     "id and date come together"),
])
def test_rig_validate_refuses_an_untrustworthy_calibration(tmp_path: Path, capsys, calibration: str, line: int,
                                                           field: str, words: str) -> None:
    cfg = sim_with(tmp_path, calibration)
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[0].startswith(f"{cfg}:{line}: {field}: {words}")


def test_a_good_calibration_with_its_id_and_date_loads(tmp_path: Path) -> None:
    points = tuple(CalibrationPoint(duration_ms=d, volume_ul=v) for d, v in ((10, 1.0), (25, 2.5), (50, 5.0)))
    assert ValveCalibration(points=points).ref_id == calibration_id(points, None)  # undated: still an id
    cid = calibration_id(points, dt.date(2026, 11, 1))
    cfg = sim_with(tmp_path, POINTS.replace("  points:", f"  id: {cid}\n  date: 2026-11-01\n  points:"))
    assert main(["validate", str(cfg)]) == 0
    # a single point is a line through zero: nothing to judge, still accepted (old configs, tests)
    assert ValveCalibration.model_validate({"points": [{"duration_ms": 25, "volume_ul": 2.5}]}).problems() == []
