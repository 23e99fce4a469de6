"""The control server (telemetry and commands) on a real-time simulated session over real, CURVE-authenticated
ZeroMQ on 127.0.0.1, and the one-session-per-rig lock of the runner process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rig.control.client import CommandClient, TelemetrySubscriber, connect
from rig.control.credentials import SessionKeys
from rig.control.server import ControlError, ControlServer
from rig.datalog.reader import Session
from rig.loading import load_config, load_protocol
from rig.runner.lock import read_lock
from rig.runner.session import SessionOptions, run_session
from tests.support.paths import REPO


class LiveSession:
    """run_session in a thread with a ControlServer, real-time; a client and a subscriber attached."""

    def __init__(self, tmp: Path, duration_s: float = 30.0, protocol_path: Path = REPO / "protocols" / "demo.yaml",
                 status_hz: float = 2.0) -> None:
        self.keys = SessionKeys.generate()
        self.hook = ControlServer(self.keys, status_hz=status_hz)
        self.sub = TelemetrySubscriber(self.hook.telemetry_endpoint, self.keys.client)
        self.client = CommandClient(self.hook.commands_endpoint, self.keys.client, label="test")
        protocol = load_protocol(protocol_path)
        config = load_config(REPO / "config" / "sim.yaml")
        options = SessionOptions(animal="t1", seed=5, duration_s=duration_s, data_dir=tmp)
        self.result = None
        self.thread = threading.Thread(
            target=lambda: setattr(self, "result", run_session(protocol, config, options, hooks=(self.hook,))))
        self.thread.start()
        self.messages: list[tuple[str, dict]] = []

    def collect(self, seconds: float) -> list[tuple[str, dict]]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.messages += self.sub.poll(timeout_ms=50)
        return self.messages

    def finish(self) -> Session:
        if self.thread.is_alive():
            try:
                self.client.request("stop")
            except ControlError:
                pass  # the loop already ended
        self.thread.join(20)
        assert not self.thread.is_alive()
        self.sub.close()
        self.client.close()
        self.hook.close()
        return Session.open(self.result.path)


@pytest.fixture
def live(tmp_path):
    s = LiveSession(tmp_path)
    deadline = time.monotonic() + 10
    while True:  # take control as soon as the session has started
        try:
            s.client.request("take_control")
            break
        except ControlError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield s
    if s.thread.is_alive():
        s.finish()


def test_state_status_and_events_are_published(live):
    msgs = live.collect(2.5)
    topics = {t for t, _ in msgs}
    assert {"state", "status", "event"} <= topics
    iters = [i for t, b in msgs if t == "state" for i in b["i"]]
    assert iters == sorted(iters) and len(iters) > 60  # every frame, in order, batched
    status = [b for t, b in msgs if t == "status"][-1]
    assert status["running"] is True and status["drivers"]["valve"] == "SimValve"
    # demo.yaml has no stages: one, which lasts to the end (no criterion to report)
    assert (status["stage"], status["stage_index"], status["n_stages"], status["criterion"]) == ("main", 0, 1, None)
    kinds = {b["kind"] for t, b in msgs if t == "event"}
    assert kinds & {"lick", "cue", "trial_end"}
    live.finish()


def test_manual_reward_is_acknowledged_and_logged(live):
    live.collect(0.5)
    reply = live.client.request("manual_reward", volume_ul=3.5)
    assert reply["ok"] and reply["volume_ul"] == 3.5
    session = live.finish()
    ops = [o for o in session.operator if o["action"] == "manual_reward"]
    assert ops and ops[0]["data"]["volume_ul"] == 3.5
    assert any(c["source"] == "manual" and c["volume_ul"] == 3.5 for c in session.commands)


def test_operator_rewards_the_valve_refuses_are_not_logged_as_rewards(live):
    """Back-to-back requests: those the valve guard would refuse (open, or shut under min_closed_ms) are
    refused before the engine, so every manual reward event is water the valve gave."""
    live.collect(0.3)
    replies = []
    for _ in range(6):
        try:
            replies.append(live.client.request("manual_reward", volume_ul=2.0)["ok"])
        except ControlError as e:
            replies.append(str(e))
    session = live.finish()
    rewarded = [e for e in session.events if e["kind"] == "reward" and e["data"]["source"] == "manual"]
    given = [v for v in session.valve if v.get("kind") == "open" and v["source"] == "manual"
             and v["outcome"] != "refused"]
    refused = [o for o in session.operator if o["action"] == "manual_reward_refused"]
    assert len(rewarded) == len(given) >= 1
    assert len(rewarded) + len(refused) + sum(r is not True for r in replies) == 6
    assert all(r is True or "valve" in r or "shut" in r for r in replies)


def test_valve_flush_closes_by_itself_and_is_logged(live):
    live.collect(0.3)
    assert live.client.request("valve_open", close_after_s=0.2)["close_after_s"] == 0.2
    live.collect(1.0)
    session = live.finish()
    flush = [o for o in session.operator if o["action"].startswith("valve")]
    assert [o["action"] for o in flush] == ["valve_open", "valve_close"]
    assert flush[1]["data"]["reason"] == "timeout"
    assert flush[1]["t"] - flush[0]["t"] >= 0.2


def test_pause_resume_stop_reach_the_loop(live):
    live.collect(0.3)
    live.client.request("pause")
    msgs = live.collect(1.0)
    assert [b for t, b in msgs if t == "status"][-1]["paused"] is True
    live.client.request("resume")
    live.client.request("stop")
    live.thread.join(10)
    session = Session.open(live.result.path)
    assert [o["action"] for o in session.operator] == ["take_control", "pause", "resume", "stop"]
    assert session.footer["reason"] == "operator stop"
    assert any(t == "end" for t, _ in live.collect(0.2))
    live.finish()


def test_bad_requests_get_clear_error_replies(live):
    live.collect(0.2)
    with pytest.raises(ControlError, match="unknown action 'explode'"):
        live.client.request("explode")
    with pytest.raises(ControlError, match="volume_ul: Input should be greater than 0"):
        live.client.request("manual_reward", volume_ul=-1)
    with pytest.raises(ControlError, match="close_after_s must be <= the valve's max_open_ms"):
        live.client.request("valve_open", close_after_s=3600)
    with pytest.raises(ControlError, match="volume_ul: Input should be a valid number"):
        live.client.request("manual_reward", volume_ul=True)  # a boolean is never a number
    raw = live.client._sock  # a malformed frame, as a buggy client would send
    raw.send_multipart([b"", b"{not json"])
    assert raw.poll(2000)
    reply = json.loads(raw.recv_multipart()[-1])
    assert reply["ok"] is False and "not JSON" in reply["error"]
    live.finish()


def test_request_to_a_dead_endpoint_times_out_clearly():
    keys = SessionKeys.generate()
    with CommandClient("tcp://127.0.0.1:9", keys.client) as c, \
            pytest.raises(ControlError, match="no reply .* within 0.2 s"):
        c.request("hello", timeout_s=0.2)


def test_runner_process_refuses_a_second_session_on_the_same_rig(tmp_path):
    locks = tmp_path / "locks"
    argv = [sys.executable, "-m", "rig.cli.runner_process", "--protocol", "demo", "--duration", "30",
            "--data", str(tmp_path / "data"), "--lock-dir", str(locks)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not ((info := read_lock("sim", locks)) and info.session):
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert second.returncode == 3
        assert f"rig 'sim' is already running a session (pid {first.pid}" in second.stderr
        with connect(info, label="test") as (c, _):
            assert c.request("hello", timeout_s=5)["session"] == info.session
            c.request("take_control", timeout_s=5)
            c.request("stop", timeout_s=5)
        out, _ = first.communicate(timeout=20)
        assert first.returncode == 1  # stopped early: incomplete, as `rig run` reports it
        assert out.strip().splitlines()[-1] == info.session
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert read_lock("sim", locks) is None
    assert not list(locks.glob("*.cred"))  # the credential goes with the session


def test_status_carries_the_mesoscope_link_state_when_a_mesoscope_hook_runs(tmp_path):
    from rig.mesoscope.config import MesoscopeSettings
    from rig.mesoscope.messages import FrameMsg
    from rig.mesoscope.session_hook import MesoscopeHook

    class FramesEveryIteration(MesoscopeHook):
        """Stands in for the mesoscope (the hardware boundary): one received frame per loop iteration."""

        def start(self, runner) -> None:
            pass

        def iteration(self, i: int, t: float, step) -> None:
            self.frames.append(FrameMsg(instance="x", seq=i + 1, t_bridge=t, acquisition=1, frame=i + 1,
                                        plane=0, volume=i, t_meso=t, t_receive=time.perf_counter()))

        def end(self, runner, result) -> None:
            pass

    meso = FramesEveryIteration(MesoscopeSettings(expected_rate_hz=30.0))
    keys = SessionKeys.generate()
    hook = ControlServer(keys)
    sub = TelemetrySubscriber(hook.telemetry_endpoint, keys.client)
    time.sleep(0.2)  # PUB/SUB join
    protocol = load_protocol(REPO / "protocols" / "demo.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    with hook:
        run_session(protocol, config, SessionOptions(animal="m1", seed=1, fast=True, max_trials=2,
                                                              data_dir=tmp_path), hooks=(meso, hook))
        msgs = []
        for _ in range(40):
            msgs += sub.poll(timeout_ms=50)
            if any(t == "end" for t, _ in msgs):
                break
    sub.close()
    final = [b for t, b in msgs if t == "status" and not b.get("running", True)][-1]
    m = final["mesoscope"]
    assert m["frames"] == len(meso.frames) > 0
    assert m["connected"] is False and m["drops"] == 0 and m["last_frame_age_s"] is not None


def test_status_has_no_mesoscope_entry_without_a_mesoscope_hook(tmp_path):
    hook = ControlServer(SessionKeys.generate())
    protocol = load_protocol(REPO / "protocols" / "demo.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    with hook:
        run_session(protocol, config, SessionOptions(animal="m1", seed=1, fast=True, max_trials=1, data_dir=tmp_path),
                    hooks=(hook,))
        assert "mesoscope" not in hook.status()
