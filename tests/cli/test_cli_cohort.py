"""`rig cohort` as a user runs it: a tiny cohort end to end, and bad input refused with exit 2."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

CURRICULUM = """\
name: tiny
mice_per_group: 1
start_date: 2024-05-01
session: {max_trials: 10, max_duration_s: null}
groups:
  - name: natural
    days:
      - {protocol: pretrain_natural_exposure}
      - {protocol: nocue_passive_task}
      - {protocol: nocue_active_task}
  - name: none
    days:
      - {protocol: null}
      - {protocol: nocue_passive_task}
      - {protocol: nocue_active_task}
"""


def rig(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_rig_cohort_runs_2_mice_over_3_days_and_prints_the_figure_last(tmp_path: Path) -> None:
    cur = tmp_path / "tiny.yaml"
    cur.write_text(CURRICULUM)
    out = tmp_path / "out"
    r = rig("cohort", str(cur), "-o", str(out), "--seed", "3", "--jobs", "2", "--start-date", "2024-06-10")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-3:] == [str(out / "cohort.csv"), str(out / "cohort.json"), str(out / "cohort.png")]
    assert "Traceback" not in r.stderr
    rows = list(csv.DictReader((out / "cohort.csv").open()))
    assert [(row["animal"], row["date"], row["kind"]) for row in rows] == [
        ("natural-01", "2024-06-10", "exposure"), ("natural-01", "2024-06-11", "task"),
        ("natural-01", "2024-06-12", "task"), ("none-01", "2024-06-11", "task"), ("none-01", "2024-06-12", "task")]
    names = sorted(p.name for p in (out / "data" / "none-01").iterdir())
    assert names == ["2024-06-11", "2024-06-12", "sim-mouse.json"]  # no session on the rest day
    assert (out / "cohort.png").stat().st_size > 10_000


def test_discarded_sessions_are_scored_then_removed_and_the_mice_remember(tmp_path: Path) -> None:
    cur = tmp_path / "tiny.yaml"
    cur.write_text(CURRICULUM)
    kept, discarded = tmp_path / "kept", tmp_path / "discarded"
    for out, extra in ((kept, ()), (discarded, ("--discard-sessions",))):
        r = rig("cohort", str(cur), "-o", str(out), "--seed", "3", "--jobs", "1", "-q", *extra)
        assert r.returncode == 0, r.stderr
    rows = [list(csv.DictReader((out / "cohort.csv").open())) for out in (kept, discarded)]
    assert rows[0] == rows[1]  # the same scores: removing a scored session changes nothing after it
    assert not [p for p in (discarded / "data").rglob("header.json")]
    assert sorted(p.name for p in (discarded / "data").glob("*/sim-mouse.json")) == ["sim-mouse.json"] * 2
    assert (discarded / "data" / "none-01" / "sim-mouse.json").read_bytes() == \
        (kept / "data" / "none-01" / "sim-mouse.json").read_bytes()


def test_rig_cohort_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CURRICULUM.replace("mice_per_group: 1", "mice_per_group: 0"))
    r = rig("cohort", str(bad), "-o", str(tmp_path / "o1"))
    assert r.returncode == 2 and f"{bad}:2: mice_per_group:" in r.stderr and "Traceback" not in r.stderr

    missing = tmp_path / "missing.yaml"
    missing.write_text(CURRICULUM.replace("nocue_active_task}", "no_such_protocol}", 1))
    r = rig("cohort", str(missing), "-o", str(tmp_path / "o2"))
    assert r.returncode == 2 and "no_such_protocol" in r.stderr and "groups.0.days.2.protocol" in r.stderr

    used = tmp_path / "used"
    (used / "data").mkdir(parents=True)
    r = rig("cohort", "-o", str(used))
    assert r.returncode == 2 and "already holds a cohort" in r.stderr

    r = rig("cohort", "-o", str(tmp_path / "o3"), "--config", str(REPO / "config" / "sim-mesoscope.yaml"))
    assert r.returncode == 2 and "mesoscope" in r.stderr

    r = rig("cohort", "-o", str(tmp_path / "o4"), "--mice", "0")
    assert r.returncode == 2 and "--mice" in r.stderr
    assert not any((tmp_path / f"o{k}").exists() for k in range(1, 5))
