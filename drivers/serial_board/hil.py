"""The hardware-in-the-loop bench from Python: build the firmware and the simavr harness (hil/Makefile),
write a ground-truth script, run the real firmware on a simulated 16 MHz AVR with its UART on a pty, and
read back what the harness recorded (every input edge it drove, every output edge the firmware made,
with CPU cycles). Used by tests/firmware/ and benchmarks/bench_board_hil.py.

Times: the firmware's micros() counts from the cycle at which the core started Timer0
(`Truth.timer0_start`), so a true edge at cycle c happened at board time (c - timer0_start) / 16 us.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HIL_DIR = REPO / "hil"
F_CPU = 16_000_000
CYCLES_PER_US = F_CPU // 1_000_000
BOARDS = {"mega": "atmega2560", "uno": "atmega328p"}
QUAD = ((1, 1), (0, 1), (0, 0), (1, 0))  # A, B levels; forward = index + 1 (A leads B)


class BenchError(RuntimeError):
    """A tool is missing or the bench could not run; the message says what to install or check."""


def check_tools() -> None:
    """Fail (never skip) with what to install when a tool of the bench is missing."""
    missing = [t for t in ("make", "avr-gcc", "avr-g++", "avr-size", "avr-objcopy", "cc") if shutil.which(t) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install make gcc gcc-avr avr-libc binutils-avr")
    if not Path("/usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h").exists() and not os.environ.get(
        "ARDUINO_AVR"
    ):
        raise BenchError("missing the Arduino AVR core: apt-get install arduino-core-avr (or set ARDUINO_AVR=)")
    if not Path("/usr/include/simavr/sim_avr.h").exists():
        raise BenchError("missing libsimavr: apt-get install simavr libsimavr-dev")


@dataclass(frozen=True)
class Pin:
    arduino: int
    port: str
    bit: int


@dataclass(frozen=True)
class Build:
    board: str
    mcu: str
    elf: Path
    harness: Path
    baud: int
    pins: dict[str, Pin]
    flash_bytes: int
    ram_bytes: int


def build(board: str = "mega", build_dir: Path | None = None, defines: str = "") -> Build:
    """Build the firmware for `board` (and the harness) with hil/Makefile; incremental, so cheap to repeat."""
    check_tools()
    if board not in BOARDS:
        raise BenchError(f"unknown board {board!r}; boards: {', '.join(BOARDS)}")
    out = Path(build_dir) if build_dir is not None else HIL_DIR / "build"
    cmd = ["make", "-s", "-C", str(HIL_DIR), f"BUILD={out}", f"FW_DEFINES={defines}", f"firmware-{board}", "harness"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise BenchError(f"building the firmware for {board} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    d = out / board
    pins: dict[str, Pin] = {}
    mcu, baud = BOARDS[board], 0
    for line in (d / "pins.txt").read_text().splitlines():
        parts = line.split()
        if parts[0] == "pin":
            pins[parts[1]] = Pin(int(parts[2]), parts[3], int(parts[4]))
        elif parts[0] == "mcu":
            mcu = parts[1]
        elif parts[0] == "baud":
            baud = int(parts[1])
    flash, ram = elf_size(d / "corridor_board.elf")
    return Build(board, mcu, d / "corridor_board.elf", out / "corridor_hil", baud, pins, flash, ram)


def elf_size(elf: Path) -> tuple[int, int]:
    """(flash, RAM) bytes of an AVR ELF: text + data, data + bss (what avr-size calls Program / Data)."""
    r = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sec = {p[0]: int(p[1]) for p in (ln.split() for ln in r.stdout.splitlines()) if len(p) >= 2 and p[1].isdigit()}
    return sec.get(".text", 0) + sec.get(".data", 0), sec.get(".data", 0) + sec.get(".bss", 0)


# ---- ground truth scripts ----------------------------------------------------------------------------
def us(t_s: float) -> int:
    """Seconds of script time -> cycles."""
    return int(round(t_s * F_CPU))


@dataclass
class Script:
    """Input changes at exact cycles after the trigger (the first host byte + `delay_s`)."""

    levels: dict[str, int] = field(default_factory=lambda: {"enc_a": 1, "enc_b": 1, "lick": 0, "frame": 0})
    changes: list[tuple[int, str, int]] = field(default_factory=list)
    delay_s: float = 0.5
    trigger: str = "rx"
    end_s: float | None = None
    live: tuple[str, ...] = ("valve",)

    def quadrature(self, t0_s: float, rate_hz: float, steps: int, phase: int = 0) -> int:
        """`steps` X4 steps at `rate_hz` (negative: backwards) from t0; returns the phase reached."""
        period = abs(1.0 / rate_hz)
        direction = 1 if rate_hz > 0 else -1
        a, b = QUAD[phase % 4]
        for k in range(1, steps + 1):
            c = us(t0_s + k * period)
            na, nb = QUAD[(phase + direction * k) % 4]
            if na != a:
                self.changes.append((c, "enc_a", na))
            if nb != b:
                self.changes.append((c, "enc_b", nb))
            a, b = na, nb
        return (phase + direction * steps) % 4

    def lick(self, t_s: float, contact_s: float, bounce_s: Iterable[float] = (),
             release_bounce_s: Iterable[float] = ()) -> None:
        """A contact from t to t + contact. `bounce_s`: the line flips at these offsets after the onset
        before it settles in contact; `release_bounce_s` likewise after the release (even counts)."""
        for t, first, flips in ((t_s, 1, tuple(bounce_s)), (t_s + contact_s, 0, tuple(release_bounce_s))):
            if len(flips) % 2:
                raise ValueError("a bounce needs an even number of flips to settle")
            self.changes.append((us(t), "lick", first))
            level = first
            for off in flips:
                level ^= 1
                self.changes.append((us(t + off), "lick", level))

    def glitch(self, t_s: float, width_s: float) -> None:
        self.changes.append((us(t_s), "lick", 1))
        self.changes.append((us(t_s + width_s), "lick", 0))

    def frames(self, t0_s: float, rate_hz: float, n: int, width_s: float = 0.0002) -> list[float]:
        """n frame-clock pulses, high for `width_s` and falling at t0 + k / rate (the frame start)."""
        starts = []
        for k in range(n):
            t = t0_s + k / rate_hz
            self.changes.append((us(t - width_s), "frame", 1))
            self.changes.append((us(t), "frame", 0))
            starts.append(t)
        return starts

    def write(self, path: Path, pins: dict[str, Pin]) -> None:
        lines = [f"input {name} {pins[name].port} {pins[name].bit} {level}" for name, level in self.levels.items()]
        for name in ("valve", "sync", "cue"):
            lines.append(f"output {name} {pins[name].port} {pins[name].bit}" + (" live" if name in self.live else ""))
        lines.append(f"trigger {self.trigger} {us(self.delay_s)}")
        if self.end_s is not None:
            lines.append(f"end {us(self.end_s)}")
        changes = sorted(self.changes, key=lambda c: c[0])
        if changes and changes[0][0] < 0:
            raise ValueError(f"a script change comes before the trigger: {changes[0]}")
        lines += [f"at {c} {name} {level}" for c, name, level in changes]
        path.write_text("\n".join(lines) + "\n")


# ---- running the harness -----------------------------------------------------------------------------
@dataclass
class Truth:
    freq: int
    timer0_start: int
    trigger: int
    inputs: dict[str, list[tuple[int, int]]]  # name -> [(cycle, level)] as driven (power-up level first)
    outputs: dict[str, list[tuple[int, int]]]
    end_cycle: int
    wall_s: float
    lag_max_s: float
    uart_tx: int
    uart_rx: int
    uart_dropped: int
    walls: np.ndarray  # (cycle, host CLOCK_MONOTONIC ns) every ms of simulated time
    scheduling: str  # what --realtime obtained: rr, nice-10 or normal

    def board_us(self, cycle: int | float) -> float:
        """Board time (the firmware's micros() scale) of a cycle."""
        return (cycle - self.timer0_start) / CYCLES_PER_US

    def host_s(self, cycles: np.ndarray | list[int]) -> np.ndarray:
        """When the simulation reached these cycles on the host's monotonic clock (time.perf_counter on
        Linux): the true host time of what the firmware did then, to compare with session times."""
        c = np.asarray(cycles, dtype=float)
        return np.interp(c, self.walls[:, 0].astype(float), self.walls[:, 1].astype(float)) / 1e9

    def lag_s(self) -> np.ndarray:
        """Wall time minus simulated time along the run, relative to its start (how far the simulation
        fell behind real time, at each ms)."""
        w = self.walls.astype(float)
        wall = (w[:, 1] - w[0, 1]) / 1e9
        return wall - (w[:, 0] - w[0, 0]) / self.freq

    @property
    def sim_s(self) -> float:
        return self.end_cycle / self.freq

    def encoder_total(self) -> int:
        """X4 count of the quadrature the harness drove (forward positive)."""
        a, b = self.inputs["enc_a"][0][1], self.inputs["enc_b"][0][1]
        state = QUAD.index((a, b))
        total = 0
        edges = sorted(
            [(c, "a", v) for c, v in self.inputs["enc_a"][1:]] + [(c, "b", v) for c, v in self.inputs["enc_b"][1:]]
        )
        for _, which, v in edges:
            a, b = (v, b) if which == "a" else (a, v)
            new = QUAD.index((a, b))
            step = (new - state) % 4
            total += 1 if step == 1 else -1 if step == 3 else 0
            state = new
        return total

    def edges(self, name: str, level: int, outputs: bool = False) -> list[int]:
        """Cycles at which `name` went to `level` (after power-up)."""
        src = self.outputs if outputs else self.inputs
        rows = src.get(name, [])
        start = 0 if outputs else 1
        return [c for c, v in rows[start:] if v == level]

    def pulses(self, name: str = "valve") -> list[tuple[int, int]]:
        """(rise, fall) cycles of an output's high periods."""
        out, rise = [], None
        for c, v in self.outputs.get(name, []):
            if v and rise is None:
                rise = c
            elif not v and rise is not None:
                out.append((rise, c))
                rise = None
        return out


def read_truth(path: Path) -> Truth:
    inputs: dict[str, list[tuple[int, int]]] = {}
    outputs: dict[str, list[tuple[int, int]]] = {}
    head: dict[str, list[str]] = {}
    walls: list[tuple[int, int]] = []
    for line in path.read_text().splitlines():
        p = line.split()
        if p[0] in ("in", "out"):
            (inputs if p[0] == "in" else outputs).setdefault(p[1], []).append((int(p[3]), int(p[2])))
        elif p[0] == "wall":
            walls.append((int(p[1]), int(p[2])))
        else:
            head[p[0]] = p[1:]
    return Truth(
        freq=int(head["freq"][0]), timer0_start=int(head["timer0_start"][0]), trigger=int(head["trigger"][0]),
        inputs=inputs, outputs=outputs, end_cycle=int(head["end"][0]), wall_s=float(head["end"][1]),
        lag_max_s=float(head["end"][2]), uart_tx=int(head["uart_tx"][0]), uart_rx=int(head["uart_rx"][0]),
        uart_dropped=int(head["uart_dropped"][0]), walls=np.array(walls, dtype=np.int64).reshape(-1, 2),
        scheduling=head["scheduling"][0],
    )  # fmt: skip


class HilBoard:
    """The firmware running on simavr with its UART on a pty; `path` is what a driver opens.

    `lines` receives the harness's live stdout lines ("out valve 1 CYCLE", "trigger CYCLE"); `stop()`
    ends the run and returns the ground truth.
    """

    def __init__(self, fw: Build, script: Script, workdir: Path, speed: float = 1.0, max_seconds: float = 0,
                 realtime: bool | None = None) -> None:
        self.fw = fw
        self.script = script
        self.workdir = Path(workdir)
        self.speed = speed
        self.max_seconds = max_seconds
        # SCHED_RR for the harness unless HIL_REALTIME=0 (to see how the bench fares without it).
        self.realtime = os.environ.get("HIL_REALTIME", "1") != "0" if realtime is None else realtime
        self.path = str(self.workdir / "board")
        self.lines: queue.Queue[str] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._truth_path = self.workdir / "truth.txt"
        self._stderr = self.workdir / "harness.stderr"
        self._reader: threading.Thread | None = None
        self.truth: Truth | None = None

    def start(self) -> HilBoard:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = self.workdir / "script.txt"
        self.script.write(script, self.fw.pins)
        cmd = [str(self.fw.harness), "--mcu", self.fw.mcu, "--elf", str(self.fw.elf), "--script", str(script),
               "--out", str(self._truth_path), "--link", self.path, "--speed", str(self.speed),
               "--max-seconds", str(self.max_seconds)] + (["--realtime"] if self.realtime else [])  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self._stderr, "w"), text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not os.path.islink(self.path):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the simavr harness did not start: {self._stderr.read_text()[-2000:]}")
            time.sleep(0.01)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.put(line.strip())

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the harness printed no {prefix!r} line within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> Truth:
        """Ends the run (now, or when the script's `end` comes first) and reads the ground truth."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise BenchError("the simavr harness did not stop on SIGTERM") from None
        if self._proc.returncode not in (0,):
            raise BenchError(f"the simavr harness failed ({self._proc.returncode}): {self._stderr.read_text()[-2000:]}")
        self.truth = read_truth(self._truth_path)
        return self.truth

    def wait_end(self, timeout: float) -> Truth:
        """Waits for the script's own end, then reads the ground truth."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop()

    def result(self) -> Truth:
        """The ground truth of a finished run (after stop(), or after leaving the `with` block)."""
        if self.truth is None:
            raise BenchError("the bench has not been stopped yet")
        return self.truth

    def __enter__(self) -> HilBoard:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._proc is None:
            return
        if exc_type is None and self.truth is None:
            self.stop()  # a clean exit keeps the ground truth (board.result())
        elif self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
