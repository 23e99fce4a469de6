"""The board firmware, compiled for the PC against a small Arduino shim, checked against the protocol.

1. The firmware's protocol header encodes the same bytes as drivers/serial_board/protocol.py.
2. The whole sketch runs as a process on a real pty and the Python role drivers talk to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.registry import DriverContext
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import BoardConnection
from drivers.serial_board.driver import SerialBall, SerialFrameClock, SerialValve

FW = Path(__file__).resolve().parents[1] / "drivers" / "firmware"
GXX = shutil.which("g++")


@pytest.fixture(autouse=True)
def _need_gxx():
    # A missing compiler is a broken test machine, not a pass: fail loudly (CI installs g++).
    assert GXX is not None, "g++ is needed to build the firmware for the host (apt-get install g++)"
T = P.PacketType


class MonoClock:
    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0


def wait_until(pred, timeout: float = 5.0, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def compile_cpp(out: Path, *sources: str | Path, lang_first: str = "c++") -> Path:
    cmd = [GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", f"-I{FW / 'host_shim'}"]
    cmd += [f"-I{FW / 'corridor_board'}", "-x", lang_first, str(sources[0]), "-x", "none"]
    cmd += [str(s) for s in sources[1:]] + ["-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "corridor_board"
    return compile_cpp(out, FW / "corridor_board" / "corridor_board.ino", FW / "host_shim" / "shim_main.cpp")


PROBE = r"""
#include <stdio.h>
#include "corridor_protocol.h"
static void dump(cp::Packet& p) {
  uint8_t wire[cp::MAX_WIRE];
  size_t n = p.finish(wire);
  for (size_t i = 0; i < n; ++i) printf("%02x", wire[i]);
  printf("\n");
}
int main(int argc, char** argv) {
  { cp::Packet p(cp::HEARTBEAT, 513, 4294967290u); p.u16(3); p.u8(cp::LINE_VALVE); p.u16(0); p.u16(7); dump(p); }
  { cp::Packet p(cp::ENCODER, 0, 0); p.i32(-123456); dump(p); }
  {
    cp::Packet p(cp::ACK, 65535, 1000);
    p.u16(9); p.u8(cp::CMD_VALVE_PULSE); p.u8(cp::ACK_CLAMPED); p.u16(300);
    dump(p);
  }
  // Parse a command given in hex on the command line (the frame between the zeros).
  uint8_t frame[64], scratch[64];
  size_t n = 0;
  for (const char* s = argv[argc - 1]; s[0] && s[1]; s += 2) sscanf(s, "%2hhx", &frame[n++]);
  cp::Command c;
  int r = cp::Command::parse(frame, n, scratch, sizeof(scratch), &c);
  printf("%d %u %u %u\n", r, c.type, c.seq, cp::rd_u32(c.payload));
  return 0;
}
"""


def test_firmware_protocol_header_matches_the_python_protocol(tmp_path: Path) -> None:
    src = tmp_path / "probe.cpp"
    src.write_text(PROBE)
    probe = compile_cpp(tmp_path / "probe", src)
    cmd = P.encode_packet(T.CMD_VALVE_PULSE, 77, 0, (37_500,))
    lines = subprocess.run([probe, cmd[1:-1].hex()], check=True, capture_output=True, text=True).stdout.split()
    assert lines[0] == P.encode_packet(T.HEARTBEAT, 513, 4294967290, (3, P.LINE_VALVE, 0, 7)).hex()
    assert lines[1] == P.encode_packet(T.ENCODER, 0, 0, (-123456,)).hex()
    assert lines[2] == P.encode_packet(T.ACK, 65535, 1000, (9, T.CMD_VALVE_PULSE, P.AckStatus.CLAMPED, 300)).hex()
    assert lines[3:] == ["0", str(int(T.CMD_VALVE_PULSE)), "77", "37500"]


@pytest.fixture
def board(firmware: Path) -> Iterator[str]:
    """The firmware running on the master side of a pty; yields the device path."""
    master, slave = os.openpty()
    env = dict(os.environ, SHIM_START_US=str(P.U32 - 400_000), SHIM_QUAD="2,3,4000,1234", SHIM_TOGGLE="5,500,300")
    proc = subprocess.Popen([firmware], stdin=master, stdout=master, env=env)
    try:
        yield os.ttyname(slave)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        os.close(master)
        os.close(slave)
        assert BoardConnection.open_ports() == []


def test_firmware_streams_inputs_across_the_clock_wrap(board: str) -> None:
    ctx = DriverContext(clock=MonoClock())
    ball = SerialBall(SerialBall.Params(port=board, counts_per_cm=40.0), ctx)
    frames = SerialFrameClock(SerialFrameClock.Params(port=board), ctx)
    with ball, frames:
        h = ball.health()
        assert (h.firmware, h.board_id) == ("1.0.0", 1)
        counts, edges = 0, []

        def all_in() -> bool:
            nonlocal counts
            counts += int(ball.read().counts.sum())
            edges.extend(frames.read())
            return counts == 1234 and len(edges) == 300

        wait_until(all_in, what="1234 encoder counts and 300 frame edges")
        # 300 edges at 500 Hz from 0.4 s before the 32-bit wrap: they cross it with no jump. (The shim
        # may raise two edges in one catch-up step, hence equal stamps are allowed.)
        gaps = np.diff(edges)
        assert edges[-1] - edges[0] > 0.4 and np.all(gaps >= 0) and np.all(gaps < 0.1)
        assert ball.health().counters["packets_lost"] == 0 and ball.health().counters["events_lost"] == 0


def test_firmware_times_the_valve_and_enforces_max_open(board: str) -> None:
    ctx = DriverContext(clock=MonoClock())
    valve = SerialValve(SerialValve.Params(port=board, max_open_ms=250), ctx)
    with valve:
        conn = valve.connection
        ack = conn.wait_ack(valve.pulse(40.0), 2.0)
        assert ack is not None and (ack.status, ack.value) == (P.AckStatus.OK, 40)
        ev: list = []
        wait_until(lambda: ev.extend(valve.events()) or len(ev) == 2, what="pulse")
        assert ev[1][1:] == (False, P.ValveReason.PULSE_DONE) and ev[1][0] - ev[0][0] == pytest.approx(0.040)
        ack = conn.wait_ack(valve.pulse(5000.0), 2.0)
        assert (ack.status, ack.value) == (P.AckStatus.CLAMPED, 250)
        ev.clear()
        wait_until(lambda: ev.extend(valve.events()) or len(ev) == 2, what="max-open cut")
        assert ev[1][1:] == (False, P.ValveReason.MAX_OPEN) and ev[1][0] - ev[0][0] == pytest.approx(0.250)
        # The firmware refuses what it does not know, and says so.
        bad = conn.wait_ack(conn.send(T.HEARTBEAT, (0, 0, 0, 0)), 2.0)
        assert bad.status == P.AckStatus.UNKNOWN
        wait_until(lambda: any(f.kind == "command_rejected" for f in valve.faults), what="rejection fault")
