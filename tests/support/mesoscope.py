"""Test support: the mesoscope emulator in its own process, as `rig mesoscope-sim` runs it."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


class Emulator:
    def __init__(self, proc: subprocess.Popen[str], cmd: str, frames: str, truth: Path) -> None:
        self.proc, self.cmd, self.frames, self.truth = proc, cmd, frames, truth

    def records(self) -> list[dict]:
        """The emulator's ground truth: one line per frame it produced (TTL edge time, messages sent)."""
        return [json.loads(line) for line in self.truth.read_text().splitlines()]

    def ttl(self) -> np.ndarray:
        return np.array([r["t"] for r in self.records() if r["ttl"]])


@contextmanager
def emulator(tmp_path: Path, *args: str) -> Iterator[Emulator]:
    """Start the emulator on ephemeral loopback ports; yields once it has printed its READY line."""
    truth = tmp_path / f"truth-{time.monotonic_ns()}.jsonl"
    cmd = [sys.executable, "-m", "rig.mesoscope.emulator", "--cmd", "tcp://127.0.0.1:0", "--frames",
           "tcp://127.0.0.1:0", "--truth", str(truth), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=15):
            raise AssertionError(f"emulator printed nothing within 15 s: {proc.poll()}")
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise AssertionError(f"emulator said {line!r}; stderr: {proc.stderr.read()}")
        ready = json.loads(line[6:])
        yield Emulator(proc, ready["cmd"], ready["frames"], truth)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
