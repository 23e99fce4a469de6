"""Starting a runner process for a session (no Qt): the command line, its log file, the one-per-rig check, and
the app's priority below the runner's.

The app yields to the runner: `lower_gui_priority` raises the niceness of the app's own (GUI) thread, so
on a busy machine the runner's loop wins the CPU. A process inherits the niceness of the thread that
forks it, so runners are started by a `Spawner`, a thread made before the GUI thread was lowered: the
runner keeps the priority the app was started with (normal, unless the operator chose otherwise).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.runner.lock import RigBusy, busy_message, read_lock


@dataclass(frozen=True)
class SessionSetup:
    protocol: Path
    config: Path
    rig_name: str
    animal: str
    data_dir: Path | None = None
    experimenter: str = ""
    notes: str = ""
    max_trials: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    fast: bool = False

    def argv(self, lock_dir: Path | None) -> list[str]:
        a = [sys.executable, "-m", "rig.cli.runner_process", "--protocol", str(self.protocol),
             "--config", str(self.config), "--animal", self.animal,
             "--experimenter", self.experimenter, "--notes", self.notes]
        if self.data_dir is not None:
            a += ["--data", str(self.data_dir)]
        if self.max_trials is not None:
            a += ["--max-trials", str(self.max_trials)]
        if self.duration_s is not None:
            a += ["--duration", str(self.duration_s)]
        if self.seed is not None:
            a += ["--seed", str(self.seed)]
        if self.fast:
            a.append("--fast")
        if lock_dir is not None:
            a += ["--lock-dir", str(lock_dir)]
        return a


GUI_NICENESS = 5  # added to the GUI thread's niceness: the runner gets about 3x its CPU share when they compete


def lower_gui_priority(increment: int = GUI_NICENESS) -> int | None:
    """Raise the calling thread's niceness (Linux: niceness is per thread). Returns the new niceness, or None
    where threads have no niceness of their own (then nothing is changed: the runner would inherit it)."""
    if not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(now + increment, 19))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        return None


class Spawner:
    """Starts processes from a thread of its own, at the priority the app had when the Spawner was made."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], dict[str, Any], queue.Queue[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="runner-spawner", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            argv, kwargs, out = job
            try:
                out.put(subprocess.Popen(argv, **kwargs))
            except OSError as e:
                out.put(e)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        out: queue.Queue[Any] = queue.Queue()
        self._jobs.put((argv, kwargs, out))
        result = out.get(timeout=30)
        if isinstance(result, OSError):
            raise result
        assert isinstance(result, subprocess.Popen)
        return result

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


def runner_log_path(lock_dir: Path, rig_name: str) -> Path:
    return Path(lock_dir) / f"corridor-rig-{rig_name}-runner.log"


def lock_info(rig_name: str, lock_dir: Path) -> dict[str, Any] | None:
    """The rig lock's info (rig.runner.lock.read_lock, verified) as the plain mapping the app keeps."""
    info = read_lock(rig_name, lock_dir)
    return None if info is None else info.model_dump()


def start_runner(setup: SessionSetup, lock_dir: Path,
                 spawner: Spawner | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the session's own process (detached from the app: its own session and process group, output
    to a log file, so closing the app or its terminal never reaches it). Raises RigBusy if the rig runs
    a session already (the runner checks again itself; this gives the message before spawning)."""
    held = read_lock(setup.rig_name, lock_dir)
    if held is not None:
        raise RigBusy(busy_message(setup.rig_name, held))
    if not setup.animal.strip():
        raise ValueError("animal ID is empty")
    log_path = runner_log_path(lock_dir, setup.rig_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log_file:
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log_file, "stderr": subprocess.STDOUT,
                                  "start_new_session": True, "env": {**os.environ, "PYTHONUNBUFFERED": "1"}}
        proc = spawner.popen(setup.argv(lock_dir), **kwargs) if spawner is not None else \
            subprocess.Popen(setup.argv(lock_dir), **kwargs)
    return proc, log_path


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no runner log: {e})"
