"""NWB export: nwbinspector finds nothing at all (default and DANDI configs), `dandi validate` accepts the
file after `dandi organize` (offline), the subject comes from the registry, and values round-trip."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import nwbinspector  # the `export` extra: these tests fail, not skip, when it is missing
import pynwb
import pytest

from rig import api
from rig.cli.commands import export as export_cmd
from rig.datalog.reader import Session
from rig.engine.records import Step
from rig.export import ExportError
from rig.export.nwb import LabInfo, SubjectInfo, export_nwb
from rig.lab.notes import add_note
from rig.lab.subjects import Subject, create_subject
from rig.loading import load_config, load_protocol
from rig.runner.hooks import LoopHook
from rig.runner.loop import Runner
from rig.runner.operator import Operator
from rig.runner.session import SessionOptions, run_session
from rig.sync.frametable import frame_table
from tests.support.paths import REPO

DOB = dt.date(2026, 6, 1)
N1 = Subject(id="N1", sex="F", date_of_birth=DOB, strain="C57BL/6J", genotype="wild type", restricted=True,
             water_restriction_start=DOB + dt.timedelta(days=100), baseline_weight_g=25.0, daily_water_target_ml=1.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("nwb")
    create_subject(data, N1)  # the registry feeds the header, and the header the NWB subject
    return data


NOTES = {100: "groomed during the pre-roll", 700: "licks at the spout <a lot> & runs"}  # iteration: text


class TypedNotes(LoopHook):
    """Notes typed during the session, through the runner's operator inbox as the control server puts them."""

    def start(self, runner: Runner) -> None:
        self.runner = runner

    def iteration(self, i: int, t: float, step: Step) -> None:
        if i in NOTES:
            self.runner.operator.put(Operator("note", text=NOTES[i]))


@pytest.fixture(scope="module")
def session_path(data_dir: Path) -> Path:
    options = SessionOptions(animal="N1", seed=7, fast=True, max_trials=20, data_dir=data_dir,
                             experimenter="Tester, Alex", weight_g=24.35)
    protocol, config = load_protocol(REPO / "protocols" / "train1_task.yaml"), load_config(REPO / "config" / "sim.yaml")
    folder = run_session(protocol, config, options, hooks=(TypedNotes(),)).path
    # after the session: a note on it, and one on the animal for the day (rig animal N1 note ...)
    add_note(data_dir, "N1", "drank 0.4 ml more from the bottle", session=f"{folder.parent.name}/{folder.name}",
             by="Tester, Alex")
    add_note(data_dir, "N1", "cage changed", dt.date.fromisoformat(folder.parent.name))
    add_note(data_dir, "N1", "a note for another day", dt.date(2020, 1, 1))
    # the app keeps a note typed during the session in the lab records too: the file holds it once
    add_note(data_dir, "N1", next(iter(NOTES.values())), session=f"{folder.parent.name}/{folder.name}", during=True)
    return folder


@pytest.fixture(scope="module")
def nwb_path(session_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nwbout") / "session.nwb"
    assert export_nwb(session_path, out) == out
    return out


def test_notes_round_trip(nwb_path: Path, session_path: Path) -> None:
    """Notes typed during the session are an events table at their session times; notes after it (lab records)
    are in the file's notes, with the header's notes from the start."""
    s = Session.open(session_path)
    logged = [r for r in s.operator if r["action"] == "note"]
    assert [r["data"]["text"] for r in logged] == list(NOTES.values())
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        table = f.events["operator_notes"].to_dataframe()
        assert list(table["annotation"]) == list(NOTES.values())
        assert list(table["timestamp"]) == [r["t"] for r in logged]
        frames = s.frames
        assert list(table["trial"]) == [int(frames["trial"][frames["i"] == r["i"]][0]) for r in logged]
        assert "Notes at the start: (none)" in f.notes
        assert ("Notes on this session (1, lab records): [" in f.notes
                and "by Tester, Alex] drank 0.4 ml more from the bottle" in f.notes)
        assert "(1, lab records, no session named): [" in f.notes and "] cage changed" in f.notes
        assert "another day" not in f.notes
        assert next(iter(NOTES.values())) not in f.notes  # it is in events/operator_notes


def test_a_session_without_notes_has_no_notes_table(data_dir: Path, tmp_path: Path) -> None:
    folder = api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=3, data_dir=tmp_path, seed=2,
                     animal="Q1", notes="before the start: new spout")
    out = export_nwb(folder, tmp_path / "q.nwb")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        assert "operator_notes" not in f.events
        assert "Notes at the start: before the start: new spout" in f.notes and "lab records" not in f.notes


def _everything(path: Path, config: str | None) -> list[str]:
    """Every nwbinspector message, down to best-practice suggestions."""
    kw = {"config": nwbinspector.load_config(filepath_or_keyword=config)} if config else {}
    found = nwbinspector.inspect_nwbfile(nwbfile_path=str(path),
                                         importance_threshold=nwbinspector.Importance.BEST_PRACTICE_SUGGESTION, **kw)
    return [f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}" for m in found]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    export_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("config", [None, "dandi"])
def test_inspector_finds_nothing(nwb_path: Path, config: str | None) -> None:
    assert _everything(nwb_path, config) == []


@pytest.mark.parametrize("protocol", ["train1_exposure", "nocue_active_task"])
def test_inspector_finds_nothing_for_exposure_and_staged_protocols(data_dir: Path, tmp_path: Path,
                                                                   protocol: str) -> None:
    # exposure sessions give no rewards (all-NaN reward columns), staged ones other columns
    session = api.run(REPO / "protocols" / f"{protocol}.yaml", fast=True, max_trials=12, data_dir=data_dir, seed=3,
                      animal="N1", experimenter="Tester, Alex")
    out = export_nwb(session, tmp_path / "s.nwb")
    assert _everything(out, None) == [] and _everything(out, "dandi") == []


def _dandi() -> str:
    """The dandi command (the `dandi` extra): beside this Python, else on PATH. Missing: a failure, not a skip."""
    here = Path(sys.executable).parent / "dandi"
    found = str(here) if here.exists() else shutil.which("dandi")
    if found is None:
        pytest.fail("this test needs the dandi command: pip install 'corridor-rig[dandi]'")
    return found


def test_dandi_validate_accepts_the_file_after_dandi_organize(nwb_path: Path, tmp_path: Path) -> None:
    dandi = _dandi()
    # offline: no version check over HTTPS (etelemetry), no cached results from earlier runs
    env = {**os.environ, "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore", "XDG_STATE_HOME": str(tmp_path / "state")}
    ds = tmp_path / "dandiset"
    ds.mkdir()
    (ds / "dandiset.yaml").write_text('identifier: "000000"\nname: corridor-rig export\ndescription: test\n')
    org = subprocess.run([dandi, "organize", "-d", str(ds), "-f", "copy", str(nwb_path)], env=env,
                         capture_output=True, text=True, timeout=180)
    assert org.returncode == 0, org.stderr
    # an empty dandiset validates too: the organized file must be there
    assert sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.nwb")) == ["sub-N1/sub-N1_behavior.nwb"]
    val = subprocess.run([dandi, "validate", str(ds)], env=env, capture_output=True, text=True, timeout=180)
    assert val.returncode == 0 and "No errors found." in val.stdout, val.stdout + val.stderr


def test_metadata_round_trip(nwb_path: Path, session_path: Path) -> None:
    s = Session.open(session_path)
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        assert f.subject.subject_id == "N1" and f.subject.species == "Mus musculus"
        days = (f.session_start_time.date() - DOB).days
        assert (f.subject.sex, f.subject.age, f.subject.weight) == ("F", f"P{days}D", "24.35 g")
        assert f.subject.date_of_birth.date() == DOB
        assert (f.subject.strain, f.subject.genotype) == ("C57BL/6J", "wild type")
        assert (f.institution, f.lab) == ("corridor-rig simulation", "simulated rig")  # config/sim.yaml lab:
        assert f.session_start_time.timestamp() == pytest.approx(s.clock["unix_s"], abs=1e-5)
        assert f.session_id == f"N1_{s.header.date.replace('-', '_')}_1"
        assert f.stimulus_notes.endswith(s.header.protocol_yaml)
        assert s.header.protocol_sha256 in f.protocol
        assert list(f.experimenter) == ["Tester, Alex"]
        assert json.loads(f.data_collection.split("\n", 1)[1]) == s.header.config
        assert f"Valve calibration {s.header.calibration.id} (2026-12-01)" in f.notes


def test_a_dated_session_starts_on_its_date(data_dir: Path, tmp_path: Path) -> None:
    day = dt.date.today() - dt.timedelta(days=3)
    session = api.run(REPO / "protocols" / "demo.yaml", fast=True, max_trials=2, data_dir=data_dir, seed=1,
                      animal="N1", date=day, weight_g=24.0)
    s = Session.open(session)
    out = export_nwb(session, tmp_path / "dated.nwb")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        start = f.session_start_time
        run = dt.datetime.fromtimestamp(s.clock["unix_s"], start.tzinfo)
        assert start.date() == day and start.timetz() == run.timetz()
        assert f.subject.age == f"P{(day - DOB).days}D" and f"The session was dated {day}" in f.notes


def test_experimenter_in_the_nwb_form_and_overrides(session_path: Path, data_dir: Path, tmp_path: Path) -> None:
    informal = api.run(REPO / "protocols" / "demo.yaml", fast=True, max_trials=1, data_dir=data_dir, seed=2,
                       animal="N1", experimenter="A. Tester", weight_g=24.0)
    with pytest.raises(ExportError, match="experimenter 'A. Tester': NWB and DANDI want 'Last, First'"):
        export_nwb(informal, tmp_path / "x.nwb")
    assert not (tmp_path / "x.nwb").exists()
    out = export_nwb(informal, tmp_path / "y.nwb", SubjectInfo(sex="O", weight_g=23.0),
                     LabInfo(experimenter=("Tester, A.", "Doe, Jane"), institution="UCL", lab="Corridor Lab"))
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        assert list(f.experimenter) == ["Tester, A.", "Doe, Jane"] and (f.institution, f.lab) == ("UCL", "Corridor Lab")
        assert (f.subject.sex, f.subject.weight, f.subject.strain) == ("O", "23 g", "C57BL/6J")
    with pytest.raises(ExportError, match="is after the session"):
        export_nwb(session_path, tmp_path / "z.nwb", SubjectInfo(date_of_birth=dt.date.today() + dt.timedelta(1)))


def test_trials_round_trip(nwb_path: Path, session_path: Path) -> None:
    s = Session.open(session_path)
    ev = s.events
    starts = [e for e in ev if e["kind"] == "trial_start"]
    ends = [e for e in ev if e["kind"] == "trial_end"]
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        t = io.read().trials.to_dataframe()
    assert len(t) == len(starts) == 20
    np.testing.assert_array_equal(t["start_time"], [e["t"] for e in starts])
    np.testing.assert_array_equal(t["stop_time"], [e["t"] for e in ends])
    assert t["corridor"].tolist() == [e["data"]["corridor"] for e in starts]
    assert t["probe"].tolist() == [e["data"]["probe"] for e in starts]
    cues = {e["trial"]: e for e in ev if e["kind"] == "cue"}
    np.testing.assert_array_equal(t["cue_time"], [cues[k]["t"] for k in range(20)])
    np.testing.assert_array_equal(t["cue_position_cm"], [cues[k]["position_cm"] for k in range(20)])
    rewards = {e["trial"]: e for e in ev if e["kind"] == "reward"}
    assert t["rewarded"].sum() == len(rewards) > 0
    for k in range(20):
        if k in rewards:
            assert (t["reward_time"][k], t["reward_position_cm"][k]) == (rewards[k]["t"], rewards[k]["position_cm"])
        else:
            assert np.isnan(t["reward_time"][k]) and np.isnan(t["reward_position_cm"][k])
    first_lick = {}
    for e in ev:
        if e["kind"] == "lick":
            first_lick.setdefault(e["trial"], e["t"])
    np.testing.assert_array_equal(t["first_lick_time"], [first_lick.get(k, np.nan) for k in range(20)])


def test_series_and_events_round_trip(nwb_path: Path, session_path: Path) -> None:
    s = Session.open(session_path)
    loop = s.frames
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        beh = f.processing["behavior"]
        pos = beh["Position"]["position"]
        np.testing.assert_array_equal(pos.data[:], loop["position_cm"])
        assert pos.conversion == 0.01 and pos.unit == "meters"
        np.testing.assert_allclose(pos.get_timestamps(), loop["t"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(beh["Position"]["cumulative_position"].data[:], loop["position_cum_cm"])
        series = beh["BehavioralTimeSeries"]
        np.testing.assert_array_equal(series["ball_speed"].data[:], loop["ball_speed_cm_s"])
        np.testing.assert_array_equal(series["virtual_speed"].data[:], loop["virtual_speed_cm_s"])
        np.testing.assert_array_equal(series["trial_index"].data[:], loop["trial"])

        licks = f.get_events_table("licks").to_dataframe()
        lick_ev = [e for e in s.events if e["kind"] == "lick"]
        np.testing.assert_array_equal(licks["timestamp"], [e["t"] for e in lick_ev])
        np.testing.assert_array_equal(licks["trial"], [e["trial"] for e in lick_ev])
        assert np.all(licks["duration"] > 0)
        rewards = f.get_events_table("rewards").to_dataframe()
        rew_ev = [e for e in s.events if e["kind"] == "reward"]
        np.testing.assert_array_equal(rewards["timestamp"], [e["t"] for e in rew_ev])
        np.testing.assert_array_equal(rewards["volume_ul"], [e["data"]["volume_ul"] for e in rew_ev])

        clock = f.acquisition["imaging_frame_clock"]
        np.testing.assert_array_equal(clock.timestamps[:], s.frame_clock["t"])
        np.testing.assert_array_equal(clock.data[:], s.frame_clock["frame"])
        table = beh["imaging_frame_behaviour"].to_dataframe()
        ft = frame_table(s)
        np.testing.assert_array_equal(table["position_cm"], ft.position_cm)
        assert table["corridor_name"].tolist() == ft.corridor_name.tolist()

        timing = f.processing["misc"]
        np.testing.assert_array_equal(timing["loop_work_time"].data[:], s.timing["work_s"])
        np.testing.assert_array_equal(timing["loop_latency"].data[:], s.timing["latency_s"])
        np.testing.assert_array_equal(f.acquisition["ball_displacement"].data[:], s.ball["cm"])


def test_irregular_timestamps_are_stored_and_linked(session_path: Path, tmp_path: Path) -> None:
    # a real-time session: loop and ball times jitter, so they are stored as timestamps, not a rate
    folder = shutil.copytree(session_path, tmp_path / "s")
    header = json.loads((folder / "header.json").read_text())
    rng = np.random.default_rng(0)
    for name in ("frames.bin", "ball.bin"):
        dtype = np.dtype([tuple(f) for f in header["files"][name]["dtype"]])
        rec = np.fromfile(folder / name, dtype=dtype)
        rec["t"] += rng.uniform(0, 1e-4, len(rec))
        rec.tofile(folder / name)
    out = export_nwb(folder, tmp_path / "rt.nwb")
    assert _everything(out, None) == []
    s = Session.open(folder)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        beh = f.processing["behavior"]
        np.testing.assert_array_equal(beh["Position"]["position"].timestamps[:], s.frames["t"])
        np.testing.assert_array_equal(beh["BehavioralTimeSeries"]["ball_speed"].timestamps[:], s.frames["t"])
        np.testing.assert_array_equal(f.acquisition["ball_displacement"].timestamps[:], s.ball["t"])


def test_cli_export_nwb(session_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.nwb"
    assert _run(["export", str(session_path), "--nwb", str(out), "--subject-sex", "M", "--subject-dob", "2026-05-01",
                 "--subject-genotype", "Ai148/wt", "--experimenter", "Roe, Rick", "--institution", "UCL"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        assert (f.subject.sex, f.subject.genotype, f.subject.strain) == ("M", "Ai148/wt", "C57BL/6J")
        assert f.subject.date_of_birth.date() == dt.date(2026, 5, 1) and list(f.experimenter) == ["Roe, Rick"]
        assert (f.institution, f.lab) == ("UCL", "simulated rig")
    with pytest.raises(SystemExit) as e:  # argparse: a usage error
        _run(["export", str(session_path), "--nwb", str(tmp_path / "d.nwb"), "--subject-dob", "soon"])
    assert e.value.code == 2
    assert not list(tmp_path.glob(".*tmp*"))
    assert _run(["export", str(session_path), "--nwb", str(tmp_path / "x.h5")]) == 2
    assert _run(["export", str(session_path), str(session_path), "--nwb", str(tmp_path / "y.nwb")]) == 2
    assert _run(["export", str(tmp_path), "--nwb", str(tmp_path / "z.nwb")]) == 2
    assert not (tmp_path / "z.nwb").exists()
