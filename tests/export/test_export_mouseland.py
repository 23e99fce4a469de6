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
    in_trial = [e for e in s.events if e["kind"] == "lick" and not e["data"]["iti"]]
    nlicks = len(in_trial)
    assert n == 60 and nframes > 1000 and nlicks > 0
    assert len(d["LickTime_all"]) == int(np.sum(s.licks["onset"] == 1)) >= nlicks  # the rolls' licks too
    per_trial = ["WallName", "WallType", "WallIsProbe", "WallIsRewarded", "isRew", "StartFr", "GrayFr", "EndFr",
                 "RewardFr", "RewPos", "RewTime", "SoundFr", "SoundPos", "SoundTime", "Trial_start_time",
                 "Trial_end_time", "Gray_space_time", "TrialComplete", "Stage", "SoundDelayFr", "SoundDelPos"]
    per_frame = ["ft", "ft_trInd", "ft_Pos", "ft_PosCum", "ft_RunSpeed", "ft_WallID", "ft_isMoving", "ft_move",
                 "ft_CorrSpc", "ft_GraySpc", "ft_SyncFlags"]
    per_lick = ["LickFr", "LickPos", "LickTime", "LickTrind", "Lick_wallName"]
    per_trial += ["TrialIndex", "Stage_name", "Reward_Mode_trial", "Reward_Rule_trial", "Reward_Delay_ms_trial"]
    per_frame += ["ft_InTrial", "ft_FrameNumber"]
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
    moving = d["ft_move"] > 0
    assert np.all(np.diff(d["ft_PosCum"][moving]) > 0)  # strictly increasing where the lab interpolates
    # the lab bins ft_PosCum / Corridor_Length into trials: trial index + fraction of the corridor
    inside = d["ft_InTrial"]
    got = d["ft_PosCum"][inside] - 60 * d["ft_trInd"][inside]
    assert got.min() >= 0 and got.max() <= 60 + 0.2  # at most a loop step past the end, as the frame table
    np.testing.assert_allclose(got, d["ft_Pos"][inside], atol=0.2)
    np.testing.assert_array_equal(d["ft_GraySpc"], inside & (d["ft_Pos"] >= 40))
    np.testing.assert_array_equal(d["ft_CorrSpc"], inside & ~d["ft_GraySpc"])
    # frames outside every exported trial (the imaging rolls) match no corridor and belong to no trial
    assert (~inside).sum() >= 40 and set(d["ft_WallID"][~inside]) == {""} and set(d["ft_trInd"][~inside]) == {-1}
    assert not d["ft_CorrSpc"][~inside].any() and not d["ft_GraySpc"][~inside].any()
    assert np.all(d["ft_move"] >= 0) and np.any(d["ft_move"] > 0)
    finite_run = d["run_pos"][np.isfinite(d["run_pos"])]
    assert finite_run.size > 0.9 * d["run_pos"].size and finite_run.min() >= 0


def test_fractional_frame_indices_in_range_and_ordered(exported: tuple[str, dict]) -> None:
    _, d = exported
    nframes = d["nframes"]
    for k in ("StartFr", "GrayFr", "EndFr", "SoundFr", "LickFr", "SoundDelayFr"):
        assert np.all(np.isfinite(d[k])), k  # every exported trial and its licks are imaged
    for k in ("StartFr", "GrayFr", "EndFr", "RewardFr", "SoundFr", "LickFr", "SoundDelayFr"):
        v = d[k][np.isfinite(d[k])]
        assert len(v) and v.min() >= 15 and v.max() <= nframes - 15, k  # the lab's +-15-frame windows fit
    assert d["StartFr"][0] >= 20  # the pre-roll: 20 frames before trial 0
    assert d["Frame_index_base"] == 0 and np.array_equal(d["ft_FrameNumber"], np.arange(nframes))
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
    all_licks = [e for e in s.events if e["kind"] == "lick"]
    lick_events = [e for e in all_licks if not e["data"]["iti"]]
    np.testing.assert_array_equal(d["LickTrind"], [e["trial"] for e in lick_events])
    np.testing.assert_array_equal(d["LickTrind_all"], [e["trial"] for e in all_licks])
    in_preroll = any(e["trial"] == -1 for e in all_licks)  # licks before the first trial, if the mouse made any
    assert bool((d["LickTrind_all"] == -1).any()) == in_preroll and d["LickTrind_all"].min() >= -1
    assert d["LickInTrial_all"].sum() == len(lick_events)
    assert np.isnan(d["LickFr_all"]).sum() == 0  # imaging runs through both rolls
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


def test_exposure_session_cut_short_leaves_the_incomplete_trial_out(data: Path) -> None:
    path = api.run(REPO / "protocols" / "train1_exposure.yaml", fast=True, duration_s=45, data_dir=data,
                   seed=4, animal="X1")
    d = ml.session_dict(path)
    s = Session.open(path)
    started = [e["trial"] for e in s.events if e["kind"] == "trial_start"]
    ended = [e["trial"] for e in s.events if e["kind"] == "trial_end"]
    assert len(started) == len(ended) + 1  # the last trial was cut short by --duration
    assert d["Kind"] == "exposure" and not d["isRew"].any() and d["WallIsRewarded"].any()
    assert np.all(np.isnan(d["RewardFr"]))
    # the lab's trial arrays hold the complete trials only; our logs keep the cut one
    assert d["ntrials"] == len(ended) and d["Trials_started"] == len(started)
    assert list(d["Trials_excluded"]) == [started[-1]] and list(d["TrialIndex"]) == ended
    assert np.all(d["TrialComplete"]) and np.all(np.isfinite(d["EndFr"]))
    assert d["ft_trInd"].max() == d["ntrials"] - 1 and d["LickTrind"].max() < d["ntrials"]
    cut = d["LickTrind_all"] == started[-1]
    assert not d["LickInTrial_all"][cut].any()  # its licks are in our own arrays only


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


# ---- the lab's vocabulary for staged and no-cue sessions, and trials the imaging did not cover ------------


def test_a_staged_session_says_its_mode_per_trial_and_the_session_its_main_one(data: Path) -> None:
    p = api.modify(api.load_protocol(REPO / "protocols" / "nocue_passive_task.yaml"), reward=None, stages=[
        {"name": "passive", "reward": {"mode": "zone_passive", "zone_start_cm": [200, 300]},
         "advance": {"after_trials": 6}},
        {"name": "active", "reward": {"mode": "zone_active", "zone_start_cm": [200, 300]}},
    ])
    d = ml.session_dict(api.run(p, fast=True, max_trials=16, data_dir=data, seed=5, animal="ST1"))
    assert d["ntrials"] == 16 and list(d["Stage"]) == [0] * 6 + [1] * 10
    assert list(d["Reward_Mode_trial"]) == ["Passive"] * 6 + ["Active after cue"] * 10
    assert list(d["Reward_Rule_trial"]) == ["zone_passive"] * 6 + ["zone_active"] * 10
    assert list(d["Stage_name"]) == ["passive"] * 6 + ["active"] * 10
    # one word for the session, as the lab's lickCount needs: the stage that held most of its trials
    assert (d["Reward_Mode"], d["Reward_Rule"]) == ("Active after cue", "zone_active")


def test_without_a_cue_the_zone_start_stands_in_for_the_sound(data: Path) -> None:
    path = api.run(REPO / "protocols" / "nocue_passive_task.yaml", _expert_config(data), fast=True, max_trials=20,
                   data_dir=data, seed=6, animal="NC1")
    d = ml.session_dict(path)
    assert d["Sound_source"] == "zone_start" and d["Reward_Mode"] == "Passive"
    np.testing.assert_allclose(d["SoundPos"], d["RewZonePos"])
    assert np.all((d["SoundPos"] >= 20) & (d["SoundPos"] <= 30))
    assert np.all((d["Trial_start_time"] < d["SoundTime"]) & (d["SoundTime"] < d["Gray_space_time"]))
    # zone_passive pays on entering the zone: the water comes at the 'sound', as 'Passive' with no delay
    r = d["isRew"]
    assert r.any() and np.all(d["WallIsRewarded"][r])
    np.testing.assert_allclose((d["RewTime"][r] - d["SoundTime"][r]) * 86400, 0.0, atol=1 / 60 + 1e-6)
    np.testing.assert_allclose(d["RewPos"][r], d["SoundPos"][r], atol=0.2)


def test_trials_not_imaged_with_the_labs_margin_are_left_out_and_renumbered(data: Path) -> None:
    text = (REPO / "config" / "sim.yaml").read_text()
    assert "    start_s: 0.02 " in text
    late = data / "late-imaging.yaml"
    late.write_text(text.replace("    start_s: 0.02 ", "    start_s: 40.0 "))  # imaging starts 40 s in
    p = api.modify(api.load_protocol(REPO / "protocols" / "train1_task.yaml"),
                   imaging={"pre_roll_frames": 0, "pre_roll_s": 0.0})
    path = api.run(p, late, fast=True, max_trials=14, data_dir=data, seed=7, animal="LATE")
    d = ml.session_dict(path)
    s = Session.open(path)
    starts = np.array([e["t"] for e in s.events if e["kind"] == "trial_start"])
    first_frame = s.frame_clock["t"][0]
    assert first_frame > 39.9
    skipped = int(np.sum(starts < first_frame + 15 / 3.17))
    assert skipped >= 2 and list(d["Trials_excluded"]) == list(range(skipped))
    assert list(d["TrialIndex"]) == list(range(skipped, 14)) and d["ntrials"] == 14 - skipped
    assert d["StartFr"][0] >= 15 and np.all(np.isfinite(d["LickFr"]))  # no NaN for an int cast to ruin
    assert d["LickTrind"].min() == 0 and d["ft_trInd"].max() == d["ntrials"] - 1
    np.testing.assert_array_equal(d["WallName"], [e["data"]["corridor"] for e in s.events
                                                  if e["kind"] == "trial_start"][skipped:])
    unimaged = np.isnan(d["LickFr_all"])
    assert unimaged.any() and not d["LickInTrial_all"][unimaged].any()
