"""The session engine: a pure, deterministic state machine stepped once per displayed frame.

``Engine(protocol, seed, ul_to_ms)`` then ``start(t)``, ``step(inputs, t)`` per frame, ``stop(t, reason)``.
No I/O, no clock reads, no global randomness: (protocol, seed, inputs, times) fully determine every
state, event and command, which is what ``rig replay --verify`` relies on.

Conventions (the details the protocol schema leaves open):
- Time ordering within a step: licks stamped before ``t`` are judged against the state the mouse saw
  (the position before this step's movement); then movement is applied and everything it causes (cue,
  reward zone, grey, trial end/start, stage advance) is stamped at ``t`` with the position where it
  happened; then licks stamped at ``t`` (or later: clamped to ``t``); then manual rewards; then
  ``session_end`` if the session is over. Events therefore come out ordered by time.
- Gated movement: ``above_since`` is the time of the first step whose ball speed is above threshold;
  the corridor moves (for the whole step) from the first step with ``t - above_since >= hold``.
- Randomness: three independent streams spawned from ``SeedSequence(seed)``: trial order, cue
  position, reward-zone start (so changing one, e.g. a what-if reward rule in replay, leaves the
  others' draws unchanged). Per trial start, in this order: the corridor (see rig.engine.trialorder), one cue
  draw when the protocol has a cue, one zone draw when the rule in force is a zone mode. Draws are made
  for every trial, rewarded or not, task or exposure. The corridor order is drawn one trial ahead
  (``State.next_corridor``) so the display can draw the corridor that follows; the sequence is the same.
- Rewards: active modes pay each qualifying lick up to ``max_per_trial``; passive modes pay once per
  trial. A passive_after_cue reward still pending when the trial ends is dropped. ``rewards_in_trial``
  counts rule rewards that fell due (in exposure they are withheld but counted, so a task and its
  exposure twin have identical states); manual rewards are not counted.
- Anticipatory lick: a lick in the trial before the cue (active_after_cue), before cue + delay
  (passive_after_cue), or at a position before the zone start (zone modes). Licks during an operator
  pause count (they are licks); licks in an inter-trial pause belong to no trial (data ``iti: True``).
- Stage advance by ``criterion`` (rig.engine.learning: rewarded against unrewarded corridors, over the
  stage's finished non-probe trials) fires when the criterion is met; checked as each trial ends, the
  advance takes effect at the next trial start. The deprecated ``anticipatory_fraction`` fires when the
  fraction of the last ``window`` rewarded-corridor trials reaches it (>=). The last stage never advances.
- Imaging rolls (``protocol.imaging``; only when resolved, i.e. ``pre_roll_s``/``post_roll_s`` given, else
  none): the pre-roll runs from ``start(t)`` until the first unpaused step at or after ``t + pre_roll_s``,
  which starts trial 0. During it the state has trial -1, the first trial's corridor, the position at that
  corridor's end (in the grey, nothing drawn ahead: ``next_corridor`` -1), nothing moves, no cue, no
  reward; licks are logged with ``iti: True``. When the task ends (the last trial's ``trial_end`` under
  ``max_trials``, or ``max_duration_s``) a ``post_roll`` event starts the post-roll: the same grey, still
  state (a trial cut short jumps to its corridor's end; the distance travelled is unchanged) until the
  first step at or after ``post_roll_s`` later, which emits ``session_end``. With no post-roll the
  session ends in the step the task ends, as before. ``stop`` ends at once (no post-roll).
- The step in which ``max_duration_s`` (task time: counted from the end of the pre-roll) is reached is
  processed completely, then the task ends. A trial cut short by the end of the task gets no
  ``trial_end``. session_end reasons: "max_trials", "max_duration", or the reason given to ``stop``.
- Lick times may arrive late (before the previous step; they keep their time) but never after ``t``
  (clamped to ``t``); several licks in one step are taken in time order.

Event data (all JSON-ready; None where a value does not apply):
  session_start: protocol, kind, seed (+ pre_roll_s, post_roll_s when the protocol's rolls are resolved)
  trial_start: corridor, corridor_index, rewarded, probe, cue_position_cm, zone_start_cm, stage, stage_name,
               next_corridor_index (the corridor of the trial after this one; None after the last trial)
  cue: position_cm, duration_ms, frequency_hz
  lick: anticipatory, iti
  reward / reward_withheld: volume_ul, duration_ms, rule (None for manual), source ("task" | "manual")
  trial_end: corridor, corridor_index, rewarded, probe, anticipatory, rewards (delivered by the rule),
             rewards_due, manual_rewards, licks, stage
  stage_advance: from, to, from_name, to_name, reason ("trials" | "criterion" | "anticipatory")
                 (+ score: the criterion's rig.engine.learning.Score.as_dict() when reason is "criterion")
  post_roll: reason (why the task ended), until (when the session will end), trials (trials ended)
  session_end: reason, trials (trials ended)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from rig.engine.learning import Tracker
from rig.engine.records import Command, Event, EventKind, Inputs, State, Step
from rig.engine.trialorder import TrialOrder
from rig.protocol import Cue, Protocol, Reward, Stage

NAN = math.nan
INF = math.inf
_TIME_EPS = 1e-9  # s: tolerance for the hold comparison (time stamps are sums of float frame times)
_BALL_LIMIT = 1e9  # cm per step: anything beyond (or NaN) is a broken input, not a mouse


class Engine:
    """One session's state machine. Create one per session; it is not reusable after the end."""

    __slots__ = (
        # configuration
        "_p", "_seed", "_ul_to_ms", "_exposure", "_gated", "_speed", "_thr", "_hold", "_gain", "_cap",
        "_continuous", "_iti_s", "_max_trials", "_max_dur", "_cue", "_stages", "_order", "_cue_rng",
        "_zone_rng", "_pre_s", "_post_s", "_roll_logged",
        # session
        "_started", "_done", "_t0", "_t_end", "_t_prev", "_last", "_end_reason", "_trials_ended",
        "_stage", "_stage_trials", "_stage_antic", "_pending_advance", "_rule", "_mode", "_max_rewards",
        "_above_since", "_cum", "_evs", "_cmds", "_after_end", "_pre", "_task_at", "_end_at", "_first_ci",
        "_tracker", "_advance_score",
        # trial
        "_trial", "_ci", "_next_ci", "_cname", "_tex", "_len", "_rewarded", "_probe", "_pos", "_in_grey", "_iti",
        "_iti_until", "_cue_pos", "_cue_played", "_cue_t", "_zone", "_zone_end", "_zone_entered",
        "_passive_due", "_rewards", "_delivered", "_manual", "_licks", "_antic",
        # fast-path thresholds
        "_mark", "_next_t",
    )

    # The slots' types (annotations only: no class attribute shadows a slot).
    _p: Protocol
    _seed: int
    _ul_to_ms: Callable[[float], float]
    _exposure: bool
    _gated: bool
    _speed: float
    _thr: float
    _hold: float
    _gain: float
    _cap: float
    _continuous: bool
    _iti_s: float
    _max_trials: int | None
    _max_dur: float
    _cue: Cue | None
    _stages: tuple[Stage, ...]
    _order: TrialOrder
    _cue_rng: np.random.Generator
    _zone_rng: np.random.Generator
    _pre_s: float
    _post_s: float
    _roll_logged: bool
    _started: bool
    _done: bool
    _t0: float
    _t_end: float
    _t_prev: float
    _last: Step | None
    _end_reason: str | None
    _trials_ended: int
    _stage: int
    _stage_trials: int
    _stage_antic: deque[bool]
    _pending_advance: tuple[int, str] | None
    _rule: Reward
    _mode: str
    _max_rewards: int
    _above_since: float
    _cum: float
    _evs: list[Event]
    _cmds: list[Command]
    _after_end: Step
    _pre: bool
    _task_at: float
    _end_at: float
    _first_ci: int
    _tracker: Tracker | None
    _advance_score: dict[str, Any] | None
    _trial: int
    _ci: int
    _next_ci: int
    _cname: str
    _tex: float
    _len: float
    _rewarded: bool
    _probe: bool
    _pos: float
    _in_grey: bool
    _iti: bool
    _iti_until: float
    _cue_pos: float
    _cue_played: bool
    _cue_t: float
    _zone: float
    _zone_end: float
    _zone_entered: bool
    _passive_due: float
    _rewards: int
    _delivered: int
    _manual: int
    _licks: int
    _antic: bool
    _mark: float
    _next_t: float

    def __init__(self, protocol: Protocol, seed: int, ul_to_ms: Callable[[float], float]) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"engine seed must be a non-negative integer, got {seed!r}")
        self._p = protocol
        self._seed = int(seed)
        self._ul_to_ms = ul_to_ms
        self._exposure = protocol.kind == "exposure"
        mv = protocol.movement
        self._gated = mv.rule == "gated"
        if mv.rule == "gated":
            self._speed, self._thr, self._hold = mv.speed_cm_s, mv.threshold_cm_s, mv.hold_ms / 1000.0
            self._gain, self._cap = 0.0, INF
        else:
            self._speed, self._thr, self._hold = 0.0, 0.0, 0.0
            self._gain = mv.gain
            self._cap = mv.max_speed_cm_s if mv.max_speed_cm_s is not None else INF
        self._continuous = protocol.inter_trial.mode == "continuous"
        self._iti_s = protocol.inter_trial.pause_s
        self._max_trials = protocol.end.max_trials
        self._max_dur = protocol.end.max_duration_s if protocol.end.max_duration_s is not None else INF
        self._cue = protocol.cue
        self._stages = protocol.stages
        roll = protocol.imaging
        self._roll_logged = roll.resolved  # sessions recorded before the rolls log exactly what they did then
        self._pre_s = float(roll.pre_roll_s or 0.0)
        self._post_s = float(roll.post_roll_s or 0.0)
        order_ss, cue_ss, zone_ss = np.random.SeedSequence(self._seed).spawn(3)
        self._order = TrialOrder(protocol.order, protocol.corridors, np.random.default_rng(order_ss))
        self._cue_rng = np.random.default_rng(cue_ss)
        self._zone_rng = np.random.default_rng(zone_ss)
        self._started = False
        self._done = False
        self._last = None
        self._next_ci = -1  # the corridor drawn for the trial after this one (-1: none / not yet drawn)
        self._evs = []
        self._cmds = []

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> State:
        if self._last is None:
            raise RuntimeError("engine has no state yet: call start(t) first")
        return self._last.state

    def start(self, t: float) -> Step:
        """Begin the session at time t: emits session_start and trial_start for trial 0."""
        if self._started:
            raise RuntimeError("engine already started")
        if not math.isfinite(t):
            raise ValueError(f"start time must be finite, got {t!r}")
        self._started = True
        self._t0 = self._t_prev = t
        self._t_end = t + self._pre_s + self._max_dur
        self._end_reason = None
        self._end_at = INF
        self._pre = False
        self._task_at = t
        self._advance_score = None
        self._trials_ended = 0
        self._stage = 0
        self._stage_trials = 0
        self._stage_antic = deque()
        self._pending_advance = None
        self._above_since = NAN
        self._cum = 0.0
        self._trial = -1
        self._set_stage(0)
        evs, cmds = self._begin_step()
        p = self._p
        header: dict[str, Any] = {"protocol": p.name, "kind": p.kind, "seed": self._seed}
        if self._roll_logged:
            header["pre_roll_s"], header["post_roll_s"] = self._pre_s, self._post_s
        evs.append(Event(t, EventKind.SESSION_START, 0, 0.0, header))
        if self._pre_s > 0:
            self._begin_pre_roll(t)
        else:
            self._begin_trial(t)
        return self._finish(t, 0.0, 0.0, False, evs, cmds)

    def step(self, inputs: Inputs, t: float) -> Step:
        """Advance one display frame to time t with everything that arrived since the previous step."""
        if self._done:
            return self._after_end
        if not self._started:
            raise RuntimeError("engine.step() before engine.start()")
        t_prev = self._t_prev
        if not t > t_prev:
            raise ValueError(f"engine step time must increase strictly: t={t!r} after {t_prev!r}")
        dt = t - t_prev
        ball = inputs.ball_cm
        if not -_BALL_LIMIT < ball < _BALL_LIMIT:
            raise ValueError(f"engine input ball_cm must be a finite displacement, got {ball!r} at t={t}")
        speed = ball / dt
        self._t_prev = t
        if self._gated:
            if speed > self._thr:
                if self._above_since != self._above_since:  # NaN: was not above
                    self._above_since = t
                go = t - self._above_since >= self._hold - _TIME_EPS
            else:
                self._above_since = NAN
                go = False
            disp = self._speed * dt if go else 0.0
        else:
            disp = ball * self._gain if ball > 0.0 else 0.0
            if disp > self._cap * dt:
                disp = self._cap * dt
            go = disp > 0.0
        if self._iti or self._pre or self._end_reason is not None or inputs.paused:
            disp, go = 0.0, False
        if (inputs.licks or inputs.manual_rewards_ul or t >= self._next_t
                or self._pos + disp >= self._mark):
            return self._step_events(inputs, t, speed, disp, dt, go)
        # fast path: nothing happens but movement
        pos = self._pos + disp
        self._pos = pos
        self._cum += disp
        step = Step(State(t, self._trial, self._ci, self._stage, pos, self._cum, speed, disp / dt, go,
                          self._in_grey, self._cue_pos, self._cue_played, self._zone, self._rewards, False,
                          self._next_ci))
        self._last = step
        return step

    def stop(self, t: float, reason: str) -> Step:
        """End the session now (operator stop, signal): emits session_end; the engine is done."""
        if self._done:
            return self._after_end
        if not self._started:
            raise RuntimeError("engine.stop() before engine.start()")
        if not t >= self._t_prev:
            raise ValueError(f"engine stop time {t!r} is before the last step {self._t_prev!r}")
        self._t_prev = t
        evs, cmds = self._begin_step()
        self._end_reason = reason
        self._emit(EventKind.SESSION_END, t, self._pos, {"reason": reason, "trials": self._trials_ended})
        self._done = True
        return self._finish(t, 0.0, 0.0, False, evs, cmds)

    # ------------------------------------------------------------------ step internals

    def _begin_step(self) -> tuple[list[Event], list[Command]]:
        self._evs, self._cmds = [], []
        return self._evs, self._cmds

    def _emit(self, kind: EventKind, t: float, pos: float, data: dict[str, Any]) -> None:
        self._evs.append(Event(t, kind, self._trial, pos, data))

    def _step_events(self, inputs: Inputs, t: float, speed: float, disp: float, dt: float, go: bool) -> Step:
        evs, cmds = self._begin_step()
        paused = inputs.paused
        licks = inputs.licks
        for tl in licks:
            if not -INF < tl < INF:
                raise ValueError(f"engine input lick time must be finite, got {tl!r} at t={t}")
        if len(licks) > 1:
            licks = tuple(sorted(licks))
        n, i = len(licks), 0
        while i < n and licks[i] < t:
            self._lick(licks[i], paused)
            i += 1
        if not paused and self._end_reason is None:
            if self._passive_due <= t:
                self._rule_reward(t, self._pos)
            if self._pre:
                if t >= self._task_at:
                    self._end_pre_roll(t)
            elif self._iti:
                if t >= self._iti_until:
                    self._begin_trial(t)
            else:
                self._move(disp, t)
        while i < n:
            self._lick(min(licks[i], t), paused)
            i += 1
        for ul in inputs.manual_rewards_ul:
            self._manual_reward(ul, t)
        if self._end_reason is None and t >= self._t_end:
            self._task_over("max_duration", t)
        if self._end_reason is not None and t >= self._end_at:
            self._emit(EventKind.SESSION_END, t, self._pos, {"reason": self._end_reason,
                                                       "trials": self._trials_ended})
            self._done = True
        return self._finish(t, speed, disp / dt, go, evs, cmds)

    def _finish(self, t: float, speed: float, vspeed: float, go: bool, evs: list[Event], cmds: list[Command]) -> Step:
        self._update_thresholds()
        state = State(t, self._trial, self._ci, self._stage, self._pos, self._cum, speed, vspeed, go,
                      self._in_grey, self._cue_pos, self._cue_played, self._zone, self._rewards, self._done,
                      self._next_ci)
        step = Step(state, tuple(evs), tuple(cmds))
        self._last = step
        if self._done:
            self._after_end = Step(state)  # what every later step/stop returns: no events, no commands
        return step

    def _update_thresholds(self) -> None:
        """Cache the next position and the next time at which something can happen (fast-path test)."""
        if self._iti or self._pre or self._end_reason is not None:
            self._mark = INF
        else:
            m = self._len if self._in_grey else self._tex
            if not self._cue_played and self._cue_pos < m:
                m = self._cue_pos
            if self._zone_pending() and self._zone < m:
                m = self._zone
            self._mark = m
        nt = self._t_end if self._end_reason is None else self._end_at
        if self._passive_due < nt:
            nt = self._passive_due
        if self._iti and self._iti_until < nt:
            nt = self._iti_until
        if self._pre and self._task_at < nt:
            nt = self._task_at
        self._next_t = nt

    def _zone_pending(self) -> bool:
        return (self._mode == "zone_passive" and self._rewarded and not self._zone_entered
                and self._rewards < self._max_rewards)

    def _move(self, disp: float, t: float) -> None:
        """Apply this step's displacement, handling every crossing on the way, in position order."""
        pos = self._pos
        target = pos + disp
        while True:
            # (position, priority, kind): ties resolve cue < zone < grey < end
            marks = [(self._len, 3, "end")]
            if not self._in_grey:
                marks.append((self._tex, 2, "grey"))
            if not self._cue_played and self._cue is not None:
                marks.append((self._cue_pos, 0, EventKind.CUE))
            if self._zone_pending():
                marks.append((self._zone, 1, "zone"))
            m, _, kind = min(marks)
            if target < m:
                break
            self._cum += m - pos
            pos = self._pos = m
            if kind == EventKind.CUE:
                self._play_cue(t)
            elif kind == "zone":
                self._zone_entered = True
                self._rule_reward(t, m)
            elif kind == "grey":
                self._in_grey = True
                self._emit(EventKind.GREY_START, t, m, {})
            else:
                overshoot = target - m
                self._end_trial(t)
                if self._end_reason is not None or self._iti:
                    return
                if not self._continuous:  # pause mode with pause_s == 0: restart at 0, no carry-over
                    return
                pos, target = 0.0, overshoot
        self._cum += target - pos
        self._pos = target

    def _play_cue(self, t: float) -> None:
        cue = self._cue
        assert cue is not None
        self._cue_played = True
        self._cue_t = t
        self._emit(EventKind.CUE, t, self._cue_pos, {"position_cm": self._cue_pos, "duration_ms": cue.duration_ms,
                                              "frequency_hz": cue.frequency_hz})
        self._cmds.append(Command(t, "cue", cue.duration_ms, frequency_hz=cue.frequency_hz))
        if self._mode == "passive_after_cue" and self._rewarded and self._rewards < self._max_rewards:
            due = t + self._rule.delay_ms / 1000.0
            self._passive_due = due
            if t >= due:
                self._rule_reward(t, self._pos)

    def _rule_reward(self, t: float, pos: float) -> None:
        """A reward the rule in force says is due now: delivered in a task, withheld in exposure."""
        self._passive_due = INF
        self._rewards += 1
        ul = self._rule.volume_ul
        ms = float(self._ul_to_ms(ul))
        data = {"volume_ul": ul, "duration_ms": ms, "rule": self._mode, "source": "task"}
        if self._exposure:
            self._emit(EventKind.REWARD_WITHHELD, t, pos, data)
            return
        self._delivered += 1
        self._emit(EventKind.REWARD, t, pos, data)
        self._cmds.append(Command(t, "valve", ms, volume_ul=ul, source="task"))

    def _manual_reward(self, ul: float, t: float) -> None:
        if not 0.0 < ul < 1e6:
            raise ValueError(f"manual reward volume must be a positive number of ul, got {ul!r} at t={t}")
        ul = float(ul)
        ms = float(self._ul_to_ms(ul))
        if not (self._iti or self._pre or self._end_reason is not None):
            self._manual += 1
        self._emit(EventKind.REWARD, t, self._pos, {"volume_ul": ul, "duration_ms": ms, "rule": None,
                                            "source": "manual"})
        self._cmds.append(Command(t, "valve", ms, volume_ul=ul, source="manual"))

    def _lick(self, tl: float, paused: bool) -> None:
        pos = self._pos
        if self._iti or self._pre or self._end_reason is not None:
            self._emit(EventKind.LICK, tl, pos, {"anticipatory": False, "iti": True})
            return
        self._licks += 1
        mode = self._mode
        if mode == "active_after_cue":
            antic = not self._cue_played
        elif mode == "passive_after_cue":
            antic = not self._cue_played or tl < self._cue_t + self._rule.delay_ms / 1000.0
        else:
            antic = pos < self._zone
        if antic:
            self._antic = True
        self._emit(EventKind.LICK, tl, pos, {"anticipatory": antic, "iti": False})
        if paused or not self._rewarded or self._rewards >= self._max_rewards:
            return
        if mode == "active_after_cue":
            if self._cue_played and not self._in_grey:
                self._rule_reward(tl, pos)
        elif mode == "zone_active":
            if self._zone <= pos < self._zone_end:
                self._rule_reward(tl, pos)

    # ------------------------------------------------------------------ trials and stages

    def _set_stage(self, index: int) -> None:
        self._stage = index
        self._stage_trials = 0
        adv = self._stages[index].advance if self._stages else None
        self._stage_antic = deque(maxlen=adv.window if adv is not None else 1)
        self._tracker = Tracker(adv.criterion) if adv is not None and adv.criterion is not None else None
        rule: Reward = self._p.stage_reward(index)
        self._rule = rule
        self._mode = rule.mode
        self._max_rewards = 1 if rule.mode in ("passive_after_cue", "zone_passive") else rule.max_per_trial

    def _begin_trial(self, t: float) -> None:
        self._trial += 1
        if self._pending_advance is not None:
            to, reason = self._pending_advance
            self._pending_advance = None
            frm = self._stage
            self._set_stage(to)
            data = {"from": frm, "to": to, "from_name": self._stages[frm].name, "to_name": self._stages[to].name,
                    "reason": reason}
            if reason == "criterion":
                data["score"] = self._advance_score
            self._emit(EventKind.STAGE_ADVANCE, t, 0.0, data)
        # The order is drawn one trial ahead, so the display can show the corridor that follows. The
        # order stream is its own generator and is drawn in the same sequence, so the corridors are the
        # same as without the lookahead; no corridor is drawn for a trial that max_trials rules out.
        ci = self._next_ci if self._next_ci >= 0 else next(self._order)
        last = self._max_trials is not None and self._trial + 1 >= self._max_trials
        self._next_ci = -1 if last else next(self._order)
        c = self._p.corridors[ci]
        self._ci, self._cname = ci, c.name
        self._tex, self._len = c.texture_length_cm, c.length_cm
        self._rewarded, self._probe = c.rewarded, c.probe
        cue = self._cue
        if cue is not None:
            lo, hi = cue.position_cm
            self._cue_pos = lo + (hi - lo) * self._cue_rng.random()
        else:
            self._cue_pos = NAN
        rule = self._rule
        if rule.zone_start_cm is not None:
            lo, hi = rule.zone_start_cm
            self._zone = lo + (hi - lo) * self._zone_rng.random()
            self._zone_end = self._zone + rule.zone_length_cm if rule.zone_length_cm else self._tex
        else:
            self._zone = self._zone_end = NAN
        self._pos = 0.0
        self._in_grey = False
        self._iti = False
        self._iti_until = INF
        self._cue_played = False
        self._cue_t = NAN
        self._zone_entered = False
        self._passive_due = INF
        self._rewards = self._delivered = self._manual = self._licks = 0
        self._antic = False
        stage_name = self._stages[self._stage].name if self._stages else None
        self._emit(EventKind.TRIAL_START, t, 0.0, {
            "corridor": c.name, "corridor_index": ci, "rewarded": c.rewarded, "probe": c.probe,
            "cue_position_cm": None if cue is None else self._cue_pos,
            "zone_start_cm": None if rule.zone_start_cm is None else self._zone,
            "stage": self._stage, "stage_name": stage_name,
            "next_corridor_index": self._next_ci if self._next_ci >= 0 else None,
        })

    def _begin_pre_roll(self, t: float) -> None:
        """Imaging before trial 0: grey and still at the first trial's corridor end; nothing drawn ahead."""
        self._pre = True
        self._task_at = t + self._pre_s
        self._first_ci = next(self._order)  # the order stream draws the same sequence whenever it is drawn
        c = self._p.corridors[self._first_ci]
        self._ci, self._cname = self._first_ci, c.name
        self._tex, self._len = c.texture_length_cm, c.length_cm
        self._rewarded, self._probe = c.rewarded, c.probe
        self._pos = self._len
        self._in_grey = True
        self._iti = False
        self._iti_until = INF
        self._cue_pos = self._cue_t = self._zone = self._zone_end = NAN
        self._cue_played = self._zone_entered = self._antic = False
        self._passive_due = INF
        self._rewards = self._delivered = self._manual = self._licks = 0

    def _end_pre_roll(self, t: float) -> None:
        self._pre = False
        self._next_ci = self._first_ci
        self._begin_trial(t)

    def _task_over(self, reason: str, t: float) -> None:
        """No more trials, movement, cues or rule rewards; the session ends post_roll_s later."""
        self._end_reason = reason
        self._end_at = t + self._post_s
        if self._post_s > 0:
            self._passive_due = INF
            self._pos = self._len  # a trial cut short is left for the grey at its end; no distance is added
            self._in_grey = True
            self._next_ci = -1
            self._emit(EventKind.POST_ROLL, t, self._pos, {"reason": reason, "until": self._end_at,
                                                           "trials": self._trials_ended})

    def _end_trial(self, t: float) -> None:
        self._passive_due = INF  # a passive reward not yet due is dropped with its trial
        self._emit(EventKind.TRIAL_END, t, self._len, {
            "corridor": self._cname, "corridor_index": self._ci, "rewarded": self._rewarded,
            "probe": self._probe, "anticipatory": self._antic, "rewards": self._delivered,
            "rewards_due": self._rewards, "manual_rewards": self._manual, "licks": self._licks,
            "stage": self._stage,
        })
        self._trials_ended += 1
        self._stage_trials += 1
        if self._rewarded:
            self._stage_antic.append(self._antic)
        if self._tracker is not None and not self._probe:
            self._tracker.add(self._rewarded, self._antic)
        self._check_advance()
        if self._max_trials is not None and self._trials_ended >= self._max_trials:
            self._task_over("max_trials", t)
            return
        if not self._continuous:
            if self._iti_s > 0:
                self._iti = True
                self._iti_until = t + self._iti_s
                return
            self._begin_trial(t)
        else:
            self._begin_trial(t)

    def _check_advance(self) -> None:
        stages = self._stages
        if not stages or self._stage >= len(stages) - 1:
            return
        adv = stages[self._stage].advance
        if adv is None:
            return
        if adv.after_trials is not None and self._stage_trials >= adv.after_trials:
            self._pending_advance = (self._stage + 1, "trials")
            return
        if self._tracker is not None:
            score = self._tracker.score()
            if score.learned:
                self._advance_score = score.as_dict()
                self._pending_advance = (self._stage + 1, "criterion")
            return
        hist = self._stage_antic
        if adv.anticipatory_fraction is not None and len(hist) >= adv.window:
            if sum(hist) / adv.window >= adv.anticipatory_fraction:
                self._pending_advance = (self._stage + 1, "anticipatory")
