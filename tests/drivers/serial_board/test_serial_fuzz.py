"""Hostile input on the serial link (issue 11), over a real pty: arbitrary bytes, valid-CRC packets with
arbitrary fields and enums, replayed packets, heartbeats with a wrong rollover count. After every input
the reader thread is alive, the link still connected, and the streams hold exactly what the board
really sent: no phantom lick or frame, no lost or moved sample. Each test is bounded in time.

Not covered, by design: a forgery with the next sequence number and a plausible time is indistinguishable
from the board without authentication; the port is opened exclusively so that no other process can write
into the link.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.registry import DriverContext
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import SEQ_WINDOW, BoardConnection, BoardError
from drivers.serial_board.driver import SerialBall, SerialFrameClock, SerialLick, SerialValve
from drivers.serial_board.emulator import BoardEmulator, EmulatorConfig
from tests.support.fuzz_tally import FuzzTallies, Tally
from tests.support.waiting import MonoClock, wait_until

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
T = P.PacketType
# The reader's counters of what it turned away (each a run of bytes or a packet), as tallied per boundary.
REFUSALS = ("garbage", "partial", "crc", "invalid", "out_of_sequence", "bad_time", "unexpected")


@dataclass
class Link:
    emu: BoardEmulator
    ball: SerialBall
    lick: SerialLick
    frames: SerialFrameClock
    valve: SerialValve
    got_frames: list[float] = field(default_factory=list)
    got_licks: list[tuple[float, bool]] = field(default_factory=list)
    got_valve: list = field(default_factory=list)
    counts: int = 0
    onset: bool = False
    tally: Tally | None = None  # where check() counts what it saw (set by count_into)
    _refusals_at_start: dict[str, int] = field(default_factory=dict)
    _lost_counted: int = 0

    def count_into(self, tally: Tally) -> Tally:
        self.tally = tally
        self._refusals_at_start = {k: self.valve.health().counters[k] for k in REFUSALS}
        return tally

    def count_refusals(self) -> None:
        """The reader's refusals since count_into, by reason: what it counted, not what was sent."""
        assert self.tally is not None
        c = self.valve.health().counters
        for k in REFUSALS:
            if n := c[k] - self._refusals_at_start[k]:
                self.tally.refused += n
                self.tally.other[k] += n

    def read(self) -> None:
        self.got_frames += self.frames.read().tolist()
        self.got_licks += [(e.t, e.onset) for e in self.lick.read()]
        self.got_valve += self.valve.events()
        self.counts += int(self.ball.read().counts.sum())

    def check(self) -> None:
        """A genuine frame, lick edge and count after the hostile input: all of it, and only it, arrives."""
        self.onset = not self.onset
        self.emu.frame_edges(1)
        self.emu.lick(self.onset)
        self.emu.add_counts(3)
        self.emu.sync()
        time.sleep(0.003)  # the count goes out on the next encoder period
        self.emu.sync()
        log = self.emu.snapshot()
        try:
            wait_until(lambda: self.read() or (len(self.got_frames) >= len(log.frames) and len(self.got_licks)
                                               >= len(log.licks) and self.counts >= log.encoder_sent_total),
                       what="the genuine events")  # fmt: skip
        except AssertionError:
            if self.tally is not None:
                self.tally.hangs += 1
            raise
        time.sleep(0.01)
        self.read()
        if self.tally is not None:  # against the emulator's log of what the board really sent, so far
            lost = (max(0, len(log.frames) - len(self.got_frames)) + max(0, len(log.licks) - len(self.got_licks))
                    + max(0, log.encoder_sent_total - self.counts))
            self.tally.lose(max(0, lost - self._lost_counted))
            self._lost_counted = max(lost, self._lost_counted)
            phantom = (max(0, len(self.got_frames) - len(log.frames)) + max(0, len(self.got_licks) - len(log.licks))
                       + len(self.got_valve))
            self.tally.other["phantom"] = max(self.tally.other["phantom"], phantom)
            if not self.valve.health().reader_alive:
                self.tally.crashes += 1
        np.testing.assert_array_equal(self.got_frames, np.asarray(log.frames) / 1e6)
        assert self.got_licks == [(t / 1e6, on) for t, on in log.licks]
        assert self.got_valve == [] and self.counts == log.encoder_sent_total
        h = self.valve.health()
        assert h.reader_alive and h.connected
        assert h.counters["events_lost"] == 0


@pytest.fixture
def link() -> Iterator[Link]:
    ctx = DriverContext(clock=MonoClock())
    with BoardEmulator(EmulatorConfig()) as emu:
        roles = (
            SerialBall(SerialBall.Params(port=emu.path, counts_per_cm=1.0), ctx),
            SerialLick(SerialLick.Params(port=emu.path), ctx),
            SerialFrameClock(SerialFrameClock.Params(port=emu.path), ctx),
            SerialValve(SerialValve.Params(port=emu.path), ctx),
        )
        for r in roles:
            r.open()
        try:
            yield Link(emu, *roles)
        finally:
            for r in reversed(roles):
                r.close()
    assert BoardConnection.open_ports() == []


@pytest.mark.timeout(90)
def test_arbitrary_bytes_never_kill_the_reader_nor_make_an_event(link: Link, fuzz_tally: FuzzTallies) -> None:
    tally = link.count_into(fuzz_tally("serial: arbitrary bytes", "bytes"))

    @FUZZ
    @given(st.binary(min_size=1, max_size=400))
    def inner(data: bytes) -> None:
        link.emu.inject_raw(data)
        tally.tried += len(data)
        tally.other["injections"] += 1
        link.check()

    inner()
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    c = link.valve.health().counters
    assert c["garbage"] + c["partial"] + c["crc"] + c["invalid"] > 0


BOARD_TYPES = sorted(int(t) for t in P.BOARD_TYPES)


@st.composite
def hostile_packets(draw: st.DrawFn) -> tuple[int, bytes, int, int]:
    """(type, payload, seq_ahead, t_offset_us) of a valid-CRC packet that must not be believed: out of the
    sequence window, or stamped far from the board's clock, or with an out-of-range enum, or not a board
    packet at all; the payload is the type's size or anything."""
    ptype = draw(st.sampled_from(BOARD_TYPES) | st.integers(0, 255))
    size = P.LAYOUTS[T(ptype)][0].size if ptype in P.BOARD_TYPES or ptype in P.COMMAND_TYPES else 4
    payload = draw(st.binary(min_size=size, max_size=size) | st.binary(max_size=45))
    if draw(st.booleans()):  # replayed, old or from far ahead
        seq_ahead, t_offset = draw(st.integers(SEQ_WINDOW, 0xFFFF)), draw(st.integers(0, P.U32 - 1))
    else:  # in sequence, but from another time
        seq_ahead, t_offset = draw(st.integers(0, SEQ_WINDOW - 1)), draw(st.integers(2_000_000, P.U32 - 2_000_000))
    return ptype, payload, seq_ahead, t_offset


@pytest.mark.timeout(90)
def test_valid_crc_packets_with_arbitrary_fields_are_rejected_not_believed(link: Link,
                                                                           fuzz_tally: FuzzTallies) -> None:
    tally = link.count_into(fuzz_tally("serial: valid-CRC hostile packets", "packets"))

    @FUZZ
    @given(st.lists(hostile_packets(), min_size=1, max_size=5))
    def inner(packets: list[tuple[int, bytes, int, int]]) -> None:
        for ptype, payload, seq_ahead, t_offset in packets:
            link.emu.inject_packet(ptype, payload, seq_ahead=seq_ahead, t_offset_us=t_offset)
            tally.tried += 1
        link.check()

    inner()
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    c = link.valve.health().counters
    assert c["out_of_sequence"] + c["bad_time"] + c["invalid"] + c["unexpected"] > 0
    assert c["resets"] == 0  # no claimed reboot was believed


@pytest.mark.timeout(60)
def test_out_of_range_enums_are_counted_not_fatal(link: Link, fuzz_tally: FuzzTallies) -> None:
    tally = link.count_into(fuzz_tally("serial: out-of-range enums", "packets"))
    link.emu.inject_packet(T.VALVE, bytes((1, 7)))  # reason 7 does not exist
    link.emu.inject_packet(T.LICK, struct.pack("<BI", 9, 1))
    link.emu.inject_packet(T.ACK, struct.pack("<HBBH", 0, 0x81, 42, 0))
    tally.tried += 3
    link.check()
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    h = link.valve.health()
    assert h.counters["invalid"] == 3 and [f.kind for f in h.faults] == ["invalid"]


@pytest.mark.timeout(90)
def test_replayed_packets_make_no_phantom_events(link: Link, fuzz_tally: FuzzTallies) -> None:
    link.emu.set_frame_rate(200.0)  # plenty of real frame packets to replay
    link.emu.lick(True)
    link.emu.lick(False)
    time.sleep(0.3)
    link.emu.set_frame_rate(0.0)  # (then the streams stand still between the checks)
    # Counted from here: the genuine frames above are the ground truth the replays must not add to.
    tally = link.count_into(fuzz_tally("serial: replayed packets", "bursts"))

    @FUZZ
    @given(st.integers(1, 40), st.integers(0, 150))
    def inner(count: int, back: int) -> None:
        link.emu.replay(count, back)
        tally.tried += 1  # a burst of up to `count` packets sent before
        link.check()

    inner()
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    assert link.valve.health().counters["out_of_sequence"] > 0


@pytest.mark.timeout(90)
def test_a_wrong_rollover_count_moves_no_sample(link: Link, fuzz_tally: FuzzTallies) -> None:
    link.emu.set_frame_rate(100.0)
    time.sleep(0.2)
    link.emu.set_frame_rate(0.0)
    tally = link.count_into(fuzz_tally("serial: wrong rollover heartbeats", "packets"))

    @FUZZ
    @given(st.integers(1, 0xFFFF))
    def inner(wraps: int) -> None:
        link.emu.bad_rollover_heartbeat(wraps)
        tally.tried += 1
        link.check()
        assert link.valve.health().clock.scale == pytest.approx(1.0, abs=1e-3)

    inner()
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    c = link.valve.health().counters
    assert c["bad_time"] >= 1 and any(f.kind == "bad_rollover" for f in link.valve.faults)
    # Every frame kept its place: none was moved by 2**32 us (71.6 minutes).
    assert np.all(np.diff(link.got_frames) > 0) and np.all(np.diff(link.got_frames) < 1.0)


@pytest.mark.timeout(60)
def test_a_replayed_boot_hello_is_not_believed(link: Link, fuzz_tally: FuzzTallies) -> None:
    tally = link.count_into(fuzz_tally("serial: replayed boot HELLO", "packets"))
    old = link.emu._hello_body(P.ResetCause.BOOT, 1000)  # a BOOT HELLO of another (earlier) boot
    old = (*old[:13], (old[13] + 1) & 0xFFFF, *old[14:])
    layout = P.LAYOUTS[T.HELLO][0]
    link.emu.inject_packet(T.HELLO, layout.pack(*old), seq_ahead=-5 & 0xFFFF, t_offset_us=0)
    tally.tried += 1
    link.check()  # the board, asked, answers with its real boot_id: the claim is dropped, nothing held lost
    link.count_refusals()
    assert tally.crashes == tally.hangs == tally.lost == 0 and tally.other["phantom"] == 0, tally
    h = link.valve.health()
    assert h.counters["resets"] == 0 and any(f.kind == "unexpected_hello" for f in h.faults)
    assert not any(f.kind == "device_reset" for f in h.faults)


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread we kill
def test_the_reader_survives_an_internal_error_and_a_dead_reader_is_noticed(link: Link,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    conn = link.valve.connection
    real = conn._dispatch
    calls = {"n": 0}

    def flaky(pkt: P.Packet, t_host: float) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("a bug in a packet handler")
        real(pkt, t_host)

    monkeypatch.setattr(conn, "_dispatch", flaky)
    wait_until(lambda: conn.counters.reader_errors == 1, what="the reader error")
    monkeypatch.setattr(conn, "_dispatch", real)
    link.emu.frame_edges(1)
    link.emu.sync()
    wait_until(lambda: link.read() or link.got_frames, what="a frame after the error")
    assert conn._thread is not None and conn._thread.is_alive()

    # If the thread dies anyway, the next read() notices: a fault, the valve commanded closed, an error.
    link.valve.open_valve()
    wait_until(lambda: link.emu.snapshot().valve, what="valve open")

    def die(pkt: P.Packet, t_host: float) -> None:
        raise SystemExit("the reader thread is killed")

    monkeypatch.setattr(conn, "_dispatch", die)
    wait_until(lambda: not conn._thread.is_alive(), what="the reader thread to die")
    with pytest.raises(BoardError, match="the reader thread is killed"):
        link.frames.read()
    h = link.valve.health()
    assert not h.reader_alive and not h.ok and any(f.kind == "reader_died" for f in h.faults)
    assert "valve commanded closed" in next(f for f in h.faults if f.kind == "reader_died").message
    wait_until(lambda: any(a.cmd_type == T.CMD_VALVE_CLOSE for a in link.emu.snapshot().acks), what="valve close")
