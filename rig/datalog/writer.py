"""The session folder writer: DATA/ANIMAL/YYYY-MM-DD/NNN/, append-only and crash-safe.

Records are packed into in-memory buffers (a few microseconds per loop iteration) and written in
chunks by flush(); the runner calls tick(wall_time) every iteration, which flushes at least every
`flush_interval_s`. A process killed at any instant therefore leaves every file readable up to its last
flush; the reader (rig.datalog.reader) drops a partial tail. The footer is written only by close(); a
folder without one is an incomplete session. The layout is documented in docs/data-format.md.

A write that fails (disk full, I/O error) raises LogWriteError: every file is cut back to the end of the
last complete flush (so no stream holds a partial chunk, and the streams agree on where the log ends),
nothing more is written, and close() still tries to write the footer. The folder then reads, and
`rig replay --verify` verifies, up to that last complete flush. No temporary file is ever left behind.

Data files hold no wall-clock values, and JSON is written with sorted keys, fixed separators and
repr-exact floats, so the same records written twice give byte-identical files (all but header.json,
footer.json and timing.bin).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from array import array
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from rig.datalog.header import FORMAT, FORMAT_VERSION, SessionFacts
from rig.datalog.reader import (
    BINARY_FIELDS,
    CLOCK,
    FOOTER,
    HEADER,
    JSONL_FILES,
    Session,
    SessionError,
    frame_flag,
)
from rig.engine.records import Command, Event, State
from rig.errors import BadInput

__all__ = ["SessionWriter", "Session", "SessionError", "LowDiskSpaceError", "LogWriteError", "frame_flag",
           "DEFAULT_FLUSH_S"]

log = logging.getLogger(__name__)

# Half the 100 ms contract: tick() runs once per loop iteration, so a flush can come up to one
# display frame after the interval has elapsed.
DEFAULT_FLUSH_S = 0.05
# Flush regardless of tick() once buffers grow this large (fast mode on a virtual clock).
_MAX_BUFFER_BYTES = 8 << 20
_ANIMAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SESSION_RE = re.compile(r"^\d{3,}$")
_STRUCT_CODES = {"<i8": "q", "<f8": "d", "<i4": "i", "<i2": "h", "<u1": "B"}


class AnimalIdError(BadInput, ValueError):
    """An animal id that cannot name a folder; nothing was created."""


class LowDiskSpaceError(OSError):
    """The data disk has less free space than the session needs; nothing was created."""


class LogWriteError(OSError):
    """Writing the session folder failed (disk full, I/O error). The message names the file and says where
    the log now ends; `errno` is the cause's."""

    def __init__(self, message: str, cause: OSError) -> None:
        super().__init__(cause.errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serializable: {obj!r}")


# One encoder for every JSON line: sorted keys, no spaces, repr-exact floats (Python's float repr),
# NaN written as NaN (Python's json reads it back).
_LINE_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=json_default)


def event_record(i: int, e: Event) -> dict[str, Any]:
    """The events.jsonl record of an engine event consumed at iteration i (also rebuilt by replay --verify)."""
    return {"i": i, "t": e.t, "kind": e.kind, "trial": e.trial, "position_cm": e.position_cm, "data": e.data}


def command_record(i: int, c: Command) -> dict[str, Any]:
    """The commands.jsonl record of an engine command issued at iteration i."""
    return {"i": i, "t": c.t, "kind": c.kind, "duration_ms": c.duration_ms, "volume_ul": c.volume_ul,
            "frequency_hz": c.frequency_hz, "source": c.source}


def _dump_document(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, default=json_default) + "\n").encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file, fsynced, renamed into place; the temporary file is
    removed when anything fails (a full disk leaves no leftovers)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_all(f: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """All of `data` to an unbuffered file: os-level writes may be partial (a disk filling up)."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:  # a raw file returns None/0 only when nothing can be written
            raise OSError(28, os.strerror(28))
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _struct_for(fields: tuple[tuple[str, str], ...]) -> struct.Struct:
    s = struct.Struct("<" + "".join(_STRUCT_CODES[t] for _, t in fields))
    assert s.size == np.dtype(list(fields)).itemsize
    return s


def _next_session_dir(day_dir: Path) -> Path:
    """Create and return the next free NNN folder; os.mkdir is atomic, so racing processes never share one."""
    day_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in day_dir.iterdir() if _SESSION_RE.match(p.name)]
    n = max(numbers, default=0) + 1
    while True:
        candidate = day_dir / f"{n:03d}"
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            n += 1


class _Columns:
    """Column-wise buffer of an array stream between flushes."""

    def __init__(self, fields: tuple[tuple[str, str], ...]) -> None:
        self.fields = fields
        self.data = [bytearray() for _ in fields]
        self.iterations = array("q")
        self.counts = array("q")


class _Ahead:
    """Records of one array stream read ahead of the iterations that consume them (SessionWriter.ball_ahead,
    frame_clock_ahead): blocks of column arrays with per-iteration ends, logged only as far as consumed."""

    def __init__(self) -> None:
        # (first iteration, column arrays, ends, iterations of the block already moved to the columns)
        self.blocks: list[list[Any]] = []


class SessionWriter:
    """Writes one session folder. Use as a context manager, and call close() to mark it complete."""

    def __init__(self, path: Path, files: dict[str, BinaryIO], flush_interval_s: float) -> None:
        self.path = path
        self._files = files
        self.flush_interval_s = flush_interval_s
        self._closed = False
        self._failed: LogWriteError | None = None  # set by the first failed write: nothing more is written
        self._sizes = {name: 0 for name in files}  # bytes of each file at the end of the last complete flush
        self._last_flush: float | None = None
        self._frame_count = 0  # running imaging frame index for frame_clock()
        self._counts = {name: 0 for name in files}
        self._bin = {name: bytearray() for name in BINARY_FIELDS}
        self._lines: dict[str, list[str]] = {name: [] for name in JSONL_FILES}
        self._cols = {
            name: _Columns(tuple(f for f in BINARY_FIELDS[name] if f[0] not in ("i", "frame")))
            for name in ("ball.bin", "frame_clock.bin")
        }
        self._ahead = {name: _Ahead() for name in self._cols}
        self._ahead_records: dict[str, list[np.ndarray]] = {name: [] for name in self._cols}
        self._through = 0  # read-ahead records of iterations up to this one are consumed (consumed())
        self._pack_frame = _struct_for(BINARY_FIELDS["frames.bin"]).pack
        self._pack_timing = _struct_for(BINARY_FIELDS["timing.bin"]).pack
        self._pack_lick = _struct_for(BINARY_FIELDS["licks.bin"]).pack
        self._dtypes = {name: np.dtype(list(f)) for name, f in BINARY_FIELDS.items()}
        self._encode = _LINE_ENCODER.encode

    # ---- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        data_dir: Path,
        facts: SessionFacts,
        *,
        min_free_mb: float,
        today: date | None = None,
        flush_interval_s: float = DEFAULT_FLUSH_S,
    ) -> SessionWriter:
        """Create DATA/ANIMAL/YYYY-MM-DD/NNN with the next free NNN and write header.json.

        Everything that can be checked (animal id, header, free disk space) is checked before any folder
        is created. `facts` are the session's own (protocol, config, seed, ...); the writer adds the format,
        the date, the session number and the record layouts. start_time defaults to now.
        """
        data_dir = Path(data_dir)
        if not isinstance(facts, SessionFacts):
            raise TypeError(f"facts must be SessionFacts, got {type(facts).__name__}")
        animal = facts.animal
        if not _ANIMAL_RE.match(animal):
            raise AnimalIdError(
                f"animal id {animal!r} is not usable as a folder name: use 1-64 letters, digits, "
                "'_', '-', '.' starting with a letter or digit"
            )
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        header = facts.document()
        probe = _existing_ancestor(data_dir)
        free_mb = shutil.disk_usage(probe).free / 2**20
        if free_mb < min_free_mb:
            raise LowDiskSpaceError(
                f"not enough free disk space for a session in {data_dir}: {free_mb:.0f} MB free on the disk "
                f"holding {probe}, {min_free_mb:.0f} MB required (config min_free_disk_mb); free space or "
                "choose another --data directory"
            )

        day = today or date.today()
        path = _next_session_dir(data_dir / animal / day.isoformat())
        files: dict[str, BinaryIO] = {}
        try:
            for name in (*BINARY_FIELDS, *JSONL_FILES):
                # Unbuffered: flush() writes each chunk with its own os-level writes, so a failed write
                # leaves nothing in a hidden buffer to be written later (after the log was cut back).
                files[name] = open(path / name, "xb", buffering=0)  # noqa: SIM115 - closed by close()
            full = dict(header)
            if not full.get("start_time"):
                full["start_time"] = datetime.now().astimezone().isoformat(timespec="microseconds")
            full.update(
                format=FORMAT,
                format_version=FORMAT_VERSION,
                date=day.isoformat(),
                session=int(path.name),
                flush_interval_s=flush_interval_s,
                files={
                    **{n: {"dtype": [list(f) for f in fields]} for n, fields in BINARY_FIELDS.items()},
                    **{n: {"format": "jsonl"} for n in JSONL_FILES},
                },
            )
            # Header last: a folder with a header always has all its data files.
            _write_atomic(path / HEADER, _dump_document(full))
        except BaseException:
            for f in files.values():
                f.close()
            raise
        return cls(path, files, flush_interval_s)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._closed:
            return
        reason = "writer left without close()" if exc_type is None else f"error: {exc_type.__name__}: {exc}"
        if exc_type is None:
            self.close(False, reason)
            return
        try:
            self.close(False, reason)
        except OSError as e:  # the error already on its way out is the one to report
            if e is not exc:
                log.warning("%s", e)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> LogWriteError | None:
        """The write error that stopped the log, if one did."""
        return self._failed

    def close(self, complete: bool, reason: str, summary: dict[str, Any] | None = None) -> None:
        """Flush everything, write footer.json (complete or not) and close the files. Idempotent.

        After a failed write (LogWriteError) nothing more is flushed; the footer (not complete) is still
        attempted. Raises LogWriteError when the final flush, a sync or the footer fails; the folder then
        reads up to the last complete flush."""
        if self._closed:
            return
        if self._failed is None:
            try:
                self.flush()
            except LogWriteError:
                pass  # recorded in self._failed; the footer below says so
        for name, f in self._files.items():
            try:
                if self._failed is None:
                    os.fsync(f.fileno())
            except OSError as e:  # e.g. delayed allocation finding the disk full at sync time
                self._failed = LogWriteError(f"cannot sync {self.path / name} to disk: {e.strerror or e}", e)
            finally:
                f.close()
        self._closed = True
        if self._failed is not None:
            complete = False
            reason = reason if reason.startswith("error") else f"error: {type(self._failed).__name__}: {self._failed}"
        footer = {
            "complete": bool(complete),
            "reason": str(reason),
            "end_time": datetime.now().astimezone().isoformat(timespec="microseconds"),
            "counts": dict(self._counts),
            "imaging_frames": self._counts.get("frame_clock.bin", 0),  # on disk (a failed flush wrote none)
            "summary": summary or {},
        }
        try:
            data = _dump_document(footer)
        except (TypeError, ValueError) as e:
            # A bad summary must not lose the footer: keep the facts, say what was wrong.
            footer["summary"] = {"error": f"summary was not JSON-serializable: {e}"}
            data = _dump_document(footer)
        try:
            _write_atomic(self.path / FOOTER, data)
            _fsync_dir(self.path)
        except OSError as e:
            footer_error = LogWriteError(
                f"cannot write {self.path / FOOTER}: {e.strerror or e}; the session reads as killed, up to its "
                "last complete flush", e)
            if self._failed is None:
                self._failed = footer_error
            else:
                log.warning("%s", footer_error)
        if self._failed is not None:
            raise self._failed

    def clock_origin(self, monotonic_s: float, unix_s: float) -> None:
        """Record where session time 0 lies on the host's monotonic clock (time.monotonic/perf_counter
        on Linux) and on the Unix clock, in clock.json. Call once, when the session clock starts."""
        data = {"monotonic_s": float(monotonic_s), "unix_s": float(unix_s)}
        self._write_document(CLOCK, _dump_document(data))

    def attach(self, name: str, data: bytes) -> Path:
        """Write an extra file into the session folder atomically (a sync report, a frame table, ...).
        Names of the session's own streams are refused, so nothing logged can be overwritten."""
        if "/" in name or name.startswith(".") or name in self._files or name in (HEADER, FOOTER, CLOCK):
            raise ValueError(f"cannot attach {name!r}: reserved or not a plain file name")
        return self._write_document(name, data)

    def _write_document(self, name: str, data: bytes) -> Path:
        if self._failed is not None:
            raise self._failed
        target = self.path / name
        try:
            _write_atomic(target, data)
        except OSError as e:
            raise LogWriteError(f"cannot write {target}: {e.strerror or e}", e) from e
        return target

    # ---- records ---------------------------------------------------------------------------------

    def frame(self, i: int, state: State) -> None:
        s = state
        flags = bool(s.moving) | bool(s.in_grey) << 1 | bool(s.cue_played) << 2 | bool(s.done) << 3
        buf = self._bin["frames.bin"]
        buf += self._pack_frame(
            i, s.t, s.trial, s.corridor, s.stage, s.position_cm, s.position_cum_cm, s.ball_speed_cm_s,
            s.virtual_speed_cm_s, s.cue_position_cm, s.zone_start_cm, s.rewards_in_trial, flags,
        )  # fmt: skip
        if len(buf) > _MAX_BUFFER_BYTES:
            self.flush()

    def ball(self, i: int, t: np.ndarray, counts: np.ndarray, cm: np.ndarray) -> None:
        """Encoder samples consumed at iteration i: session time, count increment, cm increment."""
        n = len(t)
        if n != len(counts) or n != len(cm):
            raise ValueError(f"ball.bin: t, counts, cm differ in length ({n}, {len(counts)}, {len(cm)})")
        if n:
            # Column bytes go into flat buffers (no per-call objects kept, so no GC pressure); flush()
            # interleaves them into records. Convert all before buffering any: a bad call leaves no trace.
            bt = np.asarray(t, dtype="<f8").tobytes()
            bc = np.asarray(counts, dtype="<i8").tobytes()
            bm = np.asarray(cm, dtype="<f8").tobytes()
            if self._ahead["ball.bin"].blocks:  # consumed read-ahead records come first in the file
                self._move_ahead("ball.bin")
            cols = self._cols["ball.bin"]
            cols.data[0] += bt
            cols.data[1] += bc
            cols.data[2] += bm
            cols.iterations.append(i)
            cols.counts.append(n)

    def licks(self, i: int, t: Sequence[float], onset: Sequence[bool]) -> None:
        """Lick-sensor edges consumed at iteration i (onset True = touch, False = release)."""
        if not len(t) and not len(onset):
            return
        if len(t) != len(onset):
            raise ValueError(f"licks.bin: {len(t)} times but {len(onset)} onset flags")
        buf = self._bin["licks.bin"]
        for tt, on in zip(t, onset, strict=True):
            buf += self._pack_lick(i, tt, 1 if on else 0)

    def frame_clock(self, i: int, t: np.ndarray) -> None:
        """Imaging frame-clock edges consumed at iteration i; frames are numbered 0, 1, 2, ... in order."""
        n = len(t)
        if n:
            if self._ahead["frame_clock.bin"].blocks:
                self._move_ahead("frame_clock.bin")
            cols = self._cols["frame_clock.bin"]
            cols.data[0] += np.asarray(t, dtype="<f8").tobytes()
            cols.iterations.append(i)
            cols.counts.append(n)
            self._frame_count += n

    # ---- records read ahead (a loop on a virtual clock reads simulated inputs in chunks) ----------

    def ball_ahead(self, i0: int, t: np.ndarray, counts: np.ndarray, cm: np.ndarray, ends: np.ndarray) -> None:
        """Encoder samples of iterations i0, i0 + 1, ... read ahead: iteration i0 + j consumes samples
        [ends[j - 1], ends[j]) (ends[-1] = 0). They are logged exactly as ball() would log them, but only
        for iterations consumed() has reached: what no iteration consumed is never written."""
        n = len(t)
        if n != len(counts) or n != len(cm):
            raise ValueError(f"ball.bin: t, counts, cm differ in length ({n}, {len(counts)}, {len(cm)})")
        self._add_ahead("ball.bin", i0, (np.asarray(t, dtype="<f8"), np.asarray(counts, dtype="<i8"),
                                         np.asarray(cm, dtype="<f8")), ends)

    def frame_clock_ahead(self, i0: int, t: np.ndarray, ends: np.ndarray) -> None:
        """Imaging frame-clock edges of iterations i0, i0 + 1, ... read ahead (as ball_ahead)."""
        self._add_ahead("frame_clock.bin", i0, (np.asarray(t, dtype="<f8"),), ends)

    def consumed(self, i: int) -> None:
        """Iterations up to i have consumed their read-ahead records (called once per iteration)."""
        self._through = i

    def _add_ahead(self, name: str, i0: int, arrays: tuple[np.ndarray, ...], ends: np.ndarray) -> None:
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and (int(ends[-1]) != len(arrays[0]) or (np.diff(ends, prepend=0) < 0).any()):
            raise ValueError(f"{name}: read-ahead ends must ascend to the {len(arrays[0])} records given")
        blocks = self._ahead[name].blocks
        if blocks and i0 < blocks[-1][0] + len(blocks[-1][2]):
            raise ValueError(f"{name}: read-ahead block from iteration {i0} overlaps the previous one")
        if self._cols[name].counts:
            # Records of ball()/frame_clock() wait for the next flush; read-ahead records would come first.
            raise ValueError(f"{name}: read-ahead records after ones logged per call in the same flush")
        if len(ends) and int(ends[-1]):
            blocks.append([i0, arrays, ends, 0])

    def _move_ahead(self, name: str) -> None:
        """Make records of the consumed part of the read-ahead blocks, as ball()/frame_clock() calls per
        iteration would have logged them (written by the next flush, before records logged per call)."""
        blocks = self._ahead[name].blocks
        through = self._through
        while blocks:
            block = blocks[0]
            i0, arrays, ends, done = block
            c = min(through - i0 + 1, len(ends))  # iterations of the block consumed so far
            if c <= done:
                return
            s0 = int(ends[done - 1]) if done else 0
            s1 = int(ends[c - 1])
            if s1 > s0:
                ns = np.diff(ends[done:c], prepend=s0)
                rec = np.empty(s1 - s0, dtype=self._dtypes[name])
                rec["i"] = np.repeat(np.arange(i0 + done, i0 + c, dtype=np.int64), ns)
                for (f, _), arr in zip(self._cols[name].fields, arrays, strict=True):
                    rec[f] = arr[s0:s1]
                if name == "frame_clock.bin":
                    rec["frame"] = np.arange(self._frame_count, self._frame_count + len(rec))
                    self._frame_count += len(rec)
                self._ahead_records[name].append(rec)
            if c == len(ends):
                blocks.pop(0)
            else:
                block[3] = c
                return

    def _pack_columns(self) -> None:
        """Interleave buffered columns into records (once per flush, not per call)."""
        for name, ahead in self._ahead.items():
            if ahead.blocks:
                self._move_ahead(name)
        for name, cols in self._cols.items():
            if not cols.counts:
                continue
            ns = np.frombuffer(cols.counts, dtype=np.int64)
            rec = np.empty(int(ns.sum()), dtype=self._dtypes[name])
            rec["i"] = np.repeat(np.frombuffer(cols.iterations, dtype=np.int64), ns)
            for (f, t), data in zip(cols.fields, cols.data, strict=True):
                rec[f] = np.frombuffer(data, dtype=t)
            if name == "frame_clock.bin":
                rec["frame"] = np.arange(self._frame_count - len(rec), self._frame_count)
            self._bin[name] += rec.tobytes()
            self._cols[name] = _Columns(cols.fields)

    def timing(self, i: int, t_wall: float, work_s: float, latency_s: float) -> None:
        self._bin["timing.bin"] += self._pack_timing(i, t_wall, work_s, latency_s)

    def _line(self, name: str, record: dict[str, Any]) -> None:
        try:
            self._lines[name].append(self._encode(record))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: record cannot be written as JSON ({e}): {record!r}") from None

    def events(self, i: int, events: Sequence[Event]) -> None:
        for e in events:
            self._line("events.jsonl", event_record(i, e))

    def commands(self, i: int, commands: Sequence[Command]) -> None:
        for c in commands:
            self._line("commands.jsonl", command_record(i, c))

    def operator(self, i: int, t: float, action: str, **data: Any) -> None:
        """An operator action (manual_reward, pause, resume, stop, flush_valve, ...) taken at iteration i."""
        if not action:
            raise ValueError("operator.jsonl: action must be a non-empty string")
        self._line("operator.jsonl", {"i": i, "t": t, "action": action, "data": data})

    def mesoscope(self, i: int, t: float, kind: str, **data: Any) -> None:
        """A message exchanged with the mesoscope (command, ack, frame message), seen at iteration i."""
        if not kind:
            raise ValueError("mesoscope.jsonl: kind must be a non-empty string")
        self._line("mesoscope.jsonl", {"i": i, "t": t, "kind": kind, "data": data})

    def fault(self, i: int, t: float, source: str, kind: str, message: str) -> None:
        """A device or link fault noticed at iteration i (t: when the driver noticed it)."""
        self._line("faults.jsonl", {"i": i, "t": t, "source": source, "kind": kind, "message": message})

    def valve(self, i: int, kind: str, record: dict[str, Any]) -> None:
        """An opening of the valve as the runner decided it ("open": what was asked, sent and delivered,
        or refused) or the early end of a flush ("close")."""
        self._line("valve.jsonl", {"i": i, "kind": kind, **record})

    def clock_map(self, i: int, t: float, source: str, offset: float, scale: float) -> None:
        """The map a driver uses from its device clock to the session timeline (logged when it changes)."""
        self._line("clocks.jsonl", {"i": i, "t": t, "source": source, "offset": offset, "scale": scale})

    # ---- flushing --------------------------------------------------------------------------------

    def tick(self, wall_now: float) -> None:
        """Call once per loop iteration with a monotonic wall time; flushes every flush_interval_s."""
        if self._last_flush is None:
            self._last_flush = wall_now
        elif wall_now - self._last_flush >= self.flush_interval_s:
            self.flush()
            self._last_flush = wall_now

    def flush(self) -> None:
        """Write every buffered record to the OS (survives a killed process; not fsynced until close).

        All or nothing: when a write fails, every file is cut back to where the last complete flush left
        it, the buffered records are dropped, the writer stops writing, and LogWriteError is raised (again
        by every later flush)."""
        if self._closed:
            raise ValueError(f"session {self.path} is closed")
        if self._failed is not None:
            raise self._failed
        self._pack_columns()
        chunks: list[tuple[str, bytes | bytearray | memoryview, int]] = []  # file, bytes, records
        for name, parts in self._ahead_records.items():  # read-ahead records first (see _add_ahead)
            for rec in parts:
                chunks.append((name, rec.view(np.uint8).data, len(rec)))
            parts.clear()
        for name, buf in self._bin.items():
            if buf:
                chunks.append((name, buf, len(buf) // self._dtypes[name].itemsize))
                self._bin[name] = bytearray()
        for name, lines in self._lines.items():
            if lines:
                chunks.append((name, ("\n".join(lines) + "\n").encode("ascii"), len(lines)))
                self._lines[name] = []
        for k, (name, data, _) in enumerate(chunks):
            try:
                _write_all(self._files[name], data)
            except OSError as e:
                self._fail(name, e, [c[0] for c in chunks[: k + 1]])
        for name, data, records in chunks:
            self._sizes[name] += len(data)
            self._counts[name] += records

    def _fail(self, name: str, error: OSError, written: list[str]) -> None:
        """Cut the files this flush wrote back to the last complete flush, stop writing, raise."""
        kept = self._counts.get("frames.bin", 0)
        problems = []
        for n in written:
            try:
                os.ftruncate(self._files[n].fileno(), self._sizes[n])
            except OSError as e:  # cannot happen on a working disk; the reader drops a partial tail anyway
                problems.append(f"{n} not cut back: {e.strerror or e}")
        more = f" ({'; '.join(problems)})" if problems else ""
        self._failed = LogWriteError(
            f"cannot write {self.path / name}: {error.strerror or error}; the session log ends at its last "
            f"complete flush ({kept} records in frames.bin){more}", error)
        raise self._failed from error
