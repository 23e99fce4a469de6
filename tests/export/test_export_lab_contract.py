"""Every shipped protocol's MouseLand export against what the lab's analysis code reads.

Written from the facts of MouseLand/zhong-et-al-2025 (read for facts only; none of its code is here):
which keys its functions read, their types and vocabulary, the stimulus codes and sets, the +-15-frame
windows it slices without a guard, its integer casts of frame indices and the position binning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig import api
from rig.export import mouseland as ml
from tests.support.paths import REPO

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
WINDOW = 15  # frames each side of cues and first licks (utils.py spk_2_cue, spk_2_firstLick)
LAB_ORDER = ["circle1", "circle2", "leaf1", "leaf2", "leaf3", "leaf1_swap1", "leaf1_swap2"]
# The corridor sets the lab's figures index by position (fig1-3, S6, get_test3_mean_lick_response).
STIMULI = {
    "train1": ["circle1", "leaf1"], "test1": ["circle1", "circle2", "leaf1", "leaf2"],
    "train2": ["circle1", "leaf1", "leaf2"], "test2": ["circle1", "leaf1", "leaf2", "leaf3"],
    "test3_swap1": ["circle1", "leaf1", "leaf1_swap1", "leaf2"],
    "test3_swap2": ["circle1", "leaf1", "leaf1_swap2", "leaf2"],
    "grating_train1": ["circle1", "leaf1"], "grating_test1": ["circle1", "leaf1", "leaf2"],
    "nocue_passive": ["circle1", "leaf1"], "nocue_active": ["circle1", "leaf1"], "demo": ["circle1", "leaf1"],
}
PER_TRIAL = ["WallName", "WallType", "isRew", "StartFr", "SoundFr", "SoundPos", "SoundTime", "SoundDelPos", "RewTime",
             "RewPos", "Trial_start_time", "Gray_space_time", "TrialIndex", "Reward_Mode_trial"]
PER_FRAME = ["ft", "ft_trInd", "ft_Pos", "ft_PosCum", "ft_RunSpeed", "ft_WallID", "ft_isMoving", "ft_move",
             "ft_CorrSpc", "ft_GraySpc"]


def stage_of(stem: str) -> str:
    return stem.removesuffix("_task").removesuffix("_exposure")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_export_meets_what_the_labs_functions_read(path: Path, data: Path) -> None:
    protocol = api.load_protocol(path)
    trials = 20 if protocol.name == "demo" else 40  # probes start at trial 20
    session = api.run(protocol, fast=True, max_trials=trials, data_dir=data, seed=2, animal=protocol.name)
    d = ml.session_dict(session)
    n, nfr = d["ntrials"], len(d["ft"])

    # session-level scalars: the lab compares Reward_Mode with two words (lickCount) and loops range(ntrials)
    assert isinstance(d["Reward_Mode"], str) and d["Reward_Mode"] in ("Passive", "Active after cue")
    rolls = protocol.imaging.pre_roll_frames > 0 and protocol.imaging.post_roll_frames > 0
    assert isinstance(d["ntrials"], int) and n == trials - len(d["Trials_excluded"])
    if rolls:
        assert n == trials  # with the imaging rolls every trial is imaged with the lab's margins
    else:  # the demo: no rolls, so the first and last trials lack 15 frames of imaging and are left out
        assert 0 < len(d["Trials_excluded"]) <= 4 and n > 0
    assert isinstance(d["Reward_Delay_ms"], float) and d["Corridor_Length"] == 60.0
    # UniqWalls = np.unique(WallName) (get_cat_id's codes), stim_id aligned, each lab code at most once
    uniq = d["UniqWalls"]
    assert list(uniq) == list(np.unique(d["WallName"])) and d["stim_id"].dtype.kind == "i"
    codes = [LAB_ORDER.index(w) if w in LAB_ORDER else -1 for w in uniq]
    assert d["stim_id"].tolist() == codes
    assert len([c for c in codes if c >= 0]) == len({c for c in codes if c >= 0})
    if stage_of(path.stem) in STIMULI:
        assert list(uniq) == STIMULI[stage_of(path.stem)]
    if stage_of(path.stem).startswith("test3"):
        assert sum(w.startswith("leaf1_swap") for w in uniq) == 1  # get_swap_seq_corr: one swap per session

    # per-trial arrays: ntrials long, boolean masks where the lab combines them with &
    assert {k: len(d[k]) for k in PER_TRIAL} == dict.fromkeys(PER_TRIAL, n)
    assert d["isRew"].dtype == bool and d["run_pos"].shape == (n, 60)
    assert set(d["StimTrial"]) == set(uniq) and all(m.dtype == bool and len(m) == n for m in d["StimTrial"].values())
    if protocol.kind == "exposure":
        assert not d["isRew"].any()
    elif any(c.rewarded for c in protocol.corridors):
        assert d["isRew"].any()  # get_cat_id takes WallName[isRew][0]
    # the befRew windows: trial start to the grey ('Active after cue') or to sound + delay ('Passive')
    assert np.all(np.isfinite(d["Trial_start_time"])) and np.all(np.isfinite(d["Gray_space_time"]))
    assert np.all(np.isfinite(d["SoundTime"])) and np.all(np.isfinite(d["SoundDelPos"]))  # split at their mean
    assert np.all(d["Trial_start_time"] <= d["SoundTime"]) and np.all(d["SoundTime"] <= d["Gray_space_time"])

    # licks: equal lengths, time order, trial indices inside range(ntrials), every one imaged (no INT_MIN)
    lt, lp, tri, lf = d["LickTime"], d["LickPos"], d["LickTrind"], d["LickFr"]
    assert len(lt) == len(lp) == len(tri) == len(lf) > 0
    assert np.all(np.diff(lt) >= 0) and tri.dtype.kind == "i" and tri.min() >= 0 and tri.max() < n
    assert np.all(np.isfinite(lf)) and lp.min() >= 0 and lp.max() <= 60

    # frame windows: the lab slices spk[int(Fr) - 15 : int(Fr) + 15] for every cue and first lick
    sound = d["SoundFr"].astype(int)
    assert sound.min() >= WINDOW and sound.max() + WINDOW <= nfr
    first = np.array([lf[tri == k][0] for k in range(n) if np.any(tri == k)]).astype(int)
    assert first.min() >= WINDOW and first.max() + WINDOW <= nfr

    # frames: one row per imaging frame; moving frames strictly increasing in ft_PosCum, covering every
    # exported trial's 60 bins without extrapolation at its start; outside frames match no corridor
    assert {k: len(d[k]) for k in PER_FRAME} == dict.fromkeys(PER_FRAME, nfr)
    assert d["ft_CorrSpc"].dtype == bool and d["ft_GraySpc"].dtype == bool
    moving = d["ft_move"] > 0
    pos = d["ft_PosCum"][moving]
    assert np.all(np.diff(pos) > 0) and pos.min() == 0.0
    inside = d["ft_WallID"] != ""
    assert np.array_equal(d["ft_WallID"][inside], d["WallName"][d["ft_trInd"][inside]])
    assert set(d["ft_trInd"][~inside]) <= {-1} and not (d["ft_CorrSpc"] | d["ft_GraySpc"])[~inside].any()
    assert (~inside[: int(d["StartFr"][0])]).all()
    if rolls:
        assert int(d["StartFr"][0]) >= 20 and nfr - int(np.ceil(d["EndFr"][-1])) >= 20  # pre- and post-roll
