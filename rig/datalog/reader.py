"""Read a session folder back: numpy structured arrays for the binary streams, dicts for the JSON lines.

The on-disk format is described in docs/data-format.md. This module also holds the format's constants
(file names, record layouts) so that the writer (rig.datalog.writer) and the reader share one definition, but
the reader itself builds every record layout from the `files` table in header.json, as any third-party
reader would.

Crash tolerance: a session killed mid-write may end in a partial binary record or a partial JSON line.
Those tails are dropped and the file is listed in `Session.trimmed`; they never raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from rig.datalog.header import FORMAT, FORMAT_VERSION, SessionHeader
from rig.errors import BadInput

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


class SessionError(BadInput):
    """The folder is not a readable session (no header, bad header, unsupported format)."""


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
    """Only the header of a session folder (for listings that need not read the data)."""
    header_path = Path(folder) / HEADER
    try:
        data = _load_json(header_path)
    except FileNotFoundError:
        raise SessionError(f"{folder}: no {HEADER}: not a session folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise SessionError(f"{header_path}: not readable JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError(f"{header_path}: not a {FORMAT} header (format field missing or different)")
    return parse_header(data, header_path)


def frame_flag(frames: np.ndarray, name: str) -> np.ndarray:
    """One boolean column of frames.bin `flags` (moving, in_grey, cue_played, done)."""
    if name not in FLAG_BITS:
        raise KeyError(f"unknown frame flag {name!r}; known: {list(FLAG_BITS)}")
    return (frames["flags"] & FLAG_BITS[name]) != 0


def _load_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def _dtype_from_header(files: dict, name: str, where: Path) -> np.dtype:
    entry = files.get(name)
    if not isinstance(entry, dict) or "dtype" not in entry:
        raise SessionError(f"{where}: header.json files[{name!r}] has no dtype")
    try:
        return np.dtype([(str(n), str(t)) for n, t in entry["dtype"]])
    except (TypeError, ValueError) as e:
        raise SessionError(f"{where}: files[{name!r}].dtype is not a valid record layout: {e}") from None


def read_binary(path: Path, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """All whole records of a binary stream; the bool says a partial trailing record was dropped."""
    if not path.exists():
        return np.zeros(0, dtype=dtype), False
    size = path.stat().st_size
    n = size // dtype.itemsize
    with open(path, "rb") as f:
        data = np.fromfile(f, dtype=dtype, count=n)
    # fromfile may return fewer records if the file shrank meanwhile; trust what was read.
    return data, size % dtype.itemsize != 0


def read_jsonl(path: Path) -> tuple[list[dict], bool]:
    """All newline-terminated JSON lines; the bool says an unterminated last line was dropped.

    A damaged line that is not the tail raises SessionError naming file and line: that is corruption,
    not a crash at the end of a write.
    """
    if not path.exists():
        return [], False
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SessionError(f"{path}:{n}: not a JSON line ({e})") from None
    return out, tail != b""


@dataclass
class Session:
    """A session folder, read in full. `complete` is True only if a footer says the session ended normally."""

    path: Path
    header: SessionHeader
    footer: dict | None
    complete: bool
    trimmed: list[str]  # files whose partial tail record/line was dropped
    warnings: list[str]  # other anomalies (missing files, counts short of the footer, bad footer)
    frames: np.ndarray
    ball: np.ndarray
    licks: np.ndarray
    frame_clock: np.ndarray
    timing: np.ndarray
    events: list[dict] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    operator: list[dict] = field(default_factory=list)
    mesoscope: list[dict] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)
    clocks: list[dict] = field(default_factory=list)
    valve: list[dict] = field(default_factory=list)  # every opening the runner decided on (rig.runner.valve_guard)
    clock: dict | None = None  # clock.json: where session time 0 lies on the host clocks, if recorded

    @property
    def timing_origin_monotonic(self) -> float | None:
        """Host monotonic time (s) of session time 0, when the runner recorded it."""
        return None if self.clock is None else self.clock.get("monotonic_s")

    @classmethod
    def open(cls, path: str | Path) -> Session:
        path = Path(path)
        if not path.is_dir():
            raise SessionError(f"{path}: not a directory (expected a session folder DATA/ANIMAL/DATE/NNN)")
        header_path = path / HEADER
        if not header_path.exists():
            raise SessionError(
                f"{path}: no {HEADER}: not a session folder, or the session died before it started"
            )
        try:
            header = _load_json(header_path)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SessionError(f"{header_path}: not valid JSON ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SessionError(f"{header_path}: not a {FORMAT} header (format field missing or different)")
        version = header.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SessionError(
                f"{header_path}: format_version {version!r} is not supported "
                f"(this reader reads versions up to {FORMAT_VERSION})"
            )
        files = header.get("files")
        if not isinstance(files, dict):
            raise SessionError(f"{header_path}: header has no files table")
        model = parse_header(header, header_path)

        trimmed: list[str] = []
        warnings: list[str] = []
        arrays: dict[str, np.ndarray] = {}
        for name in BINARY_FIELDS:
            if name not in files:
                raise SessionError(f"{header_path}: files table lacks {name!r}")
            dtype = _dtype_from_header(files, name, header_path)
            if not (path / name).exists():
                warnings.append(f"{name} is missing")
            arrays[name], cut = read_binary(path / name, dtype)
            if cut:
                trimmed.append(name)
        lines: dict[str, list[dict]] = {}
        for name in JSONL_FILES:
            if name in files and not (path / name).exists():
                warnings.append(f"{name} is missing")
            lines[name], cut = read_jsonl(path / name)
            if cut:
                trimmed.append(name)

        footer = None
        if (path / FOOTER).exists():
            try:
                footer = _load_json(path / FOOTER)
            except (UnicodeDecodeError, json.JSONDecodeError):
                # The footer is written atomically, so this is damage after the fact; the data still reads.
                trimmed.append(FOOTER)
                warnings.append(f"{FOOTER} is damaged; treating the session as incomplete")
            if footer is not None and not isinstance(footer, dict):
                warnings.append(f"{FOOTER} is not a JSON object; treating the session as incomplete")
                footer = None
        clock = None
        if (path / CLOCK).exists():
            try:
                clock = _load_json(path / CLOCK)
            except (UnicodeDecodeError, json.JSONDecodeError):
                warnings.append(f"{CLOCK} is damaged; clock origin unknown")
        complete = bool(footer is not None and footer.get("complete") is True)
        if footer is not None:
            counts = footer.get("counts", {})
            have = {**{n: len(a) for n, a in arrays.items()}, **{n: len(v) for n, v in lines.items()}}
            for name, n in counts.items() if isinstance(counts, dict) else ():
                if name in have and have[name] != n:
                    warnings.append(f"{name}: footer counts {n} records, file holds {have[name]}")

        return cls(
            path=path,
            header=model,
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
            clock=clock if isinstance(clock, dict) else None,
        )
