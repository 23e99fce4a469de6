"""One session end to end: resolve the protocol, open the folder and drivers, run the loop, close safely."""

from __future__ import annotations

import hashlib
import logging
import platform
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pydantic

import rig
from drivers.base import SyncOutput
from rig.config import RigConfig
from rig.datalog.writer import SessionWriter
from rig.engine.machine import Engine
from rig.loading import dump_protocol
from rig.protocol import End, Protocol
from rig.runner.clock import RealClock, VirtualClock
from rig.runner.devices import Devices
from rig.runner.loop import LoopHook, OperatorQueue, Runner, RunResult
from rig.runner.priority import raise_priority

log = logging.getLogger(__name__)

FRAME_RECORD_BYTES = 256  # generous per-iteration estimate for the disk-space check (all files together)


@dataclass(frozen=True)
class SessionOptions:
    animal: str = "sim-mouse"
    seed: int | None = None  # None: drawn at random and recorded in the header
    fast: bool = False
    max_trials: int | None = None  # overrides the protocol's end.max_trials
    duration_s: float | None = None  # overrides the protocol's end.max_duration_s
    data_dir: Path | None = None  # overrides the config's data_dir
    experimenter: str = ""
    notes: str = ""
    date: date | None = None  # the session's day (a simulated curriculum over days); default today


@dataclass(frozen=True)
class SessionResult:
    path: Path
    seed: int
    run: RunResult


def resolve_protocol(protocol: Protocol, max_trials: int | None, duration_s: float | None) -> Protocol:
    """The protocol as it will run: command-line limits replace the protocol's own end."""
    if max_trials is None and duration_s is None:
        return protocol
    end = End(
        max_trials=max_trials if max_trials is not None else protocol.end.max_trials,
        max_duration_s=duration_s if duration_s is not None else protocol.end.max_duration_s,
    )
    if max_trials is not None and duration_s is None:
        end = End(max_trials=max_trials, max_duration_s=protocol.end.max_duration_s)
    return protocol.model_copy(update={"end": end})


def needed_disk_mb(protocol: Protocol, frame_rate_hz: float) -> float:
    """A pessimistic size for the session: its longest possible duration at the display rate."""
    duration = protocol.end.max_duration_s
    if duration is None:
        # Bounded by trials only: assume a slow mouse (one corridor per 60 s).
        duration = (protocol.end.max_trials or 1) * 60.0
    return duration * frame_rate_hz * FRAME_RECORD_BYTES / 1e6


def git_commit() -> str:
    """The commit of the installed source tree, '+dirty' when it has local changes; 'unknown' outside git."""
    src = Path(rig.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def build_header(protocol: Protocol, config: RigConfig, options: SessionOptions, seed: int) -> dict:
    protocol_yaml = dump_protocol(protocol)
    return {
        "animal": options.animal,
        "protocol": protocol.model_dump(mode="json"),
        "protocol_yaml": protocol_yaml,
        "protocol_sha256": hashlib.sha256(protocol_yaml.encode()).hexdigest(),
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "fast": options.fast,
        "frame_rate_hz": config.frame_rate_hz,
        "experimenter": options.experimenter,
        "notes": options.notes,
        "options": {k: (str(v) if isinstance(v, Path | date) else v) for k, v in asdict(options).items()},
        "software": {
            "rig": rig.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pydantic": pydantic.VERSION,
        },
        "git_commit": git_commit(),
        "host": platform.node(),
        "start_time": datetime.now(UTC).isoformat(),
    }


def sim_seed(config: RigConfig, seed: int) -> int:
    """The virtual mouse's seed: the config's, or one derived from the session seed (never equal to it)."""
    if config.sim is not None and config.sim.seed is not None:
        return config.sim.seed
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def sync_seed(seed: int) -> int:
    """The sync-pulse schedule's seed, derived from the session seed (so the schedule can be re-derived)."""
    return int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])


def sync_hook(sync: SyncOutput, seed: int) -> LoopHook:
    """The hook that pulses the optional sync output on its random schedule and logs the pulses."""
    from rig.sync.pulses import SyncPulseHook

    return SyncPulseHook(sync, sync_seed(seed))


def run_session(
    protocol: Protocol,
    config: RigConfig,
    options: SessionOptions,
    *,
    operator: OperatorQueue | None = None,
    on_runner: Callable[[Runner], None] | None = None,
    progress: object | None = None,
    hooks: tuple[LoopHook, ...] = (),
) -> SessionResult:
    """Run one session and return where it was written.

    Raises before creating any folder when the disk is too full; once the folder exists, every exit
    path (normal end, stop, signal, driver fault, crash) closes the valve and leaves the log readable.
    `on_runner` is called with the runner before the loop starts (to wire signal handlers or a GUI).
    """
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    protocol = resolve_protocol(protocol, options.max_trials, options.duration_s)
    data_dir = Path(options.data_dir if options.data_dir is not None else config.data_dir).expanduser()
    header = build_header(protocol, config, options, seed)
    clock: RealClock | VirtualClock = VirtualClock() if options.fast else RealClock()
    world = make_world(config, protocol, seed, data_dir / options.animal, header) if config.simulated else None
    devices = Devices.build(config, clock, world, protocol=protocol)
    calibration = config.valve_calibration
    engine = Engine(protocol, seed, calibration.duration_ms)
    min_free = config.min_free_disk_mb + needed_disk_mb(protocol, config.frame_rate_hz)
    with SessionWriter.create(data_dir, options.animal, header, min_free_mb=min_free, today=options.date) as writer:
        with devices:
            priority = "virtual clock" if options.fast else raise_priority(config.loop_priority)
            clock.restart()  # the session timeline starts when the drivers are open and the loop begins
            writer.clock_origin(time.perf_counter() - clock.now(), time.time() - clock.now())
            if devices.sync is not None:
                hooks = (*hooks, sync_hook(devices.sync, seed))
            runner = Runner(protocol, engine, devices, writer, clock, config.frame_rate_hz, operator, progress, hooks)
            if on_runner is not None:
                on_runner(runner)
            result = runner.run()
        writer.close(
            complete=result.complete,
            reason=result.reason,
            summary={"iterations": result.iterations, "missed_frames": result.missed_frames,
                     "trials": result.trials, "rewards": result.rewards, "loop_priority": priority},
        )
        if world is not None:
            world.finish(writer.path)  # the virtual mouse keeps what it learned (rig.sim.memory)
        return SessionResult(writer.path, seed, result)


def make_world(config: RigConfig, protocol: Protocol, seed: int, animal_dir: Path | None = None,
               header: dict | None = None):
    """The simulated world, with the animal's remembered learning; records what the mouse knew in the
    header's `sim` section."""
    from rig.sim.world import SimulatedWorld

    assert config.sim is not None
    world = SimulatedWorld.from_config(config, protocol, sim_seed(config, seed), animal_dir=animal_dir)
    if header is not None:
        header["sim"] = world.describe()
    return world
