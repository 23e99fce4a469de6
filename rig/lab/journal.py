"""Append-only JSON-lines journals (weights, water supplements, notes, the rig's history).

A journal is only ever appended to: each entry is one JSON line written with a single `write` on a file
opened for appending, then synced, so an entry is on disk whole or not at all and nothing already
written is ever rewritten. Reading validates every line against the entry's model; a damaged line
(anything but an unterminated last line, which a crash mid-write can leave) is reported as FILE:LINE.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rig.errors import BadInput


class LabRecordError(BadInput):
    """A lab record (registry file, journal, entry) that cannot be read or is refused; says what and where."""


class Entry(BaseModel):
    """Base of every journal entry: unknown keys are refused, entries never change once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


E = TypeVar("E", bound=BaseModel)


def now_iso() -> str:
    """The wall-clock time an entry is recorded, with the rig's UTC offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def append(path: Path, entry: BaseModel) -> None:
    """Append one entry as one JSON line (creating the file and its folder when needed)."""
    line = (entry.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.write(fd, line) != len(line):  # a regular file takes the whole line or raises
            raise OSError(f"{path}: short write")
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path, model: type[E]) -> list[E]:
    """Every entry of a journal, oldest first ([] when the file does not exist yet)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise LabRecordError(f"{path}: cannot read ({e.strerror or e})") from None
    lines = raw.split(b"\n")
    lines.pop()  # b"" after the last newline; otherwise an unterminated line a crash cut short
    out: list[E] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate(json.loads(line.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LabRecordError(f"{path}:{n}: not a JSON line ({e})") from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "(entry)"
            raise LabRecordError(f"{path}:{n}: {where}: {first['msg']}") from None
    return out
