"""The optional `sync` role: random-interval pulses to the mesoscope's aux trigger, logged on the rig side
and re-aligned offline against the times the imaging side saw (sim driver and serial board on a pty)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from drivers.base import SyncOutput
from drivers.registry import DriverContext, default_registry
from drivers.serial_board.connection import BoardConnection
from drivers.serial_board.driver import SerialSync
from drivers.serial_board.emulator import BoardEmulator, EmulatorConfig
from drivers.sim import SimSync
from rig.config import RigConfig
from rig.loading import LoadError, load_config, load_protocol
from rig.runner.hooks import OnStart
from rig.runner.session import SessionOptions, run_session, sync_seed
from rig.sync.pulses import (
    EMITTED_DTYPE,
    PULSE_DTYPE,
    SYNC_EMITTED,
    SYNC_PULSES,
    RandomPulseSchedule,
    align_pulses,
    load_pulses,
    pulse_schedule,
)
from tests.support.paths import REPO

DEMO = REPO / "protocols" / "demo.yaml"
PERIOD = 1 / 60  # the sim configs' frame rate: pulses are commanded on iteration boundaries


def sim_config(sync: dict | None) -> RigConfig:
    data = load_config(REPO / "config" / "sim.yaml").model_dump(mode="json")
    if sync is not None:
        data["drivers"]["sync"] = sync
    return RigConfig.model_validate(data)


def run_sim(tmp_path: Path, config: RigConfig, duration_s: float = 30.0, seed: int = 7):
    got: list = []
    res = run_session(load_protocol(DEMO), config,
                      SessionOptions(fast=True, duration_s=duration_s, seed=seed, data_dir=tmp_path),
                      hooks=(OnStart(lambda r: got.append(r.devices.sync)),))
    return res, got[0]


def mesoscope_lines(folder: Path, kind: str) -> list[dict]:
    lines = [json.loads(x) for x in (folder / "mesoscope.jsonl").read_text().splitlines() if x.strip()]
    return [x for x in lines if x["kind"] == kind]


# ---- schedule ------------------------------------------------------------------------------------
def test_open_ended_schedule_gives_the_same_onsets_as_pulse_schedule() -> None:
    expected = pulse_schedule(60.0, 11, min_interval_s=0.2, max_interval_s=0.7)
    sched = RandomPulseSchedule(11, 0.2, 0.7)
    got = np.concatenate([sched.due(t) for t in np.arange(0, 60.0, 0.37)] + [sched.due(60.0)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert len(sched.due(60.0)) == 0  # nothing is handed out twice
    with pytest.raises(ValueError, match="min_interval_s <= max_interval_s"):
        RandomPulseSchedule(1, 0.5, 0.2)


# ---- config and role -----------------------------------------------------------------------------
def test_sync_role_is_optional_and_validated() -> None:
    assert "sync" not in sim_config(None).drivers  # the shipped sim rig has none and stays valid
    assert isinstance(sim_config({"type": "sim"}).driver_params("sync"), SimSync.Params)
    with pytest.raises(ValidationError, match=r"drivers\.sync\.type.*allowed: nidaq, serial_board, sim"):
        sim_config({"type": "nonesuch"})
    with pytest.raises(ValidationError, match="max_interval_s=0.1 must be >= min_interval_s=0.5"):
        sim_config({"type": "sim", "min_interval_s": 0.5, "max_interval_s": 0.1})
    reg = default_registry()
    assert reg.types("sync") == ["nidaq", "serial_board", "sim"]
    assert reg.spec("sync", "serial_board").cls is SerialSync


def test_shipped_configs_with_a_sync_line_validate() -> None:
    for name, kind in (("sim-mesoscope.yaml", "sim"), ("board-emulated.yaml", "serial_board")):
        try:
            cfg = load_config(REPO / "config" / name)
        except LoadError as e:  # show the problems, not just the exception type
            raise AssertionError(str(e)) from None
        assert cfg.drivers["sync"].type == kind


def test_sim_sync_satisfies_the_interface_and_records_both_clocks() -> None:
    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    params = SimSync.Params(imaging_offset_s=3.0, imaging_drift_ppm=100.0, imaging_jitter_ms=0)
    sync = SimSync(params, DriverContext(clock))
    assert isinstance(sync, SyncOutput)
    with pytest.raises(RuntimeError, match="not open"):
        sync.pulse()
    with sync:
        for t in (1.0, 2.5, 4.0):
            clock.t = t
            sync.pulse()
        np.testing.assert_array_equal(sync.read(), [1.0, 2.5, 4.0])
        assert len(sync.read()) == 0
        np.testing.assert_allclose(sync.imaging_times(), 3.0 + 1.0001 * np.array([1.0, 2.5, 4.0]))


# ---- a whole simulated session -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_session(tmp_path_factory: pytest.TempPathFactory):
    config = sim_config({"type": "sim", "min_interval_s": 0.2, "max_interval_s": 0.8,
                         "imaging_offset_s": -4.25, "imaging_drift_ppm": 80.0, "imaging_jitter_ms": 0.1})
    res, sync = run_sim(tmp_path_factory.mktemp("sync"), config)
    return res, sync


def test_session_pulses_follow_the_seeded_random_schedule(sim_session) -> None:
    res, sync = sim_session
    pulses = load_pulses(res.path)
    assert pulses.dtype == PULSE_DTYPE
    t = pulses["t"]
    # 30 s at intervals uniform in [0.2, 0.8] s: about 60 pulses.
    assert 35 <= len(t) <= 150
    iv = np.diff(t)
    assert iv.min() >= 0.2 - PERIOD - 1e-9 and iv.max() <= 0.8 + PERIOD + 1e-9
    assert np.ptp(iv) > 0.3  # random intervals, not a fixed rate
    # The schedule is re-derivable offline from the header's seed: each pulse within one frame of it.
    header = json.loads((res.path / "header.json").read_text())
    sched = pulse_schedule(float(t[-1]) + 0.01, sync_seed(header["seed"]), min_interval_s=0.2, max_interval_s=0.8)
    assert len(sched) == len(t)
    lag = t - sched
    assert lag.min() >= 0 and lag.max() <= PERIOD + 1e-9
    # What the driver says it emitted is what was commanded, and every pulse has its log line.
    emitted = load_pulses(res.path, SYNC_EMITTED)
    assert emitted.dtype == EMITTED_DTYPE
    np.testing.assert_array_equal(emitted["t"], t)
    np.testing.assert_array_equal(sync.emitted, t)
    lines = mesoscope_lines(res.path, "sync_pulse")
    assert [x["data"]["t_pulse"][0] for x in lines] == t.tolist()
    assert [x["i"] for x in lines] == pulses["i"].tolist()
    (sched_line,) = mesoscope_lines(res.path, "sync_schedule")
    assert sched_line["data"]["seed"] == sync_seed(header["seed"])


def test_offline_aligner_recovers_the_imaging_to_rig_mapping(sim_session) -> None:
    res, sync = sim_session
    rig_t = load_pulses(res.path)["t"]
    imaging = sync.imaging_times()
    # The imaging side lost a few pulses (acquisition not yet running, a dropped trigger).
    lost = np.zeros(len(imaging), dtype=bool)
    lost[[0, 1, 17, 30]] = True
    al = align_pulses(rig_t, imaging[~lost], tolerance_s=0.005)
    assert al.unmatched_imaging == 0 and al.unmatched_rig == 4
    np.testing.assert_array_equal(al.rig_index, np.flatnonzero(~lost))
    # imaging = -4.25 + (1 + 80e-6) rig  =>  rig = (imaging + 4.25) / (1 + 80e-6)
    assert al.fit.scale == pytest.approx(1 / (1 + 80e-6), abs=5e-6)
    assert al.fit.offset == pytest.approx(4.25 / (1 + 80e-6), abs=1e-3)
    np.testing.assert_allclose(al.to_rig(imaging), rig_t, atol=0.001)


def test_a_session_without_sync_writes_no_pulse_files(tmp_path: Path) -> None:
    res, sync = run_sim(tmp_path, sim_config(None), duration_s=2.0)
    assert sync is None
    assert not (res.path / SYNC_PULSES).exists()
    with pytest.raises(FileNotFoundError, match="no sync pulses logged"):
        load_pulses(res.path)


# ---- serial board on a real pty ------------------------------------------------------------------
def test_board_session_pulses_reach_the_emulator(tmp_path: Path) -> None:
    with BoardEmulator(EmulatorConfig(frame_rate_hz=30.0, speed_counts_s=2000.0)) as emu:
        data = load_config(REPO / "config" / "board-emulated.yaml").model_dump(mode="json")
        for entry in data["drivers"].values():
            if entry["type"] == "serial_board":
                entry["port"] = emu.path
        data["drivers"]["sync"].update(min_interval_ms=100, max_interval_ms=300)
        config = RigConfig.model_validate(data)
        res = run_session(load_protocol(DEMO), config,
                          SessionOptions(duration_s=2.5, seed=3, data_dir=tmp_path))
        emu.sync()
        sent = np.asarray(emu.snapshot().syncs, dtype=float) / 1e6
    assert BoardConnection.open_ports() == []
    commanded = load_pulses(res.path)["t"]
    emitted = load_pulses(res.path, SYNC_EMITTED)
    assert len(commanded) >= 5 and len(sent) == len(commanded)
    # Every pulse the board emitted was read back with its board time, and the board times line up
    # one-to-one with the commanded ones (the offline aligner finds them all).
    np.testing.assert_array_equal(emitted["t_device"], sent)
    al = align_pulses(commanded, sent, window=3, tolerance_s=0.02)
    assert al.unmatched_rig == 0 and al.unmatched_imaging == 0
