"""The virtual mouse: running bouts and pauses, spontaneous, anticipatory, cue-driven and drinking licks.

The mouse lives on a fixed internal time grid (`step_s`, default 10 ms). A step's running speed is fixed
when the step starts, so the distance run is piecewise linear in time and can be sampled at any rate;
lick times are continuous (a Poisson process is integrated over each step and the crossing time
interpolated). Everything random comes from one seeded numpy Generator, read through pre-drawn buffers
because scalar draws from numpy cost more than the whole step.

Behaviour model (times in seconds, speeds in cm/s):
- running alternates bouts and pauses with exponentially distributed durations (means `bout_s`,
  `pause_s`); within a bout the target speed is `run_speed_cm_s * (1 + SPEED_CV * x)` with x a slow
  unit-variance Ornstein-Uhlenbeck process, never below 0; the actual speed follows the target through
  two first-order lags (ACCEL_TAU_S each), so starting and stopping take ~100-300 ms with no jerk.
- licks are onset/offset pairs, tongue contact 30-60 ms, followed by a short refractory time.
- spontaneous licking: Poisson at `lick_rate_hz` (corrected for the dead time, so the observed rate
  matches the configured one).
- anticipation (scaled by expertise e and the corridor's weight w, 1 for rewarded corridors): in the
  textured part the rate is `base * (1 - UNREWARDED_SUPPRESSION * e * (1 - w)) + e * w * peak * x`,
  x = position / texture length; a naive mouse (e = 0) licks at the base rate everywhere.
- after a cue: with probability `(1 - e) * CUE_P_NAIVE + e * CUE_P_EXPERT * w` a short lick burst.
- after water: a consummatory burst at 6-8 Hz for 1-3 s; anticipation stops until the next trial.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from drivers.base import LickEdge, View
from rig.config import SimMouse

STEP_S = 0.01
ACCEL_TAU_S = 0.06  # two cascaded lags of this: 10-90 % of a speed change in ~0.2 s, smooth onset
SPEED_CV = 0.2  # slow variation of the bout speed (fraction of run_speed_cm_s)
SPEED_TAU_S = 2.0  # correlation time of that variation
LICK_CONTACT_S = (0.03, 0.06)
LICK_REFRACTORY_S = 0.06  # the tongue cannot touch again this soon after releasing (caps licking ~10 Hz)
DEAD_TIME_S = (LICK_CONTACT_S[0] + LICK_CONTACT_S[1]) / 2 + LICK_REFRACTORY_S
UNREWARDED_SUPPRESSION = 0.8  # an expert licks this much less than baseline in unrewarded textures
CUE_P_NAIVE = 0.1  # chance of a lick burst after a cue for a naive mouse, in any corridor
CUE_P_EXPERT = 0.95  # ... for an expert in a rewarded corridor
CUE_LATENCY_S = (0.15, 0.25)  # burst start after the cue: minimum + exponential with this mean
CUE_BURST_LICKS = (2, 3.0)  # licks in a cue burst: minimum + exponential with this mean
DRINK_LATENCY_S = (0.08, 0.25)  # uniform
DRINK_RATE_HZ = (6.0, 8.0)  # uniform
DRINK_DURATION_S = (1.0, 3.0)  # uniform
BURST_ISI_CV = 0.08

_BUFFER = 4096


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


class VirtualMouse:
    """A seeded virtual mouse; see the module docstring for the behaviour.

    `anticipation` maps corridor names to how strongly the mouse expects water there (0..1); corridors
    not in it use the view's `corridor_rewarded` flag (1 or 0). Use it for probe corridors a trained
    mouse half-recognises. `texture_length_cm` is the stretch over which anticipation ramps up.
    """

    def __init__(
        self,
        params: SimMouse,
        seed: int,
        *,
        texture_length_cm: float = 400.0,
        anticipation: Mapping[str, float] | None = None,
        anticipation_peak_hz: float = 4.0,
        step_s: float = STEP_S,
    ) -> None:
        if not texture_length_cm > 0:
            raise ValueError(f"texture_length_cm must be > 0, got {texture_length_cm}")
        if not anticipation_peak_hz >= 0:
            raise ValueError(f"anticipation_peak_hz must be >= 0, got {anticipation_peak_hz}")
        if not 0 < step_s <= 0.05:
            raise ValueError(f"step_s must be in (0, 0.05] s, got {step_s}")
        weights = dict(anticipation or {})
        for name, w in weights.items():
            if not 0 <= w <= 1:
                raise ValueError(f"anticipation[{name!r}] must be in [0, 1], got {w}")
        self.params = params
        self.seed = seed
        self._texture_cm = float(texture_length_cm)
        self._weights = weights
        self._peak_hz = float(anticipation_peak_hz)
        self._dt = float(step_s)
        self._draw = _Draws(np.random.default_rng(seed))

        # Running. Precomputed per-step constants keep the step loop to scalar arithmetic.
        self._ou_a = math.exp(-self._dt / SPEED_TAU_S)
        self._ou_b = math.sqrt(1.0 - self._ou_a**2)
        self._alpha = 1.0 - math.exp(-self._dt / ACCEL_TAU_S)
        self._k = 0  # index of the next step to simulate
        self._t_next = 0.0  # its start time
        self._running = True
        self._phase_end = self._draw.exponential() * params.bout_s
        self._ou = self._draw.normal()
        self._v1 = 0.0  # first lag stage
        self._v = 0.0  # speed in the latest step
        self._d = 0.0  # distance at the start of the next step
        self._grid_t: list[float] = []  # starts of the steps not yet sampled past, and distances there
        self._grid_d: list[float] = []

        # Licking.
        self._view: View | None = None
        self._drank_trial: int | None = None
        self._last_cue_t = math.nan
        self._rate = self._hazard_rate(params.lick_rate_hz)
        self._hazard = self._draw.exponential()
        self._busy_until = -math.inf  # the tongue is in contact or refractory until then
        self._burst_next = math.inf  # next lick of the current burst
        self._burst_end = -math.inf
        self._burst_isi = 0.0
        self._edges: deque[LickEdge] = deque()

    # ---- senses -------------------------------------------------------------------------------------

    def see(self, view: View) -> None:
        """The frame the display shows now; sets the lick rate for the steps that follow."""
        self._view = view
        self._rate = self._hazard_rate(self._expected_rate(view))

    def hear_cue(self, t: float) -> None:
        """A sound cue at time t: maybe a lick burst soon after, more likely for an expert in a
        rewarded corridor."""
        self._last_cue_t = t
        w = self._weight(self._view) if self._view is not None and not self._view.in_grey else 0.0
        e = self.params.expertise
        p = (1.0 - e) * CUE_P_NAIVE + e * CUE_P_EXPERT * w
        if self._draw.uniform() >= p:
            return
        lo, mean = CUE_LATENCY_S
        start = t + lo + mean * self._draw.exponential()
        n = CUE_BURST_LICKS[0] + int(CUE_BURST_LICKS[1] * self._draw.exponential())
        isi = 1.0 / self._draw.uniform(*DRINK_RATE_HZ)
        self._schedule_burst(start, start + (n - 0.5) * isi, isi)

    def give_water(self, t: float, duration_ms: float) -> None:
        """A drop of water at time t: drink with a consummatory burst, and stop anticipating this trial."""
        if not duration_ms > 0:
            return
        start = t + self._draw.uniform(*DRINK_LATENCY_S)
        isi = 1.0 / self._draw.uniform(*DRINK_RATE_HZ)
        self._schedule_burst(start, start + self._draw.uniform(*DRINK_DURATION_S), isi)
        if self._view is not None:
            self._drank_trial = self._view.trial
            self._rate = self._hazard_rate(self._expected_rate(self._view))

    # ---- simulation ---------------------------------------------------------------------------------

    def run_until(self, t: float) -> None:
        """Simulate every step that starts at or before t (so the distance at t is known)."""
        while self._t_next <= t:
            self._step()

    def distance_at(self, ts: np.ndarray) -> np.ndarray:
        """Distance run (cm) at ascending times ts, which must lie between the previous call's last time
        and the latest simulated step's end; run_until(ts[-1]) first."""
        if len(ts) == 0:
            return np.zeros(0)
        last = float(ts[-1])
        if last > self._t_next + 1e-9:
            raise ValueError(f"distance asked at t={last:.6f} s; mouse simulated to {self._t_next:.6f} s")
        grid_t = self._grid_t
        d = np.interp(ts, grid_t + [self._t_next], self._grid_d + [self._d])
        # Later queries start after `last`: only the step holding it is still needed.
        keep = bisect.bisect_right(grid_t, last) - 1
        if keep > 0:
            del grid_t[:keep]
            del self._grid_d[:keep]
        return d

    def take_licks(self, t: float) -> list[LickEdge]:
        """Lick edges at or before t not taken yet, ascending; run_until(t) first."""
        edges = self._edges
        out: list[LickEdge] = []
        while edges and edges[0].t <= t:
            out.append(edges.popleft())
        return out

    @property
    def state(self) -> MouseState:
        t0 = self._t_next - self._dt
        return MouseState(t0, self._v, self._d - self._v * self._dt, self._running, self._in_burst())

    @property
    def texture_length_cm(self) -> float:
        """The stretch over which anticipatory licking ramps up."""
        return self._texture_cm

    @property
    def last_cue_t(self) -> float:
        """Time of the last cue heard (nan before any)."""
        return self._last_cue_t

    # ---- internals ----------------------------------------------------------------------------------

    def _step(self) -> None:
        dt = self._dt
        t0 = self._t_next
        p = self.params
        while t0 >= self._phase_end:  # bout <-> pause; a zero-mean pause is skipped
            self._running = not self._running
            mean = p.bout_s if self._running else p.pause_s
            self._phase_end += self._draw.exponential() * mean
        self._ou = self._ou * self._ou_a + self._ou_b * self._draw.normal()
        target = p.run_speed_cm_s * (1.0 + SPEED_CV * self._ou) if self._running else 0.0
        if target < 0.0:
            target = 0.0
        self._v1 += (target - self._v1) * self._alpha
        self._v += (self._v1 - self._v) * self._alpha
        self._grid_t.append(t0)
        self._grid_d.append(self._d)
        self._d += self._v * dt
        self._k += 1
        t1 = self._k * dt  # from the index, so the grid does not drift
        self._t_next = t1
        self._licks_in(t0, t1)

    def _licks_in(self, t0: float, t1: float) -> None:
        if self._burst_next < t1 and self._burst_next <= self._burst_end:
            # A burst owns the tongue: rhythmic licks, no spontaneous ones.
            while self._burst_next < t1 and self._burst_next <= self._burst_end:
                self._lick(self._burst_next)
                self._burst_next += self._burst_isi * (1.0 + BURST_ISI_CV * self._draw.normal())
            return
        rate = self._rate
        if rate <= 0.0:
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
        start = max(start, self._t_next)  # steps already simulated cannot change
        if self._in_burst() and start <= self._burst_end:
            self._burst_end = max(self._burst_end, end)  # carry on licking in the same rhythm
        else:
            self._burst_next = start
            self._burst_end = end
        self._burst_isi = isi

    def _in_burst(self) -> bool:
        return self._burst_next <= self._burst_end

    def _weight(self, view: View) -> float:
        w = self._weights.get(view.corridor)
        return (1.0 if view.corridor_rewarded else 0.0) if w is None else w

    def _expected_rate(self, view: View) -> float:
        base = self.params.lick_rate_hz
        if view.in_grey or view.trial == self._drank_trial:
            return base
        e = self.params.expertise
        w = self._weight(view)
        x = min(max(view.position_cm / self._texture_cm, 0.0), 1.0)
        return base * (1.0 - UNREWARDED_SUPPRESSION * e * (1.0 - w)) + e * w * self._peak_hz * x

    @staticmethod
    def _hazard_rate(observed_hz: float) -> float:
        # Licks inside the dead time are dropped; raise the underlying rate so the observed one matches
        # (non-paralysable dead time: observed = rate / (1 + rate * dead)). Capped near the tongue's limit.
        return observed_hz / max(1.0 - observed_hz * DEAD_TIME_S, 0.1)
