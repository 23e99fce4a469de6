"""Per-animal memory of the virtual mouse: what it learned, kept between its sessions.

    store = MemoryStore(DATA / "M1")          # DATA/M1/sim-mouse.json
    knowledge = store.load()                  # None: the rig has no memory of this animal yet
    ...                                       # a session: rig.sim.mouse.VirtualMouse(knowledge=...)
    store.save(knowledge, session="2024-05-01/001", protocol="staged_zone_task", kind="task")

The file is JSON, validated on reading (a damaged or hand-edited file is refused with the field at
fault, never half used), and written atomically (a temporary file in the same folder, flushed to disk,
then renamed over the old one), so a crash leaves either the old memory or the new one. Each save also
appends one line of history (session, protocol, what the mouse knew after it), so the file is a
per-animal learning log too. Two sessions of one animal running at once would each save what they
learned from the state at their start; the later save wins (documented in docs/sim.md).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rig.sim.learning import Knowledge

FILENAME = "sim-mouse.json"
FORMAT = "corridor-rig-sim-mouse"
FORMAT_VERSION = 1
_ANIMAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as the session writer's animal ids


class MemoryFileError(OSError):
    """The memory file exists but cannot be used (unreadable, not JSON, or invalid): the session stops
    before it starts rather than run a mouse that forgot or misremembers."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorridorMemory(_Strict):
    category: str = Field(min_length=1, max_length=64)
    familiarity: float = Field(ge=0, le=1)
    expectation: float = Field(ge=0, le=1)
    metres_seen: float = Field(ge=0)
    trials: int = Field(ge=0)
    water_trials: int = Field(ge=0)


class KnowledgeModel(_Strict):
    corridors: dict[str, CorridorMemory]
    reward_position_cm: float | None = Field(ge=0, le=100_000)
    reward_spread_cm: float | None = Field(ge=0, le=100_000)
    waters: int = Field(ge=0)
    sessions: int = Field(ge=0)
    task_sessions: int = Field(ge=0)
    exposure_sessions: int = Field(ge=0)


class HistoryEntry(_Strict):
    session: str  # DATE/NNN of the session folder
    protocol: str
    kind: Literal["task", "exposure"]
    expectation: dict[str, float]  # after the session
    familiarity: dict[str, float]


class MemoryFile(_Strict):
    format: Literal["corridor-rig-sim-mouse"]
    format_version: Literal[1]
    animal: str
    knowledge: KnowledgeModel
    history: list[HistoryEntry] = []


class MemoryStore:
    """The memory file of one simulated animal: `animal_dir / sim-mouse.json`."""

    def __init__(self, animal_dir: str | Path) -> None:
        self.animal_dir = Path(animal_dir)
        self.path = self.animal_dir / FILENAME
        self._history: list[HistoryEntry] = []

    @classmethod
    def for_animal(cls, animal_dir: str | Path) -> MemoryStore | None:
        """The store, or None when the folder name is not a usable animal id (the session writer refuses
        those itself, with its own message)."""
        return cls(animal_dir) if _ANIMAL_RE.match(Path(animal_dir).name) else None

    def load(self) -> Knowledge | None:
        """What the animal learned so far; None when it has no memory file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise MemoryFileError(f"{self.path}: cannot read the simulated mouse's memory: {e}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise MemoryFileError(f"{self.path}:{e.lineno}: not JSON: {e.msg}") from None
        try:
            memory = MemoryFile.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(file)"
            more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
            raise MemoryFileError(f"{self.path}: {where}: {first['msg']}{more}") from None
        if memory.animal != self.animal_dir.name:
            raise MemoryFileError(
                f"{self.path}: animal: the file is {memory.animal!r}'s memory, not {self.animal_dir.name!r}'s")
        self._history = list(memory.history)
        return Knowledge.from_dict(memory.knowledge.model_dump())

    def save(self, knowledge: Knowledge, *, session: str, protocol: str, kind: str) -> None:
        """Write the knowledge after a session (atomically), with one more line of history."""
        entry = HistoryEntry(
            session=session, protocol=protocol, kind=kind,
            expectation={n: k.expectation for n, k in knowledge.corridors.items()},
            familiarity={n: k.familiarity for n, k in knowledge.corridors.items()},
        )
        memory = MemoryFile(
            format=FORMAT, format_version=FORMAT_VERSION, animal=self.animal_dir.name,
            knowledge=KnowledgeModel.model_validate(knowledge.to_dict()), history=[*self._history, entry],
        )
        text = json.dumps(memory.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
        self.animal_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._history = list(memory.history)
        _fsync_dir(self.animal_dir)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
