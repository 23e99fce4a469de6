"""Simulated rig sessions with the mesoscope emulator in its own process, over TCP on 127.0.0.1.

The emulator's TTL edges reach the session through the emulator_ttl frame clock (its truth file, on
the shared host clock); its frame messages through the real link. The truth file is also the ground
truth the results are checked against.
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from drivers.mesoscope_ttl import EmulatorTTL
from drivers.registry import DriverContext
from rig.cli.commands import mesoscope as mesoscope_commands
from rig.config import RigConfig
from rig.datalog.reader import BINARY_FIELDS
from rig.loading import load_protocol
from rig.mesoscope.check import check_from_config, mesoscope_sync_check, sync_check
from rig.mesoscope.config import MesoscopeSettings
from rig.mesoscope.session_hook import MesoscopeHook, MesoscopeStartError, session_stem
from rig.runner.clock import RealClock
from rig.runner.session import SessionOptions, run_session
from rig.sync.reconcile import FLAG_FIELDS, FRAME_DTYPE
from rig.yamlload import load_yaml
from tests.support.mesoscope import emulator as start_emulator
from tests.support.paths import REPO

RATE = 20.0  # Hz: enough frames in a few seconds


def emulator(tmp_path: Path, *args: str):
    return start_emulator(tmp_path, "--rate", str(RATE), *args)


def rig_config(frame_clock: dict) -> RigConfig:
    data = load_yaml(REPO / "config" / "sim.yaml").data
    data["drivers"]["frame_clock"] = frame_clock
    return RigConfig.model_validate(data)


def settings_for(cmd: str, frames: str, **kw: float) -> MesoscopeSettings:
    base = dict(expected_rate_hz=RATE, min_frames=5, start_timeout_s=10, command_timeout_s=1.0,
                silence_s=0.6, ping_interval_s=1.0, stop_wait_s=2.0, ttl_settle_s=0.1, check_duration_s=1.5)
    return MesoscopeSettings(endpoint_cmd=cmd, endpoint_frames=frames, **{**base, **kw})


def run_with(tmp_path: Path, config: RigConfig, hook: MesoscopeHook, duration_s: float = 4.0, fast: bool = False):
    options = SessionOptions(animal="m1", seed=3, duration_s=duration_s, data_dir=tmp_path / "data", fast=fast)
    return run_session(load_protocol(REPO / "protocols" / "demo.yaml"), config, options, hooks=(hook,))


def only_session(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "data" / "m1").glob("*/*")
    return folder


def lines(folder: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (folder / name).read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_session_frame_table_has_the_emulators_frames(tmp_path: Path) -> None:
    with emulator(tmp_path, "--jitter-ms", "1", "--clock-offset", "-1000") as emu:
        config = rig_config({"type": "emulator_ttl", "truth_file": str(emu.truth)})
        hook = MesoscopeHook(settings_for(emu.cmd, emu.frames))
        result = run_with(tmp_path, config, hook)
        truth = emu.records()
    folder = result.path
    assert result.run.complete
    table = np.load(folder / "frame_table.npy")
    report = json.loads((folder / "sync_report.json").read_text())
    assert table.dtype == FRAME_DTYPE
    assert len(truth) >= 60 and len(table) == len(truth) == report["frames"]
    assert not any(table[f].any() for f in FLAG_FIELDS) and report["counts_agree"]
    assert [int(f) for f in table["scanimage_frame"]] == [r["frame"] for r in truth]
    # TTL times are the emulator's edges on the session timeline (clock.json holds its origin).
    origin = json.loads((folder / "clock.json").read_text())["monotonic_s"]
    np.testing.assert_allclose(table["ttl_time"] + origin, [r["t"] for r in truth], atol=1e-4)
    # Imaging ran before the task started: the first frames precede session time 0.
    events = lines(folder, "events.jsonl")
    assert events[0]["kind"] == "session_start" and table["time"][0] < 0 <= events[0]["t"]
    log = lines(folder, "mesoscope.jsonl")
    kinds = {r["kind"] for r in log}
    assert {"start", "ack", "acq_start", "frame", "stop", "acq_stop", "ping", "imaging_ready"} <= kinds
    start = next(r for r in log if r["kind"] == "start")
    assert start["data"]["msg"]["stem"] == session_stem(folder) == f"m1_{folder.parent.name}_001"
    assert sum(r["kind"] == "frame" for r in log) == len(truth)
    assert report["imaging_gaps"] == [] and report["ping_fit"]["n"] >= 1


@pytest.mark.parametrize("case", ["acknowledges_but_never_acquires", "no_bridge_at_all"])
def test_mesoscope_never_starting_refuses_the_task(tmp_path: Path, case: str) -> None:
    config = rig_config({"type": "sim"})
    if case == "no_bridge_at_all":
        port = free_port()
        hook = MesoscopeHook(settings_for(f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}",
                                          command_timeout_s=0.5))
        with pytest.raises(MesoscopeStartError, match="task was not started.*could not reach"):
            run_with(tmp_path, config, hook)
    else:
        with emulator(tmp_path, "--ignore-start") as emu:
            hook = MesoscopeHook(settings_for(emu.cmd, emu.frames, start_timeout_s=1.0))
            with pytest.raises(MesoscopeStartError, match="task was not started.*0 of 20 frames"):
                run_with(tmp_path, config, hook)
    folder = only_session(tmp_path)
    footer = json.loads((folder / "footer.json").read_text())
    assert not footer["complete"] and "the mesoscope did not start" in footer["reason"]
    assert lines(folder, "events.jsonl") == []  # no session_start, no trial: the task never ran
    assert (folder / "frames.bin").stat().st_size == 0
    assert [r["kind"] for r in lines(folder, "mesoscope.jsonl")][-1] == "start_failed"
    assert not (folder / "frame_table.npy").exists()


def test_mesoscope_dying_mid_session_keeps_behaviour_and_flags_the_gap(tmp_path: Path) -> None:
    with emulator(tmp_path, "--die-at", "30") as emu:
        config = rig_config({"type": "emulator_ttl", "truth_file": str(emu.truth)})
        hook = MesoscopeHook(settings_for(emu.cmd, emu.frames, command_timeout_s=0.5))
        result = run_with(tmp_path, config, hook, duration_s=4.0)
        assert emu.proc.wait(5) == 3  # it really died
        truth = emu.records()
    folder = result.path
    assert result.run.complete and json.loads((folder / "footer.json").read_text())["complete"]
    frames = np.fromfile(folder / "frames.bin", dtype=np.dtype(list(BINARY_FIELDS["frames.bin"])))
    assert frames["t"][-1] >= 3.9  # behaviour ran to the end of the session
    report = json.loads((folder / "sync_report.json").read_text())
    table = np.load(folder / "frame_table.npy")
    assert len(truth) == 30 and len(table) == 30 and report["frames"] == 30
    (gap,) = report["imaging_gaps"]
    assert "silent" in gap["reason"] and gap["end"] == report["session_end_s"]
    assert gap["start"] == pytest.approx(table["receive_time"][-1]) and gap["end"] - gap["start"] > 1.0
    assert any(r["kind"] == "warning" and "silent" in r["data"]["message"]
               for r in lines(folder, "mesoscope.jsonl"))
    assert any(p.startswith("stop:") for p in report["link"]["problems"])


def test_fast_session_with_a_mesoscope_is_refused(tmp_path: Path) -> None:
    hook = MesoscopeHook(settings_for("tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    with pytest.raises(MesoscopeStartError, match="real-time session"):
        run_with(tmp_path, rig_config({"type": "sim"}), hook, fast=True)


@pytest.mark.parametrize(
    ("args", "expected_rate", "failing"),
    [
        ((), RATE, set()),
        (("--ttl-drop-every", "4"), RATE, {"mesoscope: TTL and ZeroMQ counts"}),
        (("--drop-every", "5"), RATE, {"mesoscope: TTL and ZeroMQ counts"}),
        ((), RATE * 1.5, {"mesoscope: frame rate"}),
    ],
    ids=["clean", "ttl_lost", "messages_lost", "wrong_rate"],
)
def test_sync_check(tmp_path: Path, args: tuple[str, ...], expected_rate: float, failing: set[str]) -> None:
    with emulator(tmp_path, *args) as emu:
        clock = RealClock()
        fc = EmulatorTTL(EmulatorTTL.Params(truth_file=str(emu.truth)), _context(clock))
        with fc:
            results = mesoscope_sync_check(settings_for(emu.cmd, emu.frames, expected_rate_hz=expected_rate),
                                           fc, clock)
    assert {r.name for r in results if not r.ok} == failing, results
    if not failing:
        assert [r.name for r in results] == ["mesoscope: acquisition", "mesoscope: frame clock present",
                                             "mesoscope: frame clock rate", "mesoscope: TTL and ZeroMQ counts"]


def _context(clock: RealClock) -> DriverContext:
    return DriverContext(clock=clock, world=None)


def test_emulator_ttl_reads_only_new_complete_lines(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"t": 1.0, "acq": 1, "frame": 1, "ttl": true, "msgs": 1}\n')
    fc = EmulatorTTL(EmulatorTTL.Params(truth_file=str(truth)), _context(RealClock()))
    with fc:
        with truth.open("a") as f:
            f.write('{"t": 2.0, "acq": 1, "frame": 2, "ttl": true, "msgs": 1}\n'
                    '{"t": 2.5, "acq": 1, "frame": 3, "ttl": false, "msgs": 1}\n{"t": 3.0, "ac')
        assert fc.read().tolist() == [2.0]  # old edge skipped, TTL-less frame skipped, partial line held
        with truth.open("a") as f:
            f.write('q": 1, "frame": 4, "ttl": true, "msgs": 1}\nnot json\n')
        with pytest.raises(ValueError, match="unreadable truth line b'not json'"):
            fc.read()


def test_emulator_ttl_needs_its_truth_file(tmp_path: Path) -> None:
    fc = EmulatorTTL(EmulatorTTL.Params(truth_file=str(tmp_path / "none.jsonl")), _context(RealClock()))
    with pytest.raises(FileNotFoundError, match="start the emulator first"):
        fc.open()


def test_sim_mesoscope_config_is_valid() -> None:
    data = load_yaml(REPO / "config" / "sim-mesoscope.yaml").data
    settings = MesoscopeSettings.model_validate(data.pop("mesoscope"))
    config = RigConfig.model_validate(data)
    assert config.drivers["frame_clock"].type == "emulator_ttl"
    assert settings.expected_rate_hz == 3.17 and settings.keys is None


def test_remote_endpoint_needs_curve_keys() -> None:
    with pytest.raises(ValueError, match="remote links need CURVE keys"):
        MesoscopeSettings(expected_rate_hz=3.17, endpoint_cmd="tcp://10.1.2.3:5570")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    mesoscope_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_rig_keys_writes_a_pair_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["keys", "--dir", str(tmp_path), "--name", "rig1"]) == 0
    assert (tmp_path / "rig1.key").exists() and (tmp_path / "rig1.key_secret").stat().st_mode & 0o077 == 0
    assert _cli(["keys", "--dir", str(tmp_path), "--name", "rig1"]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_rig_mesoscope_sim_passes_its_options_to_the_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["mesoscope-sim", "--rate", "-1"]) == 2
    assert "rate_hz=-1.0" in capsys.readouterr().err


class _ConfigWithMesoscope(RigConfig):
    """RigConfig with the `mesoscope:` field the lead adds to rig/config.py (stand-in until then)."""

    mesoscope: MesoscopeSettings | None = None


def test_check_from_config_refuses_a_free_running_sim_frame_clock() -> None:
    data = load_yaml(REPO / "config" / "sim-mesoscope.yaml").data
    data["drivers"]["frame_clock"] = {"type": "sim"}
    (result,) = check_from_config(_ConfigWithMesoscope.model_validate(data))
    assert not result.ok and "needs type emulator_ttl" in result.message
    data.pop("mesoscope")
    assert check_from_config(_ConfigWithMesoscope.model_validate(data)) == []


def test_rig_check_runs_the_sync_check_on_the_configs_frame_clock(tmp_path: Path) -> None:
    from rig.setup.checks import run_checks

    with emulator(tmp_path) as emu:
        data = load_yaml(REPO / "config" / "sim-mesoscope.yaml").data
        data["drivers"]["frame_clock"]["truth_file"] = str(emu.truth)
        data["mesoscope"] = settings_for(emu.cmd, emu.frames).model_dump()
        report = run_checks(_ConfigWithMesoscope.model_validate(data), checks=(sync_check,))
    assert [(r.name, r.ok) for r in report.results] == [
        ("mesoscope: acquisition", True), ("mesoscope: frame clock present", True),
        ("mesoscope: frame clock rate", True), ("mesoscope: TTL and ZeroMQ counts", True)]
