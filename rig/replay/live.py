"""Replay a logged session through the live runner, in real time, X times faster, or on a virtual clock;
optionally through another protocol (what-if).

The recorded ball, lick and frame-clock inputs drive the real Runner through replay drivers
(drivers.replay) that release each recorded sample on the iteration (virtual clock) or at the session
time (real clock) at which the original loop consumed it; valve and cue are simulated, and so is the display
unless a rig config's display driver is given (`ReplayOptions.display_config`: the VR corridor drawn again,
in a window or offscreen) or a display object is passed in. The
operator's logged actions (manual rewards, pause, resume, stop) are fed to the runner on their logged
iterations. It is open loop: the mouse is not re-simulated, so in a what-if its running and licking are
exactly what they were, whatever the other protocol does.

The result is a new, ordinary session folder under `DATA/<animal>-replay/` (or `-whatif`), dated like
the original, with a `replay_of` header entry naming the original. Nothing is written into the
original's folder. `verify_session` (rig.replay.verify) is the exact, offline check; see docs/replay.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from drivers.base import Display
from drivers.registry import DriverContext
from drivers.replay import ReplayBall, ReplayCue, ReplayDisplay, ReplayFrameClock, ReplayLick, ReplayValve
from rig.config import RigConfig, ValveSafety, driver_registry
from rig.datalog.header import ReplayOrigin, SessionFacts
from rig.datalog.reader import Session
from rig.engine.machine import Engine
from rig.engine.records import Step
from rig.errors import RigError
from rig.protocol import Protocol
from rig.replay.verify import Divergence, cut_iteration, engine_setup, virtual_times
from rig.runner.clock import SessionClock, make_clock
from rig.runner.devices import Devices
from rig.runner.hooks import LoopHook
from rig.runner.loop import Runner, RunResult
from rig.runner.operator import OPERATOR_ACTIONS, Operator, OperatorQueue
from rig.runner.session import SessionPlan, execute, needed_disk_mb, session_facts

__all__ = ["FAST_SPEED", "ReplayError", "ReplayOptions", "ReplayResult", "build_display", "replay_session"]

# Speeds at or above this run on the virtual clock: no machine keeps a 60 Hz loop 1000 times faster.
FAST_SPEED = 1000.0
SUFFIX = {"replay": "-replay", "whatif": "-whatif"}


class ReplayError(RigError, ValueError):
    """The session cannot be replayed (unreadable header, missing calibration, bad options)."""


@dataclass(frozen=True)
class ReplayOptions:
    speed: float = 1.0  # session seconds per wall second; >= FAST_SPEED means the virtual clock
    fast: bool = False  # virtual clock, as fast as the machine allows
    protocol: Protocol | None = None  # what-if: run the inputs through this protocol instead
    protocol_source: str = ""  # where the what-if protocol came from (recorded in the header)
    data_dir: Path | None = None  # default: the original session's data directory
    animal: str | None = None  # default: the original's animal id + "-replay" / "-whatif"
    # Draw the replay with this rig config's display driver (e.g. gl_window, gl_offscreen) instead of the
    # simulated one; only its `display` entry is used.
    display_config: RigConfig | None = None
    display_source: str = ""  # where display_config came from (recorded in the header)

    @property
    def virtual(self) -> bool:
        return self.fast or self.speed >= FAST_SPEED


@dataclass(frozen=True)
class ReplayResult:
    path: Path  # the new session folder
    original: Path
    mode: str  # "replay" or "whatif"
    run: RunResult
    iterations_available: int  # logged iterations whose inputs were fed
    inputs_exhausted: bool  # the replay ran out of logged inputs before its engine ended
    complete: bool
    reason: str


class _OperatorFeed(LoopHook):
    """LoopHook that hands the runner the logged operator actions on their logged iterations, and asks
    it to stop once the logged inputs are used up."""

    def __init__(self, actions: dict[int, list[Operator]], last_t: float) -> None:
        self._actions = actions
        self._last_t = last_t  # the session time of the last logged iteration
        self._runner: Runner | None = None
        self.exhausted = False
        self.replayed_stop = False

    def _queue(self, i: int) -> None:
        assert self._runner is not None
        for op in self._actions.get(i, ()):
            if op.action == "stop":
                self.replayed_stop = True
            self._runner.operator.put(op)

    def start(self, runner: Runner) -> None:
        self._runner = runner
        self._queue(1)

    def iteration(self, i: int, t: float, step: Step) -> None:
        if step.state.done:
            return
        # Used up once the last logged iteration's time has passed (on a real clock iterations may
        # have been missed, so the iteration count alone does not say the inputs were all released).
        if t >= self._last_t:
            if not self.exhausted:
                self.exhausted = True
                assert self._runner is not None
                self._runner.request_stop()
            return
        self._queue(i + 1)



def _operator_actions(session: Session, n: int) -> dict[int, list[Operator]]:
    out: dict[int, list[Operator]] = {}
    for rec in session.operator:
        i, action = rec.get("i"), rec.get("action")
        if not isinstance(i, int) or not 1 <= i <= n or action not in OPERATOR_ACTIONS:
            continue  # not an engine input (e.g. a valve flush), or after the cut
        logged = rec.get("data")
        data: dict[str, Any] = logged if isinstance(logged, dict) else {}
        volume = data.get("volume_ul", 0.0)
        out.setdefault(i, []).append(Operator(action, volume if isinstance(volume, int | float) else 0.0))
    return out


def _released(iteration: np.ndarray, release: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows consumed on iterations 1..n, and the time at which each is to be released again."""
    keep = np.flatnonzero((iteration >= 1) & (iteration <= n))
    return keep, release[iteration[keep] - 1]


def _facts(
    s: Session, protocol: Protocol, mode: str, animal: str, options: ReplayOptions, n: int, fast: bool,
    display: str,
) -> SessionFacts:
    h = s.header
    origin = ReplayOrigin(
        mode="whatif" if mode == "whatif" else "replay",
        path=str(s.path.resolve()),
        animal=h.animal,
        date=h.date,
        session=h.session,
        protocol=h.protocol_name or None,
        protocol_sha256=h.protocol_sha256,
        complete=s.complete,
        iterations=n,
        speed="virtual clock" if fast else options.speed,
        inputs="ball, licks, frame clock and operator actions from the log (open loop: the mouse is "
               "not re-simulated); valve and cue simulated; display " + display,
        display=display,
        whatif_protocol=protocol.name if mode == "whatif" else None,
        whatif_protocol_source=options.protocol_source if mode == "whatif" else None,
    )
    return session_facts(
        animal=animal, protocol=protocol, config=h.config, seed=h.seed, fast=fast, frame_rate_hz=h.frame_rate_hz,
        experimenter=h.experimenter,
        notes=f"{'what-if' if mode == 'whatif' else 'replay'} of {s.path} ({h.animal}, {h.date}, "
              f"session {h.session})",
        options={"speed": options.speed, "fast": fast, "protocol": options.protocol_source or None,
                 "display_config": options.display_source or None},
        replay_of=origin,
    )


def build_display(config: RigConfig, clock: SessionClock, protocol: Protocol, source: str = "") -> Display:
    """The display driver a rig config names, on the replay's clock, bound to the protocol it draws.

    Only the config's `display` entry is used: the other roles stay replay drivers. No simulated world is
    given: nothing is re-simulated in a replay, so nobody is there to see the drawn frames.
    """
    where = f"{source}: " if source else ""
    entry = config.drivers.get("display")
    if entry is None:
        raise ReplayError(f"{where}rig config {config.name!r} has no display driver")
    context = DriverContext(clock=clock, world=None, protocol=protocol)
    try:
        display: Display = driver_registry().create("display", entry.type, config.driver_params("display"), context)
    except (TypeError, ValueError, KeyError) as e:
        raise ReplayError(f"{where}cannot build display driver {entry.type!r}: {e}") from e
    _bind(display, protocol)
    return display


def _bind(display: object, protocol: Protocol) -> None:
    # The VR displays draw the protocol's corridors; they learn them from bind() when the context did not say.
    bind = getattr(display, "bind", None)
    if callable(bind):
        bind(protocol)


def replay_session(
    path: str | Path,
    options: ReplayOptions = ReplayOptions(),
    *,
    operator: OperatorQueue | None = None,
    hooks: tuple[LoopHook, ...] = (),
    display: Display | None = None,
) -> ReplayResult:
    """Run a logged session's inputs through the live runner into a new session folder.

    `display` replaces the simulated display (e.g. the VR renderer, to watch a session again; it is bound
    to the protocol when it has a `bind` method); `options.display_config` builds one from a rig config
    instead (not both). `hooks` ride along as in rig.runner.session.run_session (telemetry, GUI). Raises
    ReplayError when the session cannot be replayed, rig.datalog.reader.SessionError when it cannot be read.
    """
    if display is not None and options.display_config is not None:
        raise ReplayError("give a display or ReplayOptions.display_config, not both")
    s = Session.open(Path(path))
    problems: list[Divergence] = []
    notes: list[str] = []
    setup = engine_setup(s, problems, notes)
    if setup is None:
        raise ReplayError(f"{s.path}: cannot rebuild the engine from the header: " + "; ".join(map(str, problems)))
    if setup.counts_per_cm is None:
        raise ReplayError(f"{s.path}: the header's config does not give the ball encoder's counts_per_cm")
    mode = "whatif" if options.protocol is not None else "replay"
    protocol = options.protocol if options.protocol is not None else setup.protocol
    if not protocol.imaging.resolved:  # what-if: the logged inputs keep the recorded imaging rolls' timeline
        protocol = protocol.model_copy(update={"imaging": setup.protocol.imaging})
    animal = options.animal or f"{s.header.animal}{SUFFIX[mode]}"

    # The iterations to feed: consecutive frame records, cut like rig replay --verify for a killed session.
    fi = s.frames["i"]
    gaps = np.flatnonzero(fi != np.arange(1, len(fi) + 1))
    n = int(gaps[0]) if len(gaps) else len(fi)
    if s.footer is None:
        n = min(n, cut_iteration(s, n, notes))
    if n == 0:
        raise ReplayError(f"{s.path}: the log holds no iteration to replay")

    fast = options.virtual
    release = np.asarray(virtual_times(n, setup.frame_rate_hz) if fast else s.frames["t"][:n], dtype=np.float64)
    clock = make_clock(virtual=fast, speed=options.speed)
    rb, rel_b = _released(s.ball["i"], release, n)
    rl, rel_l = _released(s.licks["i"], release, n)
    rf, rel_f = _released(s.frame_clock["i"], release, n)
    config = s.header.config
    valve = (config.get("drivers") or {}).get("valve") if isinstance(config.get("drivers"), dict) else None
    valve_max = valve.get("max_open_ms", 1000.0) if isinstance(valve, dict) else 1000.0
    if options.display_config is not None:
        display = build_display(options.display_config, clock, protocol, options.display_source)
        shown = f"{options.display_config.drivers['display'].type} ({options.display_source or 'rig config'})"
    elif display is not None:
        _bind(display, protocol)
        shown = type(display).__name__
    else:
        shown = "simulated"
    devices = Devices(
        ball=ReplayBall(clock, s.ball["t"][rb], s.ball["counts"][rb], rel_b, setup.counts_per_cm),
        lick=ReplayLick(clock, s.licks["t"][rl], s.licks["onset"][rl], rel_l),
        valve=ReplayValve(clock, float(valve_max)),
        cue=ReplayCue(clock),
        frame_clock=ReplayFrameClock(clock, s.frame_clock["t"][rf], rel_f),
        display=display if display is not None else ReplayDisplay(clock),
    )
    feed = _OperatorFeed(_operator_actions(s, n), float(release[-1]))
    facts = _facts(s, protocol, mode, animal, options, n, fast, shown)
    data_dir = Path(options.data_dir) if options.data_dir is not None else s.path.resolve().parents[2]
    try:
        day: date | None = date.fromisoformat(s.header.date)
    except ValueError:
        day = None
    min_free = float(config.get("min_free_disk_mb", 0.0)) + needed_disk_mb(protocol, setup.frame_rate_hz)

    def outcome(result: RunResult) -> tuple[bool, str, dict[str, Any]]:
        complete, reason = _outcome(result, feed, s, n)
        return complete, reason, {"replay_mode": mode, "inputs_exhausted": feed.exhausted}

    done = execute(SessionPlan(
        facts=facts, protocol=protocol, engine=Engine(protocol, setup.seed, setup.calibration.duration_ms),
        devices=devices, clock=clock, frame_rate_hz=setup.frame_rate_hz, data_dir=data_dir, min_free_mb=min_free,
        valve_calibration=setup.calibration, valve_safety=_valve_safety(config), day=day, hooks=(feed, *hooks),
        operator=operator, outcome=outcome,
    ))
    complete, reason, _ = outcome(done.run)
    return ReplayResult(done.path, s.path, mode, done.run, n, feed.exhausted, complete, reason)


def _valve_safety(config: dict[str, Any]) -> ValveSafety:
    """The original's valve limits; sessions recorded before they existed get the defaults."""
    try:
        return ValveSafety.model_validate(config.get("valve_safety") or {})
    except ValueError:
        return ValveSafety()


def _outcome(result: RunResult, feed: _OperatorFeed, s: Session, n: int) -> tuple[bool, str]:
    """Complete when the engine ended by itself, or when it used up the inputs of a complete original."""
    if result.complete:
        return True, result.reason
    if feed.exhausted:
        was = (s.footer or {}).get("reason", "killed: no footer")
        return s.complete, f"end of the logged inputs at iteration {n} (the original ended: {was})"
    if feed.replayed_stop:
        return False, "operator stop (replayed from the log)"
    return False, result.reason
