"""Pre-session checks (`rig check`): does each device of a rig config do what a session needs?

A check is any callable `check(ctx: CheckContext) -> list[CheckResult]`. `run_checks` opens the rig's
input and output drivers (not the display), runs the checks in order and closes the drivers, valve
first. DEFAULT_CHECKS holds the built-in ones; other parts of the rig add theirs by passing a longer
tuple (the mesoscope sync check, for instance: `run_checks(cfg, checks=DEFAULT_CHECKS + (sync_check,))`).
A check that raises is reported as a failure with the error; it never stops the other checks.

On an all-simulated rig the checks run on a virtual clock (instantly); the virtual mouse turns the
ball and licks. On real hardware they run on the real clock and `say` tells the operator what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.base import CheckResult
from drivers.registry import DriverContext, Registry
from rig.config import RigConfig, driver_registry
from rig.runner.clock import RealClock, SessionClock, VirtualClock

log = logging.getLogger(__name__)

CHECK_ROLES = ("valve", "ball", "lick", "cue", "frame_clock")  # the display is checked by its own tools
POLL_S = 0.02  # how often a watching check reads its device


@dataclass(frozen=True)
class CheckSettings:
    window_s: float = 3.0  # how long the encoder, lick and frame-clock checks watch their input
    min_run_cm: float = 1.0  # the ball must move at least this far while watched
    lick_stuck_s: float = 1.0  # a contact held longer than this means a stuck or shorted lick line
    lick_chatter_hz: float = 20.0  # more edges per second than this means electrical noise
    min_frames: int = 2  # frame-clock edges needed to call imaging present
    valve_ms: float = 20.0  # the test pulse: long enough to hear, short enough to waste no water
    cue_ms: float = 200.0
    cue_hz: float = 4000.0
    imaging: bool = True  # False: the frame-clock check passes with "not imaging"


@dataclass
class CheckContext:
    config: RigConfig
    drivers: dict[str, Any]  # role -> opened driver
    clock: SessionClock
    settings: CheckSettings
    say: Callable[[str], None]  # instructions for the operator
    simulated: bool = False  # True: nobody at the rig (the virtual mouse acts), no instructions

    def watch(self, seconds: float, read: Callable[[], Any]) -> list[Any]:
        """Everything `read()` returns over the next `seconds`, polled every POLL_S (not blocking)."""
        out = []
        end = self.clock.now() + seconds
        while True:
            t = min(end, self.clock.now() + POLL_S)
            self.clock.wait_until(t)
            out.append(read())
            if t >= end:
                return out


Check = Callable[[CheckContext], list[CheckResult]]


@dataclass(frozen=True)
class CheckReport:
    config: str
    results: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "ok": self.ok,
            "results": [{"name": r.name, "ok": r.ok, "message": r.message} for r in self.results],
        }

    def lines(self) -> list[str]:
        return [f"{'PASS' if r.ok else 'FAIL'}  {r.name}: {r.message}" for r in self.results]


# ---- the built-in checks -----------------------------------------------------------------------------


def driver_self_tests(ctx: CheckContext) -> list[CheckResult]:
    """Each driver's own self_test(): device present, channels exist, firmware answers..."""
    out: list[CheckResult] = []
    for role, d in ctx.drivers.items():
        out.extend(CheckResult(f"{role} self-test: {r.name}", r.ok, r.message) for r in d.self_test())
    return out


def encoder_moves(ctx: CheckContext) -> list[CheckResult]:
    ball = ctx.drivers["ball"]
    s = ctx.settings
    ball.read()  # drop what arrived before the check
    if not ctx.simulated:
        ctx.say(f"Turn the ball forward now: watching the encoder for {s.window_s:g} s")
    reads = ctx.watch(s.window_s, ball.read)
    counts = int(sum(int(np.sum(r.counts)) for r in reads))
    samples = sum(len(r.counts) for r in reads)
    cm = counts / ball.counts_per_cm
    if samples == 0:
        return [CheckResult("encoder moves", False, f"no encoder samples arrived in {s.window_s:g} s")]
    ok = abs(cm) >= s.min_run_cm
    msg = f"{cm:+.1f} cm ({counts:+d} counts, {samples} samples) in {s.window_s:g} s"
    if not ok:
        msg += f"; needs at least {s.min_run_cm:g} cm: is the encoder connected and the ball free to turn?"
    return [CheckResult("encoder moves", ok, msg)]


def lick_line_idle(ctx: CheckContext) -> list[CheckResult]:
    """The line is not stuck in contact and not chattering (spontaneous licks are fine)."""
    lick = ctx.drivers["lick"]
    s = ctx.settings
    before = lick.read()  # kept: a contact that began before the window and never ended is stuck too
    if not ctx.simulated:
        ctx.say(f"Keep the spout clear: watching the lick line for {s.window_s:g} s")
    t0 = ctx.clock.now()
    edges = [e for r in ctx.watch(s.window_s, lick.read) for e in r]
    t_end = ctx.clock.now()
    last = edges[-1] if edges else (before[-1] if before else None)
    to_session = lick.clock.to_session
    rate = len(edges) / s.window_s
    if rate > s.lick_chatter_hz:
        return [CheckResult("lick line idle", False,
                            f"{len(edges)} edges in {s.window_s:g} s ({rate:.0f}/s): noise on the lick line "
                            f"(check grounding and the sensor threshold)")]
    if last is not None and last.onset:
        held = t_end - float(to_session(last.t))
        if held > s.lick_stuck_s:
            return [CheckResult("lick line idle", False,
                                f"contact held for {held:.1f} s: the spout is touched, wet or shorted")]
    onsets = sum(e.onset for e in edges)
    return [CheckResult("lick line idle", True,
                        f"{onsets} contact(s) in {t_end - t0:.1f} s, none stuck, no chatter")]


def valve_clicks(ctx: CheckContext) -> list[CheckResult]:
    valve = ctx.drivers["valve"]
    ms = min(ctx.settings.valve_ms, valve.max_open_ms)
    valve.pulse(ms)
    ctx.clock.wait_until(ctx.clock.now() + ms / 1000.0 + 0.05)
    valve.close_valve()
    hint = "" if ctx.simulated else ": listen for the click"
    return [CheckResult("valve clicks", True, f"pulsed {ms:g} ms (max opening {valve.max_open_ms:g} ms){hint}")]


def frame_clock_present(ctx: CheckContext) -> list[CheckResult]:
    s = ctx.settings
    if not s.imaging:
        return [CheckResult("frame clock present", True, "not imaging: skipped")]
    fc = ctx.drivers["frame_clock"]
    fc.read()
    if not ctx.simulated:
        ctx.say(f"Imaging must be running: watching the frame clock for {s.window_s:g} s")
    edges = np.concatenate([np.asarray(r, dtype=float) for r in ctx.watch(s.window_s, fc.read)])
    if len(edges) < s.min_frames:
        return [CheckResult("frame clock present", False,
                            f"{len(edges)} frame edge(s) in {s.window_s:g} s (need {s.min_frames}): is the "
                            f"microscope acquiring and its frame clock wired?")]
    rate = (len(edges) - 1) / float(edges[-1] - edges[0]) if edges[-1] > edges[0] else float("nan")
    return [CheckResult("frame clock present", True, f"{len(edges)} frames in {s.window_s:g} s ({rate:.2f} Hz)")]


def cue_output(ctx: CheckContext) -> list[CheckResult]:
    s = ctx.settings
    ctx.drivers["cue"].play(s.cue_ms, s.cue_hz)
    hint = "" if ctx.simulated else ": listen for the tone"
    return [CheckResult("cue output", True, f"played {s.cue_ms:g} ms at {s.cue_hz:g} Hz{hint}")]


DEFAULT_CHECKS: tuple[Check, ...] = (
    driver_self_tests, encoder_moves, lick_line_idle, valve_clicks, frame_clock_present, cue_output,
)


# ---- running them ------------------------------------------------------------------------------------


def check_clock(config: RigConfig) -> SessionClock:
    """A virtual clock when every driver is simulated (nothing real to wait for), else the real one."""
    if all(e.type == "sim" for e in config.drivers.values()):
        return VirtualClock()
    return RealClock()


def sim_world(config: RigConfig, seed: int = 0) -> Any:
    """The simulated world for a rig config's sim drivers (None when it has none)."""
    if not config.simulated or config.sim is None:
        return None
    from rig.sim.mouse import VirtualMouse
    from rig.sim.world import SimulatedWorld

    return SimulatedWorld(VirtualMouse(config.sim, seed), seed)


@contextmanager
def open_drivers(
    config: RigConfig,
    roles: Sequence[str],
    clock: SessionClock,
    *,
    registry: Registry | None = None,
    world: Any = None,
) -> Iterator[dict[str, Any]]:
    """Build and open the drivers of `roles` (in that order); on exit close the valve first, then all."""
    registry = registry or driver_registry()
    context = DriverContext(clock=clock, world=world if world is not None else sim_world(config))
    made: dict[str, Any] = {}
    opened: list[Any] = []
    try:
        for role in roles:
            entry = config.drivers[role]
            made[role] = registry.create(role, entry.type, config.driver_params(role), context)
        for d in made.values():
            d.open()
            opened.append(d)
        yield made
    finally:
        valve = made.get("valve")
        if valve is not None and valve in opened:
            try:
                valve.close_valve()
            except Exception:  # the valve must be shut even if its driver is broken; record why not
                log.exception("could not command the valve closed")
        for d in reversed(opened):
            try:
                d.close()
            except Exception:  # one broken driver must not keep the others open; it is logged
                log.exception("closing %s failed", type(d).__name__)


def run_checks(
    config: RigConfig,
    checks: Sequence[Check] = DEFAULT_CHECKS,
    settings: CheckSettings | None = None,
    *,
    registry: Registry | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    clock: SessionClock | None = None,
    interactive: bool | None = None,
) -> CheckReport:
    """Open the drivers, run `checks` in order, close the drivers. `interactive` (default: unless every
    driver is simulated) makes the checks tell the operator, through `say`, what to do and listen for."""
    settings = settings or CheckSettings()
    clock = clock or check_clock(config)
    if interactive is None:
        interactive = not all(e.type == "sim" for e in config.drivers.values())
    results: list[CheckResult] = []
    try:
        with open_drivers(config, CHECK_ROLES, clock, registry=registry) as drivers:
            clock.restart()
            ctx = CheckContext(config, drivers, clock, settings, say, simulated=not interactive)
            for check in checks:
                results.extend(_run_one(check, ctx))
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # a driver that cannot open: the one result
        results.append(CheckResult("open drivers", False, f"{type(e).__name__}: {e}"))
    return CheckReport(config.name, tuple(results))


def _run_one(check: Check, ctx: CheckContext) -> list[CheckResult]:
    name = getattr(check, "__name__", repr(check)).replace("_", " ")
    try:
        out = list(check(ctx))
    except Exception as e:  # a failing check is a result, reported with its error; the others still run
        log.debug("check %s raised", name, exc_info=True)
        return [CheckResult(name, False, f"{type(e).__name__}: {e}")]
    return out or [CheckResult(name, False, "the check returned no result")]
