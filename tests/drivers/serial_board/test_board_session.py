"""A whole session through the serial board driver, against the board emulator on a real pty."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def emulator(tmp_path: Path):
    link = tmp_path / "board"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "emulate-board", "--link", str(link), "--speed", "3000",
         "--lick-rate", "3", "--frame-rate", "30", "--crc-every", "1.5", "--garbage-every", "1.1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while not link.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the emulator never created its device link"
        time.sleep(0.05)
    yield link
    proc.terminate()
    proc.wait(timeout=10)


def test_demo_session_through_serial_board(emulator: Path, tmp_path: Path):
    cfg = tmp_path / "board.yaml"
    cfg.write_text((REPO / "config" / "board-emulated.yaml").read_text().replace("/tmp/corridor-board",
                                                                                 str(emulator)))
    r = subprocess.run(
        [sys.executable, "-m", "rig.cli", "run", "protocols/demo.yaml", "--config", str(cfg), "--animal", "B1",
         "--duration", "4", "--data", str(tmp_path / "data"), "--seed", "2", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    folder = r.stdout.strip().splitlines()[-1]
    info = json.loads(subprocess.run([sys.executable, "-m", "rig.cli", "info", folder, "--json"], cwd=REPO,
                                     capture_output=True, text=True, timeout=60).stdout)
    assert info["complete"] is True
    assert 3.5 <= info["duration_s"] <= 4.5
    assert info["licks"] > 0  # lick edges from the board
    assert 90 <= info["frames"] <= 130  # ~30 Hz frame-clock edges for ~4 s
    # 3000 counts/s at 100 counts/cm = 30 cm/s: the corridor moved (gated rule: 60 cm/s while running)
    from rig.datalog.reader import Session

    s = Session.open(Path(folder))
    assert s.frames["position_cum_cm"][-1] > 100
    assert info["faults"] > 0  # injected CRC errors and garbage were noticed and logged
    assert all(f["source"] in ("ball", "lick", "valve", "cue", "frame_clock", "sync") for f in s.faults)
    # Every device's clock map was logged at the start, so each input time traces back to its device clock.
    assert {c["source"] for c in s.clocks if c["i"] == 0} == {"ball", "lick", "valve", "cue", "frame_clock",
                                                              "display", "sync"}
    # The board's sync line sent random-interval pulses, each logged with its commanded time.
    assert sum(1 for m in s.mesoscope if m["kind"] == "sync_pulse") >= 2


def _silent_board_config(tmp_path: Path, port: str) -> Path:
    text = (REPO / "config" / "board-emulated.yaml").read_text()
    text = text.replace("port: /tmp/corridor-board", f"port: {port}\n    handshake_timeout_s: 0.5")
    cfg = tmp_path / "silent.yaml"
    cfg.write_text(text)
    return cfg


def test_a_board_that_does_not_answer_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    import os

    master, slave = os.openpty()  # a serial port where nothing answers (no firmware, wrong baud rate)
    try:
        cfg = _silent_board_config(tmp_path, os.ttyname(slave))
        run = subprocess.run(
            [sys.executable, "-m", "rig.cli", "run", "protocols/demo.yaml", "--config", str(cfg), "--animal", "B1",
             "--duration", "2", "--data", str(tmp_path / "data"), "-q"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        check = subprocess.run([sys.executable, "-m", "rig.cli", "check", "--config", str(cfg), "--seconds", "0.5"],
                               cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    assert run.returncode not in (0, None) and "Traceback" not in run.stderr
    assert "no handshake within 0.5 s" in run.stderr and "firmware" in run.stderr
    assert check.returncode == 1 and "Traceback" not in check.stderr + check.stdout
    assert "no handshake within 0.5 s" in check.stdout
