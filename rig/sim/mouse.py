"""The virtual mouse: running bouts and pauses, spontaneous, anticipatory, cue-driven and drinking licks,
and what it learns from one trial to the next (rig.sim.learning; docs/sim.md).

The mouse runs on a fixed internal time grid (`step_s`, default 10 ms). A step's running speed is fixed
when the step starts, so the distance run is piecewise linear in time and can be sampled at any rate.
Running does not depend on what the mouse sees, so it is generated ahead in blocks of ~1000 steps with
numpy (no Python work per step). Licks are a continuous-time process: a Poisson hazard whose rate is set
by the latest view (piecewise constant between `see` calls) and integrated in closed form up to the time
asked, with the tongue's dead time and lick bursts on top. Running and licking draw from two separate
random streams of one seed, so the same seed and the same calls give the same mouse.

Behaviour model (times in seconds, speeds in cm/s):
- running alternates bouts and pauses with exponentially distributed durations (means `bout_s`,
  `pause_s`); within a bout the target speed is `run_speed_cm_s * (1 + SPEED_CV * x)` with x a slow
  unit-variance Ornstein-Uhlenbeck process, never below 0; the actual speed follows the target through
  two first-order lags (ACCEL_TAU_S each), so starting and stopping take ~100-300 ms with no jerk.
- licks are onset/offset pairs, tongue contact 30-60 ms, followed by a short refractory time.
- spontaneous licking: Poisson at `lick_rate_hz` (corrected for the dead time, so the observed rate
  matches the configured one). A water-seeking mouse that has learned the task licks less at random:
  the rate is scaled by `(1 - E) ** BASE_SUPPRESSION`, E its engagement (its highest reward
  expectation), so an expert's licks are mostly anticipatory, cue-driven or drinking.
- anticipation: at the start of each trial a water-seeking mouse (task sessions; exposure mice are not
  water-restricted and never anticipate) decides to expect water in this corridor with probability
  `anticipation_chance(v)`, a steep logistic of v, its learned reward expectation for the corridor. If it
  does, it adds `anticipation_peak_hz * ramp(x)` in the textured part, a logistic ramp of the position x
  whose half point is at `mean - RAMP_LEAD_CM - RAMP_LEAD_SD * spread` of the positions where it has had
  water (learned; before any water, where the protocol's reward rule says). Water that came in a
  narrow stretch (a reward zone) is anticipated ahead of it; water that came anywhere over the corridor
  (a cue at a random place) is anticipated only towards its mean, later in the corridor, the cue doing
  the rest. So licking ramps towards the reward and first licks come late (median 1.7-2.1 m).
- after a cue: a short lick burst with probability CUE_P_EXPERT in an anticipated trial, else
  CUE_P_NAIVE * (1 - E) (a startle lick that learning suppresses).
- after water: a consummatory burst at 6-8 Hz for 1-3 s; anticipation stops until the next trial.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from drivers.base import LickEdge, View
from rig.config import SimMouse
from rig.sim.learning import Knowledge, category_of

STEP_S = 0.01
ACCEL_TAU_S = 0.06  # two cascaded lags of this: 10-90 % of a speed change in ~0.2 s, smooth onset
SPEED_CV = 0.2  # slow variation of the bout speed (fraction of run_speed_cm_s)
SPEED_TAU_S = 2.0  # correlation time of that variation
LICK_CONTACT_S = (0.03, 0.06)
LICK_REFRACTORY_S = 0.06  # the tongue cannot touch again this soon after releasing (caps licking ~10 Hz)
DEAD_TIME_S = (LICK_CONTACT_S[0] + LICK_CONTACT_S[1]) / 2 + LICK_REFRACTORY_S
BASE_SUPPRESSION = 2.0  # random licking scales as (1 - E) ** this: an expert (E ~ 0.7) licks ~10 % as often
DECIDE_AT = 0.4  # expectation at which the mouse anticipates in half of the trials ...
DECIDE_WIDTH = 0.08  # ... with a logistic this steep (a confident mouse anticipates nearly every trial)
RAMP_LEAD_CM = 45.0  # the anticipatory ramp is half-way this far before the mean reward position ...
RAMP_LEAD_SD = -0.8  # ... plus this many reward-position spreads (negative: a wide spread moves it later)
RAMP_WIDTH_CM = 20.0  # logistic width of the ramp
CUE_P_NAIVE = 0.1  # chance of a lick burst after a cue for a naive mouse, in any corridor
CUE_P_EXPERT = 0.95  # ... in a trial where the mouse expects water
CUE_LATENCY_S = (0.15, 0.25)  # burst start after the cue: minimum + exponential with this mean
CUE_BURST_LICKS = (2, 3.0)  # licks in a cue burst: minimum + exponential with this mean
DRINK_LATENCY_S = (0.08, 0.25)  # uniform
DRINK_RATE_HZ = (6.0, 8.0)  # uniform
DRINK_DURATION_S = (1.0, 3.0)  # uniform
BURST_ISI_CV = 0.08

_BUFFER = 4096
_BLOCK_STEPS = 1024  # running steps generated at a time
_RUN_STREAM, _LICK_STREAM = 0, 1


@dataclass(frozen=True, slots=True)
class MouseState:
    """The mouse in the step that holds the latest simulated time."""

    t: float  # start of that step
    speed_cm_s: float
    distance_cm: float  # run since the start, at t
    running: bool  # in a bout (False: pausing)
    drinking: bool  # in a lick burst (cue response or consummatory)


class _Draws:
    """Pre-drawn random numbers from one Generator, handed out one at a time as Python floats."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._normal: list[float] = []
        self._exp: list[float] = []
        self._unif: list[float] = []

    def normal(self) -> float:
        if not self._normal:
            self._normal = self._rng.standard_normal(_BUFFER).tolist()
        return self._normal.pop()

    def exponential(self) -> float:
        if not self._exp:
            self._exp = self._rng.standard_exponential(_BUFFER).tolist()
        return self._exp.pop()

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if not self._unif:
            self._unif = self._rng.random(_BUFFER).tolist()
        return lo + (hi - lo) * self._unif.pop()


def _powers(a: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """a**(j+1) and a**-(j+1) for j < n, by repeated multiplication (bit-identical on every machine)."""
    p = np.cumprod(np.full(n, a))
    q = np.cumprod(np.full(n, 1.0 / a))
    return p, q


class VirtualMouse:
    """A seeded virtual mouse; see the module docstring for the behaviour.

    `knowledge` is what the animal has learned so far (rig.sim.learning.Knowledge, e.g. from
    rig.sim.memory); None: an animal the rig knows nothing of, which starts at the configured
    `params.expertise` in each corridor it meets (expectation `expertise` where the view says the corridor
    is rewarded). The mouse updates its knowledge trial by trial; `finish()` closes the session.
    `motivated` False: the mouse is not water-restricted (an exposure session): it never anticipates and
    learns nothing about water, only the textures. `categories` maps corridor names to texture categories
    (default: from the name, leaf1 -> leaf). `anticipation` pins the expectation of named corridors
    (0..1) for this mouse's life, e.g. a probe a trained mouse half-recognises. `reward_prior_cm` is the
    (mean, spread) of where water is expected before any was had; default (0.55, 0.2) x texture length.
    """

    def __init__(
        self,
        params: SimMouse,
        seed: int,
        *,
        texture_length_cm: float = 400.0,
        anticipation: Mapping[str, float] | None = None,
        anticipation_peak_hz: float = 5.0,
        step_s: float = STEP_S,
        knowledge: Knowledge | None = None,
        motivated: bool = True,
        categories: Mapping[str, str] | None = None,
        reward_prior_cm: tuple[float, float] | None = None,
    ) -> None:
        if not texture_length_cm > 0:
            raise ValueError(f"texture_length_cm must be > 0, got {texture_length_cm}")
        if not anticipation_peak_hz >= 0:
            raise ValueError(f"anticipation_peak_hz must be >= 0, got {anticipation_peak_hz}")
        if not 0 < step_s <= 0.05:
            raise ValueError(f"step_s must be in (0, 0.05] s, got {step_s}")
        pinned = dict(anticipation or {})
        for name, w in pinned.items():
            if not 0 <= w <= 1:
                raise ValueError(f"anticipation[{name!r}] must be in [0, 1], got {w}")
        if reward_prior_cm is None:
            reward_prior_cm = (0.55 * texture_length_cm, 0.2 * texture_length_cm)
        if not (math.isfinite(reward_prior_cm[0]) and reward_prior_cm[1] > 0):
            raise ValueError(f"reward_prior_cm must be (mean, spread > 0), got {reward_prior_cm}")
        self.params = params
        self.seed = seed
        self.motivated = bool(motivated)
        self._texture_cm = float(texture_length_cm)
        self._pinned = pinned
        self._peak_hz = float(anticipation_peak_hz)
        self._dt = float(step_s)
        self._prior: float | None = params.expertise if knowledge is None else None
        self.knowledge = knowledge if knowledge is not None else Knowledge()
        self._categories = dict(categories or {})
        self._reward_prior = (float(reward_prior_cm[0]), float(reward_prior_cm[1]))
        run_ss, lick_ss = np.random.SeedSequence([seed, 0x5EED]).spawn(2)
        self._run_rng = np.random.default_rng(run_ss)
        self._draw = _Draws(np.random.default_rng(lick_ss))

        # Running: a window of generated steps [w0, w0 + len) and the cursor (steps simulated so far).
        dt = self._dt
        ou_a = math.exp(-dt / SPEED_TAU_S)
        lag_a = math.exp(-dt / ACCEL_TAU_S)
        self._ou_b = math.sqrt(1.0 - ou_a**2)
        self._lag_c = 1.0 - lag_a
        # Block length: the closed-form recurrences scale by a**-n; keep that far from overflowing.
        n = min(_BLOCK_STEPS, int(600.0 / -math.log(min(ou_a, lag_a))))
        self._block = n
        self._ou_p, self._ou_q = _powers(ou_a, n)
        self._lag_p, self._lag_q = _powers(lag_a, n)
        self._offsets = np.arange(n, dtype=np.float64)
        self._running_now = True  # phase at the next step to generate
        self._phase_end = self._run_rng.standard_exponential() * params.bout_s
        self._ou = float(self._run_rng.standard_normal())
        self._v1 = 0.0  # first lag stage, after the last generated step
        self._v = 0.0  # speed of the last generated step
        self._d_end = 0.0  # distance at the end of the last generated step
        self._gen_k = 0  # index of the next step to generate
        self._w0 = 0
        self._wt = np.zeros(0)  # step start times
        self._wd = np.zeros(0)  # distance at step starts
        self._wv = np.zeros(0)  # speed in each step
        self._wr = np.zeros(0, dtype=bool)  # in a bout
        self._k = 0  # steps simulated (those starting at or before the latest run_until time)
        self._keep = 0  # first step a later distance query may still need
        self._generate()

        # Licking.
        self._view: View | None = None
        self._trial: int | None = None
        self._corridor: str | None = None
        self._seen_cm = 0.0  # furthest texture position seen in the current trial
        self._water_trial = False  # water came in the current trial
        self._anticipating = False
        self._engagement = 0.0
        self._base_hz = float(params.lick_rate_hz)
        self._table: list[float] | None = None  # hazard rate per cm of texture in an anticipated trial
        self._ramp: np.ndarray | None = None  # cached ramp for the current reward place
        self._ramp_place: tuple[float, float] | None = None
        self._last_cue_t = math.nan
        self._rate = self._hazard_rate(self._base_hz)
        self._base_rate = self._rate
        self._hazard = self._draw.exponential()
        self._lick_t = 0.0  # the lick process is simulated up to here
        self._busy_until = -math.inf  # the tongue is in contact or refractory until then
        self._burst_next = math.inf  # next lick of the current burst
        self._burst_end = -math.inf
        self._burst_isi = 0.0
        self._edges: deque[LickEdge] = deque()
        self._finished = False

    # ---- senses -------------------------------------------------------------------------------------

    def see(self, view: View) -> None:
        """The frame the display shows now; sets the lick rate from now on (and starts a trial's learning
        bookkeeping when the trial changes)."""
        self._view = view
        if view.trial != self._trial:
            self._new_trial(view)
        if view.in_grey:
            self._rate = self._base_rate
            return
        x = view.position_cm
        if x > self._seen_cm:
            self._seen_cm = x
        table = self._table
        if table is None:
            self._rate = self._base_rate
        else:
            i = int(x)
            self._rate = table[i] if 0 <= i < len(table) else table[-1 if i > 0 else 0]

    def hear_cue(self, t: float) -> None:
        """A sound cue at time t: maybe a lick burst soon after, likely when the mouse expects water."""
        self._last_cue_t = t
        in_texture = self._view is not None and not self._view.in_grey
        if in_texture and self._anticipating and not self._water_trial:
            p = CUE_P_EXPERT
        else:
            p = CUE_P_NAIVE * (1.0 - self._engagement)
        if self._draw.uniform() >= p:
            return
        lo, mean = CUE_LATENCY_S
        start = t + lo + mean * self._draw.exponential()
        n = CUE_BURST_LICKS[0] + int(CUE_BURST_LICKS[1] * self._draw.exponential())
        isi = 1.0 / self._draw.uniform(*DRINK_RATE_HZ)
        self._schedule_burst(start, start + (n - 0.5) * isi, isi)

    def give_water(self, t: float, duration_ms: float) -> None:
        """A drop of water at time t: drink with a consummatory burst, stop anticipating this trial, and
        remember where the water came."""
        if not duration_ms > 0:
            return
        start = t + self._draw.uniform(*DRINK_LATENCY_S)
        isi = 1.0 / self._draw.uniform(*DRINK_RATE_HZ)
        self._schedule_burst(start, start + self._draw.uniform(*DRINK_DURATION_S), isi)
        view = self._view
        if view is not None and view.trial == self._trial:
            self._water_trial = True
            self._table = None
            self._rate = self._base_rate
            if self.motivated and not view.in_grey:
                self.knowledge.water_at(view.position_cm)

    # ---- simulation ---------------------------------------------------------------------------------

    def run_until(self, t: float) -> None:
        """Simulate every step that starts at or before t (so the distance at t is known), and the licks
        up to t."""
        self._steps_until(t)
        if t > self._lick_t:
            self._licks_until(t)

    def _steps_until(self, t: float) -> None:
        """Running simulated for every step that starts at or before t."""
        dt = self._dt
        k = math.floor(t / dt) + 1
        while k * dt <= t:  # guard the float division: exactly the steps starting at or before t
            k += 1
        while k > 1 and (k - 1) * dt > t:
            k -= 1
        if k > self._k:
            while k + 1 >= self._w0 + len(self._wt):
                self._generate()
            self._k = k

    def generate_until(self, t: float) -> None:
        """Generate running (not licks) at least as far as run_until(t) would: running does not depend on
        what the mouse sees, so it can be generated ahead of the simulated time."""
        dt = self._dt
        k = math.floor(t / dt) + 2
        while k + 1 >= self._w0 + len(self._wt):
            self._generate()

    def advance(self, t: float) -> list[LickEdge]:
        """run_until(t) then take_licks(t), in one call (the --fast loop's per-iteration lick read)."""
        self._steps_until(t)
        if t > self._lick_t:
            if self._burst_next > self._burst_end and self._rate > 0.0:
                # No burst: spontaneous licking only (_licks_until, _spontaneous), the same float steps.
                rate = self._rate
                self._hazard -= rate * (t - self._lick_t)
                while self._hazard <= 0.0:
                    self._lick(t + self._hazard / rate)
                    self._hazard += self._draw.exponential()
                self._lick_t = t
            else:
                self._licks_until(t)
        edges = self._edges
        if not edges or edges[0].t > t:
            return []
        out: list[LickEdge] = []
        while edges and edges[0].t <= t:
            out.append(edges.popleft())
        return out

    def distance_at(self, ts: np.ndarray, *, ahead: bool = False) -> np.ndarray:
        """Distance run (cm) at ascending times ts, which must lie between the previous call's last time
        and the latest simulated step's end (run_until(ts[-1]) first), or with `ahead` anywhere up to
        `generated_until`: running does not depend on what the mouse sees, so it is known in advance."""
        if len(ts) == 0:
            return np.zeros(0)
        last = float(ts[-1])
        limit = self.generated_until if ahead else self._k * self._dt
        if last > limit + 1e-9:
            raise ValueError(f"distance asked at t={last:.6f} s; mouse simulated to {limit:.6f} s")
        w0, dt = self._w0, self._dt
        lo = max(math.floor(float(ts[0]) / dt) - 1 - w0, 0)
        hi = min(math.floor(last / dt) + 3 - w0, len(self._wt))
        d = np.interp(ts, self._wt[lo:hi], self._wd[lo:hi])
        self._keep = max(self._keep, math.floor(last / dt) - 1)  # later queries start after `last`
        return d

    @property
    def generated_until(self) -> float:
        """Running is known (generated) up to this time: the start of the last generated step."""
        return (self._w0 + len(self._wt) - 1) * self._dt

    def take_licks(self, t: float) -> list[LickEdge]:
        """Lick edges at or before t not taken yet, ascending; run_until(t) first."""
        edges = self._edges
        out: list[LickEdge] = []
        while edges and edges[0].t <= t:
            out.append(edges.popleft())
        return out

    def finish(self) -> Knowledge:
        """The session ends: the trial in progress counts for exposure only. Returns the knowledge to keep
        (once; later calls return the same object unchanged)."""
        if not self._finished:
            self._finished = True
            self._end_trial(complete=False)
            self.knowledge.end_session("task" if self.motivated else "exposure")
        return self.knowledge

    @property
    def state(self) -> MouseState:
        j = self._k - 1 - self._w0
        if j < 0:
            return MouseState(-self._dt, 0.0, 0.0, True, self._in_burst())
        return MouseState((self._k - 1) * self._dt, float(self._wv[j]), float(self._wd[j]), bool(self._wr[j]),
                          self._in_burst())

    @property
    def texture_length_cm(self) -> float:
        """The longest texture: the stretch over which anticipatory licking is laid out."""
        return self._texture_cm

    @property
    def last_cue_t(self) -> float:
        """Time of the last cue heard (nan before any)."""
        return self._last_cue_t

    @property
    def anticipating(self) -> bool:
        """The mouse expects water in the current trial."""
        return self._anticipating and not self._water_trial

    # ---- running ------------------------------------------------------------------------------------

    def _generate(self) -> None:
        """Append one block of running steps to the window, dropping steps no query can need any more."""
        n, dt, p = self._block, self._dt, self.params
        rng = self._run_rng
        k0 = self._gen_k
        t0 = (self._offsets + k0) * dt
        t_last = float(t0[-1])
        # Bout/pause boundaries in this block: a step is in the phase in force at its start.
        bounds: list[float] = []
        running0 = self._running_now
        running = running0
        while self._phase_end <= t_last:
            bounds.append(self._phase_end)
            running = not running
            self._phase_end += rng.standard_exponential() * (p.bout_s if running else p.pause_s)
        self._running_now = running
        if bounds:
            flips = np.searchsorted(np.array(bounds), t0, side="right")
            run = (flips % 2 == 0) if running0 else (flips % 2 == 1)
        else:
            run = np.full(n, running0)
        # Ornstein-Uhlenbeck speed variation, x_j = a x_(j-1) + b e_j, in closed form.
        ou = self._ou_p * (self._ou + np.cumsum(self._ou_q * (self._ou_b * rng.standard_normal(n))))
        self._ou = float(ou[-1])
        target = p.run_speed_cm_s * (1.0 + SPEED_CV * ou)
        np.maximum(target, 0.0, out=target)
        target *= run
        # Two first-order lags, v_j = a v_(j-1) + (1 - a) u_j.
        c = self._lag_c
        v1 = self._lag_p * (self._v1 + np.cumsum(self._lag_q * (c * target)))
        v = self._lag_p * (self._v + np.cumsum(self._lag_q * (c * v1)))
        self._v1, self._v = float(v1[-1]), float(v[-1])
        acc = np.empty(n + 1)
        acc[0] = self._d_end
        np.multiply(v, dt, out=acc[1:])
        np.cumsum(acc, out=acc)
        self._d_end = float(acc[-1])
        self._gen_k = k0 + n
        keep = max(min(self._keep, self._k - 1), self._w0) - self._w0  # the step holding the latest time
        self._wt = np.concatenate((self._wt[keep:], t0))
        self._wd = np.concatenate((self._wd[keep:], acc[:-1]))
        self._wv = np.concatenate((self._wv[keep:], v))
        self._wr = np.concatenate((self._wr[keep:], run))
        self._w0 += keep

    # ---- licking ------------------------------------------------------------------------------------

    def _licks_until(self, t1: float) -> None:
        t = self._lick_t
        while t < t1:
            if self._burst_next <= self._burst_end:  # a burst is scheduled or under way
                if self._burst_next > t:  # spontaneous licking until it starts
                    seg = min(self._burst_next, t1)
                    self._spontaneous(t, seg)
                    t = seg
                    continue
                # The burst owns the tongue: rhythmic licks, no spontaneous ones.
                while self._burst_next < t1 and self._burst_next <= self._burst_end:
                    self._lick(self._burst_next)
                    self._burst_next += self._burst_isi * (1.0 + BURST_ISI_CV * self._draw.normal())
                if self._burst_next <= self._burst_end:
                    t = t1
                else:
                    t = min(max(t, self._burst_end), t1)
            else:
                self._spontaneous(t, t1)
                t = t1
        self._lick_t = t1

    def _spontaneous(self, t0: float, t1: float) -> None:
        rate = self._rate
        if rate <= 0.0 or t1 <= t0:
            return
        self._hazard -= rate * (t1 - t0)
        while self._hazard <= 0.0:
            self._lick(t1 + self._hazard / rate)  # where the integrated hazard crossed zero
            self._hazard += self._draw.exponential()

    def _lick(self, t: float) -> None:
        if t < self._busy_until:
            return
        off = t + self._draw.uniform(*LICK_CONTACT_S)
        self._edges.append(LickEdge(t, True))
        self._edges.append(LickEdge(off, False))
        self._busy_until = off + LICK_REFRACTORY_S

    def _schedule_burst(self, start: float, end: float, isi: float) -> None:
        start = max(start, self._lick_t)  # licks already simulated cannot change
        if self._in_burst() and start <= self._burst_end:
            self._burst_end = max(self._burst_end, end)  # carry on licking in the same rhythm
        else:
            self._burst_next = start
            self._burst_end = end
        self._burst_isi = isi

    def _in_burst(self) -> bool:
        return self._burst_next <= self._burst_end

    # ---- trials and learning ------------------------------------------------------------------------

    def _category(self, name: str) -> str:
        return self._categories.get(name) or category_of(name)

    def meet(self, name: str, rewarded: bool) -> None:
        """Register a corridor before it is seen (the session's protocol lists them): engagement then
        counts it from the first trial on."""
        self.knowledge.meet(name, self._category(name), prior=self._prior, rewarded=rewarded)

    def _end_trial(self, *, complete: bool) -> None:
        name = self._corridor
        if name is None:
            return
        p = self.params
        self.knowledge.end_trial(
            name, min(self._seen_cm, self._texture_cm) / 100.0,
            water=(self._water_trial if self.motivated and name not in self._pinned else None),
            learning_rate=p.learning_rate, familiarity_m=p.familiarity_m, complete=complete,
        )

    def _new_trial(self, view: View) -> None:
        self._end_trial(complete=True)
        self._trial = view.trial
        self._corridor = name = view.corridor
        self._seen_cm = 0.0
        self._water_trial = False
        k = self.knowledge.meet(name, self._category(name), prior=self._prior, rewarded=view.corridor_rewarded)
        base = self.params.lick_rate_hz
        if not self.motivated:
            self._engagement = 0.0
            self._anticipating = False
            self._base_rate = self._hazard_rate(base)
            self._table = None
            return
        pinned = self._pinned.get(name)
        chance = pinned if pinned is not None else anticipation_chance(k.expectation)
        self._engagement = engagement = max(self.knowledge.engagement(), max(self._pinned.values(), default=0.0))
        base *= (1.0 - engagement) ** BASE_SUPPRESSION
        self._base_rate = self._hazard_rate(base)
        self._anticipating = chance > 0.0 and self._draw.uniform() < chance
        if not self._anticipating or self._peak_hz <= 0.0:
            self._table = None
            return
        observed = base + self._peak_hz * self._ramp_for(self.knowledge.reward_place(self._reward_prior))
        hazard = observed / np.maximum(1.0 - observed * DEAD_TIME_S, 0.1)
        self._table = hazard.tolist()

    def _ramp_for(self, place: tuple[float, float]) -> np.ndarray:
        if self._ramp is None or place != self._ramp_place:
            mean, spread = place
            half = mean - RAMP_LEAD_SD * spread - RAMP_LEAD_CM
            # math.exp, not np.exp: numpy's vectorised exp may differ in the last bit between CPUs.
            exp, w = math.exp, RAMP_WIDTH_CM
            x = range(math.ceil(self._texture_cm) + 1)
            self._ramp = np.array([1.0 / (1.0 + exp(min(-(xi - half) / w, 700.0))) for xi in x])
            self._ramp_place = place
        return self._ramp

    @staticmethod
    def _hazard_rate(observed_hz: float) -> float:
        return _hazard(observed_hz)


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


_L0, _L1 = _logistic(-DECIDE_AT / DECIDE_WIDTH), _logistic((1.0 - DECIDE_AT) / DECIDE_WIDTH)


def anticipation_chance(expectation: float) -> float:
    """The chance that a water-seeking mouse anticipates in a trial, from its reward expectation there: a
    logistic of the expectation, scaled so that 0 gives 0 and 1 gives 1."""
    p = (_logistic((expectation - DECIDE_AT) / DECIDE_WIDTH) - _L0) / (_L1 - _L0)
    return min(max(p, 0.0), 1.0)


def _hazard(observed_hz: float) -> float:
    """The Poisson rate that gives `observed_hz` licks once licks inside the tongue's dead time are lost
    (non-paralysable dead time: observed = rate / (1 + rate * dead)); capped near the tongue's limit."""
    return observed_hz / max(1.0 - observed_hz * DEAD_TIME_S, 0.1)
