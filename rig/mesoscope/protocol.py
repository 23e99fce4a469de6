"""Wire protocol between the rig and the mesoscope bridge: message schema, encoding, size limits.

Every message is one ZeroMQ frame holding one UTF-8 JSON object with a protocol version ``v`` and a
``type``. Version 1 ignores unknown fields (a peer may add fields without breaking us); removing or
changing a field needs a new version. docs/mesoscope-protocol.md describes every field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
# Frame messages are ~250 bytes; the limit leaves room for start metadata and bounds memory per message.
MAX_MESSAGE_BYTES = 64 * 1024
# ZeroMQ drops a connection that sends anything larger (ZMQ_MAXMSGSIZE): protects memory before decoding.
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
# A file stem ScanImage will use on the mesoscope PC: no path separators, no traversal.
STEM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

State = Literal["idle", "starting", "acquiring"]


class ProtocolError(ValueError):
    """A message that cannot be accepted. `kind` is "oversized", "version" or "malformed"."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"{kind} message: {message}")


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    v: Literal[1] = PROTOCOL_VERSION


# ---- command channel: rig (DEALER) -> bridge (ROUTER) --------------------------------------------


class StartCmd(_Msg):
    """Start an acquisition saving to `stem`; `subscriber` is the token the rig subscribed with."""

    type: Literal["start"] = "start"
    id: int = Field(ge=0)
    stem: str = Field(pattern=STEM_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    subscriber: str = Field(default="", max_length=64)


class StopCmd(_Msg):
    type: Literal["stop"] = "stop"
    id: int = Field(ge=0)


class StatusCmd(_Msg):
    type: Literal["status"] = "status"
    id: int = Field(ge=0)


class PingCmd(_Msg):
    """`t_rig`: the rig's clock when it sent the ping (echoed back in the ack)."""

    type: Literal["ping"] = "ping"
    id: int = Field(ge=0)
    t_rig: float


Command = Annotated[StartCmd | StopCmd | StatusCmd | PingCmd, Field(discriminator="type")]


class Ack(_Msg):
    """The bridge's reply to one command (`id` is the command's id)."""

    type: Literal["ack"] = "ack"
    id: int = Field(ge=0)
    ok: bool
    error: str | None = None
    state: State = "idle"
    acquisition: int = Field(0, ge=0)
    frames: int = Field(0, ge=0)
    frame_rate_hz: float = Field(0.0, ge=0)
    planes: int = Field(0, ge=0)
    t_bridge: float = 0.0
    t_rig: float | None = None


# ---- frame stream: bridge (XPUB) -> rig (SUB) -----------------------------------------------------


class _Stream(_Msg):
    instance: str = Field(min_length=1, max_length=64)  # changes when the bridge process restarts
    seq: int = Field(ge=0)  # per instance, +1 per stream message
    t_bridge: float


class AcqStartMsg(_Stream):
    type: Literal["acq_start"] = "acq_start"
    acquisition: int = Field(ge=1)
    stem: str
    frame_rate_hz: float = Field(gt=0, le=10_000)
    planes: int = Field(ge=1, le=1000)


class FrameMsg(_Stream):
    """One imaging frame. `frame` counts from 1 within an acquisition; plane/volume count from 0."""

    type: Literal["frame"] = "frame"
    acquisition: int = Field(ge=1)
    frame: int = Field(ge=1)
    plane: int = Field(ge=0)
    volume: int = Field(ge=0)
    t_meso: float
    t_receive: float | None = None  # set by the rig on receipt, never sent


class AcqStopMsg(_Stream):
    type: Literal["acq_stop"] = "acq_stop"
    acquisition: int = Field(ge=1)
    frames: int = Field(ge=0)
    reason: str = Field(max_length=200)


class HeartbeatMsg(_Stream):
    type: Literal["heartbeat"] = "heartbeat"
    state: State


StreamMsg = Annotated[AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg, Field(discriminator="type")]

_COMMAND = TypeAdapter(Command)
_STREAM = TypeAdapter(StreamMsg)
_ACK = TypeAdapter(Ack)


def encode(msg: _Msg) -> bytes:
    data = msg.model_dump_json(exclude={"t_receive"} if isinstance(msg, FrameMsg) else None).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{msg.type} is {len(data)} bytes > {MAX_MESSAGE_BYTES}")
    return data


def _decode(data: bytes, adapter: TypeAdapter[Any], what: str) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{what} of {len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError("malformed", f"{what} is not UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed", f"{what} is JSON {type(obj).__name__}, not an object")
    if obj.get("v") != PROTOCOL_VERSION:
        got = obj.get("v")
        raise ProtocolError("version", f"{what} has v={got!r}; this side speaks v={PROTOCOL_VERSION}")
    try:
        return adapter.validate_python(obj)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise ProtocolError("malformed", f"{what}: {problems}") from None


def decode_command(data: bytes) -> StartCmd | StopCmd | StatusCmd | PingCmd:
    return _decode(data, _COMMAND, "command")


def decode_ack(data: bytes) -> Ack:
    return _decode(data, _ACK, "ack")


def decode_stream(data: bytes) -> AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg:
    return _decode(data, _STREAM, "stream message")
