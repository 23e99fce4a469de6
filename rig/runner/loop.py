"""The real-time loop: drivers -> engine -> valve, cue, display, log. One iteration per display frame.

Each iteration runs the same phases in the same order, a priority ladder: read every input that arrived
since the previous iteration (each with its own device timestamp, mapped to the session timeline), take
the operator's requests, step the engine, carry out its commands (valve, cue), show the frame, log what
was consumed and produced, then let the hooks (mesoscope link, telemetry, progress) look. `--fast` runs
the same loop on a virtual clock.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.base import ClockMap, View
from rig.datalog.writer import SessionWriter
from rig.engine.machine import Engine
from rig.engine.records import EventKind, Inputs, State, Step
from rig.protocol import Protocol
from rig.runner.clock import SessionClock
from rig.runner.devices import Devices
from rig.runner.hooks import LoopHook
from rig.runner.operator import Operator, OperatorQueue, apply_operator
from rig.runner.readahead import ReadAhead
from rig.runner.valve_guard import Delivery, ValveGuard

log = logging.getLogger(__name__)

__all__ = ["FAULT_POLL_ITERATIONS", "RunResult", "Runner", "step_engine"]

FAULT_POLL_ITERATIONS = 30  # look for new driver faults twice a second at 60 Hz


def step_engine(engine: Engine, inputs: Inputs, t: float, stop_reason: str) -> Step:
    """One engine step, followed in the same iteration by the stop when one was asked for."""
    step = engine.step(inputs, t)
    if stop_reason and not step.state.done:
        after = engine.stop(t, stop_reason)
        step = Step(after.state, step.events + after.events, step.commands + after.commands)
    return step


@dataclass
class RunResult:
    complete: bool
    reason: str
    iterations: int
    missed_frames: int
    trials: int
    rewards: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Inputs:
    """What the read phase took from the drivers this iteration."""

    ball_cm: float
    licks: tuple[float, ...]
    last_input_t: float  # session time of the newest ball sample (nan when none came)


class Runner:
    def __init__(
        self,
        protocol: Protocol,
        engine: Engine,
        devices: Devices,
        writer: SessionWriter,
        clock: SessionClock,
        frame_rate_hz: float,
        valve_guard: ValveGuard,
        operator: OperatorQueue | None = None,
        hooks: tuple[LoopHook, ...] = (),
    ) -> None:
        self.protocol = protocol
        self.engine = engine
        self.devices = devices
        self.writer = writer
        self.clock = clock
        self.period = 1.0 / frame_rate_hz
        self.valve_guard = valve_guard  # every opening of the valve goes through it
        self.operator = operator or OperatorQueue()
        self.hooks = hooks
        self.iteration = 0  # the iteration being run; hooks use it to stamp what they log
        self.trials = 0
        self.rewards = 0
        self._paused = False
        self._stop_reason = ""
        self._faults_seen: dict[int, int] = {}
        self._health: list[str] = []  # problems hooks reported (rig.runner.hooks.LoopHook.health)
        self._clock_maps: dict[str, ClockMap] = {}
        self._corridor_names = [c.name for c in protocol.corridors]
        self._corridor_rewarded = [c.rewarded for c in protocol.corridors]
        self._show_next = protocol.inter_trial.show_next
        self._cm_per_count = 1.0 / devices.ball.counts_per_cm
        self._roles = tuple(devices.by_role().items())
        self._t = 0.0
        # --fast on drivers that can read ahead (the simulated rig): the same loop, with the ball and the
        # frame clock read in chunks and the per-iteration overhead trimmed (_loop_fast).
        self._ahead = ReadAhead(devices.ball, devices.frame_clock, writer, self.period) \
            if clock.virtual and ReadAhead.usable(devices.ball, devices.frame_clock) else None
        # Devices whose clock map can change (refitted by their driver): checked every iteration.
        self._roles_refit = tuple((r, d) for r, d in self._roles if not getattr(d, "clock_static", False))

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
            result = self._loop() if self._ahead is None else self._loop_fast(self._ahead)
        finally:
            if result is None:  # the loop raised: what the drivers saw on the way out still goes to the log
                try:
                    self._log_new_faults(self.iteration)
                except Exception:
                    log.exception("logging the last driver faults failed")
            for hook in reversed(started):
                try:
                    hook.end(self, result)
                except Exception as e:  # one failing hook must not keep the others from ending; it is logged
                    if e is getattr(self.writer, "failed", None):  # the log's own failure (a full disk): it is
                        log.debug("ending %s: %s", type(hook).__name__, e)  # reported once, as the session's end
                    else:
                        log.exception("ending %s failed", type(hook).__name__)
        assert result is not None
        self._check_health()
        if self._health and result.complete:
            # An input that died (or a hook that failed) leaves the data short: never a complete session.
            result.complete = False
            result.reason = f"{result.reason}; {self._health[0]}"
        return result

    def _check_health(self) -> None:
        for hook in self.hooks:
            try:
                problems = hook.health()
            except Exception as e:  # a broken health check is itself a problem
                problems = [f"{type(hook).__name__}.health() failed: {type(e).__name__}: {e}"]
            for p in problems:
                if p not in self._health:
                    self._health.append(p)
                    log.warning("session incomplete: %s", p)

    # ---- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> RunResult:
        clock, writer = self.clock, self.writer
        virtual = clock.virtual
        perf = time.perf_counter
        wall0 = perf()
        missed = 0

        self._log_clock_maps(0, 0.0)
        step = self.engine.start(0.0)
        writer.events(0, step.events)
        self._carry_out(0, 0.0, step)
        next_t = self.period
        i = 0
        while not step.state.done:
            i += 1
            self.iteration = i
            clock.wait_until(next_t)
            t = next_t if virtual else clock.now()
            self._t = t
            w_start = perf()

            got = self._read_inputs(i)
            manual = self._take_operator(i, t)
            step = step_engine(self.engine, Inputs(got.ball_cm, got.licks, manual, self._paused), t,
                               self._stop_reason)
            self._carry_out(i, t, step)
            swap_t = self._show(t, step.state)
            self._log(i, step)
            w_end = perf()
            writer.timing(i, w_start - wall0, w_end - w_start, swap_t - got.last_input_t)
            for hook in self.hooks:
                hook.iteration(i, t, step)
            self._housekeeping(i, t, w_end)

            next_t += self.period
            if not virtual:
                now = clock.now()
                if now > next_t:  # overran: skip to the next deadline rather than bunch up frames
                    skipped = math.floor((now - next_t) / self.period) + 1
                    missed += skipped
                    next_t += skipped * self.period

        self.close_flush(i, "session end")
        self._log_new_faults(i)
        end = next((e for e in reversed(step.events) if e.kind == EventKind.SESSION_END), None)
        reason = end.data.get("reason", "") if end is not None else self._stop_reason
        return RunResult(
            complete=not self._stop_reason,
            reason=reason or "ended",
            iterations=i + 1,
            missed_frames=missed,
            trials=self.trials,
            rewards=self.rewards,
        )

    def _loop_fast(self, ahead: ReadAhead) -> RunResult:
        """_loop on a virtual clock with drivers that read ahead: the same phases in the same order, the
        same records, with the ball and frame clock read in chunks (rig.runner.readahead) and the loop's
        per-iteration lookups hoisted. A --fast session runs this body ~2 x 10^5 times per simulated hour."""
        clock, writer, engine = self.clock, self.writer, self.engine
        perf = time.perf_counter
        wall0 = perf()

        self._log_clock_maps(0, 0.0)
        step = engine.start(0.0)
        writer.events(0, step.events)
        self._carry_out(0, 0.0, step)
        period = self.period
        next_t = period
        i = 0
        wait_until, engine_step = clock.wait_until, engine.step
        consumed, write_frame, write_events, timing = writer.consumed, writer.frame, writer.events, writer.timing
        lick, writer_licks = self.devices.lick, writer.licks
        lick_read = lick.read
        show, operator_empty = self.devices.display.show, self.operator.empty
        guard_tick, write_tick = self.valve_guard.tick, writer.tick
        names, rewarded, show_next = self._corridor_names, self._corridor_rewarded, self._show_next
        hooks, check_maps = self.hooks, bool(self._roles_refit)
        trial_end, reward = EventKind.TRIAL_END, EventKind.REWARD
        times: list[float] = []
        cms: list[float] = []
        lasts: list[float] = []
        j = n = 0
        while not step.state.done:
            i += 1
            self.iteration = i
            wait_until(next_t)
            t = next_t
            self._t = t
            w_start = perf()

            # read: ball and frame clock from the chunk read ahead, licks now (they depend on the views)
            if j == n:
                times, cms, lasts = ahead.refill(i, t)
                j, n = 0, len(times)
            if times[j] != t:
                raise RuntimeError(f"inputs read ahead for t={times[j]!r} but iteration {i} runs at t={t!r}")
            ball_cm = cms[j]
            last_input_t = lasts[j]
            j += 1
            consumed(i)
            edges = lick_read()
            if edges:
                lick_map = lick.clock
                lick_t = [float(lick_map.to_session(e.t)) for e in edges]
                writer_licks(i, lick_t, [e.onset for e in edges])
                onsets = tuple(tt for tt, e in zip(lick_t, edges, strict=True) if e.onset)
            else:
                onsets = ()
            manual = () if operator_empty() else self._take_operator(i, t)
            inputs = Inputs(ball_cm, onsets, manual, self._paused)
            step = step_engine(engine, inputs, t, self._stop_reason) if self._stop_reason \
                else engine_step(inputs, t)
            if step.commands:
                self._carry_out(i, t, step)
            s = step.state
            nc = s.next_corridor
            swap_t = show(View(t, s.trial, names[s.corridor], s.position_cm, s.in_grey, rewarded[s.corridor],
                               names[nc] if nc >= 0 and show_next else None))
            write_frame(i, s)
            if step.events:
                write_events(i, step.events)
                for ev in step.events:
                    if ev.kind == trial_end:
                        self.trials += 1
                    elif ev.kind == reward:
                        self.rewards += 1
            w_end = perf()
            timing(i, w_start - wall0, w_end - w_start, swap_t - last_input_t)
            for hook in hooks:
                hook.iteration(i, t, step)
            # housekeeping, as _housekeeping
            if guard_tick(t):  # the virtual clock shows t
                writer.valve(i, "close", {"t": t, "reason": "limit", "unused_ul": 0.0})
                writer.operator(i, t, "valve_close", reason="timeout")
            if check_maps:
                self._log_clock_maps(i, t)
            if i % FAULT_POLL_ITERATIONS == 0:
                self._log_new_faults(i)
                self._check_health()
            write_tick(w_end)

            next_t += period

        self.close_flush(i, "session end")
        self._log_new_faults(i)
        end = next((e for e in reversed(step.events) if e.kind == EventKind.SESSION_END), None)
        reason = end.data.get("reason", "") if end is not None else self._stop_reason
        return RunResult(complete=not self._stop_reason, reason=reason or "ended", iterations=i + 1,
                         missed_frames=0, trials=self.trials, rewards=self.rewards)

    # ---- the phases, in the order each iteration runs them -------------------------------------------

    def _read_inputs(self, i: int) -> _Inputs:
        """Ball, licks and frame clock: everything since the previous iteration, logged on the session
        timeline. Clock maps are re-read every time: a driver may refit its device clock (drift, reset)."""
        dev, writer = self.devices, self.writer
        samples = dev.ball.read()
        if len(samples.counts):
            ts = dev.ball.clock.to_session(samples.t)
            cm = samples.counts * self._cm_per_count
            ball_cm = float(cm.sum())
            writer.ball(i, ts, samples.counts, cm)
            last_input_t = float(ts[-1])
        else:
            ball_cm = 0.0
            last_input_t = math.nan
        onsets: tuple[float, ...] = ()
        edges = dev.lick.read()
        if edges:
            lick_map = dev.lick.clock
            lick_t = [float(lick_map.to_session(e.t)) for e in edges]
            writer.licks(i, lick_t, [e.onset for e in edges])
            onsets = tuple(tt for tt, e in zip(lick_t, edges, strict=True) if e.onset)
        fc = dev.frame_clock.read()
        if len(fc):
            writer.frame_clock(i, dev.frame_clock.clock.to_session(fc))
        return _Inputs(ball_cm, onsets, last_input_t)

    def _take_operator(self, i: int, t: float) -> tuple[float, ...]:
        """The operator's requests since the previous iteration, logged; returns the manual rewards.

        Operator rewards the valve guard would refuse (valve open or shut too briefly, rate limit, water cap;
        a second one in the same iteration) never reach the engine: they are logged as refused (not an engine
        input, so replays skip them) and as a fault."""
        actions = self.operator.drain()
        if not actions:
            return ()
        accepted: list[Operator] = []
        for op in actions:
            if op.action == "note":
                self.writer.operator(i, t, "note", text=op.text)
                continue
            refusal = ""
            if op.action == "manual_reward":
                refusal = self.valve_guard.manual_refusal(self.clock.now())
                if not refusal and any(a.action == "manual_reward" for a in accepted):
                    # The one accepted already opens the valve in this iteration: this one would meet it open.
                    refusal = "the valve is open (an operator reward opens it in this iteration)"
            if refusal:
                self.writer.operator(i, t, "manual_reward_refused", volume_ul=op.volume_ul, reason=refusal)
                self._fault(i, t, "valve", "refused", f"operator reward of {op.volume_ul:g} µl refused: {refusal}")
                continue
            self.writer.operator(i, t, op.action, volume_ul=op.volume_ul)
            accepted.append(op)
        manual, self._paused, self._stop_reason = apply_operator(accepted, self._paused, self._stop_reason)
        return manual

    def _carry_out(self, i: int, t: float, step: Step) -> None:
        """The engine's commands: valve pulses (through the guard) and cues, logged before they are sent."""
        if not step.commands:
            return
        self.writer.commands(i, step.commands)
        for cmd in step.commands:
            if cmd.kind == "valve":
                d = self.valve_guard.pulse(self.clock.now(), cmd.duration_ms, cmd.source, cmd.volume_ul)
                self.writer.valve(i, "open", d.record())
                if d.outcome != "delivered":
                    self._fault(i, t, "valve", d.outcome, f"{cmd.source} reward of {cmd.volume_ul:g} µl "
                                f"({cmd.duration_ms:.1f} ms) {d.outcome}: {d.reason}; delivered {d.volume_ul:.2f} µl")
            elif cmd.kind == "cue":
                self.devices.cue.play(cmd.duration_ms, cmd.frequency_hz)

    # ---- the valve outside the engine: flushes (from the command channel) ----------------------------

    def open_flush(self, close_after_s: float, source: str) -> Delivery:
        """Open the valve to flush the line, closed after close_after_s at most (never past max_open_ms)."""
        i, t = self.iteration, self.clock.now()
        d = self.valve_guard.open(t, close_after_s)
        self.writer.valve(i, "open", d.record())
        self.writer.operator(i, t, "valve_open", close_after_s=close_after_s, source=source, outcome=d.outcome,
                             reason=d.reason)
        if d.outcome != "delivered":
            self._fault(i, t, "valve", d.outcome, f"flush of {close_after_s:g} s {d.outcome}: {d.reason}")
        return d

    def close_flush(self, i: int, reason: str) -> None:
        """Close the valve now; always allowed (closing is always safe). At the session's end it is closed
        (by the devices' close too) but logged only when something was open."""
        t = self.clock.now()
        was_open = self.valve_guard.open_at(t)
        unused = self.valve_guard.close(t)
        if was_open or reason != "session end":
            self.writer.operator(i, t, "valve_close", reason=reason)
        if unused:
            self.writer.valve(i, "close", {"t": t, "reason": reason, "unused_ul": unused})

    def _show(self, t: float, state: State) -> float:
        """Draw the frame; returns the session time of the swap."""
        ahead = self._corridor_names[state.next_corridor] if state.next_corridor >= 0 and self._show_next else None
        return self.devices.display.show(
            View(t, state.trial, self._corridor_names[state.corridor], state.position_cm, state.in_grey,
                 self._corridor_rewarded[state.corridor], ahead)
        )

    def _log(self, i: int, step: Step) -> None:
        self.writer.frame(i, step.state)
        if step.events:
            self.writer.events(i, step.events)
            for ev in step.events:
                if ev.kind == EventKind.TRIAL_END:
                    self.trials += 1
                elif ev.kind == EventKind.REWARD:
                    self.rewards += 1

    def _housekeeping(self, i: int, t: float, wall: float) -> None:
        """A flush closed at its limit; driver faults and clock maps twice a second; the log flushed."""
        now = self.clock.now()
        if self.valve_guard.tick(now):  # logged at the time it was seen closed, as the opening was (clock.now())
            self.writer.valve(i, "close", {"t": now, "reason": "limit", "unused_ul": 0.0})
            self.writer.operator(i, now, "valve_close", reason="timeout")
        self._log_clock_maps(i, t)
        if i % FAULT_POLL_ITERATIONS == 0:
            self._log_new_faults(i)
            self._check_health()
        self.writer.tick(wall)

    # ---- bookkeeping -------------------------------------------------------------------------------

    def _fault(self, i: int, t: float, source: str, kind: str, message: str) -> None:
        self.writer.fault(i, t, source, kind, message)
        log.warning("%s %s at t=%.3f s: %s", source, kind, t, message)

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
        """Log each device's clock map whenever it changes (a board refits it from heartbeats, a reset).
        Run every iteration, so every map the loop used is in clocks.jsonl; an unchanged map is the same
        object, so the check costs an identity test per device."""
        for role, device in self._roles:
            cmap = device.clock
            last = self._clock_maps.get(role)
            if cmap is not last and cmap != last:
                self._clock_maps[role] = cmap
                self.writer.clock_map(i, t, role, float(cmap.offset), float(cmap.scale))
