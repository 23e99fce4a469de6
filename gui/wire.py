"""The app's bounded, typed decoder for everything a runner sends it (no Qt): telemetry (`state`, `event`,
`status`, `fault`, `end`) and command replies (including `hello`).

Every message goes through `decode_json` (size, nesting depth, integer size, finite floats) and then a
typed check of the fields the app uses (types, closed enums, plausible ranges; booleans are never
numbers). Anything else raises `WireError` naming what is wrong; the caller counts and drops it. Nothing
here trusts the sender: a hostile or broken runner can make the app show less, never crash it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rig.engine.records import EVENT_KINDS

MAX_MESSAGE_BYTES = 1 << 20  # a state batch of ~25 Hz is a few hundred bytes; 1 MiB covers any backlog
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_INT_DIGITS = 19  # int64 and below
MAX_BATCH = 20_000  # frames in one state batch
MAX_TEXT = 2_000  # characters of any string the app shows (longer ones are cut, not refused)
MAX_CORRIDORS = 64
STATE_COLUMNS = ("i", "t", "pos", "speed", "trial", "corridor", "grey")
TOPICS = ("state", "event", "status", "fault", "end", "hello", "control")


class WireError(ValueError):
    """A message the app refuses: what is wrong, and where."""


# ---- bytes -> JSON value ----------------------------------------------------------------------------


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"integer of {len(s)} digits")
    return int(s)


def _parse_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise WireError(f"number {s[:20]} is not finite")
    return v


def _parse_constant(s: str) -> float:
    raise WireError(f"{s} is not a number JSON allows")


def _check_shape(value: Any) -> None:
    """Bounded iterative walk: nesting depth and node count (json itself only guards the C stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        v, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise WireError(f"more than {MAX_NODES} values")
        if isinstance(v, dict):
            if depth > MAX_DEPTH:
                raise WireError(f"nested deeper than {MAX_DEPTH}")
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            if depth > MAX_DEPTH:
                raise WireError(f"nested deeper than {MAX_DEPTH}")
            stack.extend((x, depth + 1) for x in v)


def decode_json(body: bytes) -> dict[str, Any]:
    """One JSON object from bytes, within the bounds above; WireError otherwise."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(body)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except WireError:
        raise
    except RecursionError:
        raise WireError("nested too deeply to parse") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise WireError(f"not JSON: {str(e)[:120]}") from None
    if not isinstance(value, dict):
        raise WireError(f"not a JSON object but {type(value).__name__}")
    _check_shape(value)
    return value


# ---- typed fields -----------------------------------------------------------------------------------


def _where(key: str, ctx: str) -> str:
    return f"{ctx}.{key}" if ctx else key


def get_int(d: Mapping[str, Any], key: str, ctx: str = "", lo: int | None = None, hi: int | None = None,
            default: int | None = None, required: bool = False) -> int | None:
    v = d.get(key)
    if v is None:
        if required:
            raise WireError(f"{_where(key, ctx)} is missing")
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError(f"{_where(key, ctx)} must be an integer, got {type(v).__name__}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise WireError(f"{_where(key, ctx)} = {v} is outside [{lo}, {hi}]")
    return v


def get_float(d: Mapping[str, Any], key: str, ctx: str = "", lo: float | None = None, hi: float | None = None,
              default: float | None = None, required: bool = False) -> float | None:
    v = d.get(key)
    if v is None:
        if required:
            raise WireError(f"{_where(key, ctx)} is missing")
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise WireError(f"{_where(key, ctx)} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or (lo is not None and f < lo) or (hi is not None and f > hi):
        raise WireError(f"{_where(key, ctx)} = {v} is outside [{lo}, {hi}]")
    return f


def get_bool(d: Mapping[str, Any], key: str, ctx: str = "", default: bool | None = None) -> bool | None:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise WireError(f"{_where(key, ctx)} must be true or false, got {type(v).__name__}")
    return v


def get_str(d: Mapping[str, Any], key: str, ctx: str = "", default: str | None = None,
            required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise WireError(f"{_where(key, ctx)} is missing")
        return default
    if not isinstance(v, str):
        raise WireError(f"{_where(key, ctx)} must be text, got {type(v).__name__}")
    return v if len(v) <= MAX_TEXT else v[:MAX_TEXT] + "…"


def get_dict(d: Mapping[str, Any], key: str, ctx: str = "") -> dict[str, Any] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise WireError(f"{_where(key, ctx)} must be an object, got {type(v).__name__}")
    return v


def _str_list(d: Mapping[str, Any], key: str, limit: int) -> list[str]:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or len(v) > limit or not all(isinstance(x, str) for x in v):
        raise WireError(f"{key} must be a list of at most {limit} texts")
    return [x[:MAX_TEXT] for x in v]


# ---- messages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateBatch:
    """Display frames: one numpy float64 column per STATE_COLUMNS entry, all the same length."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["i"])


def _column(v: Any, name: str, integer: bool) -> list[float]:
    if not isinstance(v, list):
        raise WireError(f"state.{name} must be a list, got {type(v).__name__}")
    for x in v:
        # type() and not isinstance(): bool is an int subclass, and booleans are never numbers
        if type(x) is int or (type(x) is float and not integer):
            continue
        raise WireError(f"state.{name} holds {type(x).__name__} {str(x)[:20]!r}, not an "
                        f"{'integer' if integer else 'number'}")
    return v


def decode_state(d: Mapping[str, Any], n_corridors: int | None = None) -> StateBatch:
    cols: dict[str, np.ndarray] = {}
    n: int | None = None
    for name in STATE_COLUMNS:
        if name not in d:
            raise WireError(f"state.{name} is missing")
        values = _column(d[name], name, integer=name in ("i", "trial", "corridor", "grey"))
        if n is None:
            n = len(values)
            if n > MAX_BATCH:
                raise WireError(f"state batch of {n} frames (limit {MAX_BATCH})")
        elif len(values) != n:
            raise WireError(f"state.{name} has {len(values)} values, state.i has {n}")
        cols[name] = np.asarray(values, dtype=float)
    i = cols["i"]
    if len(i) and (i[0] < 0 or np.any(np.diff(i) <= 0)):
        raise WireError("state.i must be non-negative and increasing")
    if np.any(cols["trial"] < -1):
        raise WireError("state.trial must be >= -1 (-1: before the first trial, the imaging pre-roll)")
    top = n_corridors if n_corridors else MAX_CORRIDORS
    if np.any((cols["corridor"] < 0) | (cols["corridor"] >= top)):
        raise WireError(f"state.corridor outside 0..{top - 1}")
    if np.any((cols["grey"] != 0) & (cols["grey"] != 1)):
        raise WireError("state.grey must be 0 or 1")
    if np.any(np.diff(cols["t"]) < 0):
        raise WireError("state.t goes backwards")
    return StateBatch(cols)


@dataclass(frozen=True)
class Fault:
    level: str
    message: str
    source: str
    wall: float | None = None


def decode_fault(d: Mapping[str, Any]) -> Fault:
    return Fault(level=get_str(d, "level", "fault", "FAULT") or "FAULT",
                 message=get_str(d, "message", "fault", "") or "",
                 source=get_str(d, "source", "fault", "") or "",
                 wall=get_float(d, "wall", "fault", lo=0.0))


@dataclass(frozen=True)
class Criterion:
    """A stage's advance rule and where the session stands against it: the runner's status field `criterion`
    (rig.control.stage_status.StageFollower.criterion); absent for the last stage, which never advances."""

    trials_in_stage: int | None = None
    after_trials: int | None = None
    pending: str | None = None  # a rule was met ("trials", "criterion", "anticipatory"): the next trial advances
    # the learning criterion (rig.engine.learning): rewarded against unrewarded anticipatory licking
    measure: str | None = None  # "difference" | "dprime"; None: the stage has no learning criterion
    threshold: float | None = None
    min_trials: int | None = None
    window: int | None = None  # latest trials of each kind (criterion), or of rewarded trials (deprecated rule)
    n_rewarded: int | None = None
    n_unrewarded: int | None = None
    rewarded_fraction: float | None = None
    unrewarded_fraction: float | None = None
    value: float | None = None  # the measure; None until both kinds have min_trials trials
    learned: bool | None = None
    # the deprecated rule: anticipatory fraction over the last `window` rewarded-corridor trials
    anticipatory_fraction: float | None = None
    fraction_now: float | None = None
    rewarded_in_window: int | None = None


_MEASURES = ("difference", "dprime")
_REASONS = ("trials", "criterion", "anticipatory")


def decode_criterion(d: Mapping[str, Any] | None) -> Criterion | None:
    if d is None:
        return None
    c = "status.criterion"
    measure = get_str(d, "measure", c)
    if measure is not None and measure not in _MEASURES:
        raise WireError(f"{c}.measure must be one of {', '.join(_MEASURES)}, got {measure[:40]!r}")
    pending = get_str(d, "pending", c)
    if pending is not None and pending not in _REASONS:
        raise WireError(f"{c}.pending must be one of {', '.join(_REASONS)}, got {pending[:40]!r}")
    n = 1_000_000_000
    return Criterion(trials_in_stage=get_int(d, "trials_in_stage", c, lo=0, hi=n),
                     after_trials=get_int(d, "after_trials", c, lo=0, hi=n), pending=pending, measure=measure,
                     threshold=get_float(d, "threshold", c, lo=0.0, hi=10.0),
                     min_trials=get_int(d, "min_trials", c, lo=0, hi=n), window=get_int(d, "window", c, lo=0, hi=n),
                     n_rewarded=get_int(d, "n_rewarded", c, lo=0, hi=n),
                     n_unrewarded=get_int(d, "n_unrewarded", c, lo=0, hi=n),
                     rewarded_fraction=get_float(d, "rewarded_fraction", c, lo=0.0, hi=1.0),
                     unrewarded_fraction=get_float(d, "unrewarded_fraction", c, lo=0.0, hi=1.0),
                     value=get_float(d, "value", c, lo=-100.0, hi=100.0), learned=get_bool(d, "learned", c),
                     anticipatory_fraction=get_float(d, "anticipatory_fraction", c, lo=0.0, hi=1.0),
                     fraction_now=get_float(d, "fraction_now", c, lo=0.0, hi=1.0),
                     rewarded_in_window=get_int(d, "rewarded_in_window", c, lo=0, hi=n))


@dataclass(frozen=True)
class Mesoscope:
    alive: bool = False
    frames: int = 0
    rate_hz: float | None = None
    drops: int = 0
    rejected: int = 0
    last_frame_age_s: float | None = None
    in_gap: bool = False


def decode_mesoscope(d: Mapping[str, Any] | None) -> Mesoscope | None:
    if d is None:
        return None
    c = "status.mesoscope"
    return Mesoscope(alive=bool(get_bool(d, "alive", c, False)), frames=get_int(d, "frames", c, lo=0) or 0,
                     rate_hz=get_float(d, "rate_hz", c, lo=0.0), drops=get_int(d, "drops", c, lo=0) or 0,
                     rejected=get_int(d, "rejected", c, lo=0) or 0,
                     last_frame_age_s=get_float(d, "last_frame_age_s", c, lo=0.0),
                     in_gap=bool(get_bool(d, "in_gap", c, False)))


@dataclass(frozen=True)
class Status:
    running: bool = True
    paused: bool = False
    valve_open: bool = False
    i: int = 0
    t: float = 0.0
    missed_frames: int = 0
    free_disk_mb: float | None = None
    period_ms_p50: float | None = None
    period_ms_max: float | None = None
    drivers: dict[str, str] = field(default_factory=dict)
    mesoscope: Mesoscope | None = None
    stage: str | None = None  # the stage in force, its index, the protocol's stage count and advance criterion
    stage_index: int | None = None
    n_stages: int | None = None
    criterion: Criterion | None = None


def decode_status(d: Mapping[str, Any]) -> Status:
    c = "status"
    drivers_raw = get_dict(d, "drivers", c) or {}
    if len(drivers_raw) > 32 or not all(isinstance(v, str) for v in drivers_raw.values()):
        raise WireError("status.drivers must map at most 32 roles to driver names")
    return Status(
        running=bool(get_bool(d, "running", c, True)), paused=bool(get_bool(d, "paused", c, False)),
        valve_open=bool(get_bool(d, "valve_open", c, False)), i=get_int(d, "i", c, lo=0) or 0,
        t=get_float(d, "t", c, default=0.0) or 0.0, missed_frames=get_int(d, "missed_frames", c, lo=0) or 0,
        free_disk_mb=get_float(d, "free_disk_mb", c, lo=0.0),
        # the runner sends loop_period_ms / loop_period_max_ms (mean and largest interval since the last status)
        period_ms_p50=get_float(d, "loop_period_ms", c, lo=0.0, default=get_float(d, "period_ms_p50", c, lo=0.0)),
        period_ms_max=get_float(d, "loop_period_max_ms", c, lo=0.0, default=get_float(d, "period_ms_max", c, lo=0.0)),
        drivers={str(k)[:64]: v[:64] for k, v in drivers_raw.items()},
        mesoscope=decode_mesoscope(get_dict(d, "mesoscope", c)),
        stage=get_str(d, "stage", c), stage_index=get_int(d, "stage_index", c, lo=0, hi=10_000),
        n_stages=get_int(d, "n_stages", c, lo=1, hi=10_001),
        criterion=decode_criterion(get_dict(d, "criterion", c)),
    )


@dataclass(frozen=True)
class End:
    complete: bool | None  # None: the runner's loop crashed (it still said goodbye)
    reason: str


@dataclass(frozen=True)
class ControlChange:
    """Another client took control of the session (topic `control`)."""

    controlled_by: str | None
    before: str | None


def decode_control(d: Mapping[str, Any]) -> ControlChange:
    return ControlChange(controlled_by=get_str(d, "controlled_by", "control"), before=get_str(d, "before", "control"))


def decode_end(d: Mapping[str, Any]) -> End:
    return End(complete=get_bool(d, "complete", "end"), reason=get_str(d, "reason", "end", "") or "")


@dataclass(frozen=True)
class TelemetryEvent:
    """Engine events also come over telemetry; the app takes them from the session folder instead (the
    record), so these are only checked and counted."""

    i: int
    kind: str


def decode_event(d: Mapping[str, Any]) -> TelemetryEvent:
    kind = get_str(d, "kind", "event", required=True)
    if kind not in EVENT_KINDS:
        raise WireError(f"event.kind {kind!r} is not an event kind")
    get_dict(d, "data", "event")
    get_float(d, "t", "event")
    return TelemetryEvent(i=get_int(d, "i", "event", lo=0, required=True) or 0, kind=str(kind))


@dataclass(frozen=True)
class Limits:
    """What the rig accepts from the operator (the hello's `limits`; else from the rig config)."""

    manual_reward_ul_max: float = 50.0
    flush_s_max: float = 1.0


@dataclass(frozen=True)
class Hello:
    session: str | None
    protocol: str
    animal: str
    rig: str
    pid: int | None
    corridors: list[str]
    rewarded: list[bool]
    lengths_cm: list[float]
    frame_rate_hz: float | None
    replay_of: str | None
    controller: bool  # this client may command the session (a hello without the field: every client may)
    controlled_by: str | None
    limits: Limits | None


def decode_hello(d: Mapping[str, Any]) -> Hello:
    c = "hello"
    corridors = _str_list(d, "corridors", MAX_CORRIDORS)
    rewarded = d.get("rewarded") or []
    if not isinstance(rewarded, list) or not all(isinstance(x, bool) for x in rewarded):
        raise WireError("hello.rewarded must be a list of true/false")
    lengths = d.get("lengths_cm") or []
    if not isinstance(lengths, list) or not all(type(x) in (int, float) and 0 <= x < 1e6 for x in lengths):
        raise WireError("hello.lengths_cm must be a list of lengths")
    limits_raw = get_dict(d, "limits", c)
    limits = None
    if limits_raw is not None:
        limits = Limits(
            manual_reward_ul_max=get_float(limits_raw, "manual_reward_ul_max", "hello.limits", lo=0.0, hi=1e4,
                                           default=Limits.manual_reward_ul_max) or 0.0,
            flush_s_max=get_float(limits_raw, "flush_s_max", "hello.limits", lo=0.0, hi=3600.0,
                                  default=Limits.flush_s_max) or 0.0)
    return Hello(
        session=get_str(d, "session", c), protocol=get_str(d, "protocol", c, "") or "",
        animal=get_str(d, "animal", c, "") or "", rig=get_str(d, "rig", c, "") or "",
        pid=get_int(d, "pid", c, lo=1, hi=2**31), corridors=corridors, rewarded=list(rewarded[:MAX_CORRIDORS]),
        lengths_cm=[float(x) for x in lengths[:MAX_CORRIDORS]],
        frame_rate_hz=get_float(d, "frame_rate_hz", c, lo=0.0, hi=10_000.0), replay_of=get_str(d, "replay_of", c),
        controller=bool(get_bool(d, "controller", c, True)), controlled_by=get_str(d, "controlled_by", c),
        limits=limits,
    )


@dataclass(frozen=True)
class Reply:
    id: str | None
    ok: bool
    action: str
    error: str
    body: dict[str, Any]  # the whole (checked) reply, for the action's own fields


def decode_reply(d: Mapping[str, Any]) -> Reply:
    rid = d.get("id")
    if rid is not None and not isinstance(rid, str):
        raise WireError("reply.id must be text")
    ok = get_bool(d, "ok", "reply")
    if ok is None:
        raise WireError("reply.ok is missing")
    return Reply(id=rid, ok=ok, action=get_str(d, "action", "reply", "") or "",
                 error=get_str(d, "error", "reply", "") or "", body=dict(d))


def decode_telemetry(frames: Sequence[bytes], n_corridors: int | None = None) -> tuple[str, object]:
    """(topic, typed message) from one multipart telemetry message; WireError for anything else."""
    if len(frames) != 2:
        raise WireError(f"telemetry message of {len(frames)} parts (expected topic and body)")
    topic_b, body = frames
    try:
        topic = topic_b.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic is not ASCII") from None
    if topic not in TOPICS:
        raise WireError(f"unknown topic {topic[:20]!r}")
    d = decode_json(body)
    if topic == "state":
        return topic, decode_state(d, n_corridors)
    if topic == "event":
        return topic, decode_event(d)
    if topic == "status":
        return topic, decode_status(d)
    if topic == "fault":
        return topic, decode_fault(d)
    if topic == "end":
        return topic, decode_end(d)
    if topic == "control":
        return topic, decode_control(d)
    return topic, decode_hello(d)
