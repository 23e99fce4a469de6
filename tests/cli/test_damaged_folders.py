"""Damaged session folders against every command that reads sessions.

Each command must answer a damaged folder with exit 2 and one line naming the file and what is wrong (or
0/1 where the damage is tolerated by design: a cut tail, a damaged footer), never a traceback, a hang or an
unbounded allocation. Hypothesis draws a damage (what is in a file's place, its size, its bytes, its JSON
structure, field types and values, the header, the footer, the record layouts, attached tables), applies it
to a fresh copy of a real session (made once, with `rig run demo --fast --max-trials 5`), and runs one
command in-process through rig.cli.main.main, under a memory limit and a hang alarm. The damages that
need a process of their own (a sparse 100 GB file under a small address space, unreadable permissions)
run as real subprocesses.

RIG_FUZZ_EXAMPLES=N sets the examples per command (default: a few, for the suite); RIG_FUZZ_REPORT=FILE
appends one JSON line per call (command, damage, exit code, seconds) for the figures in the issue.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.cli.main import main
from rig.datalog.reader import BINARY_FIELDS, JSONL_FILES
from rig.sync.reconcile import FRAME_DTYPE
from tests.support.fuzz_tally import FuzzTallies, Tally
from tests.support.paths import REPO

HANG_S = 60  # no call may take longer (the slowest, rig summary, takes ~2 s)
MEMORY_HEADROOM = 3 << 30  # address space a call may add to the test process
EXAMPLES = int(os.environ.get("RIG_FUZZ_EXAMPLES", "0"))
REPORT = os.environ.get("RIG_FUZZ_REPORT")
MARKER_NAME = "PICKLE-RAN"  # a pickle's payload creates this file if anything ever loads it

DATA_FILES = (*BINARY_FIELDS, *JSONL_FILES)
SESSION_FILES = ("header.json", "footer.json", "clock.json", *DATA_FILES)
ATTACHED = ("frame_table.npy", "sync_report.json")


# ---- the commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (session, output dir) -> argv
    reads: frozenset[str]  # files it reads (damage elsewhere must not matter)
    examples: int  # default examples in the suite (the slow ones get fewer)
    opens_session: bool = True  # Session.open (not the animal summary's header/footer/events/commands)


_BASE = frozenset(SESSION_FILES)
COMMANDS = {
    c.name: c
    for c in (
        Command("info", lambda s, o: ["info", str(s)], _BASE | {"sync_report.json"}, 30),
        Command("replay --verify", lambda s, o: ["replay", "--verify", str(s)], _BASE, 30),
        Command("replay", lambda s, o: ["replay", str(s), "--fast", "--data", str(o / "replays"), "-q"], _BASE, 10),
        Command("export --nwb", lambda s, o: ["export", str(s), "--nwb", str(o / "s.nwb")],
                _BASE | {"frame_table.npy"}, 8),
        Command("export --mouseland", lambda s, o: ["export", str(s), "--mouseland", str(o / "beh.npy")],
                _BASE | {"frame_table.npy"}, 25),
        Command("frames", lambda s, o: ["frames", str(s), "-o", str(o / "frames.npy")],
                _BASE | {"frame_table.npy"}, 25),
        Command("summary", lambda s, o: ["summary", str(s), "-o", str(o / "s.png")], _BASE | {"sync_report.json"}, 6),
        Command("summary ANIMAL", lambda s, o: ["summary", str(s.parents[1]), "-o", str(o / "a.png")],
                frozenset({"header.json", "footer.json", "events.jsonl", "commands.jsonl"}), 8, opens_session=False),
    )
}


# ---- the session ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("pristine")
    done = subprocess.run([sys.executable, "-m", "rig.cli", "run", "demo", "--fast", "--max-trials", "5", "--seed", "7",
                           "--data", str(data), "-q"], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    # Empty in a demo run: give them lines (none an engine input), so their lines can be damaged too.
    extra = {
        "operator.jsonl": ['{"action":"valve_open","data":{"close_after_s":0.05},"i":3,"t":0.05}',
                           '{"action":"valve_close","data":{"reason":"operator"},"i":4,"t":0.06666666666666667}'],
        "mesoscope.jsonl": ['{"data":{"channel":"cmd","dir":"out","msg":{"id":1,"type":"status","v":1}},"i":1,'
                            '"kind":"status","t":0.016666666666666666}'],
        "faults.jsonl": ['{"i":30,"kind":"crc","message":"checksum error","source":"ball","t":0.5}'],
    }
    footer = json.loads((folder / "footer.json").read_text())
    for name, lines in extra.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))
        footer["counts"][name] = len(lines)
    (folder / "footer.json").write_text(json.dumps(footer, indent=1))
    return folder


@contextlib.contextmanager
def fresh_copy(pristine: Path) -> Iterator[tuple[Path, Path]]:
    """A copy of the session as DATA/ANIMAL/DATE/NNN, and an output folder; removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="damaged-"))
    try:
        session = work / "data" / pristine.parents[1].name / pristine.parent.name / pristine.name
        shutil.copytree(pristine, session)
        (work / "out").mkdir()
        yield session, work / "out"
    finally:
        for p in work.rglob("*"):  # undo chmod 000 before removing
            with contextlib.suppress(OSError):
                p.chmod(0o700, follow_symlinks=False) if not p.is_symlink() else None
        shutil.rmtree(work, ignore_errors=True)


# ---- damages -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """One change to a session folder. `refuse`: every command that reads `target` must answer exit 2
    (the damage is never tolerated); otherwise 0, 1 or 2 are all fair (a value that may be valid, a cut
    tail, a damaged footer)."""

    target: str
    what: str
    apply: Callable[[Path], None]
    refuse: bool


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _put_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "[" else (b'{"a":' * depth + b"0" + b"}" * depth)


def _big_int(digits: int) -> bytes:
    return b"9" * digits


# Values of the wrong JSON type for each key the writer writes (a reader must refuse them all).
_WRONG_TYPES: dict[str, list[Any]] = {
    "i": [True, "1", 1.5, None, [1], {"a": 1}, -1],
    "t": ["x", True, None, [0.0], {"t": 1}, float("nan"), float("inf"), float("-inf")],
    "kind": [3, True, None, [], {"k": 1}, ""],
    "trial": ["0", True, 0.5, None, [0]],
    "position_cm": ["1", True, None, float("nan"), float("inf")],
    "data": [[1], "x", 3, True, None],
    "duration_ms": ["x", True, -1.0, float("inf"), None],
    "volume_ul": ["x", True, -2.5, float("nan"), None],
    "frequency_hz": ["x", False, None],
    "source": [1, True, None, ""],
    "action": [1, True, None, ""],
    "message": [1, None, ["x"]],
    "offset": ["x", True, None, float("nan")],
    "scale": ["x", False, None, float("inf")],
}
_ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
)


def _edit_line(name: str, k: int, edit: Callable[[dict[str, Any]], bytes]) -> Callable[[Path], None]:
    def apply(s: Path) -> None:
        lines = _lines(s / name)
        k_ = k % len(lines)
        lines[k_] = edit(json.loads(lines[k_]))
        _put_lines(s / name, lines)
    return apply


def _replace_line(name: str, k: int, raw: bytes) -> Callable[[Path], None]:
    return _edit_line(name, k, lambda rec: raw)


@st.composite
def line_damages(draw: st.DrawFn) -> Damage:
    name = draw(st.sampled_from(JSONL_FILES))
    k = draw(st.integers(0, 1000))
    how = draw(st.sampled_from(["deep", "big int", "not an object", "bytes", "wrong type", "no key", "extra key",
                                "any value", "data value"]))
    if how == "deep":
        depth, kind = draw(st.integers(33, 100_000)), draw(st.sampled_from("[{"))
        return Damage(name, f"{name} line {k}: nested {depth} deep", _replace_line(name, k, _nested(depth, kind)), True)
    if how == "big int":
        digits = draw(st.integers(21, 6000))
        raw = b'{"i":' + _big_int(digits) + b',"t":0.0}'
        return Damage(name, f"{name} line {k}: a {digits}-digit integer", _replace_line(name, k, raw), True)
    if how == "not an object":
        value = draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers(), st.none(),
                               st.booleans()))
        return Damage(name, f"{name} line {k}: {value!r}", _replace_line(name, k, _encode(value)), True)
    if how == "bytes":
        raw = draw(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b))
        return Damage(name, f"{name} line {k}: bytes {raw!r}", _replace_line(name, k, raw), False)
    if how == "extra key":
        return Damage(name, f"{name} line {k}: an extra key", _edit_line(name, k, lambda r: _encode({**r, "zz": 1})),
                      True)
    # The remaining damages edit one key of the record.
    key = draw(st.sampled_from(sorted(_WRONG_TYPES)))
    if how == "no key":
        return Damage(name, f"{name} line {k}: without {key!r}",
                      _edit_line(name, k, lambda r: _encode({x: v for x, v in r.items() if x != key})), False)
    if how == "wrong type":
        value = draw(st.sampled_from(_WRONG_TYPES[key]))

        def wrong(r: dict[str, Any]) -> bytes:  # only a key the record has (other keys are "extra key")
            return _encode({**r, key: value} if key in r else {**r, "zz": 1})
        return Damage(name, f"{name} line {k}: {key}={value!r}", _edit_line(name, k, wrong), True)
    value = draw(_ANY_VALUE)
    if how == "data value":
        sub = draw(st.sampled_from(["corridor", "corridor_index", "stage", "rewarded", "volume_ul", "source",
                                    "anticipatory", "cue_position_cm", "dir", "t_pulse", "x"]))

        def set_data(r: dict[str, Any]) -> bytes:
            data = r.get("data")
            return _encode({**r, "data": {**data, sub: value}} if isinstance(data, dict) else r)
        return Damage(name, f"{name} line {k}: data.{sub}={value!r}", _edit_line(name, k, set_data), False)
    return Damage(name, f"{name} line {k}: {key}={value!r}", _edit_line(name, k, lambda r: _encode({**r, key: value})),
                  False)


def _file_kind(name: str, kind: str) -> Callable[[Path], None]:
    def apply(s: Path) -> None:
        p = s / name
        if p.exists() or p.is_symlink():
            p.unlink()
        if kind == "directory":
            p.mkdir()
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "link outside":
            p.symlink_to("/etc/hostname")
        elif kind == "link to /dev/zero":
            p.symlink_to("/dev/zero")
        elif kind == "dangling link":
            p.symlink_to(s / "no-such-file")
    return apply


@st.composite
def file_damages(draw: st.DrawFn) -> Damage:
    name = draw(st.sampled_from((*SESSION_FILES, *ATTACHED)))
    kind = draw(st.sampled_from(["directory", "fifo", "link outside", "link to /dev/zero", "dangling link", "deleted"]))
    tolerated = name == "sync_report.json" or (kind == "deleted" and name in ("footer.json", "clock.json", *ATTACHED))
    return Damage(name, f"{name}: {kind}", _file_kind(name, kind), not tolerated)


@st.composite
def size_damages(draw: st.DrawFn) -> Damage:
    name = draw(st.sampled_from((*SESSION_FILES, "sync_report.json")))
    how = draw(st.sampled_from(["sparse 100 GB", "cut", "zeros appended", "bytes"]))
    if how == "sparse 100 GB":
        def sparse(s: Path) -> None:
            p = s / name
            if not p.exists():
                p.write_bytes(b"{}")
            os.truncate(p, 100 << 30)
        # A 100 GB header or data file is refused; a footer, clock or sync report that size is left out.
        return Damage(name, f"{name}: {how}", sparse, name in ("header.json", *DATA_FILES))
    if how == "cut":
        frac = draw(st.floats(0.0, 1.0))

        def cut(s: Path) -> None:
            p = s / name
            if p.exists():
                os.truncate(p, int(p.stat().st_size * frac))
        return Damage(name, f"{name}: cut at {frac:.3f}", cut, False)
    if how == "zeros appended":
        n = draw(st.integers(1, 5000))

        def zeros(s: Path) -> None:
            with open(s / name, "ab") as f:
                f.write(bytes(n))
        return Damage(name, f"{name}: {n} zero bytes appended", zeros, False)
    frac, raw = draw(st.floats(0.0, 1.0)), draw(st.binary(min_size=1, max_size=64))

    def overwrite(s: Path) -> None:
        p = s / name
        if p.exists():
            data = bytearray(p.read_bytes())
            at = int(len(data) * frac)
            data[at:at + len(raw)] = raw
            p.write_bytes(bytes(data))
    return Damage(name, f"{name}: {len(raw)} bytes overwritten at {frac:.3f}", overwrite, False)


_HEADER_PATHS = (
    "animal", "date", "session", "seed", "fast", "frame_rate_hz", "flush_interval_s", "format_version", "files",
    "protocol", "protocol_yaml", "config", "software", "replay_of", "start_time",
    "protocol.name", "protocol.kind", "protocol.corridors", "protocol.corridors.0", "protocol.corridors.0.name",
    "protocol.corridors.0.texture_length_cm", "protocol.stages", "config.drivers", "config.drivers.ball",
    "config.drivers.ball.sample_rate_hz", "config.drivers.ball.counts_per_cm", "config.drivers.valve.max_open_ms",
    "config.valve_calibration", "config.min_free_disk_mb", "files.frames.bin", "files.ball.bin.dtype",
    "files.events.jsonl",
)
# A value of the wrong type at each of these header paths must be refused.
_HEADER_WRONG: dict[str, list[Any]] = {
    "seed": ["1", True, None, 1.5], "frame_rate_hz": ["60", True, None, float("nan"), float("inf"), 0, 1e9],
    "flush_interval_s": [True, "x", -1.0], "fast": [1, "yes", None], "session": [True, "1", 0],
    "files": [[], "x", None], "protocol": [[], "x", None], "config": [[], 5],
    "protocol.corridors": ["x", 5, {}, []], "protocol.corridors.0": [5, "x", None], "protocol.stages": [[1], "x"],
    "config.drivers": [[1], "x"], "config.drivers.ball.sample_rate_hz": ["fast", True, -5, float("nan")],
    "config.drivers.valve.max_open_ms": ["x", True, 0], "files.ball.bin.dtype": [[["i", "|O"]], [], [["i", "V0"]],
                                                                                  [["t", "<f8"], ["i", "<i8"]]],
}


def _set_path(doc: Any, path: str, value: Any, delete: bool = False) -> None:
    keys = re.split(r"\.(?!bin|jsonl)", path)  # "files.frames.bin" is one key below "files"
    node = doc
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if delete:
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        node[last] = value


@st.composite
def document_damages(draw: st.DrawFn) -> Damage:
    name = draw(st.sampled_from(["header.json", "footer.json", "clock.json", "sync_report.json"]))
    tolerated = name != "header.json"  # footer, clock, sync report: the session reads on without them
    how = draw(st.sampled_from(["deep", "big int", "not an object", "wrong type", "any value", "deleted key"]))
    if how == "deep":
        depth = draw(st.integers(33, 100_000))
        raw = b'{"format":"corridor-rig-session","x":' + _nested(depth, draw(st.sampled_from("[{"))) + b"}"
        return Damage(name, f"{name}: nested {depth} deep", lambda s: (s / name).write_bytes(raw), not tolerated)
    if how == "big int":
        digits = draw(st.integers(21, 6000))

        def big(s: Path) -> None:
            text = (s / name).read_text() if (s / name).exists() else "{}"
            (s / name).write_bytes(text.replace("{", '{"zz":' + "9" * digits + ",", 1).encode())
        return Damage(name, f"{name}: a {digits}-digit integer", big, not tolerated)
    if how == "not an object":
        value = draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers(), st.none()))
        return Damage(name, f"{name}: {value!r}", lambda s: (s / name).write_bytes(_encode(value)), not tolerated)

    def edit(fn: Callable[[Any], None]) -> Callable[[Path], None]:
        def apply(s: Path) -> None:
            p = s / name
            doc = json.loads(p.read_text()) if p.exists() else {}
            fn(doc)
            p.write_bytes(_encode(doc))
        return apply

    paths = _HEADER_PATHS if name == "header.json" else ("complete", "reason", "counts", "counts.frames.bin",
                                                         "summary", "imaging_frames", "monotonic_s", "frames")
    path = draw(st.sampled_from(paths))
    if how == "deleted key":
        return Damage(name, f"{name}: without {path}", edit(lambda d: _set_path(d, path, None, delete=True)), False)
    if how == "wrong type" and path in _HEADER_WRONG and name == "header.json":
        value = draw(st.sampled_from(_HEADER_WRONG[path]))
        return Damage(name, f"{name}: {path}={value!r}", edit(lambda d: _set_path(d, path, value)), True)
    value = draw(_ANY_VALUE)
    return Damage(name, f"{name}: {path}={value!r}", edit(lambda d: _set_path(d, path, value)), False)


_SPECIAL = {"f": [np.nan, np.inf, -np.inf, 1e308, -0.0, 5e-324], "i": [-(2**63), 2**63 - 1, -1, 0, 2**31],
            "u": [0, 1, 2, 255]}


@st.composite
def record_damages(draw: st.DrawFn) -> Damage:
    name = draw(st.sampled_from(list(BINARY_FIELDS)))
    field, kind = draw(st.sampled_from([(f, t[1]) for f, t in BINARY_FIELDS[name]]))
    value = draw(st.sampled_from(_SPECIAL[kind]))
    k = draw(st.integers(-3, 200))
    dtype = np.dtype(list(BINARY_FIELDS[name]))

    def apply(s: Path) -> None:
        a = np.fromfile(s / name, dtype=dtype)
        if len(a):
            a[field][k % len(a)] = np.array(value).astype(dtype[field])  # ints wrap into the field's width
            a.tofile(s / name)
    # A time that is not finite is never written; anything else may be a plausible value.
    refuse = field == "t" and kind == "f" and not np.isfinite(value)
    return Damage(name, f"{name} record {k}: {field}={value!r}", apply, refuse)


class _Evil:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def save_evil_pickle(path: Path, marker: Path) -> None:
    np.save(path, np.array([_Evil(marker)], dtype=object), allow_pickle=True)


def _marker(session: Path) -> Path:
    return session.parents[2].parent / MARKER_NAME  # WORK/MARKER beside WORK/data/ANIMAL/DATE/NNN


@st.composite
def table_damages(draw: st.DrawFn) -> Damage:
    how = draw(st.sampled_from(["pickle", "claims more rows", "two-dimensional", "lacks fields", "garbage",
                                "not finite", "v3 header"]))
    name = "frame_table.npy"
    garbage = draw(st.binary(max_size=200))

    def write(s: Path) -> None:
        p = s / name
        if how == "pickle":
            save_evil_pickle(p, _marker(s))
        elif how == "claims more rows":
            np.save(p, np.zeros(3, FRAME_DTYPE))
            p.write_bytes(p.read_bytes().replace(b"(3,)", b"(99999999999,)", 1))
        elif how == "two-dimensional":
            np.save(p, np.zeros((2, 2), FRAME_DTYPE))
        elif how == "lacks fields":
            np.save(p, np.zeros(3, [("time", "<f8")]))
        elif how == "garbage":
            p.write_bytes(b"\x93NUMPY" + garbage)
        elif how == "not finite":
            a = np.zeros(3, FRAME_DTYPE)
            a["time"] = [0.0, np.nan, np.inf]
            np.save(p, a)
        else:
            p.write_bytes(b"\x93NUMPY\x03\x00" + b"\x10\x00\x00\x00" + b"{'descr': 'x'}  \n")
    return Damage(name, f"{name}: {how}", write, how != "not finite")


DAMAGES = st.one_of(line_damages(), file_damages(), size_damages(), document_damages(), record_damages(),
                    table_damages())


# ---- running a command ---------------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the alarm: not an Exception, so no handler in the code under test can swallow it."""


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.found.append(self.format(record))


@dataclass
class Outcome:
    code: int | str  # exit code, or "crash" / "hang"
    stdout: str
    stderr: str
    traceback: str | None
    seconds: float


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def run_in_process(argv: list[str]) -> Outcome:
    """`rig ARGV` as the console script runs it (rig.cli.main.main), with stdout and stderr captured, a
    traceback anywhere (escaping, or logged) recorded, at most HANG_S seconds and MEMORY_HEADROOM more
    address space."""
    out, err = io.StringIO(), io.StringIO()
    catcher = _Tracebacks()
    root = logging.getLogger()
    root.addHandler(catcher)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + MEMORY_HEADROOM, hard))

    def alarm(signum: int, frame: Any) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    t0 = time.perf_counter()
    tb = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code: int | str = main(argv)
    except _Hang:
        code = "hang"
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        code, tb = "crash", traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        root.removeHandler(catcher)
    return Outcome(code, out.getvalue(), err.getvalue(), tb or ("\n".join(catcher.found) or None),
                   time.perf_counter() - t0)


def check(command: Command, damage: Damage, session: Path, outcome: Outcome) -> None:
    """The contract of every reader command facing a damaged folder."""
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps({"command": command.name, "damage": damage.what, "code": outcome.code,
                                "seconds": round(outcome.seconds, 3)}) + "\n")
    where = f"`rig {command.name}` after {damage.what}"
    assert outcome.code not in ("crash", "hang"), f"{where}: {outcome.code}\n{outcome.traceback or ''}"
    assert outcome.traceback is None and "Traceback" not in outcome.stderr, f"{where}:\n{outcome.stderr}"
    reads = damage.target in command.reads and (command.opens_session or "deleted" not in damage.what)
    expected = {2} if damage.refuse and reads else {0, 1, 2}
    assert outcome.code in expected, f"{where}: exit {outcome.code}, expected {expected}:\n{outcome.stderr}"
    if outcome.code == 2:
        lines = [x for x in outcome.stderr.splitlines() if x.strip() and ": warning: " not in x]
        prog = command.name.split()[0]
        assert len(lines) == 1 and lines[0].startswith(f"rig {prog}: "), f"{where}:\n{outcome.stderr}"
        animal = session.parents[1]
        assert str(animal) in lines[0], f"{where}: the message names no file: {lines[0]}"


def _settings(command: Command) -> settings:
    return settings(max_examples=EXAMPLES or command.examples, deadline=None, derandomize=not EXAMPLES,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def tally_outcome(tally: Tally, outcome: Outcome) -> None:
    """Before the checks: what the call did (a hang, a traceback), as observed."""
    tally.tried += 1
    if outcome.code == "hang":
        tally.hangs += 1
    elif outcome.code == "crash" or outcome.traceback is not None or "Traceback" in outcome.stderr:
        tally.crashes += 1


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_damaged_folder_gets_one_line_and_exit_2_never_a_traceback(name: str, pristine: Path,
                                                                     fuzz_tally: FuzzTallies) -> None:
    command = COMMANDS[name]
    tally = fuzz_tally(f"folders: rig {name}", "damages")

    @_settings(command)
    @given(damage=DAMAGES)
    def fuzz(damage: Damage) -> None:
        with fresh_copy(pristine) as (session, out):
            damage.apply(session)
            outcome = run_in_process(command.argv(session, out))
            tally_outcome(tally, outcome)
            check(command, damage, session, outcome)
            # check() passed: an exit 2 is one line naming the file; 0 and 1 read the damage as tolerable
            if outcome.code == 2:
                tally.refused += 1
            else:
                tally.other[f"read (exit {outcome.code})"] += 1
            if _marker(session).exists():
                tally.other["pickle loaded"] += 1
            assert not _marker(session).exists(), f"{damage.what}: a pickle was loaded"

    fuzz()
    assert tally.crashes == tally.hangs == tally.other["pickle loaded"] == 0, tally


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_undamaged_session_reads(name: str, pristine: Path) -> None:
    with fresh_copy(pristine) as (session, out):
        outcome = run_in_process(COMMANDS[name].argv(session, out))
    assert outcome.code == 0 and outcome.traceback is None, outcome.stderr


# ---- in a process of their own: bounded memory, permissions, no hang ------------------------------------


def _rig(argv: list[str], *, address_space: int | None = None, prefix: tuple[str, ...] = ()
         ) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    return subprocess.run([*prefix, sys.executable, "-m", "rig.cli", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=HANG_S, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limit)


def _one_line_naming(done: subprocess.CompletedProcess[str], prog: str, file: Path, what: str,
                     tally: Tally | None = None) -> None:
    if tally is not None:
        tally.tried += 1
        tally.crashes += "Traceback" in done.stderr
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    head = re.match(rf"rig {prog}: (CORRUPTED: )?{re.escape(str(file))}: ", lines[0]) if len(lines) == 1 else None
    assert head is not None and what in lines[0], done.stderr
    if tally is not None:
        tally.refused += 1
        assert tally.crashes == tally.hangs == 0, tally


def _rig_counted(tally: Tally, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """_rig, with a call that outlives HANG_S counted as a hang (and failing the test, as before)."""
    try:
        return _rig(argv, **kw)
    except subprocess.TimeoutExpired:
        tally.tried += 1
        tally.hangs += 1
        raise


OWN_PROCESS = "folders: own process (sparse, fifo, 000)"


@pytest.mark.parametrize("name", ["replay --verify", "export --mouseland"])
def test_a_sparse_100_gb_stream_is_refused_within_1_gib(name: str, pristine: Path, fuzz_tally: FuzzTallies) -> None:
    tally = fuzz_tally(OWN_PROCESS, "damages")
    with fresh_copy(pristine) as (session, out):
        os.truncate(session / "ball.bin", 100 << 30)
        done = _rig_counted(tally, COMMANDS[name].argv(session, out), address_space=1 << 30)
        _one_line_naming(done, name.split()[0], session / "ball.bin", "more than a session this long can hold",
                         tally)


def test_a_fifo_in_place_of_a_stream_is_refused_without_waiting(pristine: Path, fuzz_tally: FuzzTallies) -> None:
    tally = fuzz_tally(OWN_PROCESS, "damages")
    with fresh_copy(pristine) as (session, out):
        (session / "events.jsonl").unlink()
        os.mkfifo(session / "events.jsonl")  # opening it to read would wait for a writer forever
        done = _rig_counted(tally, ["info", str(session)])
        _one_line_naming(done, "info", session / "events.jsonl", "a named pipe (FIFO), not a file", tally)


def test_an_unreadable_file_is_refused(pristine: Path, fuzz_tally: FuzzTallies) -> None:
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv(1) to drop CAP_DAC_OVERRIDE")
        caps = "-dac_override,-dac_read_search"
        prefix = (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")
    with fresh_copy(pristine) as (session, out):
        (session / "events.jsonl").chmod(0)
        tally = fuzz_tally(OWN_PROCESS, "damages")
        done = _rig_counted(tally, ["replay", "--verify", str(session)], prefix=prefix)
        _one_line_naming(done, "replay", session / "events.jsonl", "cannot be opened: Permission denied", tally)


# ---- pickles -------------------------------------------------------------------------------------------


def test_a_pickle_given_as_session_is_never_loaded(pristine: Path, tmp_path: Path) -> None:
    evil, marker, out = tmp_path / "Beh_evil.npy", tmp_path / MARKER_NAME, tmp_path / "beh.npy"
    save_evil_pickle(evil, marker)
    done = _rig(["export", str(evil), "--mouseland", str(out)])  # the CLI as a user runs it
    assert done.returncode == 2 and "not a session folder" in done.stderr and "Traceback" not in done.stderr
    for argv in (["export", str(evil), str(pristine), "--mouseland", str(out)], ["export", str(evil), "--nwb",
                 str(tmp_path / "x.nwb")], ["frames", str(evil), "-o", str(out)], ["info", str(evil)],
                 ["summary", str(evil)], ["replay", "--verify", str(evil)], ["replay", str(evil), "--fast"]):
        outcome = run_in_process(argv)
        assert outcome.code == 2 and outcome.traceback is None, (argv, outcome.stderr)
    assert not marker.exists() and not out.exists()


def test_a_pickle_inside_a_session_folder_is_never_loaded(pristine: Path) -> None:
    with fresh_copy(pristine) as (session, out):
        marker = _marker(session)
        save_evil_pickle(session / "frame_table.npy", marker)
        for name, command in COMMANDS.items():
            outcome = run_in_process(command.argv(session, out))
            refused = "frame_table.npy" in command.reads
            assert outcome.code == (2 if refused else 0) and outcome.traceback is None, (name, outcome.stderr)
            if refused:
                assert "holds Python objects (a pickle), which are never loaded" in outcome.stderr
        for name in ("header.json", "footer.json", "events.jsonl", "frames.bin"):  # a pickle as a session file
            shutil.copy(session / "frame_table.npy", session / name)
            outcome = run_in_process(["info", str(session)])  # refused, or (a footer) read as incomplete
            assert outcome.code in (0, 2) and outcome.traceback is None, (name, outcome.stderr)
            shutil.copy(pristine / name, session / name)
        (out / "beh.npy").unlink(missing_ok=True)
        save_evil_pickle(out / "beh.npy", marker)  # an old export to be replaced: written over, never read
        assert run_in_process(COMMANDS["export --mouseland"].argv(session, out)).code == 2  # frame_table.npy
        (session / "frame_table.npy").unlink()
        assert run_in_process(COMMANDS["export --mouseland"].argv(session, out)).code == 0
        assert not marker.exists()


# ---- valid, if short: sessions killed early --------------------------------------------------------------


def _killed(keep_events: int) -> Callable[[Path], None]:
    """The session as killed early: no footer, events.jsonl holding its first `keep_events` lines."""
    def apply(s: Path) -> None:
        (s / "footer.json").unlink()
        _put_lines(s / "events.jsonl", _lines(s / "events.jsonl")[:keep_events])
    return apply


@pytest.mark.parametrize("name", COMMANDS)
def test_a_session_killed_before_its_first_trial_reads(name: str, pristine: Path) -> None:
    with fresh_copy(pristine) as (session, out):
        _killed(1)(session)  # session_start only
        outcome = run_in_process(COMMANDS[name].argv(session, out))
    assert outcome.code == 0 and outcome.traceback is None, outcome.stderr + (outcome.traceback or "")
