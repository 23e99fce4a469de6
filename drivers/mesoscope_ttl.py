"""Frame-clock driver `emulator_ttl`: the TTL edges of `rig mesoscope-sim`, for simulated rigs.

A real rig records the mesoscope's frame-clock TTL on its own input hardware; the emulator has no wire
to send one on, so it writes each edge it would have emitted (`"ttl": true`) with its time on this
host's perf_counter to its ground-truth file (`--truth FILE`). This driver tails that file. Both
processes read the same monotonic clock (CLOCK_MONOTONIC on Linux), so the edges land on the session
timeline exactly as a hardware-timestamped input would, and the TTL path and the ZeroMQ path describe
the same frames, each with its own injected faults (`--ttl-drop-every` vs `--drop-every`).

Real-time sessions only: a --fast session's virtual clock cannot be mapped onto another process's time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.base import CheckResult, ClockMap
from drivers.registry import DriverContext, register


@register("frame_clock", "emulator_ttl")
class EmulatorTTL:
    """Frame-clock edges from the emulator's truth file; device time = this host's perf_counter."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        truth_file: str = Field(min_length=1, description="the file given to `rig mesoscope-sim --truth`")

    def __init__(self, params: Params, context: DriverContext) -> None:
        self.params = params
        self.path = Path(params.truth_file).expanduser()
        self._session_clock = context.clock
        self._file: IO[bytes] | None = None
        self._partial = b""

    @property
    def clock(self) -> ClockMap:
        """perf_counter -> session time, measured now: it stays right when the session clock restarts."""
        return ClockMap(offset=self._session_clock.now() - time.perf_counter())

    def open(self) -> None:
        if self._file is not None:
            return
        if self._session_clock.virtual:
            raise RuntimeError(
                "frame_clock type emulator_ttl needs a real-time session: the emulator runs on the host's "
                "clock, which a --fast (virtual clock) session does not follow"
            )
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"frame_clock emulator_ttl: truth file {self.path} not found; start the emulator first "
                f"with `rig mesoscope-sim --truth {self.path} ...`"
            ) from None
        # Edges already in the file belong to earlier runs: this session reads only what follows.
        f.seek(0, os.SEEK_END)
        self._file = f

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def self_test(self) -> list[CheckResult]:
        ok = self.path.exists()
        return [CheckResult("emulator frame clock", ok,
                            f"reading TTL edges from {self.path}" if ok else f"{self.path} does not exist")]

    def read(self) -> np.ndarray:
        """perf_counter times of the edges written since the previous read; never blocks."""
        if self._file is None:
            raise RuntimeError("frame_clock emulator_ttl is not open; call open() first")
        data = self._file.read()
        if not data:
            return np.zeros(0)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        out: list[float] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if rec["ttl"]:
                    out.append(float(rec["t"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{self.path}: unreadable truth line {line[:200]!r}: {e}") from None
        return np.array(out)

    def __enter__(self) -> EmulatorTTL:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
