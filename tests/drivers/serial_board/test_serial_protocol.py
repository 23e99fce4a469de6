"""Wire protocol of the serial board: CRC, COBS framing, packet layouts, closed enums, resync, unwrapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial_board import protocol as P
from drivers.serial_board.clockfit import ClockFitter

T = P.PacketType


def test_crc16_is_ccitt_false() -> None:
    assert P.crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE


@given(st.binary(max_size=700))
def test_cobs_round_trip_has_no_zero_bytes(data: bytes) -> None:
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert P.cobs_decode(enc) == data


SAMPLE_BODIES = {
    T.HELLO: P.Hello(2, 1, 2, 3, 0xDEADBEEF, 1000, 4000, P.ResetCause.BOOT, -42, 7, 8, 9, 3, 0xBEEF,
                     P.Mcu.ATMEGA2560, P.FrameEdge.FALLING, 500, 1000),
    T.HEARTBEAT: P.Heartbeat(2, P.LINE_VALVE | P.LINE_FRAME, 0, 1, 2, 3, 4),
    T.ENCODER: P.Encoder(-(1 << 31)),
    T.LICK: P.Lick(1, 0xFFFFFFFF),
    T.FRAME: P.Frame(123456),
    T.SYNC: P.Sync(3),
    T.VALVE: P.Valve(0, P.ValveReason.MAX_OPEN),
    T.ACK: P.Ack(65535, T.CMD_VALVE_PULSE, P.AckStatus.CLAMPED, 200),
    T.ERROR: P.Error(P.ErrorCode.BAD_CRC, 4),
    T.CMD_HELLO: P.CmdHello(1),
    T.CMD_VALVE_PULSE: P.CmdValvePulse(37_500),
    T.CMD_VALVE_OPEN: P.Empty(),
    T.CMD_VALVE_CLOSE: P.Empty(),
    T.CMD_CUE: P.CmdCue(200, 4000),
    T.CMD_SYNC_PULSE: P.CmdSyncPulse(10),
    T.CMD_SYNC_RANDOM: P.CmdSyncRandom(1000, 5000, 10),
    T.CMD_CONFIG: P.CmdConfig(1000, 1000, 100, P.FrameEdge.KEEP, 0),
}


def test_every_packet_type_has_a_layout_and_round_trips() -> None:
    assert set(SAMPLE_BODIES) == set(T)
    for ptype, body in SAMPLE_BODIES.items():
        wire = P.encode_packet(ptype, 513, 0xFFFFFFFE, tuple(body))
        assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
        pkt = P.decode_frame(wire[1:-1])
        assert (pkt.type, pkt.seq, pkt.t_us, pkt.body) == (ptype, 513, 0xFFFFFFFE, body)


def _stream() -> tuple[bytes, list[P.Packet]]:
    pkts = [P.Packet(T.FRAME, i, 1000 * i, P.Frame(i)) for i in range(20)]
    return b"".join(P.encode_packet(p.type, p.seq, p.t_us, tuple(p.body)) for p in pkts), pkts


def test_decoder_survives_byte_by_byte_feeding() -> None:
    wire, pkts = _stream()
    dec = P.FrameDecoder()
    got = [p for i in range(len(wire)) for p in dec.feed(wire[i : i + 1])]
    assert got == pkts
    assert dec.counts.garbage == dec.counts.partial == dec.counts.crc == 0


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 19), st.binary(min_size=1, max_size=60)), max_size=5))
def test_decoder_resyncs_after_garbage_without_losing_a_packet(junk: list[tuple[int, bytes]]) -> None:
    wire, pkts = _stream()
    frames = wire.split(b"\x00\x00")  # packet boundaries: each packet ends and the next starts with 0
    for where, noise in sorted(junk, reverse=True):
        frames.insert(where + 1, b"\x00" + noise + b"\x00")
    got = P.FrameDecoder().feed(b"\x00\x00".join(frames))
    assert got == pkts


def test_decoder_classifies_partial_crc_and_garbage() -> None:
    good = P.encode_packet(T.HEARTBEAT, 5, 99, (0, 0, 0, 0, 0, 0, 0))
    raw = bytearray(P.cobs_decode(good[1:-1]))
    raw[-1] ^= 1
    bad_crc = b"\x00" + P.cobs_encode(bytes(raw)) + b"\x00"
    dec = P.FrameDecoder()
    got = dec.feed(good[: len(good) // 2] + bad_crc + b"\x00hello noise" + good)
    assert [p.seq for p in got] == [5]
    assert (dec.counts.partial, dec.counts.crc, dec.counts.garbage) == (1, 1, 1)
    assert "CRC" in dec.last_error["crc"]


def test_decoder_drops_an_endless_run_without_delimiters() -> None:
    dec = P.FrameDecoder()
    dec.feed(b"\x00" + b"\x01" * 5000)
    assert dec.counts.garbage == 1
    wire, pkts = _stream()
    assert dec.feed(wire) == pkts


def test_decoder_skips_the_tail_of_a_packet_it_joined_midway_without_an_error() -> None:
    wire, pkts = _stream()
    dec = P.FrameDecoder()
    got = dec.feed(wire[7:])  # a board already streaming: we start listening inside packet 0
    assert got == pkts[1:]
    assert dec.counts.skipped_bytes > 0 and dec.counts.garbage == dec.counts.partial == 0
    dec.resync()  # after a reopen the same holds again
    assert dec.feed(wire[3:]) == pkts[1:] and dec.counts.garbage == dec.counts.partial == 0


def _hello(**kw: int) -> bytes:
    body = SAMPLE_BODIES[T.HELLO]._replace(**kw)
    return P.encode_packet(T.HELLO, 1, 2, tuple(body))


@pytest.mark.parametrize(
    "wire",
    [
        _hello(cause=7),
        _hello(mcu=9),
        _hello(frame_edge=2),
        P.encode_packet(T.LICK, 1, 2, (2, 5)),
        P.encode_packet(T.VALVE, 1, 2, (1, 3)),
        P.encode_packet(T.VALVE, 1, 2, (2, 0)),
        P.encode_packet(T.ACK, 1, 2, (1, 0x01, 0, 0)),  # an ACK for a board packet type
        P.encode_packet(T.ACK, 1, 2, (1, T.CMD_CUE, 9, 0)),
        P.encode_packet(T.ERROR, 1, 2, (0, 0)),
        P.encode_packet(T.HEARTBEAT, 1, 2, (0, 0x10, 0, 0, 0, 0, 0)),
    ],
)
def test_out_of_range_enums_in_valid_packets_are_invalid_frames(wire: bytes) -> None:
    dec = P.FrameDecoder()
    assert dec.feed(wire) == []
    assert dec.counts.invalid == 1 and dec.counts.packets == 0
    assert "not one of" in dec.last_error["invalid"] or "unknown bits" in dec.last_error["invalid"]


def test_decoded_enum_fields_are_enum_members() -> None:
    (pkt,) = P.FrameDecoder().feed(P.encode_packet(T.VALVE, 1, 2, (0, 2)))
    assert pkt.body.reason is P.ValveReason.MAX_OPEN
    (pkt,) = P.FrameDecoder().feed(P.encode_packet(T.ACK, 1, 2, (4, T.CMD_CUE, 2, 0)))
    assert (pkt.body.cmd_type, pkt.body.status) == (T.CMD_CUE, P.AckStatus.BAD_ARGS)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=45), st.integers(0, 0xFFFF), st.integers(0, P.U32 - 1))
def test_any_valid_crc_packet_decodes_or_is_counted_never_raises(ptype: int, payload: bytes, seq: int, t: int) -> None:
    dec = P.FrameDecoder()
    got = dec.feed(P.encode_raw(ptype, seq, t, payload))
    c = dec.counts
    assert len(got) + c.garbage + c.partial + c.crc + c.invalid == 1
    for pkt in got:  # a decoded packet is fully typed: its enum fields are members of their enums
        assert isinstance(pkt.type, P.PacketType)
        for value in pkt.body:
            assert isinstance(value, int) and not isinstance(value, bool)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_decoder_buffer_stays_bounded_on_any_input(chunks: list[bytes]) -> None:
    dec = P.FrameDecoder()
    for chunk in chunks:
        dec.feed(chunk)
        assert len(dec._buf) <= P.MAX_FRAME


def test_unwrap_takes_the_value_nearest_the_previous_stamp() -> None:
    W = P.U32
    assert P.unwrap_near(5, W - 1) == W + 5  # a wrap forwards
    assert P.unwrap_near(W - 5, W + 20) == W - 5  # a stamp a little older, across the wrap, stays behind
    assert P.unwrap_near(1000, 7 * W + 20) == 7 * W + 1000
    assert P.unwrap_near((1 << 31) + 10, 0) == (1 << 31) + 10 - W  # beyond half a period: taken as past


def test_wrapping_counter_differences() -> None:
    assert P.wrap_delta_i32(-(1 << 31), (1 << 31) - 1) == 1
    assert P.wrap_delta_i32(-5, 5) == -10
    assert P.wrap_delta_u32(2, 0xFFFFFFFF) == 3


def test_clock_fit_recovers_drift_and_minimum_latency() -> None:
    rng = np.random.default_rng(1)
    fitter = ClockFitter(min_span_s=5.0)
    scale, offset = 1.00004, 12.5
    dev = np.arange(0, 60, 0.1)
    latency = 0.0005 + rng.exponential(0.002, dev.size)
    for d, lat in zip(dev, latency, strict=True):
        fitter.add(d, offset + scale * d + lat)
    fit = fitter.fit()
    assert fit is not None
    assert fit.clock.scale == pytest.approx(scale, abs=2e-6)
    # The lower envelope sits at the fastest packet: late by about the minimum latency, never early.
    mapped = fit.clock.to_session(dev)
    truth = offset + scale * dev
    assert np.all(mapped - truth > 0) and np.all(mapped - truth < 0.002)
