"""Wire protocol of the corridor microcontroller board (see docs/serial-protocol.md).

A packet is `type u8 | seq u16 | t_us u32 | payload | crc16`, little-endian, CRC-16/CCITT-FALSE over
everything before it. On the wire every packet is COBS-encoded and sent as `0x00 <cobs> 0x00`, so a
receiver resynchronises on the next zero byte after any garbage or truncated packet.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

PROTOCOL_VERSION = 1
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


class Heartbeat(NamedTuple):
    rollovers: int  # high word of the 64-bit device microsecond clock
    lines: int  # bit 0 valve open, bit 1 lick contact, bit 2 sync output high
    tx_dropped: int
    rx_errors: int


LINE_VALVE, LINE_LICK, LINE_SYNC = 1, 2, 4


class Encoder(NamedTuple):
    total: int  # running count since boot, int32 wrapping


class Lick(NamedTuple):
    onset: int
    count: int  # lick edges since boot


class Frame(NamedTuple):
    count: int  # frame-clock edges since boot


class Sync(NamedTuple):
    count: int  # sync pulses since boot


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


LAYOUTS: dict[PacketType, tuple[struct.Struct, type[tuple]]] = {
    PacketType.HELLO: (struct.Struct("<BBBBIHHBiIIIHH"), Hello),
    PacketType.HEARTBEAT: (struct.Struct("<HBHH"), Heartbeat),
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
    PacketType.CMD_CONFIG: (struct.Struct("<HHH"), CmdConfig),
}
assert all(s.size <= MAX_PAYLOAD for s, _ in LAYOUTS.values())


class ProtocolError(ValueError):
    """A frame that is not a valid packet; `kind` is 'garbage', 'partial' or 'crc'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    seq: int
    t_us: int
    body: tuple


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
    """Strict COBS decode; raises ProtocolError('partial') when a block runs past the end."""
    out = bytearray()
    i, n = 0, len(frame)
    while i < n:
        code = frame[i]
        if code == 0:
            raise ProtocolError("garbage", "zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise ProtocolError("partial", f"COBS block of {code - 1} bytes runs past the frame end")
        out += frame[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_packet(ptype: PacketType, seq: int, t_us: int, body: tuple = ()) -> bytes:
    """The bytes to put on the wire for one packet, delimiters included."""
    layout, _ = LAYOUTS[ptype]
    raw = HEADER.pack(ptype, seq & 0xFFFF, t_us & 0xFFFFFFFF) + layout.pack(*body)
    raw += CRC.pack(crc16(raw))
    return b"\x00" + cobs_encode(raw) + b"\x00"


def decode_frame(frame: bytes) -> Packet:
    """One frame (the bytes between two zeros) -> Packet; raises ProtocolError saying why not."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError("garbage", f"frame of {len(frame)} bytes is longer than any packet")
    try:
        raw = cobs_decode(frame)
    except ProtocolError as e:
        # A truncated packet still starts with a known type byte; anything else is noise.
        starts_like_packet = len(frame) > 1 and frame[0] > 1 and frame[1] in _TYPES
        raise ProtocolError("partial" if starts_like_packet else "garbage", str(e)) from None
    known = len(raw) > 0 and raw[0] in _TYPES
    if len(raw) < MIN_PACKET:
        raise ProtocolError("partial" if known else "garbage", f"packet of {len(raw)} bytes is too short")
    if not known:
        raise ProtocolError("garbage", f"unknown packet type 0x{raw[0]:02x}")
    ptype = PacketType(raw[0])
    layout, shape = LAYOUTS[ptype]
    expected = MIN_PACKET + layout.size
    if len(raw) != expected:
        kind = "partial" if len(raw) < expected else "garbage"
        raise ProtocolError(kind, f"{ptype.name} packet of {len(raw)} bytes, expected {expected}")
    (crc,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if crc != crc16(raw[:-2]):
        raise ProtocolError("crc", f"{ptype.name} packet with a bad CRC")
    _, seq, t_us = HEADER.unpack_from(raw)
    return Packet(ptype, seq, t_us, shape(*layout.unpack_from(raw, HEADER.size)))


_TYPES = frozenset(int(t) for t in PacketType)


@dataclass(slots=True)
class DecodeCounts:
    packets: int = 0
    garbage: int = 0  # frames that are not packets (bytes on the line that are noise)
    partial: int = 0
    crc: int = 0
    garbage_bytes: int = 0


class FrameDecoder:
    """Splits a byte stream into packets; bad frames are counted by kind and skipped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.counts = DecodeCounts()
        self.last_error: dict[str, str] = {}  # kind -> message of the latest such error

    def feed(self, data: bytes) -> list[Packet]:
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
            except ProtocolError as e:
                self._count_error(e.kind, len(frame), str(e))
        self.counts.packets += len(out)
        return out

    def _count_error(self, kind: str, nbytes: int, message: str) -> None:
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        self.counts.garbage_bytes += nbytes
        self.last_error[kind] = message


class TimeUnwrapper:
    """uint32 microsecond stamps -> monotonic 64-bit microseconds.

    Packets arrive in order and the board sends a heartbeat at least every few hundred ms, far less than
    the 71.6 min wrap period, so a stamp smaller than the previous one means exactly one wrap. Heartbeats
    carry the board's own wrap count, which `anchor` uses to correct the epoch after any gap.
    """

    def __init__(self) -> None:
        self._last = -1  # last unwrapped stamp

    def reset(self) -> None:
        self._last = -1

    def update(self, t_us: int) -> int:
        if self._last < 0:
            self._last = t_us
            return t_us
        # The unwrapped value nearest the previous one: a wrap forwards, or a stamp a few us older
        # than the previous packet's (inputs and outputs are queued separately) just before a wrap.
        full = (self._last - (self._last % U32)) + t_us
        if full - self._last > U32 // 2:
            full -= U32
        elif self._last - full > U32 // 2:
            full += U32
        self._last = full
        return full

    def anchor(self, rollovers: int, t_us: int) -> int:
        self._last = rollovers * U32 + t_us
        return self._last


def wrap_delta_i32(new: int, old: int) -> int:
    """Difference of two int32 running counters, correct across the int32 wrap."""
    return ((new - old + (1 << 31)) % U32) - (1 << 31)


def wrap_delta_u32(new: int, old: int) -> int:
    return (new - old) % U32
