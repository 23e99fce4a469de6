"""The typed shape of every record in a session's JSON files (docs/data-format.md), checked by the reader.

One schema per JSON-lines file: the keys the writer (rig.datalog.writer) writes, each with its type; a
record with a missing, extra or mistyped key is damage. `data` objects (events, operator actions,
mesoscope messages) keep the keys their producer chose, but every key a reader of the session uses has
its type checked when present (a `volume_ul` is a finite number, a `corridor` a string, ...).

Strict throughout: a boolean is never a number, a string never a number, and the numbers a reader
computes with (times, volumes, clock maps) are finite. The reader validates and then keeps the record
exactly as decoded, so types (1 vs 1.0) are what the file says (rig replay --verify compares them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Required

from pydantic import ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from rig.engine.records import EVENT_KINDS

MAX_ITERATION = 2**53  # far past any session (60 Hz for 4.7 million years), and exact as a float
MAX_NAME = 256  # a kind, source, action or corridor name

_CLOSED = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
_OPEN = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

Iteration = Annotated[int, Field(ge=0, le=MAX_ITERATION)]
Finite = float  # finite under allow_inf_nan=False
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0, lt=2**63)]  # a record count: fits the int64 it is compared with
Index = Annotated[int, Field(ge=-1, lt=2**31)]  # trial, corridor and stage indices (-1: none)
# In `data` objects (the payload, not the record's structure) a number the engine wrote as an integer is
# accepted as any finite number in range: replay --verify, not the reader, tells 0 from 0.0.
DataIndex = Annotated[int | float, Field(ge=-1, lt=2**31)]
DataCount = Annotated[int | float, Field(ge=0, lt=2**63)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
EventKindName = Literal[EVENT_KINDS]  # type: ignore[valid-type]


# ---- events.jsonl ----------------------------------------------------------------------------------


# Keys of an event's `data` that readers use (rig.engine.machine writes them), by kind: trial_start /
# trial_end: corridor ... stage; cue: position_cm, duration_ms, frequency_hz; lick: anticipatory, iti;
# reward / reward_withheld: volume_ul, duration_ms, rule, source; stage_advance: from, to, from_name,
# to_name, reason; session_end: reason, trials; session_start: kind, protocol, seed. (Functional form:
# "from" is a keyword.)
EventData = TypedDict(
    "EventData",
    {
        "corridor": str, "corridor_index": DataIndex, "next_corridor_index": DataIndex | None,
        "rewarded": bool, "probe": bool, "cue_position_cm": Finite | None, "zone_start_cm": Finite | None,
        "stage": DataIndex, "stage_name": str | None, "anticipatory": bool, "iti": bool, "rewards": DataCount,
        "rewards_due": DataCount, "manual_rewards": DataCount, "licks": DataCount, "position_cm": Finite,
        "duration_ms": NonNegative, "frequency_hz": NonNegative, "volume_ul": NonNegative, "rule": str | None,
        "source": str, "reason": str, "trials": DataCount, "from": DataIndex, "to": DataIndex,
        "from_name": str, "to_name": str, "kind": str, "protocol": str, "seed": DataCount,
    },
    total=False,
)
EventData.__pydantic_config__ = _OPEN  # type: ignore[attr-defined]


class EventRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    kind: EventKindName
    trial: Index
    position_cm: Finite
    data: EventData


# ---- commands.jsonl --------------------------------------------------------------------------------


class CommandRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    kind: Literal["valve", "cue"]
    duration_ms: NonNegative
    volume_ul: NonNegative
    frequency_hz: NonNegative
    source: Literal["task", "manual"]


# ---- operator.jsonl --------------------------------------------------------------------------------


class OperatorData(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    volume_ul: NonNegative
    close_after_s: NonNegative
    reason: str


class OperatorRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    action: Name
    data: OperatorData


# ---- mesoscope.jsonl -------------------------------------------------------------------------------


class MesoscopeData(TypedDict, total=False):
    """Keys rig.mesoscope.session_hook and rig.sync.pulses write: a message exchanged ({dir, channel, msg},
    rejected ones {dir, channel, error, raw}) or one of the hook's notes (imaging_ready, warning,
    imaging_resumed, start_failed, link_event, sync_schedule, sync_pulse, sync_emitted)."""

    __pydantic_config__ = _OPEN  # type: ignore[misc]
    dir: Literal["in", "out"]
    channel: str
    msg: Any
    error: str
    raw: str
    stem: str
    measured_rate_hz: Finite
    expected_rate_hz: Finite
    message: str
    gap_s: Finite
    text: str
    link_events: list[str]
    seed: DataCount
    min_interval_s: Finite
    max_interval_s: Finite
    t_pulse: list[Finite]
    t_scheduled: list[Finite]
    t_device: list[Finite]
    t_session: list[Finite]


class MesoscopeRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    kind: Name
    data: MesoscopeData


# ---- valve.jsonl ------------------------------------------------------------------------------------


class ValveOpenRecord(TypedDict):
    """An opening as the valve guard decided it (rig.runner.valve_guard.Delivery.record)."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    kind: Literal["open"]
    t: Finite
    source: Literal["task", "manual", "flush"]
    requested_ms: Finite
    sent_ms: NonNegative
    volume_ul: NonNegative
    requested_ul: NonNegative
    outcome: Literal["delivered", "cut", "refused"]
    reason: str


class ValveCloseRecord(TypedDict):
    """The early end of an opening (valve_close while it was open): the water it did not give."""

    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    kind: Literal["close"]
    t: Finite
    reason: str
    unused_ul: NonNegative


ValveRecord = Annotated[ValveOpenRecord | ValveCloseRecord, Field(discriminator="kind")]


# ---- faults.jsonl, clocks.jsonl --------------------------------------------------------------------


class FaultRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    source: Name
    kind: Name
    message: str


class ClockRecord(TypedDict):
    __pydantic_config__ = _CLOSED  # type: ignore[misc]
    i: Iteration
    t: Finite
    source: Name
    offset: Finite
    scale: Finite


# ---- header.json: the parts of the protocol and config that readers look into -----------------------
# SessionHeader keeps `protocol` and `config` as the dicts they were dumped from (an old session's protocol
# need not validate against today's Protocol model); these shapes check, when present, the keys a reader
# indexes or computes with, so no reader meets a corridor that is not an object or a rate that is a string.

Positive = Annotated[float, Field(gt=0)]


class CorridorShape(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    name: Required[str]
    texture_length_cm: Positive
    grey_length_cm: NonNegative
    rewarded: bool
    probe: bool


class StageShape(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    name: Required[str]


class ProtocolShape(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    name: str
    kind: str
    corridors: Annotated[list[CorridorShape], Field(min_length=1)]
    stages: list[StageShape]


class DriverShape(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    type: str
    counts_per_cm: Positive
    sample_rate_hz: Positive
    rate_hz: Positive
    max_open_ms: Positive


class ConfigShape(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    name: str
    frame_rate_hz: Positive
    min_free_disk_mb: NonNegative
    drivers: dict[str, DriverShape]
    valve_calibration: dict[str, Any]


class HeaderShapes(TypedDict):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    protocol: ProtocolShape
    config: ConfigShape


# ---- footer.json, clock.json -----------------------------------------------------------------------


class Footer(TypedDict, total=False):
    """footer.json. `complete` and `reason` are always written; the other keys are checked when present."""

    __pydantic_config__ = _OPEN  # type: ignore[misc]
    complete: Required[bool]
    reason: Required[str]
    end_time: str
    counts: dict[str, Count]
    imaging_frames: Count
    summary: dict[str, Any]


class ClockOrigin(TypedDict):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    monotonic_s: Finite
    unix_s: Finite


class SyncReport(TypedDict, total=False):
    """sync_report.json (rig.mesoscope.session_hook): the keys `rig info` reports, checked when present."""

    __pydantic_config__ = _OPEN  # type: ignore[misc]
    frames: Count
    frames_dropped: Count
    counts_agree: bool | None
    flag_counts: dict[str, Any]
    imaging_gaps: list[Any]


LINE_SCHEMAS: dict[str, TypeAdapter[Any]] = {
    "events.jsonl": TypeAdapter(EventRecord),
    "commands.jsonl": TypeAdapter(CommandRecord),
    "operator.jsonl": TypeAdapter(OperatorRecord),
    "mesoscope.jsonl": TypeAdapter(MesoscopeRecord),
    "faults.jsonl": TypeAdapter(FaultRecord),
    "clocks.jsonl": TypeAdapter(ClockRecord),
    "valve.jsonl": TypeAdapter(ValveRecord),
}
FOOTER_SCHEMA: TypeAdapter[Any] = TypeAdapter(Footer)
HEADER_SHAPES: TypeAdapter[Any] = TypeAdapter(HeaderShapes)
SYNC_REPORT_SCHEMA: TypeAdapter[Any] = TypeAdapter(SyncReport)
CLOCK_SCHEMA: TypeAdapter[Any] = TypeAdapter(ClockOrigin)
