"""The control channel's messages: one bounded decoder, and typed requests the runner accepts.

Whatever arrives (from the app, a script, or anything that got hold of a credential) is decoded here
before anything acts on it: at most `MAX_MESSAGE_BYTES`, nesting at most `MAX_DEPTH`, integers of at most
`MAX_INT_DIGITS` digits, no NaN or infinity, a JSON object at the top. A request must then match one of
the request models exactly: known action, known fields, right types (a boolean is never a number).
Anything else raises `WireError`, which the runner answers, counts and logs, and never dies of.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_INT_DIGITS = 18
MAX_NOTE_CHARS = 4000


class WireError(ValueError):
    """A message that is not acceptable: says what is wrong with it, briefly."""


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _constant(name: str) -> float:
    raise WireError(f"{name} is not a finite number")


def _depth(data: bytes) -> int:
    """The deepest nesting of [ and { outside strings (scanned before parsing: no recursion)."""
    depth = deepest = 0
    in_str = escaped = False
    for b in data:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def decode_object(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """A JSON object from untrusted bytes, within the limits above; WireError otherwise."""
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes (at most {max_bytes})")
    if _depth(data) > MAX_DEPTH:
        raise WireError(f"message nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(data.decode("utf-8"), parse_int=_int, parse_constant=_constant)
    except WireError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise WireError(f"not JSON: {type(e).__name__}: {str(e)[:120]}") from None
    if not isinstance(obj, dict):
        raise WireError(f"a JSON {type(obj).__name__}, not an object")
    return obj


def encode(obj: Any) -> bytes:
    return json.dumps(obj, default=_jsonable, allow_nan=False).encode()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


# ---- requests ----------------------------------------------------------------------------------------

class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    id: Annotated[str, Field(max_length=128)] | int | None = None
    client: Annotated[str, Field(max_length=128)] = ""  # the sender's id (rig.control.client), for control


class Hello(_Request):
    action: Literal["hello"]
    label: Annotated[str, Field(max_length=200)] = ""  # who is asking, shown to other clients


class TakeControl(_Request):
    action: Literal["take_control"]
    label: Annotated[str, Field(max_length=200)] = ""


class ManualReward(_Request):
    action: Literal["manual_reward"]
    volume_ul: float | None = Field(None, gt=0)


class Pause(_Request):
    action: Literal["pause"]


class Resume(_Request):
    action: Literal["resume"]


class Stop(_Request):
    action: Literal["stop"]


class ValveOpen(_Request):
    action: Literal["valve_open"]
    close_after_s: float | None = Field(None, gt=0)


class ValveClose(_Request):
    action: Literal["valve_close"]


class Note(_Request):
    action: Literal["note"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_CHARS)]


Request = Annotated[
    Hello | TakeControl | ManualReward | Pause | Resume | Stop | ValveOpen | ValveClose | Note,
    Field(discriminator="action"),
]
_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)
ACTIONS = ("hello", "take_control", "manual_reward", "pause", "resume", "stop", "valve_open", "valve_close", "note")
# Requests that change the session: only the controlling client may send them (closing the valve is always
# allowed: it is always safe).
CONTROL_ACTIONS = frozenset({"manual_reward", "pause", "resume", "stop", "valve_open", "note"})


def parse_request(data: bytes) -> tuple[Request | None, Any, str]:
    """(request, its id, "") or (None, the id if one could be read, what is wrong)."""
    try:
        obj = decode_object(data)
    except WireError as e:
        return None, None, str(e)
    rid = obj.get("id")
    if not (rid is None or (isinstance(rid, str) and len(rid) <= 128) or (isinstance(rid, int)
                                                                         and not isinstance(rid, bool))):
        rid = None
    action = obj.get("action")
    if action not in ACTIONS:
        shown = action if isinstance(action, str) and len(action) <= 40 else type(action).__name__
        return None, rid, f"unknown action {shown!r}; known: {list(ACTIONS)}"
    try:
        return _REQUEST.validate_python(obj), rid, ""
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"][1:]) or "request"
        return None, rid, f"{action}: {where}: {err['msg']}"
