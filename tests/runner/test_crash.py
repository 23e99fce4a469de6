"""Crash safety: files cut anywhere read back with their prefix intact; a SIGKILLed writer loses <= 100 ms."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from rig.datalog.reader import BINARY_FIELDS, JSONL_FILES, Session, SessionError
from rig.datalog.writer import SessionWriter
from rig.engine.records import Command, Event, State
from tests.support.headers import facts
from tests.support.paths import REPO


def _state(k: int) -> State:
    t, x = k / 60, k * 1.1
    return State(t, k // 20, k % 2, 0, x, x, 20.0, 20.0, True, False, 50.0, False, 0.0, 0, False)


def _sample(data_dir: Path) -> Path:
    with SessionWriter.create(data_dir, facts("M1", seed=1), min_free_mb=0, today=date(2024, 1, 2)) as w:
        for k in range(120):
            t = k / 60
            w.frame(k, _state(k))
            w.ball(k, np.array([t, t + 0.001]), np.array([1, 2]), np.array([0.1, 0.2]))
            w.licks(k, [t], [k % 2 == 0])
            w.frame_clock(k, np.array([t]))
            w.events(k, [Event(t, "lick", k // 20, 1.0, {"k": k, "s": "é"})])
            w.commands(k, [Command(t, "cue", 100.0, frequency_hz=4000.0)])
            w.operator(k, t, "pause")
            w.mesoscope(k, t, "frame", n=k)
            w.fault(k, t, "ball", "crc", "checksum error")
            w.clock_map(k, t, "ball", 0.5, 1.0)
            w.valve(k, "open", {"t": t, "source": "task", "requested_ms": 25.0, "sent_ms": 25.0, "volume_ul": 2.5,
                                "requested_ul": 2.5, "outcome": "delivered", "reason": ""})
            w.timing(k, t, 0.001, 0.01)
        w.close(True, "done", {"note": "x"})
    return w.path


def _check_prefix(s: Session, ref: Session, name: str, data: bytes, off: int) -> None:
    attr = name.split(".")[0]
    got, want = getattr(s, attr), getattr(ref, attr)
    if name in BINARY_FIELDS:
        size = want.dtype.itemsize
        assert got.tobytes() == want[: off // size].tobytes(), (name, off)
        assert (name in s.trimmed) == (off % size != 0), (name, off)
    else:
        kept = data[:off].count(b"\n")
        assert got == want[:kept], (name, off)
        assert (name in s.trimmed) == (off > 0 and data[off - 1 : off] != b"\n"), (name, off)


def test_every_file_cut_at_random_offsets_reads_back_its_prefix(tmp_path: Path):
    path = _sample(tmp_path)
    ref = Session.open(path)
    rng = random.Random(7)
    for name in (*BINARY_FIELDS, *JSONL_FILES):
        f = path / name
        data = f.read_bytes()
        assert data, name
        offsets = {0, 1, len(data) - 1, *(rng.randrange(len(data)) for _ in range(25))}
        for off in sorted(offsets):
            f.write_bytes(data[:off])
            s = Session.open(path)
            _check_prefix(s, ref, name, data, off)
            assert [t for t in s.trimmed if t != name] == []
        f.write_bytes(data)


def test_all_files_cut_at_once_and_footer_missing_reads_as_incomplete(tmp_path: Path):
    path = _sample(tmp_path)
    ref = Session.open(path)
    (path / "footer.json").unlink()
    rng = random.Random(3)
    originals = {n: (path / n).read_bytes() for n in (*BINARY_FIELDS, *JSONL_FILES)}
    for _ in range(10):
        cuts = {n: rng.randrange(len(d) + 1) for n, d in originals.items()}
        for n, off in cuts.items():
            (path / n).write_bytes(originals[n][:off])
        s = Session.open(path)
        assert s.complete is False and s.footer is None
        for n, off in cuts.items():
            _check_prefix(s, ref, n, originals[n], off)


def test_cut_footer_reads_as_incomplete_and_cut_header_is_a_session_error(tmp_path: Path):
    path = _sample(tmp_path)
    footer = (path / "footer.json").read_bytes()
    header = (path / "header.json").read_bytes()
    for off in range(0, len(footer), 17):
        (path / "footer.json").write_bytes(footer[:off])
        s = Session.open(path)
        assert s.complete is False and "footer.json" in s.trimmed and len(s.frames) == 120
    (path / "footer.json").write_bytes(footer)
    for off in range(0, len(header) - 2, 97):
        (path / "header.json").write_bytes(header[:off])
        with pytest.raises(SessionError):
            Session.open(path)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rig.datalog.writer import SessionWriter
    from rig.engine.records import State
    from tests.support.headers import facts

    w = SessionWriter.create(Path(sys.argv[1]), facts("K1"), min_free_mb=0)
    origin = time.monotonic()
    w.clock_origin(origin, time.time())
    print(w.path, flush=True)
    i = 0
    while True:
        t = time.monotonic() - origin
        w.frame(i, State(t, 0, 0, 0, t, t, 1.0, 1.0, True, False, 0.0, False, 0.0, 0, False))
        w.tick(time.monotonic())
        print(repr(t), flush=True)  # what the loop produced: the parent compares the log with it
        i += 1
        time.sleep(max(0.0, (i + 1) / 60 - (time.monotonic() - origin)))
    """
)


def test_sigkill_leaves_an_incomplete_session_readable_to_within_100_ms(tmp_path: Path):
    cmd = [sys.executable, "-c", _CHILD, str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        folder = Path(proc.stdout.readline().strip())
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, err
    produced = [float(x) for x in out.split("\n")[:-1]]  # whole lines only: the kill may cut the last
    s = Session.open(folder)
    assert s.complete is False and s.footer is None
    assert len(s.frames) > 30 and np.all(np.diff(s.frames["i"]) == 1)
    t_last = float(s.frames["t"][-1])
    assert produced[-1] - t_last <= 0.1  # the writer itself is never more than 100 ms behind the loop
    assert killed_at - s.timing_origin_monotonic - t_last <= 0.1
