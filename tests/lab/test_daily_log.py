"""Five simulated days of a water-restricted animal, made with the CLI (rig run --fast --date, weights and
supplements), read back by `rig animal`, `rig info ANIMAL_DIR` and `rig summary ANIMAL_DIR`."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.cli.main import main
from rig.config import LabSettings
from rig.datalog.reader import Session
from rig.figures.learning import animal_days
from rig.lab.daily import animal_log
from rig.lab.subjects import Subject, create_subject

TODAY = dt.date.today()
DAYS = [TODAY - dt.timedelta(days=k) for k in (4, 3, 2, 1, 0)]  # dandi refuses sessions dated in the future
# (weight at start given to rig run or recorded beforehand, supplement ml) per day
PLAN = [(23.5, "run", 1.0), (22.8, "run", 0.5), (18.9, "run", 1.0), (21.0, "weigh", 1.0), (21.5, "run", 0.3)]


@dataclass(frozen=True)
class Days:
    data: Path
    sessions: list[Path]


def rig(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    data = tmp_path_factory.mktemp("days")
    assert rig("animal", "M5", "add", "--sex", "F", "--dob", str(TODAY - dt.timedelta(days=120)), "--strain",
               "C57BL/6J", "--genotype", "wild type", "--restricted", "--restriction-start", str(DAYS[0]),
               "--baseline-g", "24", "--target-ml", "1.0", "--data", str(data), "--by", "Doe, Jane") == 0
    sessions = []
    for k, (day, (grams, how, ml)) in enumerate(zip(DAYS, PLAN, strict=True)):
        weight = ["--weight-g", str(grams)] if how == "run" else []
        if how == "weigh":
            assert rig("animal", "M5", "weigh", str(grams), "--date", str(day), "--data", str(data)) == 0
        assert rig("run", "train1_task", "--fast", "--max-trials", "6", "--seed", str(k + 1), "--animal", "M5",
                   "--date", str(day), "--data", str(data), "--experimenter", "Doe, Jane", "-q", *weight) == 0
        sessions.append(data / "M5" / str(day) / "001")
        assert rig("animal", "M5", "supplement", str(ml), "--date", str(day), "--data", str(data)) == 0
    return Days(data, sessions)


def _water_ml(session: Path) -> float:
    commands = Session.open(session).commands
    return sum(c["volume_ul"] for c in commands if c["kind"] == "valve") / 1000.0


def test_the_log_has_one_row_per_day_with_weight_water_sessions_and_alerts(days: Days, capsys) -> None:
    capsys.readouterr()
    assert rig("animal", "M5", "--data", str(days.data), "--json") == 0
    log = json.loads(capsys.readouterr().out)
    rows = log["days"]
    assert [r["date"] for r in rows] == [str(d) for d in DAYS]
    for row, session, (grams, _, ml) in zip(rows, days.sessions, PLAN, strict=True):
        rig_ml = _water_ml(session)
        assert rig_ml > 0
        assert row["weight_g"] == grams and row["weight_fraction"] == round(grams / 24, 4)
        assert row["rig_ml"] == pytest.approx(rig_ml) and row["supplement_ml"] == ml
        assert row["total_ml"] == pytest.approx(rig_ml + ml) and row["target_ml"] == 1.0
        assert row["trials"] == 6 and len(row["sessions"]) == 1 and row["stage"] == "train1_task"
        assert 0 <= row["anticipatory_rewarded"] <= 1
    alerts = [(r["date"], a) for r in rows for a in r["alerts"]]
    assert [d for d, _ in alerts] == [str(DAYS[1]), str(DAYS[2]), str(DAYS[4])]
    assert "below the 1 ml target" in alerts[0][1]
    assert alerts[1][1] == "weight 18.9 g is 78.8% of the baseline 24 g (alert below 80%)"
    assert "give" in alerts[2][1] and "ml more today" in alerts[2][1]


def test_the_text_log(days: Days, capsys) -> None:
    capsys.readouterr()
    assert rig("animal", "M5", "--data", str(days.data)) == 0
    text = capsys.readouterr().out
    assert text.startswith("M5: Mus musculus, female, born") and "strain C57BL/6J" in text
    assert f"water restriction since {DAYS[0]}; baseline 24 g; target 1 ml/day" in text
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["date", "weight"])
    table = lines[head + 1:lines.index("", head)]
    assert [ln[2:12] for ln in table] == [str(d) for d in DAYS]
    assert [ln[0] for ln in table] == [" ", "!", "!", " ", "!"]
    assert "18.9 (78.8%)" in table[2] and "alerts (3):" in text
    assert rig("animal", "M5", "--data", str(days.data), "--days", "2", "--json") == 0
    assert [r["date"] for r in json.loads(capsys.readouterr().out)["days"]] == [str(DAYS[3]), str(DAYS[4])]


def test_each_session_header_holds_subject_weight_water_and_calibration(days: Days) -> None:
    h = Session.open(days.sessions[2]).header
    assert h.subject is not None and (h.subject.id, h.subject.sex, h.subject.strain) == ("M5", "F", "C57BL/6J")
    assert h.subject.restricted and h.subject.baseline_weight_g == 24.0 and h.weight_g == 18.9
    assert h.water is not None and h.water.target_ml == 1.0 and h.water.supplement_ml == 0.0  # given after it
    assert h.calibration is not None and h.calibration.id.startswith("cal-") and h.calibration.date == "2026-12-01"
    assert h.experimenter == "Doe, Jane"
    # the weight recorded with `rig animal weigh` before the session is the session's weight at start
    assert Session.open(days.sessions[3]).header.weight_g == 21.0


def test_rig_run_journals_the_weight_it_was_given(days: Days) -> None:
    lines = [json.loads(x) for x in (days.data / "M5" / "weights.jsonl").read_text().splitlines()]
    assert [(e["date"], e["weight_g"], e["source"]) for e in lines] == [
        (str(d), g, "rig run" if how == "run" else "rig animal") for d, (g, how, _) in zip(DAYS, PLAN, strict=True)]


def test_rig_summary_and_rig_info_of_the_animal_folder_show_the_five_days(days: Days, tmp_path: Path,
                                                                          capsys) -> None:
    folder = days.data / "M5"
    assert [d.date for d in animal_days(folder)] == [str(d) for d in DAYS]
    png = tmp_path / "learning.png"
    assert rig("summary", str(folder), "-o", str(png)) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert rig("info", str(folder)) == 0
    out = capsys.readouterr().out
    assert all(str(d) in out for d in DAYS) and f"rig animal M5 --data {days.data}" in out
    assert rig("info", str(folder), "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["days"]) == 5
    (tmp_path / "empty").mkdir()
    assert rig("info", str(tmp_path / "empty")) == 2  # neither a session nor an animal: the session reader says why
    assert "no header.json" in capsys.readouterr().err


def test_alerts_of_a_day_without_records_and_of_an_animal_not_restricted(tmp_path: Path) -> None:
    today = dt.date(2026, 11, 10)
    create_subject(tmp_path, Subject(id="R1", sex="M", restricted=True, water_restriction_start=dt.date(2026, 11, 9),
                                     baseline_weight_g=30.0, daily_water_target_ml=1.2))
    log = animal_log(tmp_path, "R1", LabSettings(min_weight_fraction=0.85), today=today)
    assert [d.date for d in log.days] == [dt.date(2026, 11, 9), today]  # every restricted day gets a row
    assert log.days[0].alerts == ("no weight recorded on a restricted day",
                                  "water 0.00 ml, below the 1.2 ml target by 1.20 ml")
    assert log.days[1].alerts[1] == "water so far 0.00 ml of the 1.2 ml target: give 1.20 ml more today"
    create_subject(tmp_path, Subject(id="F1", sex="F", baseline_weight_g=20.0))
    from rig.lab.weights import record_weight

    record_weight(tmp_path, "F1", 16.5, today, None)
    log = animal_log(tmp_path, "F1", LabSettings(min_weight_fraction=0.85), today=today)
    assert [d.alerts for d in log.days] == [("weight 16.5 g is 82.5% of the baseline 20 g (alert below 85%)",)]


def test_cli_refusals(tmp_path: Path, capsys) -> None:
    data = str(tmp_path)
    assert rig("animal", "m_1", "add", "--sex", "F", "--data", data) == 2
    assert "letters, digits and '-'" in capsys.readouterr().err
    assert rig("animal", "M1", "add", "--sex", "F", "--restricted", "--data", data) == 2
    assert "a water-restricted animal needs" in capsys.readouterr().err
    assert rig("animal", "M1", "add", "--sex", "F", "--baseline-g", "20", "--data", data) == 0
    assert rig("animal", "M1", "weigh", "2.0", "--data", data) == 2
    assert "10% of M1's baseline" in capsys.readouterr().err
    assert rig("animal", "M1", "supplement", "500", "--data", data) == 2
    assert rig("animal", "M1", "set", "restricted", "--data", data) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert rig("animal", "M1", "frobnicate", "--data", data) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert rig("animal", "M1", "set", "cage=B4", "sex=M", "--data", data) == 0
    assert "cage: B4" in capsys.readouterr().out
    assert rig("animal", "M2", "--data", data) == 2
    assert rig("animal", "--data", data) == 0
    assert capsys.readouterr().out.split() == ["M1", "M", "Mus", "musculus"]
