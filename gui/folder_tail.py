"""What a running session has flushed to its folder, read incrementally (no Qt): new events, and the
counts `rig info` reports, by the same rules (rig.datalog.info.session_info).

The folder is the record: the runner flushes it every 100 ms, and a telemetry message may be lost (PUB
drops at its high-water mark) while a flushed line never is. So every count the app shows comes from
here, and equals `rig info`'s at every moment the folder is read, not only at the end:

- trials: `trial_end` events; rewards: `reward` events (manual ones counted apart, `data.source`);
- water: what the valve gave (valve.jsonl: each opening's volume, less what a cut opening did not give), as
  rig.datalog.water counts it; sessions from before valve.jsonl: the `valve` commands' `volume_ul`;
- licks: lick onsets in licks.bin (ITI licks included);
- missed display frames: rig.datalog.info.missing_in_gaps over timing.bin's wall times at the session's
  frame period, added up interval by interval (the same function, so the same count); None for a fast
  (virtual-clock) session, as in `rig info`.

Each call reads only the bytes appended since the previous one; a partial tail (a record or line still
being written) is left for the next call. A damaged line is counted in `bad_lines` and skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gui.wire import WireError, decode_json
from rig.datalog.info import missing_in_gaps
from rig.datalog.reader import SessionError, read_header
from rig.engine.records import EventKind

MAX_READ_BYTES = 64 << 20  # per file and call: a session hours long is read in a few calls, never at once


@dataclass
class Counts:
    trials: int = 0
    rewards: int = 0
    rewards_manual: int = 0
    water_ul: float = 0.0
    licks: int = 0
    iterations: int = 0
    missed_display_frames: int | None = None  # None: a fast session (no display deadlines) or no timing yet
    bad_lines: int = 0


@dataclass
class TailUpdate:
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: np.ndarray | None = None  # new frames.bin records (only when asked for)


class _Reader:
    """Appended bytes of one file: whole records (binary) or whole lines (JSON lines)."""

    def __init__(self, path: Path, record: int = 0) -> None:
        self.path = path
        self.record = record  # record size in bytes; 0 for a line file
        self.offset = 0

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size <= self.offset:
                    return b""
                f.seek(self.offset)
                raw = f.read(min(size - self.offset, MAX_READ_BYTES))
        except FileNotFoundError:
            return b""
        if self.record:
            raw = raw[: len(raw) - len(raw) % self.record]
        else:
            end = raw.rfind(b"\n")
            raw = raw[: end + 1] if end >= 0 else b""
        self.offset += len(raw)
        return raw


class FolderTail:
    """Follows one session folder. Raises rig.datalog.reader.SessionError when the header cannot be read."""

    def __init__(self, folder: str | Path, frames: bool = False) -> None:
        self.folder = Path(folder)
        header = read_header(self.folder)
        self.header = header
        self.counts = Counts()
        self._period = 1.0 / header.frame_rate_hz
        self._fast = header.fast
        self._last_wall: float | None = None
        self._dtypes: dict[str, np.dtype] = {}
        for name in ("licks.bin", "timing.bin", "frames.bin"):
            spec = header.files.get(name)
            if spec is None or spec.dtype is None:
                raise SessionError(f"{self.folder}/header.json: files[{name!r}] has no record layout")
            try:
                self._dtypes[name] = np.dtype([(str(n), str(t)) for n, t in spec.dtype])
            except (TypeError, ValueError) as e:
                raise SessionError(f"{self.folder}/header.json: files[{name!r}]: {e}") from None
            if self._dtypes[name].itemsize == 0:
                raise SessionError(f"{self.folder}/header.json: files[{name!r}] has a zero-size record")
        self._events = _Reader(self.folder / "events.jsonl")
        self._commands = _Reader(self.folder / "commands.jsonl")
        self._valve = _Reader(self.folder / "valve.jsonl")
        self._valve_logged = "valve.jsonl" in header.files
        self._licks = _Reader(self.folder / "licks.bin", self._dtypes["licks.bin"].itemsize)
        self._timing = _Reader(self.folder / "timing.bin", self._dtypes["timing.bin"].itemsize)
        self._frames = _Reader(self.folder / "frames.bin", self._dtypes["frames.bin"].itemsize) if frames else None

    def follow_frames(self, on: bool) -> None:
        """Read frames.bin too (from where it was left), or stop reading it."""
        if not on:
            self._frames = None
        elif self._frames is None:
            self._frames = _Reader(self.folder / "frames.bin", self._dtypes["frames.bin"].itemsize)

    def _lines(self, reader: _Reader) -> list[dict[str, Any]]:
        out = []
        for line in reader.read().splitlines():
            try:
                out.append(decode_json(line))
            except WireError:
                self.counts.bad_lines += 1
        return out

    def poll(self) -> TailUpdate:
        c = self.counts
        events = self._lines(self._events)
        for ev in events:
            kind = ev.get("kind")
            if kind == EventKind.TRIAL_END:
                c.trials += 1
            elif kind == EventKind.REWARD:
                c.rewards += 1
                data = ev.get("data")
                if isinstance(data, dict) and data.get("source") == "manual":
                    c.rewards_manual += 1
        if self._valve_logged:  # in file order, as rig.datalog.water sums it
            for rec in self._lines(self._valve):
                if rec.get("kind") == "open" and rec.get("outcome") != "refused":
                    v = rec.get("volume_ul", 0.0)
                    c.water_ul += float(v) if type(v) in (int, float) else 0.0
                elif rec.get("kind") == "close":
                    v = rec.get("unused_ul", 0.0)
                    c.water_ul -= float(v) if type(v) in (int, float) else 0.0
        else:
            for cmd in self._lines(self._commands):
                v = cmd.get("volume_ul", 0.0)
                if cmd.get("kind") == "valve" and type(v) in (int, float):
                    c.water_ul += float(v)
        raw = self._licks.read()
        if raw:
            c.licks += int(np.count_nonzero(np.frombuffer(raw, self._dtypes["licks.bin"])["onset"]))
        try:  # iterations: whole frames.bin records, as session_info counts them
            c.iterations = os.stat(self.folder / "frames.bin").st_size // self._dtypes["frames.bin"].itemsize
        except FileNotFoundError:
            pass
        raw = self._timing.read()
        if raw:
            wall = np.frombuffer(raw, self._dtypes["timing.bin"])["t_wall"]
            if not self._fast:
                joined = wall if self._last_wall is None else np.concatenate([[self._last_wall], wall])
                c.missed_display_frames = (c.missed_display_frames or 0) + missing_in_gaps(joined, self._period)
            self._last_wall = float(wall[-1])
        update = TailUpdate(events=events)
        if self._frames is not None:
            raw = self._frames.read()
            update.frames = np.frombuffer(raw, self._dtypes["frames.bin"]) if raw else None
        return update

    @property
    def water_rounded(self) -> float:
        return round(max(self.counts.water_ul, 0.0), 6)
