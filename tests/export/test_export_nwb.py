"""NWB export: nwbinspector finds nothing above a best-practice suggestion, and values round-trip."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import nwbinspector  # the `export` extra: these tests fail, not skip, when it is missing
import pynwb
import pytest

from rig import api
from rig.cli.commands import export as export_cmd
from rig.datalog.reader import Session
from rig.export.nwb import SubjectInfo, export_nwb
from rig.sync.frametable import frame_table
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def session_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("nwb")
    return api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=20, data_dir=data, seed=7,
                   animal="N1", experimenter="A. Tester")


@pytest.fixture(scope="module")
def nwb_path(session_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nwbout") / "session.nwb"
    assert export_nwb(session_path, out, SubjectInfo(sex="F", age="P90D")) == out
    return out


def _findings(path: Path) -> list:
    return list(nwbinspector.inspect_nwbfile(nwbfile_path=str(path)))


def _serious(findings: list) -> list[str]:
    ok = {nwbinspector.Importance.BEST_PRACTICE_SUGGESTION}
    return [f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}"
            for m in findings if m.importance not in ok]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    export_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_inspector_finds_no_error_critical_or_violation(nwb_path: Path) -> None:
    assert _serious(_findings(nwb_path)) == []


def test_metadata_round_trip(nwb_path: Path, session_path: Path) -> None:
    s = Session.open(session_path)
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        assert f.subject.subject_id == "N1" and f.subject.species == "Mus musculus"
        assert (f.subject.sex, f.subject.age) == ("F", "P90D")
        assert f.session_start_time.timestamp() == pytest.approx(s.clock["unix_s"], abs=1e-5)
        assert f.session_id == f"N1_{s.header.date.replace('-', '_')}_1"
        assert f.stimulus_notes.endswith(s.header.protocol_yaml)
        assert s.header.protocol_sha256 in f.protocol
        assert list(f.experimenter) == ["A. Tester"]
        assert json.loads(f.data_collection.split("\n", 1)[1]) == s.header.config


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
    assert _serious(_findings(out)) == []
    s = Session.open(folder)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        beh = f.processing["behavior"]
        np.testing.assert_array_equal(beh["Position"]["position"].timestamps[:], s.frames["t"])
        np.testing.assert_array_equal(beh["BehavioralTimeSeries"]["ball_speed"].timestamps[:], s.frames["t"])
        np.testing.assert_array_equal(f.acquisition["ball_displacement"].timestamps[:], s.ball["t"])


def test_cli_export_nwb(session_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.nwb"
    assert _run(["export", str(session_path), "--nwb", str(out), "--subject-sex", "M"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert io.read().subject.sex == "M"
    assert not list(tmp_path.glob(".*tmp*"))
    assert _run(["export", str(session_path), "--nwb", str(tmp_path / "x.h5")]) == 2
    assert _run(["export", str(session_path), str(session_path), "--nwb", str(tmp_path / "y.nwb")]) == 2
    assert _run(["export", str(tmp_path), "--nwb", str(tmp_path / "z.nwb")]) == 2
    assert not (tmp_path / "z.nwb").exists()
