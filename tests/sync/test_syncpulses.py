"""Random-interval sync pulses: seeded schedule, the rig-side record, and the offline aligner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rig.config import RigConfig
from rig.datalog.reader import Session
from rig.loading import load_protocol
from rig.runner.session import SessionOptions, run_session
from rig.sync.pulses import (
    PULSE_DTYPE,
    AlignmentError,
    PulseTrain,
    SyncPulseRecorder,
    align_pulses,
    pulse_schedule,
    scanimage_aux_triggers,
)
from rig.yamlload import load_yaml
from tests.support.paths import REPO


def imaging_view(rig: np.ndarray, *, offset: float, drift_ppm: float, jitter_s: float, seed: int) -> np.ndarray:
    """The same pulses as an imaging system with its own clock would timestamp them."""
    rng = np.random.default_rng(seed)
    return (rig - offset) * (1 + drift_ppm * 1e-6) + rng.normal(0, jitter_s, len(rig))


def test_schedule_is_seeded_and_within_bounds() -> None:
    a = pulse_schedule(600, seed=7, min_interval_s=0.1, max_interval_s=1.9, start_s=2.0)
    assert np.array_equal(a, pulse_schedule(600, seed=7, min_interval_s=0.1, max_interval_s=1.9, start_s=2.0))
    assert not np.array_equal(a[:10], pulse_schedule(600, seed=8, start_s=2.0)[:10])
    d = np.diff(np.concatenate([[2.0], a]))
    assert d.min() >= 0.1 and d.max() <= 1.9 and a[-1] <= 602.0 and a[-1] > 600.0 - 1.9
    with pytest.raises(ValueError, match="min_interval_s <= max_interval_s"):
        pulse_schedule(10, seed=1, min_interval_s=2, max_interval_s=1)


def test_pulse_train_hands_out_each_pulse_once() -> None:
    train = PulseTrain(np.array([0.5, 1.0, 1.0001, 3.0]))
    assert train.due(0.4).tolist() == []
    assert train.due(1.0).tolist() == [0.5, 1.0]
    assert train.due(1.0).tolist() == []
    assert train.due(10).tolist() == [1.0001, 3.0]


def test_aligner_matches_every_pulse_despite_offset_drift_and_losses() -> None:
    rig = pulse_schedule(1200, seed=3)
    imaging = imaging_view(rig, offset=-4321.5, drift_ppm=80, jitter_s=2e-4, seed=1)
    reached_aux = np.setdiff1d(np.arange(len(rig)), [10, 11, 12, 200, 555])  # others never reached the input
    logged_by_rig = np.setdiff1d(np.arange(len(rig)), [300, 301])  # the rig failed to log two
    imaging_seen = np.append(imaging[reached_aux], imaging[-1] + 0.5)  # plus a spurious trigger
    al = align_pulses(rig[logged_by_rig], imaging_seen)
    # Each matched pair is the same pulse, and every pulse seen on both sides is matched.
    true_pulse_of_imaging = reached_aux[np.argsort(imaging[reached_aux])]
    got = {(int(logged_by_rig[i]), int(true_pulse_of_imaging[j])) for i, j in zip(al.rig_index, al.imaging_index,
                                                                                 strict=True)}
    both = np.intersect1d(reached_aux, logged_by_rig)
    assert got == {(int(k), int(k)) for k in both}
    assert al.unmatched_rig == len(logged_by_rig) - len(both) and al.unmatched_imaging == len(imaging_seen) - len(both)
    assert abs(al.fit.drift_ppm + 80) < 5  # imaging runs fast: rig = imaging x (1 - 80 ppm)
    assert np.abs(al.to_rig(imaging) - rig).max() < 1e-3


def test_aligner_refuses_pulses_from_another_session() -> None:
    with pytest.raises(AlignmentError, match="no run of 5 consecutive pulse intervals"):
        align_pulses(pulse_schedule(300, seed=1), pulse_schedule(300, seed=2) + 50)
    with pytest.raises(AlignmentError, match="too few pulses"):
        align_pulses([1.0, 2.0, 3.5], [1.0, 2.0, 3.5])


def test_scanimage_aux_triggers_are_read_once_each() -> None:
    headers = [
        "frameNumbers = 1\nauxTrigger0 = []\nauxTrigger1 = [0.25]\n",
        "frameNumbers = 2\nauxTrigger0 = [0.61234 0.70001]\nauxTrigger1 = []\n",
        "frameNumbers = 3\nauxTrigger0 = [0.70001]\n",  # a trigger listed again by the next frame
    ]
    assert scanimage_aux_triggers(headers).tolist() == [0.61234, 0.70001]
    assert scanimage_aux_triggers(headers, channel=1).tolist() == [0.25]
    with pytest.raises(ValueError, match="frame description 0: auxTrigger0 is not a list"):
        scanimage_aux_triggers(["auxTrigger0 = [abc]"])


def test_session_records_pulses_and_they_realign_with_the_imaging_side(tmp_path: Path) -> None:
    schedule = pulse_schedule(120, seed=11, start_s=0.5)
    config = RigConfig.model_validate(load_yaml(REPO / "config" / "sim.yaml").data)
    hook = SyncPulseRecorder(PulseTrain(schedule).due)
    result = run_session(load_protocol(REPO / "protocols" / "demo.yaml"), config,
                         SessionOptions(animal="m1", seed=1, fast=True, duration_s=60, data_dir=tmp_path),
                         hooks=(hook,))
    recorded = np.load(result.path / "sync_pulses.npy")
    assert recorded.dtype == PULSE_DTYPE
    end = Session.open(result.path).frames["t"][-1]
    np.testing.assert_array_equal(recorded["t"], schedule[schedule <= end])  # 60 s of task plus the imaging rolls
    logged = [json.loads(x) for x in (result.path / "mesoscope.jsonl").read_text().splitlines()]
    assert sum(len(r["data"]["t_pulse"]) for r in logged if r["kind"] == "sync_pulse") == len(recorded)
    # Offline: ScanImage's view of the same pulses (own clock) maps back onto the session timeline.
    imaging = imaging_view(recorded["t"], offset=-17.25, drift_ppm=-30, jitter_s=1e-4, seed=2)
    headers = [f"auxTrigger0 = [{t:.6f}]" for t in imaging]
    al = align_pulses(recorded["t"], scanimage_aux_triggers(headers))
    assert al.unmatched_rig == 0 and al.unmatched_imaging == 0
    assert np.abs(al.to_rig(imaging) - recorded["t"]).max() < 1e-3
