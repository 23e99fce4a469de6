"""Read a session folder back: numpy structured arrays for the binary streams, dicts for the JSON lines.

The on-disk format is described in docs/data-format.md. This module also holds the format's constants
(file names, record layouts) so that the writer (rig.datalog.writer) and the reader share one definition.

The reader is the session format's bounded decoder: whatever a folder holds, `Session.open` returns a
session whose every record has the documented type, or raises SessionError naming the file (and line or
record) and what is wrong. Files are opened and JSON decoded within limits (rig.datalog.decode); JSON
records are checked against their schemas (rig.datalog.schema) and the header against SessionHeader; the
header's record layouts must be the format's; binary streams are refused when they hold more records than
a session of their length can have (so a sparse 100 GB file is never allocated) or times that are not
finite.

Crash tolerance: a session killed mid-write may end in a partial binary record or a partial JSON line.
Those tails are dropped and the file is listed in `Session.trimmed`; they never raise. A damaged
footer.json or clock.json (written atomically, so damaged only after the fact) is a warning: the session
reads as incomplete.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydantic import TypeAdapter, ValidationError

from rig.datalog.decode import (
    MAX_DOCUMENT_BYTES,
    MAX_JSONL_BYTES,
    MAX_LINE_BYTES,
    SessionError,
    decode_json,
    file_size,
    open_regular,
    read_document,
)
from rig.datalog.header import FORMAT, FORMAT_VERSION, SessionHeader
from rig.datalog.schema import CLOCK_SCHEMA, FOOTER_SCHEMA, HEADER_SHAPES, LINE_SCHEMAS

__all__ = [
    "BINARY_FIELDS", "CLOCK", "DEFAULT_INPUT_RATE_HZ", "DTYPES", "FLAG_BITS", "FOOTER", "HEADER", "JSONL_FILES",
    "WALL_CLOCK_FILES", "Session", "SessionError", "frame_flag", "input_rate_hz", "parse_header", "plausible_records",
    "read_binary", "read_document", "read_footer", "read_header", "read_jsonl", "read_table",
]

HEADER = "header.json"
FOOTER = "footer.json"
CLOCK = "clock.json"

# Binary streams: fixed-size little-endian records, no file header (layout is in header.json).
BINARY_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "frames.bin": (
        ("i", "<i8"),
        ("t", "<f8"),
        ("trial", "<i4"),
        ("corridor", "<i2"),
        ("stage", "<i2"),
        ("position_cm", "<f8"),
        ("position_cum_cm", "<f8"),
        ("ball_speed_cm_s", "<f8"),
        ("virtual_speed_cm_s", "<f8"),
        ("cue_position_cm", "<f8"),
        ("zone_start_cm", "<f8"),
        ("rewards_in_trial", "<i4"),
        ("flags", "<u1"),
    ),
    "ball.bin": (("i", "<i8"), ("t", "<f8"), ("counts", "<i8"), ("cm", "<f8")),
    "licks.bin": (("i", "<i8"), ("t", "<f8"), ("onset", "<u1")),
    "frame_clock.bin": (("i", "<i8"), ("frame", "<i8"), ("t", "<f8")),
    "timing.bin": (("i", "<i8"), ("t_wall", "<f8"), ("work_s", "<f8"), ("latency_s", "<f8")),
}
JSONL_FILES = ("events.jsonl", "commands.jsonl", "operator.jsonl", "mesoscope.jsonl", "faults.jsonl", "clocks.jsonl",
               "valve.jsonl")
# Files whose content depends on wall-clock time; every other data file is byte-identical for
# identical inputs.
WALL_CLOCK_FILES = (HEADER, FOOTER, CLOCK, "timing.bin")

# Bits of frames.bin `flags`.
FLAG_BITS = {"moving": 1, "in_grey": 2, "cue_played": 4, "done": 8}


# ---- limits --------------------------------------------------------------------------------------------
# A binary stream holds at most RATE_FACTOR records per second of its rate over the session's length
# (frames.bin's last time) plus a margin; more is damage (a sparse or extended file) and is refused before
# anything is allocated. The rates: frames.bin and timing.bin the header's frame rate; the input streams
# their driver's configured sample rate (sample_rate_hz or rate_hz), at least DEFAULT_INPUT_RATE_HZ.
MAX_SESSION_S = 7 * 24 * 3600.0  # the longest protocol end.max_duration_s
RATE_FACTOR = 4.0
MARGIN_S = 60.0
MARGIN_RECORDS = 100_000
DEFAULT_INPUT_RATE_HZ = 1000.0
MAX_INPUT_RATE_HZ = 10e6
JSONL_BYTES_PER_S = 1 << 20  # JSON lines per second of session, far above the writer's (~1 kB/s)
JSONL_MARGIN_BYTES = 64 << 20
_INPUT_ROLES = {"ball.bin": "ball", "licks.bin": "lick", "frame_clock.bin": "frame_clock"}
# Columns that hold finite numbers in every record the writer writes (times, distances, loop timing).
_FINITE_COLUMNS = {
    "frames.bin": ("t", "position_cm", "position_cum_cm", "ball_speed_cm_s", "virtual_speed_cm_s"),
    "ball.bin": ("t", "cm"),
    "licks.bin": ("t",),
    "frame_clock.bin": ("t",),
    "timing.bin": ("t_wall", "work_s"),
}
DTYPES = {name: np.dtype(list(fields)) for name, fields in BINARY_FIELDS.items()}


def plausible_records(extent_s: float, rate_hz: float) -> int:
    """The most records a stream at `rate_hz` can hold in a session whose frames reach `extent_s`."""
    extent = min(max(extent_s, 0.0), MAX_SESSION_S)
    return int(RATE_FACTOR * rate_hz * (extent + MARGIN_S)) + MARGIN_RECORDS


def input_rate_hz(config: dict[str, Any], role: str) -> float:
    """A role's configured sample rate from a header's config (DEFAULT_INPUT_RATE_HZ when not given)."""
    drivers = config.get("drivers")
    entry = drivers.get(role) if isinstance(drivers, dict) else None
    rate = None
    if isinstance(entry, dict):
        rate = entry.get("sample_rate_hz", entry.get("rate_hz"))
    if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 < rate <= MAX_INPUT_RATE_HZ:
        return max(float(rate), DEFAULT_INPUT_RATE_HZ)
    return DEFAULT_INPUT_RATE_HZ


# ---- errors --------------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def explain(e: ValidationError) -> str:
    """The first problem of a validation error on one line: where, what, and the value found."""
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    got = "" if err["type"] == "missing" else f" (found {_short(err.get('input'))})"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{got}{more}"


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# ---- header --------------------------------------------------------------------------------------------


def parse_header(data: dict[str, Any], where: Path) -> SessionHeader:
    """header.json's content as the typed model; SessionError naming the first bad field otherwise."""
    try:
        return SessionHeader.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise SessionError(f"{where}: {field}: {err['msg']}{more}") from None


def read_header(folder: Path) -> SessionHeader:
    """The header of a session folder, checked as Session.open checks it (for listings that need not read
    the data)."""
    folder = Path(folder)
    header_path = folder / HEADER
    data = read_document(header_path)
    if data is None:
        raise SessionError(f"{folder}: no {HEADER}: not a session folder, or the session died before it started")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError(f"{header_path}: not a {FORMAT} header (format field missing or different)")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise SessionError(
            f"{header_path}: format_version {version!r} is not supported "
            f"(this reader reads versions up to {FORMAT_VERSION})"
        )
    if not isinstance(data.get("files"), dict):
        raise SessionError(f"{header_path}: header has no files table")
    header = parse_header(data, header_path)
    try:
        HEADER_SHAPES.validate_python({"protocol": header.protocol, "config": header.config})
    except ValidationError as e:
        raise SessionError(f"{header_path}: {explain(e)}") from None
    for name, fields in BINARY_FIELDS.items():
        spec = header.files.get(name)
        if spec is None or spec.dtype is None:
            raise SessionError(f"{header_path}: the files table gives no record layout (dtype) for {name!r}")
        # The layouts have not changed since format_version 1 began: any other is damage, and a reader
        # must never build a record type (object fields, zero size) from what a file says.
        if spec.dtype != [list(f) for f in fields]:
            raise SessionError(f"{header_path}: files[{name!r}].dtype is {_short(spec.dtype, 120)}, not the "
                               f"format's record layout for {name} ({[list(f) for f in fields]})")
    for name in JSONL_FILES:
        spec = header.files.get(name)
        if spec is not None and spec.format not in (None, "jsonl"):
            raise SessionError(f"{header_path}: files[{name!r}].format is {spec.format!r}, not 'jsonl'")
    return header


def frame_flag(frames: np.ndarray, name: str) -> np.ndarray:
    """One boolean column of frames.bin `flags` (moving, in_grey, cue_played, done)."""
    if name not in FLAG_BITS:
        raise KeyError(f"unknown frame flag {name!r}; known: {list(FLAG_BITS)}")
    return np.asarray((frames["flags"] & FLAG_BITS[name]) != 0)


# ---- binary streams ------------------------------------------------------------------------------------


def _read_records(f: BinaryIO, path: Path, dtype: np.dtype, max_records: int | None) -> tuple[np.ndarray, bool]:
    size = file_size(f)
    n = size // dtype.itemsize
    if max_records is not None and n > max_records:
        raise SessionError(f"{path}: {n:,} records ({size:,} bytes), more than a session this long can hold "
                           f"(at most {max_records:,}): damaged")
    try:
        f.seek(0)
        data = np.fromfile(f, dtype=dtype, count=n)
    except OSError as e:
        raise SessionError(f"{path}: cannot be read: {e.strerror or e}") from None
    # fromfile may return fewer records if the file shrank meanwhile; trust what was read.
    return data, size % dtype.itemsize != 0


def read_binary(path: Path, dtype: np.dtype, max_records: int | None = None) -> tuple[np.ndarray, bool]:
    """All whole records of a binary stream; the bool says a partial trailing record was dropped.
    SessionError when it holds more than `max_records` records, or is not a readable plain file."""
    f = open_regular(Path(path))
    if f is None:
        return np.zeros(0, dtype=dtype), False
    with f:
        return _read_records(f, Path(path), dtype, max_records)


_MISSING = "{}: missing, although header.json lists it (the writer creates every data file before the header)"


def _open_listed(path: Path) -> BinaryIO:
    """A data file the header lists: it must be there (a session folder is never written without it)."""
    f = open_regular(path)
    if f is None:
        raise SessionError(_MISSING.format(path))
    return f


def _last_time(f: BinaryIO, path: Path, dtype: np.dtype) -> float:
    """frames.bin's last whole record's time, read alone (it bounds every stream before they are read)."""
    n = file_size(f) // dtype.itemsize
    if n == 0:
        return 0.0
    try:
        f.seek((n - 1) * dtype.itemsize)
        raw = f.read(dtype.itemsize)
    except OSError as e:
        raise SessionError(f"{path}: cannot be read: {e.strerror or e}") from None
    if len(raw) < dtype.itemsize:
        return 0.0
    t = float(np.frombuffer(raw, dtype=dtype)["t"][0])
    if not (math.isfinite(t) and -MARGIN_S <= t <= MAX_SESSION_S):
        raise SessionError(f"{path}: the last record's time t={t!r} s is not a session time "
                           f"(0 .. {MAX_SESSION_S:.0f} s): damaged")
    return t


def _check_finite(arr: np.ndarray, name: str, path: Path) -> None:
    for col in _FINITE_COLUMNS.get(name, ()):
        # A sum is finite when every term is (one pass, no temporary); only a non-finite sum (or an
        # overflow of large finite values) needs the element-wise look.
        if math.isfinite(float(np.add.reduce(arr[col]))):
            continue
        ok = np.isfinite(arr[col])
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise SessionError(f"{path}: record {k} (iteration {int(arr['i'][k])}): {col} is {arr[col][k]}, "
                               "not a finite number")


def _check_order(arr: np.ndarray, path: Path) -> None:
    """Records are written in iteration order: `i` never decreases, and is never negative."""
    i = arr["i"]
    if not len(i):
        return
    back = np.flatnonzero(i[1:] < i[:-1])
    if len(back) or i[0] < 0:
        k = int(back[0]) + 1 if len(back) else 0
        after = f" after {int(i[k - 1])}" if k else ""
        raise SessionError(f"{path}: record {k}: iteration {int(i[k])}{after}: records are written in iteration "
                           "order")


def _check_corridors(frames: np.ndarray, header: SessionHeader, path: Path) -> None:
    """frames.bin's corridor is an index into the header's protocol corridors (readers index with it)."""
    corridors = header.protocol.get("corridors")
    if not len(frames) or not isinstance(corridors, list):
        return
    values = frames["corridor"]
    bad = np.flatnonzero((values < 0) | (values >= len(corridors)))
    if len(bad):
        k = int(bad[0])
        raise SessionError(f"{path}: record {k} (iteration {int(frames['i'][k])}): corridor {int(values[k])} is "
                           f"not an index into the protocol's {len(corridors)} corridors")


def read_table(path: Path, max_rows: int, required: tuple[str, ...] = ()) -> np.ndarray | None:
    """A one-dimensional structured .npy table attached to a session (frame_table.npy, ...), read within
    bounds and never unpickled: None when absent; SessionError when it is not a plain file, not such a
    table, holds Python objects, claims more than `max_rows` rows or more bytes than it has, or lacks a
    `required` field."""
    f = open_regular(Path(path))
    if f is None:
        return None
    with f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported")
        except (ValueError, OSError, SyntaxError) as e:
            raise SessionError(f"{path}: not a readable .npy table ({e})") from None
        if dtype.hasobject:
            raise SessionError(f"{path}: holds Python objects (a pickle), which are never loaded")
        if dtype.names is None or dtype.itemsize == 0 or len(shape) != 1:
            raise SessionError(f"{path}: not a one-dimensional table of records (dtype {dtype}, shape {shape})")
        rows = int(shape[0])
        if rows > max_rows:
            raise SessionError(f"{path}: claims {rows:,} rows, more than this session can have (at most "
                               f"{max_rows:,}): damaged")
        if file_size(f) - f.tell() < rows * dtype.itemsize:
            raise SessionError(f"{path}: claims {rows:,} rows but holds fewer: truncated")
        missing = [n for n in required if n not in dtype.names]
        if missing:
            raise SessionError(f"{path}: the table lacks fields {missing}")
        try:
            return np.fromfile(f, dtype=dtype, count=rows)
        except OSError as e:
            raise SessionError(f"{path}: cannot be read: {e.strerror or e}") from None


# ---- JSON lines ----------------------------------------------------------------------------------------

_CHUNK = 16 << 20


def _decode_line(line: bytes, path: Path, n: int, schema: TypeAdapter[Any] | None) -> dict[str, Any]:
    where = f"{path}:{n}"
    if len(line) > MAX_LINE_BYTES:
        raise SessionError(f"{where}: a line of {len(line):,} bytes (at most {MAX_LINE_BYTES:,}): damaged")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SessionError(f"{where}: not a JSON line (not UTF-8: {e.reason} at byte {e.start})") from None
    record = decode_json(text, where, line.count(b"[") + line.count(b"{"), what="a JSON line")
    if not isinstance(record, dict):
        raise SessionError(f"{where}: a JSON {_json_type(record)}, not an object")
    if schema is not None:
        try:
            schema.validate_python(record)
        except ValidationError as e:
            raise SessionError(f"{where}: {explain(e)}") from None
    return record


def read_jsonl(path: Path, max_bytes: int = MAX_JSONL_BYTES) -> tuple[list[dict[str, Any]], bool]:
    """All newline-terminated JSON lines, each checked against its file's schema (rig.datalog.schema, by
    file name); the bool says an unterminated last line was dropped.

    A damaged line that is not the tail raises SessionError naming file and line: that is corruption,
    not a crash at the end of a write. So does a file larger than `max_bytes` or a line longer than
    MAX_LINE_BYTES, before it is read.
    """
    path = Path(path)
    f = open_regular(path)
    if f is None:
        return [], False
    schema = LINE_SCHEMAS.get(path.name)
    out: list[dict[str, Any]] = []
    rest = b""
    n = 0
    with f:
        size = file_size(f)
        if size > max_bytes:
            raise SessionError(f"{path}: {size:,} bytes, more than a session this long writes "
                               f"(at most {max_bytes:,}): damaged")
        left = size  # what is there now: a live session's file may grow meanwhile
        while left > 0:
            try:
                chunk = f.read(min(_CHUNK, left))
            except OSError as e:
                raise SessionError(f"{path}: cannot be read: {e.strerror or e}") from None
            if not chunk:
                break
            left -= len(chunk)
            lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
            rest = lines.pop()  # b"" when the chunk ends with a newline
            if len(rest) > MAX_LINE_BYTES:
                raise SessionError(f"{path}:{n + len(lines) + 1}: a line longer than {MAX_LINE_BYTES:,} bytes: "
                                   "damaged")
            for line in lines:
                n += 1
                out.append(_decode_line(line, path, n, schema))
    return out, rest != b""


# ---- footer and clock ----------------------------------------------------------------------------------


def _tolerant_document(path: Path, schema: TypeAdapter[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object document that may be damaged without making the session unreadable: (document, None),
    (None, None) when absent, (None, problem) when its content is damaged. A file that is not a plain
    readable file is still a SessionError."""
    f = open_regular(path)
    if f is None:
        return None, None
    with f:
        try:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as e:
            raise SessionError(f"{path}: cannot be read: {e.strerror or e}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        return None, f"more than {MAX_DOCUMENT_BYTES:,} bytes"
    try:
        value = decode_json(raw.decode("utf-8"), path.name)
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text ({e.reason})"
    except SessionError as e:
        return None, str(e).removeprefix(f"{path.name}: ")
    if not isinstance(value, dict):
        return None, f"a JSON {_json_type(value)}, not an object"
    try:
        schema.validate_python(value)
    except ValidationError as e:
        return None, explain(e)
    return value, None


def read_footer(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """footer.json of a session folder as Session.open reads it: (footer, None); (None, None) when there is
    none (killed, or still running); (None, what is wrong) when it is damaged. SessionError when it is not
    a plain readable file."""
    return _tolerant_document(Path(folder) / FOOTER, FOOTER_SCHEMA)


# ---- the session ---------------------------------------------------------------------------------------


@dataclass
class Session:
    """A session folder, read in full. `complete` is True only if a footer says the session ended normally."""

    path: Path
    header: SessionHeader
    footer: dict[str, Any] | None
    complete: bool
    trimmed: list[str]  # files whose partial tail record/line was dropped (and a damaged footer)
    warnings: list[str]  # other anomalies (counts short of the footer, a damaged footer or clock.json)
    frames: np.ndarray
    ball: np.ndarray
    licks: np.ndarray
    frame_clock: np.ndarray
    timing: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    operator: list[dict[str, Any]] = field(default_factory=list)
    mesoscope: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    clocks: list[dict[str, Any]] = field(default_factory=list)
    valve: list[dict[str, Any]] = field(default_factory=list)  # the valve guard's decisions (rig.runner.valve_guard)
    clock: dict[str, Any] | None = None  # clock.json: where session time 0 lies on the host clocks, if recorded
    extent_s: float = 0.0  # session time of frames.bin's last record: bounds what every stream can hold
    footer_error: str | None = None  # why a footer.json that exists could not be used

    @property
    def timing_origin_monotonic(self) -> float | None:
        """Host monotonic time (s) of session time 0, when the runner recorded it."""
        return None if self.clock is None else self.clock.get("monotonic_s")

    def plausible_records(self, rate_hz: float) -> int:
        """The most records a stream (or an attached table) at `rate_hz` can hold in this session."""
        return plausible_records(self.extent_s, rate_hz)

    @classmethod
    def open(cls, path: str | Path) -> Session:
        path = Path(path)
        if not path.is_dir():
            raise SessionError(f"{path}: not a directory (expected a session folder DATA/ANIMAL/DATE/NNN)")
        header = read_header(path)
        trimmed: list[str] = []
        warnings: list[str] = []

        frames_path = path / "frames.bin"
        f = _open_listed(frames_path)
        with f:
            extent = _last_time(f, frames_path, DTYPES["frames.bin"])
            frames, cut = _read_records(f, frames_path, DTYPES["frames.bin"],
                                        plausible_records(extent, header.frame_rate_hz))
        arrays: dict[str, np.ndarray] = {"frames.bin": frames}
        if cut:
            trimmed.append("frames.bin")
        for name in BINARY_FIELDS:
            if name == "frames.bin":
                continue
            role = _INPUT_ROLES.get(name)
            rate = header.frame_rate_hz if role is None else input_rate_hz(header.config, role)
            with _open_listed(path / name) as f:
                arrays[name], cut = _read_records(f, path / name, DTYPES[name], plausible_records(extent, rate))
            if cut:
                trimmed.append(name)
        for name, arr in arrays.items():
            _check_finite(arr, name, path / name)
            _check_order(arr, path / name)
        _check_corridors(frames, header, frames_path)

        jsonl_limit = min(MAX_JSONL_BYTES, JSONL_MARGIN_BYTES + int(JSONL_BYTES_PER_S * (extent + MARGIN_S)))
        lines: dict[str, list[dict[str, Any]]] = {}
        for name in JSONL_FILES:
            if name in header.files and not os.path.lexists(path / name):
                raise SessionError(_MISSING.format(path / name))
            lines[name], cut = read_jsonl(path / name, jsonl_limit)
            if cut:
                trimmed.append(name)

        footer, footer_error = read_footer(path)
        if footer_error is not None:
            # The footer is written atomically, so this is damage after the fact; the data still reads.
            trimmed.append(FOOTER)
            warnings.append(f"{FOOTER} is damaged ({footer_error}); treating the session as incomplete")
        clock, clock_error = _tolerant_document(path / CLOCK, CLOCK_SCHEMA)
        if clock_error is not None:
            warnings.append(f"{CLOCK} is damaged ({clock_error}); clock origin unknown")
        complete = bool(footer is not None and footer.get("complete") is True)
        if footer is not None:
            have = {**{n: len(a) for n, a in arrays.items()}, **{n: len(v) for n, v in lines.items()}}
            for name, count in footer.get("counts", {}).items():
                if name in have and have[name] != count:
                    warnings.append(f"{name}: footer counts {count} records, file holds {have[name]}")

        return cls(
            path=path,
            header=header,
            footer=footer,
            complete=complete,
            trimmed=trimmed,
            warnings=warnings,
            frames=arrays["frames.bin"],
            ball=arrays["ball.bin"],
            licks=arrays["licks.bin"],
            frame_clock=arrays["frame_clock.bin"],
            timing=arrays["timing.bin"],
            events=lines["events.jsonl"],
            commands=lines["commands.jsonl"],
            operator=lines["operator.jsonl"],
            mesoscope=lines["mesoscope.jsonl"],
            faults=lines["faults.jsonl"],
            clocks=lines["clocks.jsonl"],
            valve=lines["valve.jsonl"],
            clock=clock,
            extent_s=extent,
            footer_error=footer_error,
        )
