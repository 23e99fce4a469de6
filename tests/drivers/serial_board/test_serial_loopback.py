"""The serial driver where no pty exists (Windows): the emulator on a TCP socket on 127.0.0.1 and the driver
opening it as a pyserial `socket://` URL run the same checks as on a pty; and the modules a Windows rig
imports use no POSIX-only module."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.registry import DriverContext
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import BoardConnection
from drivers.serial_board.driver import SerialBall, SerialFrameClock, SerialLick, SerialValve
from drivers.serial_board.emulator import BoardEmulator, EmulatorConfig
from tests.support.waiting import MonoClock, wait_until

PACKAGE = Path(__file__).resolve().parents[3] / "drivers" / "serial_board"
POSIX_ONLY = {"termios", "tty", "pty", "fcntl", "resource", "grp", "pwd"}


@pytest.fixture(params=["pty", "socket"])
def emu(request: pytest.FixtureRequest) -> Iterator[BoardEmulator]:
    with BoardEmulator(EmulatorConfig(transport=request.param)) as e:
        yield e
    assert BoardConnection.open_ports() == []


def test_streams_and_valve_on_either_transport(emu: BoardEmulator) -> None:
    ctx = DriverContext(clock=MonoClock())
    ball = SerialBall(SerialBall.Params(port=emu.path, counts_per_cm=10.0), ctx)
    lick = SerialLick(SerialLick.Params(port=emu.path), ctx)
    frames = SerialFrameClock(SerialFrameClock.Params(port=emu.path), ctx)
    valve = SerialValve(SerialValve.Params(port=emu.path, max_open_ms=200), ctx)
    with ball, lick, frames, valve:
        emu.set_frame_rate(200.0)
        emu.add_counts(250)
        emu.lick(True)
        emu.lick(False)
        ack = valve.connection.wait_ack(valve.pulse(500.0), 1.0)
        assert (ack.status, ack.value) == (P.AckStatus.CLAMPED, 200)
        time.sleep(0.3)
        emu.set_frame_rate(0.0)
        emu.sync()
        time.sleep(0.05)
        log = emu.snapshot()
        got: list[float] = []
        edges: list = []
        ev: list = []
        counts = 0

        def all_in() -> bool:
            nonlocal counts
            got.extend(frames.read().tolist())
            edges.extend(lick.read())
            ev.extend(valve.events())
            counts += int(ball.read().counts.sum())
            return len(got) >= len(log.frames) and len(edges) == 2 and len(ev) == 2 and counts == 250

        wait_until(all_in, what="frames, licks, counts and the valve")
        np.testing.assert_array_equal(got, np.asarray(log.frames) / 1e6)
        assert ev[1][2] == P.ValveReason.MAX_OPEN and ev[1][0] - ev[0][0] == pytest.approx(0.2, abs=1e-6)
        assert not valve.health().faults[1:] and valve.health().connected


def test_a_socket_board_unplugged_and_back_reconnects() -> None:
    ctx = DriverContext(clock=MonoClock())
    with BoardEmulator(EmulatorConfig(transport="socket", frame_rate_hz=100.0)) as e:
        fc = SerialFrameClock(SerialFrameClock.Params(port=e.path), ctx)
        with fc:
            e.unplug()
            wait_until(lambda: fc.health().counters["unplugs"] == 1, what="unplug")
            e.replug()
            wait_until(lambda: fc.health().connected, timeout=5, what="reconnect")
            fc.read()
            wait_until(lambda: len(fc.read()) > 0, what="frames after the reconnect")
            assert fc.health().counters["resets"] >= 1
    assert BoardConnection.open_ports() == []


@pytest.mark.parametrize("module", ["protocol", "connection", "driver", "clockfit", "faults", "__init__", "emulator"])
def test_no_posix_only_module_is_imported_at_module_level(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top = []
    for node in tree.body:  # module level only: the emulator may import tty lazily, for its pty transport
        if isinstance(node, ast.Import):
            top += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.append(node.module.split(".")[0])
    assert not POSIX_ONLY & set(top)
    if module != "emulator":  # nothing POSIX-only anywhere in the driver modules a Windows rig imports
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
        }
        assert not names & {"openpty", "ttyname", "tcsetattr", "flock", "termios", "fcntl"}
