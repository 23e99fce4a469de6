"""`rig replay` through the live runner: reproduction, what-if, killed sessions, replay drivers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.replay import ReplayBall, ReplayLick, ReplayValve
from rig.cli import main as cli
from rig.datalog.reader import Session
from rig.loading import load_config, load_protocol
from rig.replay.live import ReplayOptions, replay_session
from rig.replay.verify import verify_session
from rig.runner.clock import VirtualClock
from rig.runner.loop import Operator
from rig.runner.session import SessionOptions, run_session
from tests.support.operator_script import OperatorScript
from tests.support.paths import REPO

# Every data file but the wall-clock ones (header, footer, clock.json, timing.bin).
DETERMINISTIC = ("frames.bin", "ball.bin", "licks.bin", "frame_clock.bin", "events.jsonl", "commands.jsonl",
                 "operator.jsonl")


def run_fast(data: Path, protocol: str = "train1_task", trials: int = 20, seed: int = 9, hooks=()) -> Path:
    p = load_protocol(REPO / "protocols" / f"{protocol}.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    return run_session(p, config, SessionOptions(animal="M2", seed=seed, fast=True, max_trials=trials,
                                                 data_dir=data), hooks=hooks).path


def rig_main(*args: str) -> int:
    modules = cli.COMMAND_MODULES
    if "rig.cli.commands.replay" not in modules:
        cli.COMMAND_MODULES = (*modules, "rig.cli.commands.replay")
    try:
        return cli.main(list(args))
    finally:
        cli.COMMAND_MODULES = modules


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    script = OperatorScript({60: [Operator("manual_reward", 2.0)], 200: [Operator("pause")],
                             260: [Operator("resume")]})
    return run_fast(tmp_path_factory.mktemp("orig"), hooks=(script,))


def test_fast_replay_reproduces_every_deterministic_file(original, tmp_path, capsys):
    before = digest(original)
    assert rig_main("replay", str(original), "--fast", "--data", str(tmp_path), "-q") == 0
    new = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert new.parent.parent.name == "M2-replay" and new.is_relative_to(tmp_path)
    for name in DETERMINISTIC:
        assert (new / name).read_bytes() == (original / name).read_bytes(), name
    assert digest(original) == before  # the original is never touched
    header = json.loads((new / "header.json").read_text())
    assert header["replay_of"]["mode"] == "replay" and header["replay_of"]["path"] == str(original.resolve())
    assert header["protocol_sha256"] == json.loads((original / "header.json").read_text())["protocol_sha256"]
    s = Session.open(new)
    assert s.complete and s.footer["summary"]["inputs_exhausted"] is False
    assert verify_session(new).ok  # the replay's own log is a valid session log


def test_default_output_goes_next_to_the_original_animal(original, tmp_path):
    src = tmp_path / "DATA" / "M2" / "2024-03-04" / "002"
    shutil.copytree(original, src)
    result = replay_session(src, ReplayOptions(fast=True))
    assert result.path == tmp_path / "DATA" / "M2-replay" / original.parent.name / "001"
    assert sorted(p.name for p in (tmp_path / "DATA").iterdir()) == ["M2", "M2-replay"]


def test_whatif_runs_the_logged_mouse_through_the_exposure_twin(original, tmp_path, capsys):
    assert rig_main("replay", str(original), "--protocol", "train1_exposure", "--data", str(tmp_path), "-q") == 0
    new = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert new.parent.parent.name == "M2-whatif"
    orig, what = Session.open(original), Session.open(new)
    assert what.header.replay_of.mode == "whatif"
    assert what.header.replay_of.whatif_protocol == "train1_exposure"
    assert what.header.protocol["kind"] == "exposure"
    # Open loop: the same running and licking reach the engine on the same iterations.
    assert what.ball.tobytes() == orig.ball.tobytes() and what.licks.tobytes() == orig.licks.tobytes()
    task_rewards = [e for e in orig.events if e["kind"] == "reward" and e["data"]["source"] == "task"]
    withheld = [e for e in what.events if e["kind"] == "reward_withheld"]
    assert len(task_rewards) > 0 and [(e["i"], e["t"]) for e in withheld] == [(e["i"], e["t"]) for e in task_rewards]
    assert not any(e["kind"] == "reward" and e["data"]["source"] == "task" for e in what.events)
    # The logged manual reward is still delivered: it is an operator input, not the protocol's.
    assert [c["source"] for c in what.commands if c["kind"] == "valve"] == ["manual"]
    assert rig_main("info", str(new), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "exposure" and info["animal"] == "M2-whatif" and info["rewards_withheld"] == len(withheld)


def test_whatif_with_an_unknown_protocol_is_bad_input(original, tmp_path, capsys):
    assert rig_main("replay", str(original), "--protocol", str(tmp_path / "nope.yaml"), "--data", str(tmp_path)) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no session folder was started


def test_replay_at_a_speed_runs_on_the_real_clock_and_feeds_every_input(tmp_path):
    # demo has no imaging rolls: with a post-roll, the replayed engine ends its post-roll by its own clock, which
    # on real frame times can come a frame before the original's last inputs (docs/replay.md)
    short = run_fast(tmp_path / "o", protocol="demo", trials=2, seed=4)
    orig = Session.open(short)
    result = replay_session(short, ReplayOptions(speed=200.0, data_dir=tmp_path / "r"))
    new = Session.open(result.path)
    assert new.header.fast is False and new.header.replay_of.speed == 200.0
    # Every recorded lick edge and ball sample reached the runner, whatever frames they landed on.
    assert np.array_equal(new.licks["t"], orig.licks["t"]) and np.array_equal(new.ball["counts"], orig.ball["counts"])
    assert len(new.frames) > 0 and result.iterations_available == len(orig.frames)


def kill_mid_session(data: Path) -> Path:
    code = ("from rig import api; api.run('protocols/train1_task.yaml', animal='K1', fast=True, seed=2, "
            f"max_trials=100000, duration_s=36000, data_dir={str(data)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        frames = None
        while time.monotonic() < deadline:
            found = list(data.glob("K1/*/*/frames.bin"))
            if found and found[0].stat().st_size > 77 * 20_000:
                frames = found[0]
                break
            time.sleep(0.02)
        assert frames is not None, "the session did not get going"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return frames.parent


def test_sigkilled_session_verifies_and_replays_up_to_its_cut(tmp_path):
    path = kill_mid_session(tmp_path / "data")
    s = Session.open(path)
    assert s.footer is None
    report = verify_session(path)
    assert report.ok and report.truncated, [str(d) for d in report.divergences]
    # frames.bin may be one flush ahead of the cut when the kill fell mid-flush
    assert 10_000 <= report.iterations <= len(s.frames)
    result = replay_session(path, ReplayOptions(fast=True, data_dir=tmp_path / "replays"))
    assert result.inputs_exhausted and not result.complete and "end of the logged inputs" in result.reason
    new = Session.open(result.path)
    n = report.iterations
    assert new.frames[:n].tobytes() == s.frames[:n].tobytes()
    assert len(new.frames) == n + 1  # plus the iteration in which the replay was stopped


def test_replay_drivers_release_samples_by_time():
    clock = VirtualClock()
    ball = ReplayBall(clock, np.array([0.01, 0.02, 0.03]), np.array([1, 2, 3]), np.array([0.02, 0.02, 0.05]), 100.0)
    lick = ReplayLick(clock, np.array([0.015, 0.04]), np.array([1, 0]), np.array([0.02, 0.05]))
    with ball, lick:
        assert len(ball.read().counts) == 0 and lick.read() == []
        clock.wait_until(0.02)
        assert ball.read().counts.tolist() == [1, 2] and [e.onset for e in lick.read()] == [True]
        assert len(ball.read().counts) == 0 and ball.remaining == 1
        clock.wait_until(0.1)
        assert ball.read().t.tolist() == [0.03] and [e.t for e in lick.read()] == [0.04]
    with pytest.raises(ValueError, match="non-decreasing"):
        ReplayBall(clock, np.zeros(2), np.zeros(2, dtype=np.int64), np.array([0.2, 0.1]), 100.0)
    with pytest.raises(RuntimeError, match="not open"):
        ball.read()


def test_replay_valve_records_and_cuts_pulses():
    clock = VirtualClock()
    valve = ReplayValve(clock, max_open_ms=50.0)
    with valve:
        clock.wait_until(1.0)
        valve.pulse(25.0)
        valve.pulse(80.0)
    assert [(p.t, p.duration_ms) for p in valve.pulses] == [(1.0, 25.0), (1.0, 50.0)]


def test_replay_of_an_operator_stopped_session_stops_at_the_same_iteration(tmp_path):
    path = run_fast(tmp_path / "o", trials=20, hooks=(OperatorScript({500: [Operator("stop")]}),))
    result = replay_session(path, ReplayOptions(fast=True, data_dir=tmp_path / "r"))
    assert not result.complete and result.reason == "operator stop (replayed from the log)"
    assert not result.inputs_exhausted
    for name in DETERMINISTIC:
        assert (result.path / name).read_bytes() == (path / name).read_bytes(), name


def test_cli_replay_publishes_telemetry_a_subscriber_receives_and_answers_commands(tmp_path):
    from rig.control.client import CommandClient, TelemetrySubscriber
    from rig.control.credentials import ClientCredential

    short = run_fast(tmp_path / "o", trials=2, seed=4)
    n_logged = len(Session.open(short).frames)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "replay", str(short), "--speed", "10", "--data", str(tmp_path / "r"),
         "--telemetry", "tcp://127.0.0.1:*", "--commands", "tcp://127.0.0.1:*", "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    messages: list[tuple[str, dict]] = []
    try:
        line = proc.stderr.readline()  # the bound endpoints come first, before the replay starts
        assert line.startswith("rig replay: telemetry tcp://127.0.0.1:"), line
        telemetry, commands, cred_path = line.split()[3], line.split()[5], line.split()[7]
        cred = ClientCredential.load(cred_path)
        with TelemetrySubscriber(telemetry, cred) as sub, CommandClient(commands, cred) as client:
            hello = client.request("hello", timeout_s=20.0)
            assert hello["replay_of"] == str(short.resolve()) and hello["protocol"] == "train1_task"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(topic == "end" for topic, _ in messages):
                messages += sub.poll(timeout_ms=200)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    new = Path(out.strip().splitlines()[-1])
    states = [body for topic, body in messages if topic == "state"]
    assert states, [topic for topic, _ in messages]
    seen = [i for body in states for i in body["i"]]
    assert seen == sorted(seen) and seen[-1] <= n_logged + 1
    # What was published is what the replay logged.
    frames = Session.open(new).frames
    by_i = {int(i): float(p) for i, p in zip(frames["i"], frames["position_cm"], strict=True)}
    for body in states:
        for i, pos in zip(body["i"], body["pos"], strict=True):
            assert pos == pytest.approx(by_i[i], abs=0.01)
    (end,) = [body for topic, body in messages if topic == "end"]
    summary = Session.open(new).footer["summary"]
    assert (end["trials"], end["rewards"]) == (summary["trials"], summary["rewards"])
    assert hello["session"] == str(new)
