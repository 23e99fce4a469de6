"""`rig mesoscope-sim`: a stand-in for ScanImage + the bridge, run in its own process.

It serves the real Bridge and, once the rig sends `start`, produces frames at a set rate with optional
jitter and injected faults: dropped messages, duplicated messages, missed TTL edges, stalls, restarts
(of the acquisition, or of the whole bridge, which then numbers acquisitions from 1 again) and sudden
death. What a frame-clock driver would have recorded, and what really happened, go to a ground-truth
file (JSON lines: t = edge time on this host's perf_counter, run = bridge run from 0, acq, frame,
ttl = edge emitted, msgs = messages sent) so tests and benchmarks can check the rig's reconciliation.
If the bridge's service thread ever dies, the emulator says why on stderr and exits with status 4.

A misbehaving bridge: `--inject FILE` (JSON lines) sends extra messages after given frames, on the
stream or just before the next ack: {"after_frame": N, "channel": "stream" | "ack", "hex": BYTES} or,
stream only, {"after_frame": N, "fields": {...}, "pad": BYTES_OF_PADDING}, fields stamped with the
bridge's instance and next seq unless they give their own.

    python -m rig.mesoscope.emulator --rate 3.17 --planes 1 --drop-every 50 --truth truth.jsonl

The first line on stdout is `READY {"cmd": ENDPOINT, "frames": ENDPOINT, "pid": PID}`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rig.mesoscope.bridge import Bridge
from rig.mesoscope.keys import ServerKeys, server_keys


@dataclass(frozen=True)
class EmulatorConfig:
    """Counts in *_every / *_at refer to the frame's overall number (1-based, across restarts)."""

    rate_hz: float = 3.17
    planes: int = 1
    jitter_ms: float = 0.0  # s.d. of each frame edge around its schedule (both paths see it)
    drop_every: int = 0  # frame messages of every Nth frame are not sent
    duplicate_every: int = 0  # frame messages of every Mth frame are sent twice
    ttl_drop_every: int = 0  # TTL edges of every Kth frame are not emitted
    stall_at: tuple[int, ...] = ()  # stall for stall_s after these frames
    stall_s: float = 1.0
    restart_at: tuple[int, ...] = ()  # stop and restart the acquisition after these frames
    restart_pause_s: float = 0.3
    bridge_restart_at: tuple[int, ...] = ()  # close the bridge (no stop message) and open a new one
    inject: tuple[Injection, ...] = ()  # extra messages from a misbehaving bridge
    die_at: int = 0  # exit abruptly (no stop message) after this frame
    max_frames: int = 0  # stop by itself after this many frames; 0 = until told to stop
    ignore_start: bool = False  # acknowledge start but never acquire (a hung ScanImage)
    clock_offset_s: float = 0.0  # mesoscope clock = this host's perf_counter + offset
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 10_000:
            raise ValueError(f"rate_hz={self.rate_hz}: must be in (0, 10000]")
        if self.planes < 1:
            raise ValueError(f"planes={self.planes}: must be >= 1")
        for name in ("drop_every", "duplicate_every", "ttl_drop_every", "die_at", "max_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.jitter_ms < 0 or self.jitter_ms * 1e-3 * 6 > 1 / self.rate_hz:
            raise ValueError(f"jitter_ms={self.jitter_ms}: must be >= 0 and under a sixth of the period")


@dataclass(frozen=True)
class Injection:
    """One extra message a misbehaving bridge sends after frame `after_frame` (overall count)."""

    after_frame: int
    channel: str  # "stream" | "ack"
    raw: bytes | None = None
    fields: dict[str, Any] | None = None


def read_injections(path: Path) -> tuple[Injection, ...]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            channel = d.get("channel", "stream")
            if channel not in ("stream", "ack"):
                raise ValueError(f"channel {channel!r} is not stream or ack")
            if "hex" in d:
                inj = Injection(int(d["after_frame"]), channel, raw=bytes.fromhex(d["hex"]))
            else:
                if channel != "stream":
                    raise ValueError("fields are for the stream; give an ack as hex")
                fields = dict(d["fields"])
                if d.get("pad"):
                    fields["pad"] = "x" * int(d["pad"])
                inj = Injection(int(d["after_frame"]), channel, fields=fields)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not an injection ({e})") from None
        out.append(inj)
    return tuple(out)


class _Commands:
    """Controller: hands start/stop from the bridge's thread to the frame loop."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def start(self, stem: str, metadata: dict[str, Any]) -> None:
        self.q.put(("start", stem))

    def stop(self) -> None:
        self.q.put(("stop", ""))


class BridgeDied(RuntimeError):
    """The bridge's service thread is gone: the emulator must not look alive without it."""


class Emulator:
    def __init__(self, cfg: EmulatorConfig, bridge: Bridge, commands: _Commands, truth: IO[str] | None,
                 quit_event: threading.Event, reopen: Callable[[Bridge], Bridge] | None = None) -> None:
        self.cfg, self.bridge, self.commands, self.truth, self.quit = cfg, bridge, commands, truth, quit_event
        self.reopen = reopen
        self.rng = random.Random(cfg.seed)
        self.overall = 0
        self.run_index = 0

    def _check_bridge(self) -> None:
        failure = self.bridge.service_failure
        if failure is not None:
            raise BridgeDied(failure)

    def run(self) -> None:
        while not self.quit.is_set():
            self._check_bridge()
            try:
                cmd, stem = self.commands.q.get(timeout=0.1)
            except queue.Empty:
                continue
            if cmd == "start" and not self.cfg.ignore_start:
                self._acquire(stem)

    def _sleep_until(self, t: float) -> str | None:
        """Wait until perf_counter t; returns "stop"/"quit" if told to stop meanwhile."""
        while True:
            if self.quit.is_set():
                return "quit"
            self._check_bridge()
            try:
                cmd, _ = self.commands.q.get_nowait()
                if cmd == "stop":
                    return "stop"
            except queue.Empty:
                pass
            left = t - time.perf_counter()
            if left <= 0:
                return None
            time.sleep(min(left, 0.002) if left < 0.004 else min(left - 0.002, 0.05))

    def _acquire(self, stem: str) -> None:
        cfg, period = self.cfg, 1.0 / self.cfg.rate_hz
        while True:  # one pass per acquisition; restarts loop
            acq = self.bridge.acquisition_started(stem, cfg.rate_hz, cfg.planes)
            t0 = time.perf_counter() + 0.05
            frame, delay = 0, 0.0
            while True:
                frame += 1
                self.overall += 1
                n = self.overall
                t = t0 + (frame - 1) * period + delay + self.rng.gauss(0.0, cfg.jitter_ms * 1e-3)
                why = self._sleep_until(t)
                if why is not None:
                    reason = "stopped by the rig" if why == "stop" else "emulator exit"
                    self.bridge.acquisition_stopped(reason)
                    return
                msgs = 0 if cfg.drop_every and n % cfg.drop_every == 0 else (
                    2 if cfg.duplicate_every and n % cfg.duplicate_every == 0 else 1)
                for _ in range(msgs):
                    self.bridge.frame(frame, t + cfg.clock_offset_s)
                for inj in cfg.inject:
                    if inj.after_frame == n:
                        if inj.channel == "ack" and inj.raw is not None:
                            self.bridge.inject_ack(inj.raw)
                        else:
                            self.bridge.inject_stream(raw=inj.raw, fields=inj.fields)
                ttl = not (cfg.ttl_drop_every and n % cfg.ttl_drop_every == 0)
                if self.truth is not None:
                    self.truth.write(json.dumps({"t": t, "run": self.run_index, "acq": acq, "frame": frame,
                                                 "ttl": ttl, "msgs": msgs}) + "\n")
                    self.truth.flush()
                if cfg.die_at and n >= cfg.die_at:
                    time.sleep(0.05)  # let the service thread publish what is queued, then die
                    os._exit(3)
                if cfg.max_frames and n >= cfg.max_frames:
                    self.bridge.acquisition_stopped("max_frames reached")
                    return
                if n in cfg.bridge_restart_at and self.reopen is not None:
                    # A crashed-and-restarted bridge: no acq_stop, a new instance numbering from 1.
                    time.sleep(0.05)  # the frames already reported are published first
                    self.bridge = self.reopen(self.bridge)
                    self.run_index += 1
                    if self._sleep_until(time.perf_counter() + cfg.restart_pause_s) is not None:
                        return
                    break
                if n in cfg.restart_at:
                    self.bridge.acquisition_stopped("restart")
                    if self._sleep_until(time.perf_counter() + cfg.restart_pause_s) is not None:
                        return
                    break
                if n in cfg.stall_at:
                    delay += cfg.stall_s


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rig mesoscope-sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--cmd", default="tcp://127.0.0.1:5570", help="command endpoint to bind (port 0: any)")
    p.add_argument("--frames", default="tcp://127.0.0.1:5571", help="frame stream endpoint to bind")
    p.add_argument("--rate", type=float, default=3.17, help="frame rate, Hz")
    p.add_argument("--planes", type=int, default=1)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--drop-every", type=int, default=0, metavar="N")
    p.add_argument("--duplicate-every", type=int, default=0, metavar="M")
    p.add_argument("--ttl-drop-every", type=int, default=0, metavar="K")
    p.add_argument("--stall-at", type=_ints, default=(), metavar="F[,F...]")
    p.add_argument("--stall-s", type=float, default=1.0)
    p.add_argument("--restart-at", type=_ints, default=(), metavar="F[,F...]")
    p.add_argument("--bridge-restart-at", type=_ints, default=(), metavar="F[,F...]",
                   help="restart the bridge itself (new instance, acquisitions from 1) after these frames")
    p.add_argument("--die-at", type=int, default=0, metavar="F")
    p.add_argument("--inject", type=Path, metavar="FILE",
                   help="misbehave: extra messages after given frames (JSON lines, see the module doc)")
    p.add_argument("--max-frames", type=int, default=0)
    p.add_argument("--ignore-start", action="store_true")
    p.add_argument("--clock-offset", type=float, default=0.0, help="mesoscope clock - host clock, s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", type=Path, help="write ground truth (JSON lines) here")
    p.add_argument("--server-secret", type=Path, help="CURVE: the bridge's NAME.key_secret")
    p.add_argument("--trusted-dir", type=Path, help="CURVE: directory of trusted rig public keys")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        rate_hz=a.rate, planes=a.planes, jitter_ms=a.jitter_ms, drop_every=a.drop_every,
        duplicate_every=a.duplicate_every, ttl_drop_every=a.ttl_drop_every, stall_at=a.stall_at,
        stall_s=a.stall_s, restart_at=a.restart_at, bridge_restart_at=a.bridge_restart_at, die_at=a.die_at,
        max_frames=a.max_frames, inject=read_injections(a.inject) if a.inject else (),
        ignore_start=a.ignore_start, clock_offset_s=a.clock_offset, seed=a.seed)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        cfg = config_from_args(a)
        keys: ServerKeys | None = None
        if a.server_secret or a.trusted_dir:
            if not (a.server_secret and a.trusted_dir):
                raise ValueError("CURVE needs both --server-secret and --trusted-dir")
            keys = server_keys(a.server_secret, a.trusted_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"rig mesoscope-sim: {e}", file=sys.stderr)
        return 2
    quit_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: quit_event.set())
    signal.signal(signal.SIGINT, lambda *_: quit_event.set())
    commands = _Commands()
    truth = a.truth.open("a", encoding="utf-8") if a.truth else None
    try:
        # The bridge stamps with the mesoscope's clock, as a bridge on the mesoscope PC would.
        def meso_clock() -> float:
            return time.perf_counter() + cfg.clock_offset_s

        def reopen(old: Bridge) -> Bridge:
            old.close()
            return Bridge(old.endpoint_cmd, old.endpoint_frames, commands, keys=keys, clock=meso_clock).open()

        bridge = Bridge(a.cmd, a.frames, commands, keys=keys, clock=meso_clock).open()
        print("READY " + json.dumps({"cmd": bridge.endpoint_cmd, "frames": bridge.endpoint_frames,
                                     "pid": os.getpid()}), flush=True)
        emulator = Emulator(cfg, bridge, commands, truth, quit_event, reopen)
        try:
            emulator.run()
        except BridgeDied as e:
            print(f"rig mesoscope-sim: {e}", file=sys.stderr, flush=True)
            return 4
        finally:
            emulator.bridge.close()
    finally:
        if truth is not None:
            truth.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
