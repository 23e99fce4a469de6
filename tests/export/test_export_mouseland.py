"""MouseLand export: the lab's per-session behaviour dict from simulated sessions."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from rig import api
from rig.cli.commands import export as export_cmd
from rig.datalog.reader import Session
from rig.export import DATENUM_UNIX_EPOCH, ExportError
from rig.export import mouseland as ml
from tests.support.paths import REPO


def _expert_config(folder: Path) -> Path:
    text = (REPO / "config" / "sim.yaml").read_text()
    assert "expertise: 0.8" in text
    path = folder / "expert.yaml"
    path.write_text(text.replace("expertise: 0.8", "expertise: 1.0"))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ml")


@pytest.fixture(scope="module")
def task_path(data: Path) -> Path:
    return api.run(REPO / "protocols" / "train1_task.yaml", _expert_config(data), fast=True, max_trials=60,
                   data_dir=data, seed=11, animal="TX1")


@pytest.fixture(scope="module")
def exported(task_path: Path, data: Path) -> tuple[str, dict]:
    out = data / "beh.npy"
    ml.export_session(task_path, out)
    beh = np.load(out, allow_pickle=True).item()
    assert isinstance(beh, dict) and len(beh) == 1
    return next(iter(beh.items()))


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    export_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_key_is_animal_date_block(exported: tuple[str, dict], task_path: Path) -> None:
    key, d = exported
    date = task_path.parent.name
    assert key == f"TX1_{date.replace('-', '_')}_1"
    assert (d["Animal"], d["Date"], d["Block"]) == ("TX1", date, 1)


def test_lengths_are_consistent(exported: tuple[str, dict], task_path: Path) -> None:
    _, d = exported
    s = Session.open(task_path)
    n, nframes = d["ntrials"], len(s.frame_clock)
    nlicks = int(np.sum(s.licks["onset"] == 1))
    assert n == 60 and nframes > 1000 and nlicks > 0
    per_trial = ["WallName", "WallType", "WallIsProbe", "WallIsRewarded", "isRew", "StartFr", "GrayFr", "EndFr",
                 "RewardFr", "RewPos", "RewTime", "SoundFr", "SoundPos", "SoundTime", "Trial_start_time",
                 "Trial_end_time", "Gray_space_time", "TrialComplete", "Stage", "SoundDelayFr", "SoundDelPos"]
    per_frame = ["ft", "ft_trInd", "ft_Pos", "ft_PosCum", "ft_RunSpeed", "ft_WallID", "ft_isMoving", "ft_move",
                 "ft_CorrSpc", "ft_GraySpc", "ft_SyncFlags"]
    per_lick = ["LickFr", "LickPos", "LickTime", "LickTrind", "Lick_wallName"]
    assert {k: len(d[k]) for k in per_trial} == {k: n for k in per_trial}
    assert {k: len(d[k]) for k in per_frame} == {k: nframes for k in per_frame}
    assert {k: len(d[k]) for k in per_lick} == {k: nlicks for k in per_lick}
    assert d["run_pos"].shape == (n, 60)
    assert d["nframes"] == nframes
    assert set(d["StimTrial"]) == set(d["UniqWalls"]) == {"leaf1", "circle1"}
    for wall, mask in d["StimTrial"].items():
        assert mask.dtype == bool and len(mask) == n
        np.testing.assert_array_equal(mask, d["WallName"] == wall)


def test_session_fields(exported: tuple[str, dict]) -> None:
    _, d = exported
    assert (d["Corridor_Length"], d["Texture_Length"], d["Gray_Space_length"]) == (60.0, 40.0, 20.0)
    assert d["Reward_Mode"] == "Active after cue" and d["Reward_Delay_ms"] == 0.0
    # the lab's stimulus codes, aligned with UniqWalls
    assert dict(zip(d["UniqWalls"].tolist(), d["stim_id"].tolist(), strict=True)) == {"circle1": 0, "leaf1": 2}
    assert set(d["WallType"].tolist()) == {"leaf", "circle"}


def test_positions_in_decimetres_and_poscum_increasing(exported: tuple[str, dict]) -> None:
    _, d = exported
    for k in ("ft_Pos", "SoundPos", "LickPos"):
        v = d[k][np.isfinite(d[k])]
        assert v.min() >= 0 and v.max() <= 60, k
    sound = d["SoundPos"]
    assert np.all((sound >= 5) & (sound <= 35))  # cue drawn in 50-350 cm
    assert np.all(np.diff(d["ft_PosCum"]) >= 0)
    # the lab bins ft_PosCum / Corridor_Length into trials: its integer part is the trial index
    np.testing.assert_array_equal(np.minimum(np.floor(d["ft_PosCum"] / 60), d["ft_trInd"]), d["ft_trInd"])
    np.testing.assert_array_equal(d["ft_GraySpc"], d["ft_Pos"] >= 40)
    np.testing.assert_array_equal(d["ft_CorrSpc"], ~d["ft_GraySpc"])
    assert np.all(d["ft_move"] >= 0) and np.any(d["ft_move"] > 0)
    finite_run = d["run_pos"][np.isfinite(d["run_pos"])]
    assert finite_run.size > 0.9 * d["run_pos"].size and finite_run.min() >= 0


def test_fractional_frame_indices_in_range_and_ordered(exported: tuple[str, dict]) -> None:
    _, d = exported
    nframes = d["nframes"]
    for k in ("StartFr", "GrayFr", "EndFr", "RewardFr", "SoundFr", "LickFr", "SoundDelayFr"):
        v = d[k][np.isfinite(d[k])]
        assert len(v) and v.min() >= 0 and v.max() < nframes, k
    ok = np.isfinite(d["StartFr"])
    assert np.all(d["StartFr"][ok] < d["SoundFr"][ok])
    assert np.all(d["SoundFr"] < d["GrayFr"]) and np.all(d["GrayFr"] < d["EndFr"])
    np.testing.assert_array_equal(d["StartFr"][1:], d["EndFr"][:-1])  # continuous corridors
    # frames between a trial's StartFr and EndFr carry its index
    for k in range(1, d["ntrials"]):
        inside = np.arange(int(np.ceil(d["StartFr"][k])), int(np.ceil(d["EndFr"][k])))
        assert np.all(d["ft_trInd"][inside] == k)
    # frame k starts at ft[k]: an event at frame time maps to k, in datenums
    assert np.all(np.isfinite(d["ft"])) and np.all(np.diff(d["ft"]) > 0)


def test_expert_mouse_gets_every_rewarded_trial_rewarded(exported: tuple[str, dict]) -> None:
    _, d = exported
    rewarded = d["WallIsRewarded"]
    assert rewarded.sum() > 20 and (~rewarded).sum() > 20
    assert np.all(d["isRew"][rewarded]) and not np.any(d["isRew"][~rewarded])
    assert np.all(np.isfinite(d["RewardFr"][rewarded])) and np.all(np.isnan(d["RewardFr"][~rewarded]))
    assert np.all(np.isnan(d["RewPos"][~rewarded])) and np.all(np.isnan(d["RewTime"][~rewarded]))
    # active after cue: each reward comes after the cue, before the grey part
    r = rewarded
    assert np.all(d["RewTime"][r] >= d["SoundTime"][r]) and np.all(d["RewTime"][r] <= d["Gray_space_time"][r])
    assert np.all(d["RewPos"][r] >= d["SoundPos"][r]) and np.all(d["RewPos"][r] <= 40)
    assert np.all(d["RewardFr"][r] >= d["SoundFr"][r])


def test_times_are_datenums_from_the_clock_origin(exported: tuple[str, dict], task_path: Path) -> None:
    _, d = exported
    s = Session.open(task_path)
    unix0 = s.clock["unix_s"]
    assert d["Session_start_time"] == pytest.approx(unix0 / 86400 + DATENUM_UNIX_EPOCH, abs=1e-9)
    first_start = next(e["t"] for e in s.events if e["kind"] == "trial_start")
    assert d["Trial_start_time"][0] == pytest.approx((unix0 + first_start) / 86400 + 719529, abs=1e-9)
    np.testing.assert_allclose((d["ft"] - d["Session_start_time"]) * 86400, s.frame_clock["t"], atol=1e-4)
    assert np.all(np.diff(d["LickTime"]) >= 0)


def test_licks_carry_trial_wall_and_position(exported: tuple[str, dict], task_path: Path) -> None:
    _, d = exported
    s = Session.open(task_path)
    lick_events = [e for e in s.events if e["kind"] == "lick"]
    np.testing.assert_array_equal(d["LickTrind"], [e["trial"] for e in lick_events])
    np.testing.assert_allclose(d["LickPos"], [e["position_cm"] / 10 for e in lick_events])
    np.testing.assert_array_equal(d["Lick_wallName"], d["WallName"][d["LickTrind"]])
    ok = np.isfinite(d["LickFr"])
    np.testing.assert_array_equal(d["ft_trInd"][np.floor(d["LickFr"][ok]).astype(int)] <= d["LickTrind"][ok], True)


def test_passive_mode_with_delay(data: Path) -> None:
    p = api.modify(api.load_protocol(REPO / "protocols" / "train1_task.yaml"),
                   reward={"mode": "passive_after_cue", "delay_ms": 500.0})
    path = api.run(p, fast=True, max_trials=10, data_dir=data, seed=2, animal="P1")
    d = ml.session_dict(path)
    assert d["Reward_Mode"] == "Passive" and d["Reward_Delay_ms"] == 500.0
    r = d["WallIsRewarded"]
    assert r.any() and np.all(d["isRew"][r])
    np.testing.assert_allclose((d["RewTime"][r] - d["SoundTime"][r]) * 86400, 0.5, atol=0.02)
    np.testing.assert_allclose(d["SoundTimeDelay"] - d["SoundTime"], 0.5 / 86400, atol=1e-9)
    # the corridor moves at 60 cm/s when running, so the reward is at most 3 dm past the cue
    assert np.all(d["SoundDelPos"][r] >= d["SoundPos"][r]) and np.all(d["SoundDelPos"][r] <= d["SoundPos"][r] + 3.01)


def test_exposure_session_cut_short(data: Path) -> None:
    path = api.run(REPO / "protocols" / "train1_exposure.yaml", fast=True, duration_s=45, data_dir=data,
                   seed=4, animal="X1")
    d = ml.session_dict(path)
    assert d["Kind"] == "exposure" and not d["isRew"].any() and d["WallIsRewarded"].any()
    assert np.all(np.isnan(d["RewardFr"]))
    assert not d["TrialComplete"][-1] and np.isnan(d["EndFr"][-1]) and np.isnan(d["Trial_end_time"][-1])
    assert np.all(d["TrialComplete"][:-1])
    assert d["ft_trInd"].max() == d["ntrials"] - 1


def test_merge_and_cli(task_path: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=5, data_dir=data, seed=1,
                    animal="TX1")
    assert other.name == "002"
    out = tmp_path / "Beh_train1.npy"
    assert _run(["export", str(task_path), str(other), "--mouseland", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    beh = np.load(out, allow_pickle=True).item()
    date = task_path.parent.name.replace("-", "_")
    assert sorted(beh) == [f"TX1_{date}_1", f"TX1_{date}_2"]
    assert beh[f"TX1_{date}_2"]["ntrials"] == 5
    # a merged file merges again with another session; a key seen twice is refused
    single = tmp_path / "one.npy"
    ml.export_session(other, single)
    with pytest.raises(ExportError, match="appears twice"):
        ml.merge([out, single])
    assert _run(["export", str(task_path), "--mouseland", str(tmp_path / "x.pkl")]) == 2
    assert _run(["export", str(task_path)]) == 2
    assert _run(["export", str(tmp_path), "--mouseland", str(tmp_path / "y.npy")]) == 2
    assert "not a session folder" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()
