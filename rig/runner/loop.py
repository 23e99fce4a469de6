"""The real-time loop: drivers -> engine -> valve, cue, display, log. One iteration per display frame.

Each iteration reads every input that arrived since the previous one (with its own device timestamp,
mapped to the session timeline), steps the engine, carries out its commands, shows the frame and logs
what was consumed and produced. `--fast` runs the same loop on a virtual clock.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from dataclasses import dataclass, field
from typing import Literal
from typing import Protocol as Interface

from drivers.base import View
from rig.datalog.writer import SessionWriter
from rig.engine.machine import Engine
from rig.engine.records import Inputs, Step
from rig.protocol import Protocol
from rig.runner.clock import RealClock, VirtualClock
from rig.runner.devices import Devices

log = logging.getLogger(__name__)

FAULT_POLL_ITERATIONS = 30  # look for new driver faults twice a second at 60 Hz

OperatorAction = Literal["manual_reward", "pause", "resume", "stop"]


@dataclass(frozen=True)
class Operator:
    """One operator request (from the GUI, a script or a signal handler)."""

    action: OperatorAction
    volume_ul: float = 0.0


def apply_operator(
    actions: list[Operator], paused: bool, stop_reason: str
) -> tuple[tuple[float, ...], bool, str]:
    """Fold one iteration's operator actions into engine inputs: (manual reward volumes, paused, stop reason).
    The live loop and `rig replay --verify` both use it, so they read the log the same way."""
    manual: tuple[float, ...] = ()
    for op in actions:
        if op.action == "manual_reward":
            manual += (op.volume_ul,)
        elif op.action == "pause":
            paused = True
        elif op.action == "resume":
            paused = False
        elif op.action == "stop":
            stop_reason = stop_reason or "operator stop"
    return manual, paused, stop_reason


def step_engine(engine: Engine, inputs: Inputs, t: float, stop_reason: str) -> Step:
    """One engine step, followed in the same iteration by the stop when one was asked for."""
    step = engine.step(inputs, t)
    if stop_reason and not step.state.done:
        after = engine.stop(t, stop_reason)
        step = Step(after.state, step.events + after.events, step.commands + after.commands)
    return step


class OperatorQueue:
    """Thread-safe inbox of operator requests; the loop drains it once per iteration."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Operator] = queue.SimpleQueue()

    def put(self, op: Operator) -> None:
        self._q.put(op)

    def drain(self) -> list[Operator]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out


class LoopHook(Interface):
    """Something that rides along with the loop (mesoscope link, telemetry publisher, ...).

    Hooks are called in the order they were given, from the loop's own thread. `start` runs after the
    drivers are open and before the first engine step; raising there refuses the session (nothing has
    been run, the folder is closed incomplete). `iteration` runs after each iteration has been logged
    and must never block. `end` runs once, whatever ended the loop, before the folder is closed.
    """

    def start(self, runner: Runner) -> None: ...

    def iteration(self, i: int, t: float, step: Step) -> None: ...

    def end(self, runner: Runner, result: RunResult | None) -> None: ...


@dataclass
class RunResult:
    complete: bool
    reason: str
    iterations: int
    missed_frames: int
    trials: int
    rewards: int
    extra: dict = field(default_factory=dict)


class Runner:
    def __init__(
        self,
        protocol: Protocol,
        engine: Engine,
        devices: Devices,
        writer: SessionWriter,
        clock: RealClock | VirtualClock,
        frame_rate_hz: float,
        operator: OperatorQueue | None = None,
        progress: object | None = None,
        hooks: tuple[LoopHook, ...] = (),
    ) -> None:
        self.protocol = protocol
        self.engine = engine
        self.devices = devices
        self.writer = writer
        self.clock = clock
        self.period = 1.0 / frame_rate_hz
        self.operator = operator or OperatorQueue()
        self.progress = progress  # a tqdm bar or None
        self.hooks = hooks
        self.iteration = 0  # the iteration being run; hooks use it to stamp what they log
        self._faults_seen: dict[int, int] = {}
        self._clock_maps: dict[str, object] = {}
        self._corridor_names = [c.name for c in protocol.corridors]
        self._corridor_rewarded = [c.rewarded for c in protocol.corridors]
        self._show_next = protocol.inter_trial.show_next

    def request_stop(self) -> None:
        """Safe to call from a signal handler or another thread."""
        self.operator.put(Operator("stop"))

    def run(self) -> RunResult:
        """Run the loop to its end; hooks are started first and always ended."""
        started: list[LoopHook] = []
        result: RunResult | None = None
        try:
            for hook in self.hooks:
                hook.start(self)
                started.append(hook)
            result = self._loop()
            return result
        finally:
            for hook in reversed(started):
                try:
                    hook.end(self, result)
                except Exception:  # one failing hook must not keep the others from ending; it is logged
                    log.exception("ending %s failed", type(hook).__name__)

    def _loop(self) -> RunResult:
        fast = isinstance(self.clock, VirtualClock)
        dev, writer, engine, clock = self.devices, self.writer, self.engine, self.clock
        cm_per_count = 1.0 / dev.ball.counts_per_cm
        max_open_ms = dev.valve.max_open_ms
        perf = time.perf_counter
        wall0 = perf()
        paused = False
        missed = 0
        trials = rewards = 0
        stop_reason = ""

        self._log_clock_maps(0, 0.0)
        step = engine.start(0.0)
        writer.events(0, step.events)
        self._carry_out(0, step, max_open_ms)
        next_t = self.period
        i = 0
        hooks = self.hooks
        while not step.state.done:
            i += 1
            self.iteration = i
            clock.wait_until(next_t)
            t = next_t if fast else clock.now()
            w_start = perf()

            # Clock maps are re-read every iteration: a driver may refit its device clock (drift, reset).
            ball_map, lick_map, fc_map = dev.ball.clock, dev.lick.clock, dev.frame_clock.clock
            samples = dev.ball.read()
            n = len(samples.counts)
            if n:
                ts = ball_map.to_session(samples.t)
                cm = samples.counts * cm_per_count
                ball_cm = float(cm.sum())
                writer.ball(i, ts, samples.counts, cm)
                last_input_t = float(ts[-1])
            else:
                ball_cm = 0.0
                last_input_t = math.nan
            edges = dev.lick.read()
            if edges:
                lick_t = [float(lick_map.to_session(e.t)) for e in edges]
                writer.licks(i, lick_t, [e.onset for e in edges])
                onsets = tuple(tt for tt, e in zip(lick_t, edges, strict=True) if e.onset)
            else:
                onsets = ()
            fc = dev.frame_clock.read()
            if len(fc):
                writer.frame_clock(i, fc_map.to_session(fc))

            actions = self.operator.drain()
            for op in actions:
                writer.operator(i, t, op.action, volume_ul=op.volume_ul)
            manual, paused, stop_reason = apply_operator(actions, paused, stop_reason)
            step = step_engine(engine, Inputs(ball_cm, onsets, manual, paused), t, stop_reason)
            self._carry_out(i, step, max_open_ms)
            state = step.state
            swap_t = dev.display.show(
                View(t, state.trial, self._corridor_names[state.corridor], state.position_cm, state.in_grey,
                     self._corridor_rewarded[state.corridor],
                     self._corridor_names[state.next_corridor]
                     if state.next_corridor >= 0 and self._show_next else None)
            )
            writer.frame(i, state)
            if step.events:
                writer.events(i, step.events)
                for ev in step.events:
                    if ev.kind == "trial_end":
                        trials += 1
                        if self.progress is not None:
                            self.progress.update(1)
                            self.progress.set_postfix(rewards=rewards, refresh=False)
                    elif ev.kind == "reward":
                        rewards += 1
            w_end = perf()
            writer.timing(i, w_start - wall0, w_end - w_start, swap_t - last_input_t)
            for hook in hooks:
                hook.iteration(i, t, step)
            if i % FAULT_POLL_ITERATIONS == 0:
                self._log_new_faults(i)
                self._log_clock_maps(i, t)
            writer.tick(w_end)

            next_t += self.period
            if not fast:
                now = clock.now()
                if now > next_t:  # overran: skip to the next deadline rather than bunch up frames
                    skipped = math.floor((now - next_t) / self.period) + 1
                    missed += skipped
                    next_t += skipped * self.period

        self._log_new_faults(i)
        end = next((e for e in reversed(step.events) if e.kind == "session_end"), None)
        reason = end.data.get("reason", "") if end is not None else stop_reason
        return RunResult(
            complete=not stop_reason,
            reason=reason or "ended",
            iterations=i + 1,
            missed_frames=missed,
            trials=trials,
            rewards=rewards,
        )

    def _log_new_faults(self, i: int) -> None:
        """Copy faults the drivers recorded since the last look into the session log."""
        for role, device in self.devices.by_role().items():
            faults = getattr(device, "faults", None)
            if not faults:
                continue
            key = id(faults)  # roles sharing one board share one fault list: log each fault once
            seen = self._faults_seen.get(key, 0)
            for f in faults[seen:]:
                self.writer.fault(i, f.t, role, f.kind, f.message)
                log.warning("%s fault at t=%.3f s: %s: %s", role, f.t, f.kind, f.message)
            self._faults_seen[key] = len(faults)

    def _log_clock_maps(self, i: int, t: float) -> None:
        """Log each device's clock map whenever it changes (a board refits it from heartbeats, a reset)."""
        for role, device in self.devices.by_role().items():
            cmap = device.clock
            if self._clock_maps.get(role) != cmap:
                self._clock_maps[role] = cmap
                self.writer.clock_map(i, t, role, float(cmap.offset), float(cmap.scale))

    def _carry_out(self, i: int, step, max_open_ms: float) -> None:
        if not step.commands:
            return
        self.writer.commands(i, step.commands)
        for cmd in step.commands:
            if cmd.kind == "valve":
                duration = cmd.duration_ms
                if duration > max_open_ms:
                    # Safety first: a calibration that asks for more than the valve's maximum is cut.
                    log.warning("valve pulse %.1f ms cut to the maximum %.1f ms", duration, max_open_ms)
                    duration = max_open_ms
                self.devices.valve.pulse(duration)
            elif cmd.kind == "cue":
                self.devices.cue.play(cmd.duration_ms, cmd.frequency_hz)

