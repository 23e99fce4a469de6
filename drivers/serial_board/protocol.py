"""Wire protocol of the corridor microcontroller board (see docs/serial-protocol.md), version 2.

A packet is `type u8 | seq u16 | t_us u32 | payload | crc16`, little-endian, CRC-16/CCITT-FALSE over
everything before it. On the wire every packet is COBS-encoded and sent as `0x00 <cobs> 0x00`, so a
receiver resynchronises on the next zero byte after any garbage or truncated packet.

The decoder is bounded: a frame longer than any packet is dropped, the buffer never holds more than one
frame, and every enumerated field of a board packet is checked against its closed set (an out-of-range
value is an `invalid` frame, never an exception later).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BHI")
CRC = struct.Struct("<H")
MAX_PAYLOAD = 40
MIN_PACKET = HEADER.size + CRC.size
MAX_PACKET = MIN_PACKET + MAX_PAYLOAD
# A COBS frame is at most one byte longer per 254 data bytes; anything longer is garbage.
MAX_FRAME = MAX_PACKET + 2
U32 = 1 << 32


class PacketType(IntEnum):
    # device -> host
    HELLO = 0x01
    HEARTBEAT = 0x02
    ENCODER = 0x03
    LICK = 0x04
    FRAME = 0x05
    SYNC = 0x06
    VALVE = 0x07
    ACK = 0x08
    ERROR = 0x09
    # host -> device
    CMD_HELLO = 0x81
    CMD_VALVE_PULSE = 0x82
    CMD_VALVE_OPEN = 0x83
    CMD_VALVE_CLOSE = 0x84
    CMD_CUE = 0x85
    CMD_SYNC_PULSE = 0x86
    CMD_SYNC_RANDOM = 0x87
    CMD_CONFIG = 0x88


class ResetCause(IntEnum):
    BOOT = 0  # the board (re)started: sequence numbers and counters restart
    REQUESTED = 1  # answer to CMD_HELLO


class ValveReason(IntEnum):
    COMMAND = 0  # opened by CMD_VALVE_PULSE / CMD_VALVE_OPEN, closed by CMD_VALVE_CLOSE
    PULSE_DONE = 1
    MAX_OPEN = 2  # the firmware cut the opening at its maximum open time


class AckStatus(IntEnum):
    OK = 0
    CLAMPED = 1  # accepted, but the value was cut to the board's limit (value = what is used)
    BAD_ARGS = 2
    UNKNOWN = 3


class FrameEdge(IntEnum):
    FALLING = 0  # a frame starts at the falling edge of the frame clock (the default)
    RISING = 1
    KEEP = 0xFF  # CMD_CONFIG: leave the board's setting


class Mcu(IntEnum):
    OTHER = 0
    ATMEGA2560 = 1  # Arduino Mega 2560
    ATMEGA328P = 2  # Arduino Uno


class ErrorCode(IntEnum):
    BAD_FRAME = 1  # a host frame failed COBS decoding or was the wrong length
    BAD_CRC = 2
    UNKNOWN_COMMAND = 3
    TX_OVERFLOW = 4  # detail = packets the board had to drop because the link was full


# Payloads: one NamedTuple per packet type, with its struct layout below.
class Hello(NamedTuple):
    protocol: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    board_id: int
    max_open_ms: int
    hard_max_open_ms: int
    cause: int
    encoder_total: int
    lick_count: int
    frame_count: int
    sync_count: int
    rollovers: int  # high word of the device clock, so the first stamps unwrap correctly
    boot_id: int  # random at every boot: a changed boot_id means the board restarted
    mcu: int  # Mcu
    frame_edge: int  # FrameEdge in force
    lick_debounce_us: int
    encoder_period_us: int


class Heartbeat(NamedTuple):
    rollovers: int  # high word of the 64-bit device microsecond clock
    lines: int  # LINE_* bits
    events_dropped: int  # events lost to a full event queue on the board, since boot (uint16, wrapping)
    tx_waits: int  # packets that had to wait for room in the board's serial buffer (link saturated)
    rx_errors: int  # bad frames the board received from the host
    enc_errors: int  # quadrature steps the board missed (both lines changed between two interrupts)
    lick_glitches: int  # lick-line level changes shorter than the debounce time (rejected)


LINE_VALVE, LINE_LICK, LINE_SYNC, LINE_FRAME = 1, 2, 4, 8


class Encoder(NamedTuple):
    total: int  # running count since boot, int32 wrapping


class Lick(NamedTuple):
    onset: int
    total: int  # accepted lick edges since boot


class Frame(NamedTuple):
    total: int  # frame-clock edges since boot


class Sync(NamedTuple):
    total: int  # sync pulses since boot


class Valve(NamedTuple):
    open: int
    reason: int


class Ack(NamedTuple):
    cmd_seq: int
    cmd_type: int
    status: int
    value: int


class Error(NamedTuple):
    code: int
    detail: int


class Empty(NamedTuple):
    pass


class CmdHello(NamedTuple):
    protocol: int


class CmdValvePulse(NamedTuple):
    duration_us: int


class CmdCue(NamedTuple):
    duration_ms: int
    frequency_hz: int


class CmdSyncPulse(NamedTuple):
    width_ms: int


class CmdSyncRandom(NamedTuple):
    min_interval_ms: int  # 0 stops the random pulse train
    max_interval_ms: int
    width_ms: int


class CmdConfig(NamedTuple):
    max_open_ms: int  # 0 = keep; the board never exceeds its hard_max_open_ms
    encoder_period_us: int  # 0 = keep
    heartbeat_ms: int  # 0 = keep
    frame_edge: int  # FrameEdge (KEEP = 0xFF)
    lick_debounce_us: int  # 0 = keep; the board keeps it within 50-20000 us


Body = (
    Hello | Heartbeat | Encoder | Lick | Frame | Sync | Valve | Ack | Error | Empty | CmdHello | CmdValvePulse
    | CmdCue | CmdSyncPulse | CmdSyncRandom | CmdConfig
)

LAYOUTS: dict[PacketType, tuple[struct.Struct, type[Body]]] = {
    PacketType.HELLO: (struct.Struct("<BBBBIHHBiIIIHHBBHH"), Hello),
    PacketType.HEARTBEAT: (struct.Struct("<HBHHHHH"), Heartbeat),
    PacketType.ENCODER: (struct.Struct("<i"), Encoder),
    PacketType.LICK: (struct.Struct("<BI"), Lick),
    PacketType.FRAME: (struct.Struct("<I"), Frame),
    PacketType.SYNC: (struct.Struct("<I"), Sync),
    PacketType.VALVE: (struct.Struct("<BB"), Valve),
    PacketType.ACK: (struct.Struct("<HBBH"), Ack),
    PacketType.ERROR: (struct.Struct("<BH"), Error),
    PacketType.CMD_HELLO: (struct.Struct("<B"), CmdHello),
    PacketType.CMD_VALVE_PULSE: (struct.Struct("<I"), CmdValvePulse),
    PacketType.CMD_VALVE_OPEN: (struct.Struct("<"), Empty),
    PacketType.CMD_VALVE_CLOSE: (struct.Struct("<"), Empty),
    PacketType.CMD_CUE: (struct.Struct("<HH"), CmdCue),
    PacketType.CMD_SYNC_PULSE: (struct.Struct("<H"), CmdSyncPulse),
    PacketType.CMD_SYNC_RANDOM: (struct.Struct("<HHH"), CmdSyncRandom),
    PacketType.CMD_CONFIG: (struct.Struct("<HHHBH"), CmdConfig),
}
assert all(s.size <= MAX_PAYLOAD for s, _ in LAYOUTS.values())
BOARD_TYPES = frozenset(t for t in PacketType if t < 0x80)  # what a board may send
COMMAND_TYPES = frozenset(t for t in PacketType if t >= 0x80)


def wire_size(ptype: PacketType) -> int:
    """Bytes one packet of this type takes on the wire (COBS code byte and both delimiters included)."""
    return MIN_PACKET + LAYOUTS[ptype][0].size + 3


def _closed(value: int, allowed: frozenset[int], what: str) -> None:
    if value not in allowed:
        raise PacketError("invalid", f"{what} {value} is not one of {sorted(allowed)}")


_BOOL = frozenset((0, 1))
_CAUSES = frozenset(int(c) for c in ResetCause)
_MCUS = frozenset(int(m) for m in Mcu)
_EDGES = frozenset((int(FrameEdge.FALLING), int(FrameEdge.RISING)))
_REASONS = frozenset(int(r) for r in ValveReason)
_STATUSES = frozenset(int(a) for a in AckStatus)
_CODES = frozenset(int(c) for c in ErrorCode)
_COMMANDS = frozenset(int(c) for c in COMMAND_TYPES)


def _check_fields(body: Body) -> Body:
    """Closed enums of board packets; returns the body with those fields as enum members.

    Host commands are not checked here: the board (and the emulator) answer bad arguments with an ACK.
    """
    if isinstance(body, Hello):
        _closed(body.cause, _CAUSES, "HELLO cause")
        _closed(body.mcu, _MCUS, "HELLO mcu")
        _closed(body.frame_edge, _EDGES, "HELLO frame_edge")
        return body._replace(cause=ResetCause(body.cause), mcu=Mcu(body.mcu), frame_edge=FrameEdge(body.frame_edge))
    if isinstance(body, Heartbeat):
        if body.lines > 0x0F:
            raise PacketError("invalid", f"HEARTBEAT lines 0x{body.lines:02x} has unknown bits")
    elif isinstance(body, Lick):
        _closed(body.onset, _BOOL, "LICK onset")
    elif isinstance(body, Valve):
        _closed(body.open, _BOOL, "VALVE open")
        _closed(body.reason, _REASONS, "VALVE reason")
        return body._replace(reason=ValveReason(body.reason))
    elif isinstance(body, Ack):
        _closed(body.cmd_type, _COMMANDS, "ACK command type")
        _closed(body.status, _STATUSES, "ACK status")
        return body._replace(cmd_type=PacketType(body.cmd_type), status=AckStatus(body.status))
    elif isinstance(body, Error):
        _closed(body.code, _CODES, "ERROR code")
        return body._replace(code=ErrorCode(body.code))
    return body


class PacketError(ValueError):
    """A frame that is not a valid packet; `kind` is 'garbage', 'partial', 'crc' or 'invalid'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    seq: int
    t_us: int
    body: Body


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result holds no zero byte."""
    parts = data.split(b"\x00")
    if all(len(p) < 254 for p in parts):
        # The common case (every packet is short): one block per zero-separated run.
        return b"".join(bytes((len(p) + 1,)) + p for p in parts)
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b:
            out.append(b)
            code += 1
        if not b or code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(frame: bytes) -> bytes:
    """Strict COBS decode; raises PacketError('partial') when a block runs past the end."""
    out = bytearray()
    i, n = 0, len(frame)
    while i < n:
        code = frame[i]
        if code == 0:
            raise PacketError("garbage", "zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise PacketError("partial", f"COBS block of {code - 1} bytes runs past the frame end")
        out += frame[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_packet(ptype: PacketType, seq: int, t_us: int, body: tuple[int, ...] | Body = ()) -> bytes:
    """The bytes to put on the wire for one packet, delimiters included."""
    layout, _ = LAYOUTS[ptype]
    return encode_raw(int(ptype), seq, t_us, layout.pack(*body))


def encode_raw(ptype: int, seq: int, t_us: int, payload: bytes) -> bytes:
    """A packet with a valid CRC around any type byte and payload (tests craft hostile packets with it)."""
    raw = HEADER.pack(ptype & 0xFF, seq & 0xFFFF, t_us & 0xFFFFFFFF) + payload
    raw += CRC.pack(crc16(raw))
    return b"\x00" + cobs_encode(raw) + b"\x00"


def decode_frame(frame: bytes) -> Packet:
    """One frame (the bytes between two zeros) -> Packet; raises PacketError saying why not."""
    if len(frame) > MAX_FRAME:
        raise PacketError("garbage", f"frame of {len(frame)} bytes is longer than any packet")
    try:
        raw = cobs_decode(frame)
    except PacketError as e:
        # A truncated packet still starts with a known type byte; anything else is noise.
        starts_like_packet = len(frame) > 1 and frame[0] > 1 and frame[1] in _TYPES
        raise PacketError("partial" if starts_like_packet else "garbage", str(e)) from None
    known = len(raw) > 0 and raw[0] in _TYPES
    if len(raw) < MIN_PACKET:
        raise PacketError("partial" if known else "garbage", f"packet of {len(raw)} bytes is too short")
    if not known:
        raise PacketError("garbage", f"unknown packet type 0x{raw[0]:02x}")
    ptype = PacketType(raw[0])
    layout, shape = LAYOUTS[ptype]
    expected = MIN_PACKET + layout.size
    if len(raw) != expected:
        kind = "partial" if len(raw) < expected else "garbage"
        raise PacketError(kind, f"{ptype.name} packet of {len(raw)} bytes, expected {expected}")
    (crc,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if crc != crc16(raw[:-2]):
        raise PacketError("crc", f"{ptype.name} packet with a bad CRC")
    _, seq, t_us = HEADER.unpack_from(raw)
    body = shape(*layout.unpack_from(raw, HEADER.size))
    if ptype in BOARD_TYPES:
        body = _check_fields(body)
    return Packet(ptype, seq, t_us, body)


_TYPES = frozenset(int(t) for t in PacketType)


@dataclass(slots=True)
class DecodeCounts:
    packets: int = 0
    garbage: int = 0  # frames that are not packets (bytes on the line that are noise)
    partial: int = 0
    crc: int = 0
    invalid: int = 0  # right length and CRC, but a field outside its closed set
    garbage_bytes: int = 0
    skipped_bytes: int = 0  # bytes before the first delimiter after a (re)start: the tail of a packet


ERROR_KINDS = ("garbage", "partial", "crc", "invalid")


class FrameDecoder:
    """Splits a byte stream into packets; bad frames are counted by kind and skipped.

    After `resync()` (and at the start) the bytes before the first zero are the tail of a packet the
    board was sending when we started listening: they are skipped silently, not counted as garbage.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._synced = False
        self.counts = DecodeCounts()
        self.last_error: dict[str, str] = {}  # kind -> message of the latest such error

    def resync(self) -> None:
        self._buf.clear()
        self._synced = False

    def feed(self, data: bytes) -> list[Packet]:
        if not self._synced:
            cut = data.find(b"\x00")
            if cut < 0:
                self.counts.skipped_bytes += len(data)
                return []
            self.counts.skipped_bytes += cut
            data = data[cut:]
            self._synced = True
        self._buf += data
        *frames, rest = bytes(self._buf).split(b"\x00")
        self._buf = bytearray(rest)
        if len(self._buf) > MAX_FRAME:
            # No delimiter for longer than any packet: noise; keep only what could start a packet.
            self._count_error("garbage", len(self._buf) - MAX_FRAME, "no frame delimiter")
            del self._buf[:-MAX_FRAME]
        out = []
        for frame in frames:
            if not frame:
                continue
            try:
                out.append(decode_frame(frame))
            except PacketError as e:
                self._count_error(e.kind, len(frame), str(e))
        self.counts.packets += len(out)
        return out

    def _count_error(self, kind: str, nbytes: int, message: str) -> None:
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        self.counts.garbage_bytes += nbytes
        self.last_error[kind] = message


def unwrap_near(t_us: int, last: int) -> int:
    """The 64-bit value of a uint32 stamp nearest the previous unwrapped stamp `last`.

    Packets arrive in order and heartbeats come every 100 ms, far inside the 71.6 min wrap period, so
    the nearest value is a wrap forwards, or a stamp a little older than the previous packet's (events
    wait in the board's queue) just before a wrap. Whether that value is plausible at all is the
    connection's check (it compares it with the time elapsed on the host).
    """
    full = (last - (last % U32)) + t_us
    if full - last > U32 // 2:
        full -= U32
    elif last - full > U32 // 2:
        full += U32
    return full


def wrap_delta_i32(new: int, old: int) -> int:
    """Difference of two int32 running counters, correct across the int32 wrap."""
    return ((new - old + (1 << 31)) % U32) - (1 << 31)


def wrap_delta_u32(new: int, old: int) -> int:
    return (new - old) % U32
