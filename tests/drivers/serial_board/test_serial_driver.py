"""Serial board role drivers against the Python emulator over a real pty, including every fault."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import ValidationError

from drivers import registry
from drivers.registry import DriverContext
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import BoardConnection, BoardError
from drivers.serial_board.driver import (
    SerialBall,
    SerialCue,
    SerialFrameClock,
    SerialLick,
    SerialSync,
    SerialValve,
)
from drivers.serial_board.emulator import BoardEmulator, EmulatorConfig
from tests.support.waiting import MonoClock, wait_until

T = P.PacketType


@pytest.fixture
def ctx() -> DriverContext:
    return DriverContext(clock=MonoClock())


@pytest.fixture
def emu() -> Iterator[BoardEmulator]:
    with BoardEmulator(EmulatorConfig(max_open_ms=1000)) as e:
        yield e
    assert BoardConnection.open_ports() == []  # every test leaves the pool empty


def role(cls: type, emu: BoardEmulator, ctx: DriverContext, **kw: object):  # -> an instance of cls
    return cls(cls.Params(port=emu.path, **kw), ctx)


class Rig:
    """All board roles on one emulated port, opened together."""

    def __init__(self, emu: BoardEmulator, ctx: DriverContext, max_open_ms: float = 300) -> None:
        self.ball = role(SerialBall, emu, ctx, counts_per_cm=40.0)
        self.lick = role(SerialLick, emu, ctx)
        self.valve = role(SerialValve, emu, ctx, max_open_ms=max_open_ms)
        self.cue = role(SerialCue, emu, ctx)
        self.frames = role(SerialFrameClock, emu, ctx)
        self.sync = role(SerialSync, emu, ctx, min_interval_ms=10, max_interval_ms=20, width_ms=2)
        self.roles = [self.ball, self.lick, self.valve, self.cue, self.frames, self.sync]

    def __enter__(self) -> Rig:
        for r in self.roles:
            r.open()
        return self

    def __exit__(self, *exc: object) -> None:
        for r in reversed(self.roles):
            r.close()


@pytest.fixture
def rig(emu: BoardEmulator, ctx: DriverContext) -> Iterator[Rig]:
    with Rig(emu, ctx) as r:
        yield r


# ---- registry and lifecycle -----------------------------------------------------------------------
def test_roles_are_registered_with_strict_params() -> None:
    reg = registry.registry_of(["drivers.serial_board"])
    assert {r for r in registry.ROLES if "serial_board" in reg.types(r)} == {
        "ball", "lick", "valve", "cue", "frame_clock",
    }  # fmt: skip
    with pytest.raises(ValidationError, match="baud"):
        SerialLick.Params(port="/dev/ttyACM0", baud=9600)


def test_handshake_reports_firmware_and_board_id(rig: Rig, emu: BoardEmulator) -> None:
    h = rig.ball.health()
    assert h.connected and h.firmware == "1.0.0" and h.board_id == emu.config.board_id
    assert h.counters["handshakes"] >= 1
    assert [c.ok for c in rig.lick.self_test()] == [True, True]


def test_roles_share_one_connection_closed_by_the_last_role(emu: BoardEmulator, ctx: DriverContext) -> None:
    ball = role(SerialBall, emu, ctx, counts_per_cm=1.0)
    lick = role(SerialLick, emu, ctx)
    with ball:
        with lick:
            assert ball.connection is lick.connection
            assert BoardConnection.open_ports() == [emu.path]
        assert BoardConnection.open_ports() == [emu.path]
        clash = SerialLick(SerialLick.Params(port=emu.path, heartbeat_timeout_s=2.0), ctx)
        with pytest.raises(BoardError, match="disagree on link settings"):
            clash.open()
    assert BoardConnection.open_ports() == []


def test_handshake_timeout_is_a_clear_error(ctx: DriverContext) -> None:
    master, slave = os.openpty()  # a port where nothing answers
    try:
        lick = SerialLick(SerialLick.Params(port=os.ttyname(slave), handshake_timeout_s=0.4), ctx)
        with pytest.raises(BoardError, match="no handshake within 0.4 s.*firmware"):
            lick.open()
    finally:
        os.close(master)
        os.close(slave)
    assert BoardConnection.open_ports() == []


def test_missing_port_names_the_port(ctx: DriverContext, tmp_path) -> None:
    lick = SerialLick(SerialLick.Params(port=str(tmp_path / "ttyNONE")), ctx)
    with pytest.raises(BoardError, match="cannot open serial port .*ttyNONE"):
        lick.open()


def test_protocol_version_mismatch_is_refused(ctx: DriverContext) -> None:
    with BoardEmulator(EmulatorConfig(protocol=P.PROTOCOL_VERSION + 1)) as e:
        with pytest.raises(BoardError, match=f"protocol v{P.PROTOCOL_VERSION + 1}.*flash the firmware"):
            role(SerialLick, e, ctx).open()


def test_valve_limit_above_the_firmware_hard_limit_is_refused(emu: BoardEmulator, ctx: DriverContext) -> None:
    valve = role(SerialValve, emu, ctx, max_open_ms=emu.config.hard_max_open_ms + 1)
    with pytest.raises(BoardError, match="exceeds the firmware's hard limit of 4000 ms"):
        valve.open()
    assert BoardConnection.open_ports() == []


# ---- data streams ---------------------------------------------------------------------------------
def test_encoder_counts_conserved(rig: Rig, emu: BoardEmulator) -> None:
    got: list = []
    emu.set_speed(4000.0)
    time.sleep(0.2)
    emu.set_speed(-1500.0)
    for n in (7, -3, 1000, -20000, 1):
        emu.add_counts(n)
    time.sleep(0.1)
    emu.set_speed(0.0)
    emu.sync()

    def all_in() -> bool:
        got.append(rig.ball.read())
        return sum(int(s.counts.sum()) for s in got) == emu.snapshot().encoder_total

    wait_until(all_in, what="encoder total")
    t = np.concatenate([s.t for s in got])
    assert len(t) > 50 and np.all(np.diff(t) > 0)
    assert rig.ball.health().counters["packets_lost"] == 0


def test_lick_edges_arrive_with_device_timestamps(rig: Rig, emu: BoardEmulator) -> None:
    for onset in (True, False) * 5:
        emu.lick(onset)
        time.sleep(0.003)
    emu.sync()
    edges: list = []
    wait_until(lambda: edges.extend(rig.lick.read()) or len(edges) == 10, what="10 lick edges")
    sent = emu.snapshot().licks
    assert [(e.t, e.onset) for e in edges] == [(t / 1e6, onset) for t, onset in sent]


def test_frame_clock_edges_match_the_board(rig: Rig, emu: BoardEmulator) -> None:
    emu.set_frame_rate(500.0)
    time.sleep(0.3)
    emu.set_frame_rate(0.0)
    emu.sync()
    sent = np.asarray(emu.snapshot().frames) / 1e6
    got: list = []
    wait_until(lambda: got.extend(rig.frames.read()) or len(got) >= len(sent), what="frame edges")
    assert len(sent) > 100
    np.testing.assert_array_equal(got, sent)


def test_timestamps_unwrap_across_the_uint32_rollover(ctx: DriverContext) -> None:
    cfg = EmulatorConfig(start_us=P.U32 - 150_000, frame_rate_hz=200.0)
    with BoardEmulator(cfg) as e, role(SerialFrameClock, e, ctx) as fc:
        wait_until(lambda: e.snapshot().frames and e.snapshot().frames[-1] > P.U32 + 150_000, what="rollover")
        e.set_frame_rate(0.0)
        e.sync()
        sent = np.asarray(e.snapshot().frames, dtype=float) / 1e6
        got: list = []
        wait_until(lambda: got.extend(fc.read()) or (got and got[-1] == sent[-1]), what="frames")
        # Edges from before the handshake were never sent to us; compare the common tail.
        assert sent[-1] > P.U32 / 1e6 and np.all(np.diff(got) > 0)
        np.testing.assert_array_equal(got, sent[-len(got) :])


class RestartableClock:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0


def test_clock_map_follows_a_session_clock_restarted_after_open(emu: BoardEmulator) -> None:
    clock = RestartableClock()
    fc = SerialFrameClock(SerialFrameClock.Params(port=emu.path), DriverContext(clock=clock))
    with fc:
        wait_until(lambda: fc.health().clock_fit.points >= 3, what="heartbeats")
        clock.t0 -= 100.0  # the session timeline's origin moves by 100 s (as RealClock.restart() does)
        fc.read()
        emu.frame_edges(1)
        edges: list = []
        wait_until(lambda: edges.extend(fc.read()) or edges, what="a frame edge")
        # The edge happened moments ago: mapped onto the session timeline it is close to now().
        assert abs(float(fc.clock.to_session(edges[0])) - clock.now()) < 1.0


def test_sync_pulses_are_reported(rig: Rig, emu: BoardEmulator) -> None:
    seq = rig.sync.start()
    assert rig.valve.connection.wait_ack(seq, 1.0).status == P.AckStatus.OK
    time.sleep(0.2)
    rig.sync.stop()
    rig.sync.pulse()
    emu.sync()
    time.sleep(0.05)
    emu.sync()
    sent = np.asarray(emu.snapshot().syncs) / 1e6
    got: list = []
    wait_until(lambda: got.extend(rig.sync.read()) or len(got) >= len(sent), what="sync pulses")
    assert len(sent) >= 5
    np.testing.assert_array_equal(got, sent)


def test_cue_command_reaches_the_board(rig: Rig, emu: BoardEmulator) -> None:
    ack = rig.cue.connection.wait_ack(rig.cue.play(150, 6000), 1.0)
    assert ack.status == P.AckStatus.OK and emu.snapshot().cues[-1][1:] == (150, 6000)
    with pytest.raises(ValueError, match="frequency_hz"):
        rig.cue.play(100, 5)


# ---- the valve ------------------------------------------------------------------------------------
def test_valve_pulse_is_acknowledged_and_hardware_timed(rig: Rig) -> None:
    ack = rig.valve.connection.wait_ack(rig.valve.pulse(40.0), 1.0)
    assert ack is not None and (ack.status, ack.value) == (P.AckStatus.OK, 40)
    events: list = []
    wait_until(lambda: events.extend(rig.valve.events()) or len(events) == 2, what="valve open+close")
    (t0, o0, _), (t1, o1, r1) = events
    assert (o0, o1, r1) == (True, False, P.ValveReason.PULSE_DONE)
    assert t1 - t0 == pytest.approx(0.040, abs=1e-6)  # timed by the board, not by this process


def test_max_open_time_is_enforced_by_the_board(rig: Rig) -> None:
    assert rig.valve.max_open_ms == 300
    ack = rig.valve.connection.wait_ack(rig.valve.pulse(5000.0), 1.0)
    assert (ack.status, ack.value) == (P.AckStatus.CLAMPED, 300)
    events: list = []
    wait_until(lambda: events.extend(rig.valve.events()) or len(events) == 2, what="clamped pulse")
    assert events[1][1:] == (False, P.ValveReason.MAX_OPEN)
    assert events[1][0] - events[0][0] == pytest.approx(0.300, abs=1e-6)
    # A flush opening is closed by the board itself; Python never sends the close.
    rig.valve.open_valve()
    events.clear()
    wait_until(lambda: events.extend(rig.valve.events()) or len(events) == 2, what="flush cut")
    assert events[1][1:] == (False, P.ValveReason.MAX_OPEN)
    assert events[1][0] - events[0][0] == pytest.approx(0.300, abs=1e-6)
    with pytest.raises(ValueError, match="finite"):
        rig.valve.pulse(float("nan"))


# ---- faults -------------------------------------------------------------------------------------
# (inject, fault kind, counter, the host commands the valve closed): only a lost board or link closes it;
# recoverable packet faults are counted and logged and leave a reward under way alone (issue 12).
FAULTS = {
    "garbage": (lambda e: e.inject_garbage(64), "garbage", "garbage", False),
    "partial": (lambda e: e.inject_partial(), "partial", "partial", False),
    "crc": (lambda e: e.inject_crc_error(), "crc", "crc", False),
    "reset": (lambda e: e.reset(), "device_reset", "resets", True),
    "heartbeat": (lambda e: e.pause_heartbeat(0.8), "heartbeat_lost", "heartbeat_losses", True),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_is_detected_counted_and_no_sample_lost(name: str, rig: Rig, emu: BoardEmulator) -> None:
    inject, kind, counter, closes = FAULTS[name]
    frames: list = []
    counts = 0

    def read_all() -> None:  # what the runner does every frame, fault or not
        nonlocal counts
        frames.extend(rig.frames.read())
        counts += int(rig.ball.read().counts.sum())

    emu.set_frame_rate(300.0)
    emu.set_speed(2000.0)
    rig.valve.open_valve()
    wait_until(lambda: emu.snapshot().valve and emu.snapshot().valve[-1][1], what="valve open")
    inject(emu)
    wait_until(lambda: read_all() or rig.valve.health().counters[counter] >= 1, what=f"{name} detected")
    fault = next(f for f in rig.valve.faults if f.kind == kind)
    assert fault.t > 0 and fault.count >= 1
    if closes:
        assert "valve commanded closed" in fault.message
        # The board received the close command (and with a 300 ms limit, may have cut the flush already).
        wait_until(lambda: any(a.cmd_type == T.CMD_VALVE_CLOSE for a in emu.snapshot().acks), what="close command")
    else:
        assert "valve" not in fault.message
        # The flush runs on to the board's own max-open cut: 300 ms, not cut short by line noise.
        wait_until(lambda: not emu.snapshot().valve[-1][1], what="max-open cut")
        (t0, o0, _), (t1, o1, r1) = emu.snapshot().valve[-2:]
        assert (o0, o1, r1) == (True, False, P.ValveReason.MAX_OPEN) and t1 - t0 == 300_000
        assert not any(a.cmd_type == T.CMD_VALVE_CLOSE for a in emu.snapshot().acks)
        assert rig.valve.health().counters["valve_closes_on_fault"] == 0
    assert emu.snapshot().valve[-1][1] is False
    time.sleep(0.1)
    emu.set_frame_rate(0.0)
    emu.set_speed(0.0)
    emu.sync()
    log = emu.snapshot()
    # Everything the board sent arrives: every frame edge and every encoder count.
    wait_until(
        lambda: read_all() or (len(frames) >= len(log.frames) and counts == log.encoder_sent_total),
        what="all frames and counts",
    )
    assert len(log.frames) > 20 and counts == log.encoder_sent_total > 0
    if name == "reset":  # the board clock restarted: times continue, monotonic, on the host's estimate
        assert len(frames) == len(log.frames) and np.all(np.diff(frames) > 0)
    else:
        np.testing.assert_array_equal(frames, np.asarray(log.frames) / 1e6)
    h = rig.valve.health()
    assert h.connected and h.counters["packets_lost"] == 0 and h.counters["events_lost"] == 0


def test_repeated_faults_are_logged_once_with_a_count(rig: Rig, emu: BoardEmulator) -> None:
    for i in range(1, 41):
        emu.inject_crc_error()
        wait_until(lambda n=i: rig.valve.health().counters["crc"] == n, what="each CRC error counted")
    crc = [f for f in rig.valve.faults if f.kind == "crc"]
    assert len(crc) == 1 and crc[0].count == 1  # the first at once; the repeats are summed, not listed
    rig.valve.connection._faults.flush()  # (what closing the connection does)
    crc = [f for f in rig.valve.faults if f.kind == "crc"]
    assert len(crc) == 2 and [f.count for f in crc] == [1, 39] and "39 more in" in crc[1].message


def test_unplug_is_reported_never_hangs_and_reconnects(ctx: DriverContext, tmp_path) -> None:
    link = str(tmp_path / "ttyBOARD")
    with BoardEmulator(EmulatorConfig(link=link, frame_rate_hz=200.0)) as e, Rig(e, ctx) as rig:
        e.unplug()
        wait_until(lambda: rig.ball.health().counters["unplugs"] == 1, what="unplug detected")
        h = rig.ball.health()
        assert not h.connected and any(f.kind == "unplugged" for f in h.faults)
        t0 = time.monotonic()
        assert rig.valve.pulse(10.0) == -1 and len(rig.frames.read()) >= 0
        assert time.monotonic() - t0 < 0.5  # commands to a missing port fail fast
        assert any(f.kind == "write_failed" for f in rig.valve.faults)
        e.replug()
        wait_until(lambda: rig.ball.health().connected, what="reconnect")
        c = rig.ball.health().counters
        assert c["reconnects"] >= 1 and c["resets"] >= 1
        rig.frames.read()
        wait_until(lambda: len(rig.frames.read()) > 0, what="frames after reconnect")
        ack = rig.valve.connection.wait_ack(rig.valve.pulse(5.0), 1.0)
        assert ack is not None and ack.status == P.AckStatus.OK
        ev: list = []
        wait_until(lambda: ev.extend(rig.valve.events()) or len(ev) >= 2, what="the 5 ms pulse")
        # The valve limit was configured again on the rebooted board.
        ack = rig.valve.connection.wait_ack(rig.valve.pulse(5000.0), 1.0)
        assert (ack.status, ack.value) == (P.AckStatus.CLAMPED, 300)
    assert BoardConnection.open_ports() == []


def test_self_tests_report_pass_and_fail(emu: BoardEmulator, ctx: DriverContext) -> None:
    ball = role(SerialBall, emu, ctx, counts_per_cm=40.0, check_turn_s=0.2)
    frames = role(SerialFrameClock, emu, ctx, check_s=0.2)
    valve = role(SerialValve, emu, ctx)
    assert [c.ok for c in ball.self_test()] == [False]  # not open
    with ball, frames, valve:
        assert ball.self_test()[-1].ok is False and "turn the ball" in ball.self_test()[-1].message
        emu.add_counts(12)
        assert ball.self_test()[-1].ok
        assert frames.self_test()[-1].ok is False
        emu.frame_edges(3)
        res = frames.self_test()[-1]
        assert res.ok and len(frames.read()) == 3  # the check keeps the edges for the session
        assert all(c.ok for c in valve.self_test())


def test_emulator_runs_standalone_with_patterns_and_fault_switches(tmp_path, ctx: DriverContext) -> None:
    link = tmp_path / "board"
    args = ["--link", str(link), "--speed", "2000", "--lick-rate", "40", "--frame-rate", "100"]
    args += ["--garbage-every", "0.2", "--crc-every", "0.3", "--unplug-after", "1.5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "drivers.serial_board.emulator", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        path = proc.stdout.readline().strip()
        assert path == str(link) and os.path.realpath(path).startswith("/dev/pts/")
        lick = SerialLick(SerialLick.Params(port=path), ctx)
        ball = SerialBall(SerialBall.Params(port=path, counts_per_cm=40.0), ctx)
        with lick, ball:
            licks, counts = [], 0

            def streaming_with_faults() -> bool:
                nonlocal counts
                licks.extend(lick.read())
                counts += int(ball.read().counts.sum())
                c = lick.health().counters
                return len(licks) >= 4 and counts > 0 and c["garbage"] >= 1 and c["crc"] >= 1

            wait_until(streaming_with_faults, what="licks, counts, garbage and CRC faults")
            wait_until(lambda: lick.health().counters["unplugs"] == 1, what="unplug")
        assert proc.wait(timeout=10) == 0
        assert not link.exists()  # unplugged: the device is gone
    finally:
        proc.kill()
        proc.wait()
