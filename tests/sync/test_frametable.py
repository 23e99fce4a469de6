"""Frame table: behaviour per imaging frame from a simulated session with a frame clock."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rig import api
from rig.cli.commands import export as export_cmd
from rig.datalog.reader import Session, SessionError
from rig.sync.frametable import MESOSCOPE_TABLE, fractional_frame_index, frame_table
from rig.sync.reconcile import reconcile
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def session_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("ft")
    return api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=12, data_dir=data, seed=5,
                   animal="F1")


@pytest.fixture(scope="module")
def session(session_path: Path) -> Session:
    return Session.open(session_path)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _frame_clock_dtype(folder: Path) -> np.dtype:
    header = json.loads((folder / "header.json").read_text())
    return np.dtype([tuple(f) for f in header["files"]["frame_clock.bin"]["dtype"]])


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    export_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_one_row_per_frame_clock_edge_at_the_ttl_time(session: Session) -> None:
    ft = frame_table(session)
    assert len(ft) == len(session.frame_clock) > 100
    np.testing.assert_array_equal(ft.time, session.frame_clock["t"])
    np.testing.assert_array_equal(ft.index, np.arange(len(ft)))  # the 0-based index every ...Fr counts
    np.testing.assert_array_equal(ft.frame, session.frame_clock["frame"])  # the writer numbers edges so too
    assert (ft.scanimage_frame == -1).all() and (ft.acquisition == -1).all()  # no mesoscope here
    assert ft.source == "frame_clock.bin"
    assert ft.period_s == pytest.approx(1 / 3.17, rel=0.01)


def test_position_is_interpolated_between_the_loop_iterations_around_each_frame(session: Session) -> None:
    ft, loop = frame_table(session), session.frames
    k = np.searchsorted(loop["t"], ft.time, "right") - 1
    assert np.all(k >= 0) and np.all(k < len(loop) - 1)  # the sim images only while the loop runs
    np.testing.assert_array_equal(ft.iteration, loop["i"][k])
    same = loop["trial"][k] == loop["trial"][k + 1]
    lo, hi = loop["position_cm"][k], loop["position_cm"][k + 1]
    assert np.all((ft.position_cm[same] >= lo[same] - 1e-9) & (ft.position_cm[same] <= hi[same] + 1e-9))
    # trial and corridor are the engine's at the frame time, so they agree with the trial events
    np.testing.assert_array_equal(ft.trial, loop["trial"][k])
    np.testing.assert_array_equal(ft.corridor, loop["corridor"][k])
    assert np.all((ft.position_cm[~same] >= lo[~same]) & (ft.position_cm[~same] <= 600))
    assert np.all(np.diff(ft.position_cum_cm) >= 0)
    assert ft.position_cm.min() >= 0 and ft.position_cm.max() <= 600


def test_corridor_grey_and_speeds_agree_with_the_protocol(session: Session) -> None:
    ft = frame_table(session)
    names = [c["name"] for c in session.header.protocol["corridors"]]
    assert [names[c] for c in ft.corridor] == ft.corridor_name.tolist()
    np.testing.assert_array_equal(ft.in_grey, ft.position_cm >= 400)
    np.testing.assert_array_equal(ft.in_texture, ~ft.in_grey)
    assert set(np.unique(ft.trial)) == {-1, *range(12)}  # -1: the engine's pre-roll (no trial yet)
    # gated movement: the corridor moves at 60 cm/s or stands still
    assert ft.virtual_speed_cm_s.min() >= 0 and ft.virtual_speed_cm_s.max() <= 60 + 1e-9
    np.testing.assert_allclose(ft.moved_cm, ft.virtual_speed_cm_s * np.append(np.diff(ft.time), ft.period_s))
    # speed x interval integrates to the ball distance over the imaged span (to within a sample at each end)
    ball = session.ball
    span = (ball["t"] > ft.time[0]) & (ball["t"] <= ft.time[-1])
    got = float(np.sum(ft.ball_speed_cm_s[:-1] * np.diff(ft.time)))
    assert got == pytest.approx(float(ball["cm"][span].sum()), abs=2 * float(np.abs(ball["cm"]).max()))


def test_licks_and_rewards_are_counted_in_the_frame_whose_interval_holds_them(session: Session) -> None:
    ft = frame_table(session)
    onsets = session.licks["t"][session.licks["onset"] == 1]
    rewards = np.array([e["t"] for e in session.events if e["kind"] == "reward"])
    end = ft.time[-1] + ft.period_s
    assert ft.licks.sum() == np.sum((onsets >= ft.time[0]) & (onsets < end))
    assert ft.rewards.sum() == np.sum((rewards >= ft.time[0]) & (rewards < end)) > 0
    for t in rewards[(rewards >= ft.time[0]) & (rewards < end)]:
        k = int(np.floor(ft.index_of(t)[0]))
        assert ft.rewards[k] >= 1 and ft.time[k] <= t


def test_fractional_index_interpolates_over_frame_times() -> None:
    times = np.array([1.0, 2.0, 3.0, 5.0])
    idx = fractional_frame_index(times, [1.0, 1.5, 3.0, 4.0, 5.0, 5.5, 0.5, 7.0])
    np.testing.assert_allclose(idx[:6], [0.0, 0.5, 2.0, 2.5, 3.0, 3.5])  # last interval: the median (1 s)
    assert np.isnan(idx[6]) and np.isnan(idx[7])
    assert np.all(np.isnan(fractional_frame_index(np.zeros(0), [1.0])))


def test_sync_flags_from_ttl_alone(session_path: Path, tmp_path: Path) -> None:
    folder = _copy(session_path, tmp_path / "s")
    fc = np.fromfile(folder / "frame_clock.bin", dtype=_frame_clock_dtype(folder))
    loop = Session.open(folder).frames
    early = np.array([(0, -1, loop["t"][0] / 2)], dtype=fc.dtype)
    late = np.array([(int(loop["i"][-1]), 99999, loop["t"][-1] + 0.01)], dtype=fc.dtype)
    bounce = np.array([(int(fc["i"][20]), 88888, fc["t"][20] + 0.01)], dtype=fc.dtype)
    edited = np.concatenate([early, fc[:10], fc[11:], bounce, late])  # frame 10 lost
    edited = edited[np.argsort(edited["t"], kind="stable")]
    edited.tofile(folder / "frame_clock.bin")

    ft = frame_table(folder)
    assert len(ft) == len(edited)
    assert ft.flag("before_loop").tolist().count(True) == 1 and ft.flag("before_loop")[0]
    assert ft.flag("after_loop")[-1] and ft.flag("after_loop").sum() == 1
    assert not ft.moving[0] and not ft.moving[-1] and ft.iteration[0] == -1
    # rows are known by their 0-based index; the edited edges are found by their times
    np.testing.assert_array_equal(ft.index, np.arange(len(ft)))
    after_loss = int(np.flatnonzero(ft.time == fc["t"][11])[0])
    assert ft.flag("long_interval")[after_loss]
    after_bounce = int(np.flatnonzero(ft.time == bounce["t"][0])[0])
    assert ft.flag("short_interval")[after_bounce]
    assert ft.doubtful.sum() == len(np.flatnonzero(ft.flags))
    with pytest.raises(KeyError):
        ft.flag("nonsense")


def test_mesoscope_table_rows_and_flags_are_used_when_present(session_path: Path, tmp_path: Path) -> None:
    folder = _copy(session_path, tmp_path / "s")
    ttl = Session.open(folder).frame_clock["t"]
    # frame messages for every edge but the 30th; received 20 ms after the edge on a shifted clock
    msgs = [(k + 1, 0, t + 100.0, t + 0.02) for k, t in enumerate(ttl) if k != 29]
    np.save(folder / MESOSCOPE_TABLE, reconcile(ttl, msgs).rows)
    ft = frame_table(folder)
    assert ft.source == MESOSCOPE_TABLE
    assert len(ft) == len(ttl)
    assert np.flatnonzero(ft.flag("missing_msg")).tolist() == [29]
    assert not ft.flag("missing_ttl").any()
    np.testing.assert_allclose(ft.time, ttl)

    np.save(folder / MESOSCOPE_TABLE, np.zeros(3, dtype=[("time", "f8")]))
    with pytest.raises(SessionError, match="lacks fields"):
        frame_table(folder)


def test_to_file_npy_and_csv(session: Session, tmp_path: Path) -> None:
    ft = frame_table(session)
    rec = np.load(ft.to_file(tmp_path / "f.npy"), allow_pickle=False)
    assert len(rec) == len(ft)
    np.testing.assert_array_equal(rec["position_cm"], ft.position_cm)
    np.testing.assert_array_equal(rec["corridor_name"], ft.corridor_name)
    np.testing.assert_array_equal(rec["flags"], ft.flags)
    with open(ft.to_file(tmp_path / "f.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ft)
    assert float(rows[7]["time"]) == ft.time[7]
    assert rows[7]["corridor_name"] == ft.corridor_name[7]
    assert int(rows[7]["in_grey"]) == int(ft.in_grey[7])
    with pytest.raises(ValueError, match=".npy or .csv"):
        ft.to_file(tmp_path / "f.txt")


def test_cli_frames(session_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frames.csv"
    assert _run(["frames", str(session_path), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert out.exists() and len(out.read_text().splitlines()) == len(Session.open(session_path).frame_clock) + 1
    assert _run(["frames", str(session_path), "-o", str(tmp_path / "x.txt")]) == 2
    assert _run(["frames", str(tmp_path), "-o", str(tmp_path / "y.npy")]) == 2
    assert "not a session folder" in capsys.readouterr().err
