"""A disk that fills up mid-session: one clear line and exit 1, no temporary file left, and the folder reads
and verifies up to its last complete flush.

Real faults only: a tmpfs that another writer fills once the session runs (needs root to mount), and a file-size limit
(RLIMIT_FSIZE, any user) that makes the kernel refuse writes past it exactly as a full disk does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rig.datalog.reader import BINARY_FIELDS, Session
from tests.support.paths import REPO

TIMEOUT_S = 120


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _config(tmp_path: Path, sync: bool = False) -> Path:
    """The sim rig with no free-space margin, so a small disk is accepted at the start; with `sync`, also
    the sync-pulse output, whose hook attaches files at the end (after the disk is full)."""
    text = (REPO / "config" / "sim.yaml").read_text()
    assert "min_free_disk_mb: 200" in text and "\n  display:\n    type: sim\n" in text
    text = text.replace("min_free_disk_mb: 200", "min_free_disk_mb: 0")
    if sync:
        text = text.replace("\n  display:\n    type: sim\n", "\n  display:\n    type: sim\n  sync:\n    type: sim\n")
    path = tmp_path / "sim-nomargin.yaml"
    path.write_text(text)
    return path


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _rig(*args: str, preexec: Callable[[], None] | None = None,
         during: Callable[[subprocess.Popen[str]], None] | None = None) -> subprocess.CompletedProcess[str]:
    with subprocess.Popen([sys.executable, "-m", "rig.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=REPO, env=_env(), preexec_fn=preexec) as proc:
        try:
            if during is not None:
                during(proc)
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except BaseException:
            proc.kill()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run_until_full(data: Path, config: Path, preexec: Callable[[], None] | None = None,
                    during: Callable[[subprocess.Popen[str]], None] | None = None,
                    duration_s: int = 400) -> tuple[str, Path]:
    # 400 s of session write ~16 MB (ball.bin alone 32 kB/s), in flushes of ~1 MB on a virtual clock (one
    # every 50 ms of wall time): several whole flushes, then more than the disk or the file limit allows.
    done = _rig("run", "demo", "--fast", "--duration", str(duration_s), "--max-trials", "100000", "--seed", "3",
                "--config", str(config), "--data", str(data), "-q", preexec=preexec, during=during)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    (folder,) = [p for p in data.glob("*/*/*") if p.is_dir()]
    return lines[0], folder


def _check_cut_cleanly(folder: Path) -> Session:
    assert not [p.name for p in folder.rglob("*.tmp")]
    s = Session.open(folder)
    assert s.trimmed == [] and s.warnings == []  # every stream cut back to a whole flush
    assert len(s.frames) > 100 and s.frames["i"][-1] == len(s.frames)
    assert s.timing["i"][-1] == s.frames["i"][-1]  # the streams agree on where the log ends
    if s.footer is not None:
        assert s.footer["complete"] is False and s.footer["reason"].startswith("error: LogWriteError")
        for name in BINARY_FIELDS:
            assert s.footer["counts"][name] == len(getattr(s, name.removesuffix(".bin")))
    verify = _rig("replay", "--verify", str(folder))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK") and "Traceback" not in verify.stderr
    return s


def _fill_once_started(disk: Path, leave_bytes: int) -> Callable[[subprocess.Popen[str]], None]:
    """Wait for the session folder, then fill the disk to `leave_bytes` free: the session passed its
    free-space check at the start and meets a full disk mid-run, as when another program fills it."""
    def fill(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not list(disk.glob("*/*/*/header.json")):
            assert proc.poll() is None, "the session ended before its folder appeared"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with open(disk / "filler", "wb") as f:
            chunk = b"\0" * (1 << 20)
            while shutil.disk_usage(disk).free > leave_bytes + len(chunk):
                f.write(chunk)
            f.flush()
    return fill


@pytest.mark.parametrize("sync", [False, True], ids=["sim", "sim+sync"])
def test_a_full_tmpfs_ends_the_session_cleanly(tmp_path: Path, sync: bool) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    # Room for the session's own estimate at the start (~250 MB for 4,000 s); filled up once it runs.
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        line, folder = _run_until_full(disk, _config(tmp_path, sync), during=_fill_once_started(disk, 16 << 20),
                                       duration_s=4000)
        assert line.startswith("rig run: cannot write ") and "No space left on device" in line
        assert "the session log ends at its last complete flush" in line
        _check_cut_cleanly(folder)
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_refused_write_ends_the_session_cleanly(tmp_path: Path) -> None:
    # 16 MB per file: several whole flushes first (a --fast flush holds ~100 s of ball.bin, ~3.5 MB, at
    # 2000x real time), then 2,000 s would write 64 MB of ball.bin.
    line, folder = _run_until_full(tmp_path / "data", _config(tmp_path), _limit_file_size(16 << 20),
                                   duration_s=2000)
    assert line.startswith("rig run: cannot write ") and "File too large" in line
    s = _check_cut_cleanly(folder)
    assert s.footer is not None  # the footer is small: it still fits under the limit


_WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from rig.datalog.writer import LogWriteError, SessionWriter
    from rig.engine.records import Event, State
    from tests.support.headers import facts

    w = SessionWriter.create(Path(sys.argv[1]), facts("F1"), min_free_mb=0)
    flushed = {"frames.bin": 0, "ball.bin": 0, "events.jsonl": 0}
    pending = dict.fromkeys(flushed, 0)
    try:
        for i in range(1, 100_000):
            w.frame(i, State(i / 60, 0, 0, 0, 1.0, 1.0, 1.0, 1.0, True, False, 0.0, False, 0.0, 0, False))
            w.ball(i, np.full(50, i / 60), np.ones(50, dtype=np.int64), np.full(50, 0.01))
            w.events(i, [Event(i / 60, "lick", 0, 1.0, {"anticipatory": False, "iti": False})])
            pending = {"frames.bin": pending["frames.bin"] + 1, "ball.bin": pending["ball.bin"] + 50,
                       "events.jsonl": pending["events.jsonl"] + 1}
            if i % 7 == 0:
                w.flush()
                flushed, pending = {k: flushed[k] + pending[k] for k in flushed}, dict.fromkeys(flushed, 0)
    except LogWriteError as e:
        error = str(e)
    try:
        w.close(True, "done")
    except LogWriteError as e:
        closed = str(e)
    print(json.dumps({"path": str(w.path), "flushed": flushed, "error": error, "closed": closed}))
    """
)


def test_the_writer_cuts_every_stream_back_to_the_last_complete_flush(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          env=_env(), timeout=TIMEOUT_S, preexec_fn=_limit_file_size(200_000))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "ball.bin: File too large" in out["error"] and out["closed"] == out["error"]  # close() says it again
    s = Session.open(out["path"])
    want = out["flushed"]
    # Whole flushes only: the failed flush wrote frames.bin before ball.bin failed, and that was undone too.
    assert (len(s.frames), len(s.ball), len(s.events)) == (want["frames.bin"], want["ball.bin"], want["events.jsonl"])
    assert want["frames.bin"] % 7 == 0 and s.trimmed == [] and np.all(s.frames["i"] == np.arange(1, len(s.frames) + 1))
    assert s.footer is not None and s.footer["complete"] is False and "File too large" in s.footer["reason"]
    assert s.footer["counts"]["ball.bin"] == len(s.ball) and not list(Path(out["path"]).glob("*.tmp"))
