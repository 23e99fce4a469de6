"""End-to-end sessions on the simulated rig through the scripting API and the real `rig` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig import api
from rig.datalog.reader import Session
from tests.support.paths import REPO

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
DATA_FILES = ("frames.bin", "ball.bin", "licks.bin", "frame_clock.bin", "events.jsonl", "commands.jsonl")


def rig_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rig.cli", *args],
        capture_output=True,
        text=True,
        cwd=kw.pop("cwd", REPO),
        timeout=kw.pop("timeout", 300),
        **kw,
    )


def test_shipped_protocols_exist():
    names = {p.stem for p in PROTOCOLS}
    for stage in ("train1", "test1", "train2", "test2", "test3_swap1", "test3_swap2"):
        assert f"{stage}_task" in names and f"{stage}_exposure" in names, stage
    assert "demo" in names


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_every_shipped_protocol_runs_50_trials(path: Path, tmp_path: Path):
    protocol = api.load_protocol(path)
    out = api.run(protocol, animal="M1", seed=3, fast=True, max_trials=50, data_dir=tmp_path)
    info = api.info(out)
    assert info["complete"] is True
    assert info["trials"] == 50
    assert info["kind"] == protocol.kind
    if protocol.kind == "exposure":
        assert info["rewards"] == 0 and info["water_ul"] == 0
    else:
        assert info["rewards"] > 0 and info["water_ul"] > 0


def test_cli_run_prints_folder_last_and_info_reports_it(tmp_path: Path):
    r = rig_cmd(
        "run",
        "protocols/demo.yaml",
        "--fast",
        "--max-trials",
        "12",
        "--seed",
        "5",
        "--animal",
        "M7",
        "--data",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip().splitlines()[-1])
    assert folder.is_dir() and folder.parent.parent.name == "M7" and folder.name == "001"
    info = json.loads(rig_cmd("info", str(folder), "--json").stdout)
    for key in (
        "animal",
        "protocol",
        "kind",
        "trials",
        "rewards",
        "water_ul",
        "licks",
        "frames",
        "frames_dropped",
        "duration_s",
        "complete",
    ):
        assert key in info, key
    assert info["animal"] == "M7" and info["trials"] == 12 and info["complete"] is True
    assert info["frames"] > 0  # imaging frames from the simulated frame clock


def test_second_run_gets_next_folder(tmp_path: Path):
    a = api.run("protocols/demo.yaml", animal="M1", seed=1, fast=True, max_trials=2, data_dir=tmp_path)
    b = api.run("protocols/demo.yaml", animal="M1", seed=1, fast=True, max_trials=2, data_dir=tmp_path)
    assert (a.name, b.name) == ("001", "002") and a.parent == b.parent


def test_same_seed_gives_byte_identical_data_and_other_seed_does_not(tmp_path: Path):
    runs = [
        api.run(
            "protocols/train1_task.yaml",
            animal="M1",
            seed=s,
            fast=True,
            max_trials=20,
            data_dir=tmp_path / str(k),
        )
        for k, s in enumerate((11, 11, 12))
    ]
    same = [(runs[0] / f).read_bytes() == (runs[1] / f).read_bytes() for f in DATA_FILES]
    assert all(same), dict(zip(DATA_FILES, same, strict=True))
    assert (runs[0] / "frames.bin").read_bytes() != (runs[2] / "frames.bin").read_bytes()
    assert (runs[0] / "events.jsonl").read_bytes() != (runs[2] / "events.jsonl").read_bytes()


def test_invalid_protocol_exits_2_and_leaves_no_folder(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    text = (REPO / "protocols" / "demo.yaml").read_text().replace("kind: task", "kind: tusk")
    bad.write_text(text)
    data = tmp_path / "data"
    r = rig_cmd("run", str(bad), "--fast", "--data", str(data))
    assert r.returncode == 2
    assert f"{bad}:" in r.stderr and "kind" in r.stderr
    assert not data.exists()


def test_too_little_disk_refuses_before_creating_a_folder(tmp_path: Path):
    cfg = tmp_path / "greedy.yaml"
    text = (REPO / "config" / "sim.yaml").read_text()
    cfg.write_text(
        text + "\nmin_free_disk_mb: 1.0e12\n"
        if "min_free_disk_mb" not in text
        else text.replace("min_free_disk_mb:", "min_free_disk_mb: 1.0e12 #")
    )
    data = tmp_path / "data"
    r = rig_cmd("run", "protocols/demo.yaml", "--fast", "--config", str(cfg), "--data", str(data))
    assert r.returncode != 0
    assert "free" in r.stderr.lower()
    assert not any(data.rglob("frames.bin")) if data.exists() else True


def _start_realtime(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rig.cli",
            "run",
            "protocols/demo.yaml",
            "--seed",
            "1",
            "--data",
            str(tmp_path),
            "--duration",
            "60",
            "-q",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_frames(tmp_path: Path, seconds: float) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list(tmp_path.rglob("frames.bin"))
        if found and found[0].stat().st_size > 0:
            time.sleep(seconds)
            return found[0].parent
        time.sleep(0.05)
    raise AssertionError("the real-time session never wrote frames")


def test_sigterm_ends_realtime_session_cleanly_and_incomplete(tmp_path: Path):
    proc = _start_realtime(tmp_path)
    folder = _wait_for_frames(tmp_path, 1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert Path(out.strip().splitlines()[-1]) == folder
    s = Session.open(folder)
    assert s.complete is False and s.footer is not None  # closed cleanly, but cut short
    assert s.trimmed == []
    assert len(s.frames) > 30


def test_sigkill_leaves_readable_incomplete_session_with_at_most_100ms_missing(tmp_path: Path):
    proc = _start_realtime(tmp_path)
    folder = _wait_for_frames(tmp_path, 1.5)
    header = json.loads((folder / "header.json").read_text())
    assert header["fast"] is False
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    proc.communicate(timeout=10)
    s = Session.open(folder)
    assert s.complete is False and s.footer is None
    # The loop's session time runs on the same monotonic clock; compare the last logged frame with
    # the frame the loop would have reached at the moment of the kill.
    t_last = float(s.frames["t"][-1])
    t_loop_start = s.timing_origin_monotonic  # monotonic time of session t = 0, from the header
    assert killed_at - t_loop_start - t_last <= 0.1 + 1 / 60


def test_second_realtime_session_on_the_same_rig_is_refused(tmp_path: Path):
    env = dict(os.environ, RIG_LOCK_DIR=str(tmp_path / "locks"))
    first = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "run", "protocols/demo.yaml", "--seed", "1", "--data",
         str(tmp_path / "a"), "--duration", "60", "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        _wait_for_frames(tmp_path / "a", 0.2)
        second = rig_cmd("run", "protocols/demo.yaml", "--duration", "1", "--data", str(tmp_path / "b"), "-q",
                         env=env)
        assert second.returncode == 3
        assert "already running a session" in second.stderr and f"pid {first.pid}" in second.stderr
        assert not (tmp_path / "b").exists()
        # A --fast simulation touches no hardware, so it may run beside a live session.
        assert rig_cmd("run", "protocols/demo.yaml", "--fast", "--max-trials", "1", "--data",
                       str(tmp_path / "c"), "-q", env=env).returncode == 0
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    # Once the first session has ended, the rig is free again.
    again = rig_cmd("run", "protocols/demo.yaml", "--duration", "0.5", "--data", str(tmp_path / "d"), "-q", env=env)
    assert again.returncode == 0, again.stderr
