"""`rig check` and `rig run` against the real firmware on simavr, and the session folder against the ground
truth the harness drove: every encoder count, every lick onset and offset, every frame edge, every valve
pulse's pin-high time against its command (and never past max_open_ms), and the valve with `rig run`
killed mid-pulse.

Session times are compared with when each edge truly happened on the host's clock: the harness records
when the simulation reached each millisecond of simulated time on CLOCK_MONOTONIC (what time.perf_counter
reads), and clock.json says where session time 0 lies on that clock. The driver maps board time onto the
session through a clock fit to heartbeat receipts, so a session time is late by about the link's minimum
latency and moves with the fit: SESSION_TOL_S (plus however much the simulator's lag behind real time
varied during the run, which no clock fit can follow; the harness runs SCHED_RR to keep it small). The
device stamps themselves are checked to -4..+30 us in test_firmware_hil.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.serial_board import hil

REPO = Path(__file__).resolve().parents[2]
SESSION_TOL_S = 0.003  # any single session time vs the true host time of its edge
SESSION_P90_S = 0.0015
VALVE_TOL_US = 2.0 + 20.0  # half a 4 us tick + the compare interrupt's latency
SEED = 5  # the demo protocol's first trial is the rewarded corridor with this seed


@pytest.fixture(scope="module")
def mega() -> hil.Build:
    return hil.build("mega")


def write_config(tmp_path: Path, port: str, pulse_scale: float = 1.0) -> Path:
    text = (REPO / "config" / "board-simavr.yaml").read_text().replace("/tmp/corridor-simavr", port)
    text = text.replace("name: board-simavr", f"name: board-simavr-test-{os.getpid()}-{tmp_path.name}")
    # A simulated board on a loaded machine without SCHED_RR can stall for longer than a real one ever
    # does; 2 s keeps a stall from reading as a lost link (a real rig keeps the 0.5 s default).
    text = text.replace("    baudrate: 500000", "    baudrate: 500000\n    heartbeat_timeout_s: 2.0")
    if pulse_scale != 1.0:  # longer valve pulses (a rig run to kill mid-pulse)
        for ms in (50, 25, 10):
            text = text.replace(f"duration_ms: {ms},", f"duration_ms: {ms * pulse_scale:g},")
    cfg = tmp_path / "board.yaml"
    cfg.write_text(text)
    return cfg


def rig_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


class SessionFiles:
    """A session folder read with numpy and json, as docs/data-format.md describes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.header = json.loads((folder / "header.json").read_text())
        self.origin = json.loads((folder / "clock.json").read_text())["monotonic_s"]

    def bin(self, name: str) -> np.ndarray:
        dtype = np.dtype([tuple(f) for f in self.header["files"][name]["dtype"]])
        return np.fromfile(self.folder / name, dtype=dtype)

    def jsonl(self, name: str) -> list[dict]:
        return [json.loads(x) for x in (self.folder / name).read_text().splitlines() if x]


def session_time(truth: hil.Truth, s: SessionFiles, cycles: list[int] | np.ndarray) -> np.ndarray:
    """The true session time of events at these cycles."""
    return truth.host_s(cycles) - s.origin


def lag_range(truth: hil.Truth) -> float:
    """How much the simulator's lag behind real time varied: a clock fit cannot follow that (a real board's
    crystal does not stall), so it widens every timing bound here (about 1 ms with SCHED_RR)."""
    lag = truth.lag_s()
    return float(lag.max() - lag.min())


def tolerance(truth: hil.Truth) -> float:
    return SESSION_TOL_S + lag_range(truth)


def match(got: np.ndarray, true: np.ndarray, tol: float, what: str, p90: float = SESSION_P90_S) -> np.ndarray:
    """One-to-one: each recorded time to its true event, none missing between the first and the last."""
    assert len(got) > 0, f"no {what} recorded"
    first = int(np.argmin(np.abs(true - got[0])))
    want = true[first : first + len(got)]
    assert len(want) == len(got), f"{what}: more recorded than happened"
    err = got - want
    assert np.abs(err).max() <= tol, f"{what}: off by up to {np.abs(err).max() * 1e3:.2f} ms"
    assert np.percentile(np.abs(err), 90) <= p90, f"{what}: p90 {np.percentile(np.abs(err), 90):.4f} s"
    return err


def session_script() -> tuple[hil.Script, list[tuple[float, int]]]:
    sc = hil.Script(delay_s=0.3)
    sc.quadrature(0.0, 3000.0, 3000 * 40)  # 30 cm/s at 100 counts/cm, for longer than the session
    licks: list[tuple[float, int]] = []
    for k in range(110):  # a lick every 0.35 s, with contact bounce; the first after the cue is rewarded
        t = 0.2 + 0.35 * k
        sc.lick(t, 0.04, bounce_s=(0.0001, 0.0002), release_bounce_s=(0.0001, 0.00015))
        licks += [(t, 1), (t + 0.04, 0)]
    sc.frames(0.11, 30.0, 40 * 30)
    return sc, licks


def test_rig_check_passes_on_the_simulated_board(mega: hil.Build, tmp_path: Path) -> None:
    sc = hil.Script(delay_s=0.2)
    sc.quadrature(0.0, 2000.0, 20_000)
    sc.frames(0.01, 30.0, 300)
    with hil.HilBoard(mega, sc, tmp_path) as board:
        r = rig_cli("check", "--config", str(write_config(tmp_path, board.path)), "--seconds", "1", "--json")
    truth = board.result()
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["ok"] is True
    # The valve check's test pulse really opened the valve, for the 20 ms it asked.
    assert any(abs((b - a) / hil.CYCLES_PER_US - 20_000) <= VALVE_TOL_US for a, b in truth.pulses("valve"))


def test_rig_run_session_matches_the_ground_truth(mega: hil.Build, tmp_path: Path) -> None:
    sc, licks = session_script()
    with hil.HilBoard(mega, sc, tmp_path) as board:
        cfg = write_config(tmp_path, board.path)
        r = rig_cli("run", "protocols/demo.yaml", "--config", str(cfg), "--animal", "H1", "--max-trials", "1",
                    "--seed", str(SEED), "--data", str(tmp_path / "data"), "-q")  # fmt: skip
    truth = board.result()
    assert r.returncode == 0, r.stderr
    s = SessionFiles(Path(r.stdout.strip().splitlines()[-1]))
    assert json.loads((s.folder / "footer.json").read_text())["complete"] is True
    assert s.jsonl("faults.jsonl") == []

    tol, p90 = tolerance(truth), SESSION_P90_S + lag_range(truth)
    # Every frame edge (falling edges), in order, none missing or extra.
    fc = s.bin("frame_clock.bin")
    match(fc["t"], session_time(truth, s, truth.edges("frame", 0)), tol, "frame edges", p90)
    assert np.array_equal(fc["frame"], np.arange(len(fc)))

    # Every lick onset and offset, at its first (bouncing) edge.
    lk = s.bin("licks.bin")
    true_licks = session_time(truth, s, [truth.trigger + hil.us(t) for t, _ in licks])
    err = match(lk["t"], true_licks, tol, "lick edges", p90)
    first = int(np.argmin(np.abs(true_licks - lk["t"][0])))
    assert lk["onset"].tolist() == [on for _, on in licks[first : first + len(lk)]]
    assert len(err) > 40

    # Every encoder count: the running total at each sample equals the true count at its time, up to the
    # edges that fall within the timing tolerance of it.
    ball = s.bin("ball.bin")
    steps = session_time(truth, s, sorted(truth.edges("enc_a", 0) + truth.edges("enc_a", 1)
                                          + truth.edges("enc_b", 0) + truth.edges("enc_b", 1)))  # fmt: skip
    running = np.cumsum(ball["counts"])
    lo = np.searchsorted(steps, ball["t"] - tol)
    hi = np.searchsorted(steps, ball["t"] + tol)
    assert np.all((lo <= running) & (running <= hi))
    assert np.all(ball["counts"] >= 0) and running[-1] > 10_000
    assert np.allclose(ball["cm"], ball["counts"] / 100.0)

    # Every valve pulse: the pin was high for the commanded time, never past max_open_ms.
    cmds = [c for c in s.jsonl("commands.jsonl") if c["kind"] == "valve"]
    pulses = truth.pulses("valve")
    assert len(cmds) >= 1 and len(pulses) == len(cmds)
    max_open_us = s.header["config"]["drivers"]["valve"]["max_open_ms"] * 1000
    for c, (rise, fall) in zip(cmds, pulses, strict=True):
        high = (fall - rise) / hil.CYCLES_PER_US
        assert abs(high - c["duration_ms"] * 1000) <= VALVE_TOL_US and high <= max_open_us
    info = json.loads(rig_cli("info", str(s.folder), "--json").stdout)
    assert info["complete"] and info["rewards"] == len(cmds) and info["faults"] == 0


def test_rig_run_killed_mid_pulse_the_firmware_still_closes_on_time(mega: hil.Build, tmp_path: Path) -> None:
    sc, _ = session_script()
    with hil.HilBoard(mega, sc, tmp_path) as board:
        cfg = write_config(tmp_path, board.path, pulse_scale=10.0)  # 2.5 ul -> a 250 ms pulse
        proc = subprocess.Popen(
            [sys.executable, "-m", "rig.cli", "run", "protocols/demo.yaml", "--config", str(cfg), "--animal", "H1",
             "--max-trials", "1", "--seed", str(SEED), "--data", str(tmp_path / "data"), "-q"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            board.wait_line("out valve 1", timeout=60)
            proc.send_signal(signal.SIGKILL)  # the host dies while the valve is open
            proc.wait(timeout=10)
            t_kill = time.monotonic()
            board.wait_line("out valve 0", timeout=5)
            assert time.monotonic() - t_kill < 0.3
            time.sleep(1.0)  # nothing opens it again
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    truth = board.result()
    assert proc.returncode == -signal.SIGKILL
    (rise, fall), = truth.pulses("valve")
    assert abs((fall - rise) / hil.CYCLES_PER_US - 250_000) <= 8.0 + 20.0  # half a 16 us tick + latency
    assert truth.outputs["valve"][-1][1] == 0
