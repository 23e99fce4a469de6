"""Notes about an animal, added any time: DATA/ANIMAL/notes.jsonl, append-only (`rig animal ID note TEXT`).

A note counts for a day and may name one of the animal's sessions (DATE/NNN); it never touches the
session's own files, which stay as recorded.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pydantic import Field, field_validator

from rig.lab import journal
from rig.lab.journal import Entry, LabRecordError
from rig.lab.subjects import animal_dir, check_animal_id

NOTES_FILE = "notes.jsonl"
_SESSION = re.compile(r"^\d{4}-\d{2}-\d{2}/\d{3,}$")


class NoteEntry(Entry):
    date: dt.date
    text: str = Field(min_length=1, max_length=10_000)
    recorded_at: str
    by: str = ""
    session: str | None = None  # DATE/NNN under the animal's folder
    during: bool = False  # typed in the app while the session ran (the runner's operator.jsonl holds it too)

    @field_validator("session")
    @classmethod
    def _session(cls, v: str | None) -> str | None:
        if v is not None and not _SESSION.match(v):
            raise ValueError(f"{v!r}: name a session as DATE/NNN (e.g. 2026-03-02/001)")
        return v


def notes_path(data_dir: Path, animal: str) -> Path:
    return animal_dir(data_dir, animal) / NOTES_FILE


def add_note(data_dir: Path, animal: str, text: str, day: dt.date | None = None, *, by: str = "",
             session: str | None = None, during: bool = False) -> NoteEntry:
    """Append a note; with `session`, the day is the session's and the session must exist."""
    check_animal_id(animal)
    text = text.strip()
    if not text:
        raise LabRecordError("a note needs some text")
    if session is not None:
        session = session.strip("/")
        if not _SESSION.match(session):
            raise LabRecordError(f"--session {session!r}: name a session as DATE/NNN (e.g. 2026-03-02/001)")
        if not (animal_dir(data_dir, animal) / session / "header.json").is_file():
            raise LabRecordError(f"{animal_dir(data_dir, animal) / session}: no such session")
        day = dt.date.fromisoformat(session.split("/")[0])
    entry = NoteEntry(date=day or dt.date.today(), text=text, recorded_at=journal.now_iso(), by=by,
                      session=session, during=during)
    journal.append(notes_path(data_dir, animal), entry)
    return entry


def notes(data_dir: Path, animal: str) -> list[NoteEntry]:
    return journal.read(notes_path(data_dir, animal), NoteEntry)
