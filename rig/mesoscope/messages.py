"""Wire messages between the rig and the mesoscope bridge, and the one bounded decoder for each channel.

Every message is one ZeroMQ frame holding one UTF-8 JSON object with a protocol version ``v`` and a
``type``. Version 1 ignores unknown fields (a peer may add fields without breaking us); removing or
changing a field needs a new version. docs/mesoscope-protocol.md describes every field and limit.

Decoding is bounded before anything is built from the bytes: size, nesting depth, integer digits,
finite floats, no duplicate keys, exact types (a boolean is never a number), closed enums and ranges.
Whatever fails raises `MessageError` (and nothing else: any other exception is a bug in this module and
is wrapped too), so a receiver can count and drop it. What needs state (a frame number against the
acquisition's rate and age, sequence numbers) is checked by `rig.mesoscope.stream.StreamGuard`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION: Literal[1] = 1
# Frame messages are ~250 bytes; the limit leaves room for start metadata and bounds memory per message.
MAX_MESSAGE_BYTES = 64 * 1024
# ZeroMQ drops a connection that sends anything larger (ZMQ_MAXMSGSIZE): bounds memory before decoding.
# The link reconnects after such a drop (rig.mesoscope.link).
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
# Objects/arrays nested deeper than this are refused before parsing (start metadata needs a few levels).
MAX_DEPTH = 8
# Integers with more digits than this are refused while parsing (int64 has 19 digits).
MAX_INT_DIGITS = 19
# Every integer field is at most this (JSON-safe: exact in a double, so MATLAB's jsonencode agrees).
MAX_INT = 2**53
# Every time (s) is finite and within this of zero: a perf_counter value or an offset clock, never more.
MAX_ABS_TIME_S = 1e12
# A file stem ScanImage will use on the mesoscope PC: no path separators, no traversal.
STEM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_RATE_HZ = 10_000.0
MAX_PLANES = 1000

State = Literal["idle", "starting", "acquiring"]
ErrorKind = Literal["oversized", "too_deep", "version", "malformed", "implausible"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("oversized", "too_deep", "version", "malformed", "implausible")


class MessageError(ValueError):
    """A mesoscope wire message that cannot be accepted; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        self.kind: ErrorKind = kind
        super().__init__(f"{kind} message: {message}")


Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Positive = Annotated[int, Field(ge=1, le=MAX_INT)]
Time = Annotated[float, Field(ge=-MAX_ABS_TIME_S, le=MAX_ABS_TIME_S)]


class _Msg(BaseModel):
    # strict: no coercion (a string is never a number, a boolean never an int or float); finite floats.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True, allow_inf_nan=False)

    v: Literal[1] = PROTOCOL_VERSION


# ---- command channel: rig (DEALER) -> bridge (ROUTER) --------------------------------------------


class StartCmd(_Msg):
    """Start an acquisition saving to `stem`; `subscriber` is the token the rig subscribed with."""

    type: Literal["start"] = "start"
    id: Count
    stem: str = Field(pattern=STEM_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    subscriber: str = Field(default="", pattern=r"^[0-9a-f]{0,64}$")


class StopCmd(_Msg):
    type: Literal["stop"] = "stop"
    id: Count


class StatusCmd(_Msg):
    type: Literal["status"] = "status"
    id: Count


class PingCmd(_Msg):
    """`t_rig`: the rig's clock when it sent the ping (echoed back in the ack)."""

    type: Literal["ping"] = "ping"
    id: Count
    t_rig: Time


Command = Annotated[StartCmd | StopCmd | StatusCmd | PingCmd, Field(discriminator="type")]


class Ack(_Msg):
    """The bridge's reply to one command (`id` is the command's id)."""

    type: Literal["ack"] = "ack"
    id: Count
    ok: bool
    error: str | None = Field(None, max_length=1000)
    state: State = "idle"
    acquisition: Count = 0
    frames: Count = 0
    frame_rate_hz: float = Field(0.0, ge=0, le=MAX_RATE_HZ)
    planes: int = Field(0, ge=0, le=MAX_PLANES)
    t_bridge: Time = 0.0
    t_rig: Time | None = None


# ---- frame stream: bridge (XPUB) -> rig (SUB) -----------------------------------------------------


class _Stream(_Msg):
    instance: str = Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")  # changes when the bridge process restarts
    seq: Count  # per instance, +1 per stream message
    t_bridge: Time


class AcqStartMsg(_Stream):
    type: Literal["acq_start"] = "acq_start"
    acquisition: Positive
    stem: str = Field(max_length=128)
    frame_rate_hz: float = Field(gt=0, le=MAX_RATE_HZ)
    planes: int = Field(ge=1, le=MAX_PLANES)


class FrameMsg(_Stream):
    """One imaging frame. `frame` is ScanImage's number, from 1 within an acquisition; plane/volume
    count from 0. `t_receive` is the rig's clock on receipt: set by the link, never sent."""

    type: Literal["frame"] = "frame"
    acquisition: Positive
    frame: Positive
    plane: int = Field(ge=0, lt=MAX_PLANES)
    volume: Count
    t_meso: Time
    t_receive: float | None = None


class AcqStopMsg(_Stream):
    type: Literal["acq_stop"] = "acq_stop"
    acquisition: Positive
    frames: Count
    reason: str = Field(max_length=200)


class HeartbeatMsg(_Stream):
    type: Literal["heartbeat"] = "heartbeat"
    state: State


StreamMsg = Annotated[AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg, Field(discriminator="type")]

_COMMAND: TypeAdapter[StartCmd | StopCmd | StatusCmd | PingCmd] = TypeAdapter(Command)
_STREAM: TypeAdapter[AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg] = TypeAdapter(StreamMsg)
_ACK: TypeAdapter[Ack] = TypeAdapter(Ack)


def encode(msg: _Msg) -> bytes:
    data = msg.model_dump_json(exclude={"t_receive"} if isinstance(msg, FrameMsg) else None).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("oversized", f"{getattr(msg, 'type', '?')} is {len(data)} bytes > {MAX_MESSAGE_BYTES}")
    return data


# ---- the bounded JSON reader ---------------------------------------------------------------------

# A JSON string token (escapes included). Used only to skip strings when measuring the nesting depth:
# the alternation is unambiguous, so matching is linear in the message length.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[^\[\]{}]+")


class _Refused(Exception):
    """Raised from inside json.loads hooks; carries the reason out of the parser."""


def _depth_ok(text: str, limit: int) -> bool:
    """True when no array/object in `text` nests deeper than `limit` (strings skipped). For text that
    is not valid JSON this may over-count, which only refuses something the parser would refuse too."""
    if text.count("[") + text.count("{") <= limit:  # the usual case, and cheap
        return True
    depth = 0
    for c in _BRACKETS.sub("", _STRING.sub("", text)):
        if c in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def _int(s: str) -> int:
    if len(s) - (s[0] == "-") > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(s)} digits (at most {MAX_INT_DIGITS})")
    return int(s)


def _float(s: str) -> float:
    if len(s) > 400:
        raise _Refused(f"a number of {len(s)} characters")
    x = float(s)
    if not math.isfinite(x):
        raise _Refused(f"a number out of range ({s[:40]})")
    return x


def _constant(s: str) -> Any:
    raise _Refused(f"{s} (only finite numbers)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:  # which one would count is ambiguous: refuse rather than guess
            raise _Refused(f"duplicate key {k[:40]!r}")
        out[k] = v
    return out


def read_object(data: bytes, what: str) -> dict[str, Any]:
    """Bytes -> a JSON object of protocol version 1, within every limit; raises MessageError only."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("oversized", f"{what} of {len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MessageError("malformed", f"{what} is not UTF-8: {e}") from None
    if not _depth_ok(text, MAX_DEPTH):
        raise MessageError("too_deep", f"{what} nests arrays/objects deeper than {MAX_DEPTH}")
    try:
        obj = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant,
                         object_pairs_hook=_object)
    except _Refused as e:
        raise MessageError("malformed", f"{what} holds {e}") from None
    except json.JSONDecodeError as e:
        raise MessageError("malformed", f"{what} is not JSON: {e}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:  # defence in depth
        raise MessageError("malformed", f"{what} could not be parsed: {type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise MessageError("malformed", f"{what} is JSON {type(obj).__name__}, not an object")
    v = obj.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:  # exact: `true` is not version 1
        shown = repr(v)[:40] if v is None or isinstance(v, int | float | str) else type(v).__name__
        raise MessageError("version", f"{what} has v={shown}; this side speaks v={PROTOCOL_VERSION}")
    return obj


def _validate(data: bytes, adapter: TypeAdapter[Any], what: str) -> Any:
    obj = read_object(data, what)
    try:
        return adapter.validate_python(obj)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise MessageError("malformed", f"{what}: {problems}"[:500]) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:  # defence in depth
        raise MessageError("malformed", f"{what} could not be validated: {type(e).__name__}") from None


def decode_command(data: bytes) -> StartCmd | StopCmd | StatusCmd | PingCmd:
    """The bridge's decoder for the rig's commands."""
    return _validate(data, _COMMAND, "command")


def decode_ack(data: bytes) -> Ack:
    """The rig's decoder for the bridge's acks."""
    return _validate(data, _ACK, "ack")


def decode_stream(data: bytes) -> AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg:
    """The rig's decoder for frame-stream messages (stateless part; see rig.mesoscope.stream)."""
    return _validate(data, _STREAM, "stream message")
