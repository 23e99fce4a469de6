"""Starting a runner process for a session (no Qt): the command line, its log file, the one-per-rig check."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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


def runner_log_path(lock_dir: Path, rig_name: str) -> Path:
    return Path(lock_dir) / f"corridor-rig-{rig_name}-runner.log"


def start_runner(setup: SessionSetup, lock_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
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
        proc = subprocess.Popen(
            setup.argv(lock_dir), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return proc, log_path


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no runner log: {e})"
