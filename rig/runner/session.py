"""One session end to end, live or replayed: the skeleton both share, and the live front end.

`execute(plan)` is the skeleton: create the folder, open the devices, restart the clock, run the loop,
close the devices (valve first) and the folder. A live session (`run_session`) and a replay
(rig.replay.live) differ only in the plan they build: which devices, which clock, which facts go in the
header. Every exit path (normal end, stop, signal, driver fault, crash) closes the valve and leaves the
log readable.
"""

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic

import rig
from drivers.base import SyncOutput
from rig.config import RigConfig, ValveCalibration, ValveSafety
from rig.datalog.header import ReplayOrigin, SessionFacts, Software
from rig.datalog.writer import SessionWriter
from rig.engine.machine import Engine
from rig.lab.session_start import prepare_lab
from rig.loading import dump_protocol
from rig.protocol import End, Imaging, Protocol
from rig.runner.clock import SessionClock, make_clock
from rig.runner.devices import Devices
from rig.runner.hooks import LoopHook
from rig.runner.loop import Runner, RunResult
from rig.runner.operator import OperatorQueue
from rig.runner.priority import Priority, raise_priority
from rig.runner.valve_guard import ValveGuard

if TYPE_CHECKING:
    from rig.sim.world import SimulatedWorld

log = logging.getLogger(__name__)

# Per-iteration estimate for the disk-space check, all files together: a 60 Hz loop with a 1 kHz ball
# writes ~650 B per iteration (ball.bin alone ~530 B), so this leaves room for events and the mesoscope.
FRAME_RECORD_BYTES = 1024


# ---- the skeleton ------------------------------------------------------------------------------------

Outcome = Callable[[RunResult], tuple[bool, str, dict[str, Any]]]


@dataclass(frozen=True)
class SessionPlan:
    """Everything `execute` needs; built by a live session or a replay."""

    facts: SessionFacts
    protocol: Protocol
    engine: Engine
    devices: Devices
    clock: SessionClock
    frame_rate_hz: float
    data_dir: Path
    min_free_mb: float
    valve_calibration: ValveCalibration
    valve_safety: ValveSafety
    day: date | None = None  # the session's date folder; None: today
    priority: Priority | None = None  # raise the loop's priority to this; None: leave the process alone
    hooks: tuple[LoopHook, ...] = ()
    operator: OperatorQueue | None = None
    # (complete, reason, extra summary) from the loop's result; default: the loop's own verdict
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Executed:
    path: Path
    run: RunResult


def execute(plan: SessionPlan) -> Executed:
    """Run a planned session into a new folder. The devices open first (a board that does not answer leaves
    no empty folder behind), then the folder is created (refused before anything is written when the disk is
    too full); from then on every exit path closes the valve and leaves the folder readable."""
    clock = plan.clock
    with plan.devices, \
            SessionWriter.create(plan.data_dir, plan.facts, min_free_mb=plan.min_free_mb, today=plan.day) as writer:
        if clock.virtual:
            priority = "virtual clock"
        elif plan.priority is None:
            priority = "unchanged"
        else:
            priority = raise_priority(plan.priority)
        clock.restart()  # the session timeline starts when the drivers are open and the loop begins
        writer.clock_origin(time.perf_counter() - clock.now(), time.time() - clock.now())
        guard = ValveGuard(plan.devices.valve, plan.valve_calibration, plan.valve_safety)
        runner = Runner(plan.protocol, plan.engine, plan.devices, writer, clock, plan.frame_rate_hz, guard,
                        plan.operator, plan.hooks)
        result = runner.run()
        complete, reason, extra = (result.complete, result.reason, {}) if plan.outcome is None \
            else plan.outcome(result)
        writer.close(
            complete=complete,
            reason=reason,
            summary={"iterations": result.iterations, "missed_frames": result.missed_frames,
                     "trials": result.trials, "rewards": result.rewards, "loop_priority": priority,
                     "water_ul": guard.water_ul, **extra},
        )
    return Executed(writer.path, result)


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


def session_facts(
    *, animal: str, protocol: Protocol, config: dict[str, Any], seed: int, fast: bool, frame_rate_hz: float,
    experimenter: str = "", notes: str = "", options: dict[str, Any] | None = None,
    replay_of: ReplayOrigin | None = None, sim: dict[str, Any] | None = None,
) -> SessionFacts:
    """The header facts of a session about to run (live or replay): one builder for both."""
    protocol_yaml = dump_protocol(protocol)
    return SessionFacts(
        animal=animal,
        protocol=protocol.model_dump(mode="json"),
        protocol_yaml=protocol_yaml,
        protocol_sha256=hashlib.sha256(protocol_yaml.encode()).hexdigest(),
        config=config,
        seed=seed,
        fast=fast,
        frame_rate_hz=frame_rate_hz,
        experimenter=experimenter,
        notes=notes,
        options=options or {},
        software=Software(rig=rig.__version__, python=platform.python_version(), numpy=np.__version__,
                          pydantic=pydantic.VERSION),
        git_commit=git_commit(),
        host=platform.node(),
        start_time=datetime.now(UTC).isoformat(),
        replay_of=replay_of,
        sim=sim,
    )


def needed_disk_mb(protocol: Protocol, frame_rate_hz: float) -> float:
    """A pessimistic size for the session: its longest possible duration at the display rate."""
    duration = protocol.end.max_duration_s
    if duration is None:
        # Bounded by trials only: assume a slow mouse (one corridor per 60 s).
        duration = (protocol.end.max_trials or 1) * 60.0
    duration += (protocol.imaging.pre_roll_s or 0.0) + (protocol.imaging.post_roll_s or 0.0)
    return duration * frame_rate_hz * FRAME_RECORD_BYTES / 1e6


# ---- the live session --------------------------------------------------------------------------------

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
    weight_g: float | None = None  # the animal's weight at session start (journaled, and in the header)


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


PAPER_IMAGING_RATE_HZ = 3.17  # the mesoscope's large multi-area field of view (Zhong et al. 2025)


def imaging_rate(config: RigConfig) -> tuple[float, float, str]:
    """(rate Hz, first-frame delay s, where the rate came from): the imaging frame rate this rig expects.

    The mesoscope section's expected_rate_hz (its session hook waits for frames before session time 0, so
    imaging already runs then); else the frame-clock driver's own `rate_hz` and `start_s` (the simulated
    clock); else the paper's rate, assumed."""
    if config.mesoscope is not None:
        return float(config.mesoscope.expected_rate_hz), 0.0, "mesoscope.expected_rate_hz"
    params = config.driver_params("frame_clock") if "frame_clock" in config.drivers else None
    rate = getattr(params, "rate_hz", None)
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        start = getattr(params, "start_s", 0.0)
        lead = float(start) if isinstance(start, int | float) and not isinstance(start, bool) else 0.0
        return float(rate), max(lead, 0.0), "drivers.frame_clock.rate_hz"
    return PAPER_IMAGING_RATE_HZ, 0.0, "assumed (the config names no imaging rate)"


def resolve_imaging(protocol: Protocol, config: RigConfig) -> Protocol:
    """The protocol with its imaging rolls in seconds (rig.protocol.Imaging), from this rig's imaging rate.

    Each roll lasts its frames plus half a frame period (plus, for the pre-roll, the delay of the first
    frame), so at least that many frames fall inside it whatever the phase of the frame clock. Seconds
    the protocol gives are kept."""
    im = protocol.imaging
    if im.resolved:
        return protocol
    rate, lead, _ = imaging_rate(config)

    def seconds(frames: int, extra: float) -> float:
        return extra + (frames + 0.5) / rate if frames > 0 else 0.0

    resolved = Imaging(
        pre_roll_frames=im.pre_roll_frames, post_roll_frames=im.post_roll_frames,
        pre_roll_s=im.pre_roll_s if im.pre_roll_s is not None else seconds(im.pre_roll_frames, lead),
        post_roll_s=im.post_roll_s if im.post_roll_s is not None else seconds(im.post_roll_frames, 0.0),
        rate_hz=rate,
    )
    return protocol.model_copy(update={"imaging": resolved})


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


def _options_document(options: SessionOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path | date) else v) for k, v in asdict(options).items()}


def run_session(
    protocol: Protocol,
    config: RigConfig,
    options: SessionOptions,
    *,
    operator: OperatorQueue | None = None,
    hooks: tuple[LoopHook, ...] = (),
) -> SessionResult:
    """Run one live (or --fast simulated) session and return where it was written."""
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    protocol = resolve_imaging(resolve_protocol(protocol, options.max_trials, options.duration_s), config)
    data_dir = Path(options.data_dir if options.data_dir is not None else config.data_dir).expanduser()
    # The registry record, the weight and water of the day and the calibration (refuses as the config says).
    lab = prepare_lab(config, data_dir, options.animal, weight_g=options.weight_g, day=options.date)
    clock = make_clock(virtual=options.fast)
    world = make_world(config, protocol, seed, data_dir / options.animal) if config.simulated else None
    facts = session_facts(
        animal=options.animal, protocol=protocol, config=config.model_dump(mode="json"), seed=seed,
        fast=options.fast, frame_rate_hz=config.frame_rate_hz, experimenter=options.experimenter or lab.experimenter,
        notes=options.notes, options=_options_document(options),
        sim=world.describe() if world is not None else None,
    ).model_copy(update=lab.header_update())
    lab.record_weight(data_dir, options.animal, options.date)
    devices = Devices.build(config, clock, world, protocol=protocol)
    if devices.sync is not None:
        hooks = (*hooks, sync_hook(devices.sync, seed))
    plan = SessionPlan(
        facts=facts, protocol=protocol, engine=Engine(protocol, seed, config.valve_calibration.duration_ms),
        devices=devices, clock=clock, frame_rate_hz=config.frame_rate_hz, data_dir=data_dir,
        min_free_mb=config.min_free_disk_mb + needed_disk_mb(protocol, config.frame_rate_hz),
        valve_calibration=config.valve_calibration, valve_safety=config.valve_safety, day=options.date,
        priority=config.loop_priority, hooks=hooks, operator=operator,
    )
    done = execute(plan)
    if world is not None:
        world.finish(done.path)  # the virtual mouse keeps what it learned (rig.sim.memory)
    return SessionResult(done.path, seed, done.run)


def make_world(config: RigConfig, protocol: Protocol, seed: int, animal_dir: Path | None = None) -> SimulatedWorld:
    """The simulated world, with the animal's remembered learning (rig.sim.memory)."""
    from rig.sim.world import SimulatedWorld

    assert config.sim is not None
    return SimulatedWorld.from_config(config, protocol, sim_seed(config, seed), animal_dir=animal_dir)


__all__ = [
    "Executed", "SessionOptions", "SessionPlan", "SessionResult", "execute", "git_commit", "imaging_rate",
    "needed_disk_mb", "resolve_imaging", "resolve_protocol", "run_session", "session_facts", "sim_seed", "sync_seed",
]
