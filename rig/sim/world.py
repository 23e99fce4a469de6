"""The simulated world the sim drivers share: the virtual mouse, its ball and lick spout, and the imaging
frame clock.

Who sets the rates: the sim drivers own them in their Params (ball sample rate, frame rate and jitter)
and hand them to the world when they open (`attach_ball`, `attach_frames`); the constructor's values
serve only when no sim driver of that role is used. Streams are handed out once each: `advance(t)`
returns what that call produced, while an attached driver drains its own buffer with `take_ball(t)` /
`take_licks(t)`, so the ball and lick drivers can both read in one frame in any order.

Time only moves forward: a call with a time at or before the latest one simulates nothing new (the
session clock is monotonic). Same seed and same sequence of calls give the same outputs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from drivers.base import LickEdge, View
from rig.config import RigConfig
from rig.protocol import Protocol
from rig.sim.learning import category_of
from rig.sim.memory import MemoryStore
from rig.sim.mouse import VirtualMouse

_FRAME_STREAM = 0xF4A3E  # keeps the frame clock's random stream apart from the mouse's
_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False  # shared by every empty result, so nobody may write to it


class SimulatedWorld:
    """Implements drivers.base.SimWorld, plus the per-stream API the sim drivers use."""

    def __init__(
        self,
        mouse: VirtualMouse,
        seed: int,
        *,
        ball_rate_hz: float = 1000.0,
        frame_rate_hz: float = 3.17,
        frame_jitter_ms: float = 0.1,
        frame_start_s: float = 0.5,
    ) -> None:
        self.mouse = mouse
        self._t = 0.0
        self._ball_rate = _check_ball_rate(ball_rate_hz)
        self._n_next = 1  # ball sample n is at n / rate; its increment covers ((n-1)/rate, n/rate]
        self._last_d = 0.0  # cumulative distance at the latest ball sample made
        # Ball samples are computed ahead in bulk, as far as the mouse's running is generated (it does
        # not depend on what the mouse sees), and handed out as slices: samples n in [_bn0, _bn0 + len).
        self._bn0 = 1
        self._bts = _EMPTY
        self._bd = _EMPTY
        self._ball_buf: list[tuple[np.ndarray, np.ndarray]] | None = None  # None: no driver attached
        self._lick_buf: list[LickEdge] | None = None
        self._frame_seed = [seed, _FRAME_STREAM]
        self._frame_rng = np.random.default_rng(self._frame_seed)
        self._frame_rate, self._frame_jitter_s, self._frame_start = _check_frames(
            frame_rate_hz, frame_jitter_ms, frame_start_s
        )
        self._frame_n = 0
        self._frame_next = self._frame_time(0)
        self._frames_given = False
        self.memory: MemoryStore | None = None  # where the mouse's learning is saved by finish()
        self.protocol: Protocol | None = None
        self._start: dict = {"seed": seed, "motivated": mouse.motivated, "remembered": False, "memory_file": None,
                             "knowledge": mouse.knowledge.to_dict()}

    @classmethod
    def from_config(
        cls, config: RigConfig, protocol: Protocol, seed: int, *, animal_dir: str | Path | None = None
    ) -> SimulatedWorld:
        """The world for a simulated session: the config's virtual mouse, seeded with `seed` (the caller
        derives it from the session seed), with the learned state of the animal whose folder is
        `animal_dir` (rig.sim.memory; read now, written by `finish`) when the config's sim.memory is on.
        The mouse seeks water only in task sessions; its anticipation is laid out over the protocol's
        longest texture; before it has had water it expects it where the protocol's reward rule says."""
        if config.sim is None:
            raise ValueError(f"rig config {config.name!r} has no sim: section (the virtual mouse)")
        texture_cm = max(c.texture_length_cm for c in protocol.corridors)
        store = MemoryStore.for_animal(animal_dir) if animal_dir is not None and config.sim.memory else None
        knowledge = store.load() if store is not None else None
        remembered = knowledge is not None
        categories = {c.name: _category(c.texture.source, c.name) for c in protocol.corridors}
        mouse = VirtualMouse(
            config.sim, seed, texture_length_cm=texture_cm, knowledge=knowledge,
            motivated=protocol.kind == "task", categories=categories, reward_prior_cm=reward_prior(protocol),
        )
        for c in protocol.corridors:
            mouse.meet(c.name, c.rewarded)
        world = cls(mouse, seed)
        world.memory = store
        world.protocol = protocol
        world._start = {"seed": seed, "motivated": mouse.motivated, "remembered": remembered,
                        "memory_file": str(store.path) if store is not None else None,
                        "knowledge": mouse.knowledge.to_dict()}
        return world

    def describe(self) -> dict:
        """For the session header's `sim` section: the mouse's seed, whether it seeks water, and what it
        knew at the start (from its memory file, or its configured expertise)."""
        return dict(self._start)

    def finish(self, session_path: str | Path | None = None) -> None:
        """The session ended: close the mouse's trial bookkeeping and save what it learned (once)."""
        knowledge = self.mouse.finish()
        store, self.memory = self.memory, None
        if store is None or self.protocol is None:
            return
        where = Path(session_path) if session_path is not None else None
        name = f"{where.parent.name}/{where.name}" if where is not None else ""
        store.save(knowledge, session=name, protocol=self.protocol.name, kind=self.protocol.kind)

    # ---- drivers.base.SimWorld ----------------------------------------------------------------------

    def advance(self, t: float) -> tuple[np.ndarray, np.ndarray, list[LickEdge]]:
        """Move on to session time t; returns the ball sample times, cm increments and lick edges that
        this call produced (attached drivers still get them through their own buffers)."""
        if not t > self._t:
            return np.zeros(0), np.zeros(0), []
        before = self._last_d
        ts, d, licks = self._run(t)
        if len(d) == 0:
            return np.zeros(0), np.zeros(0), licks
        return ts, np.diff(d, prepend=before), licks

    def see(self, view: View) -> None:
        self.mouse.see(view)

    def hear_cue(self, t: float) -> None:
        self.mouse.hear_cue(t)

    def give_water(self, t: float, duration_ms: float) -> None:
        self.mouse.give_water(t, duration_ms)

    def frame_edges(self, t: float) -> np.ndarray:
        """Imaging frame-clock edges at or before t not yet returned."""
        if self._frame_next > t:
            return _EMPTY
        self._frames_given = True
        out = []
        while self._frame_next <= t:
            out.append(self._frame_next)
            self._frame_n += 1
            self._frame_next = self._frame_time(self._frame_n)
        return np.array(out)

    def frame_edges_ahead(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What frame_edges would return if called at each of `times` (ascending) in turn, at once: (every
        edge, ends), call j getting edges [ends[j - 1], ends[j]). The frame clock depends on nothing else
        in the world, so a loop on a virtual clock can read it ahead."""
        if not len(times):
            return _EMPTY, np.zeros(0, dtype=np.int64)
        edges = self.frame_edges(float(times[-1]))
        # Edges ascend (the jitter is far below the period), so call j gets exactly those <= times[j].
        return edges, np.searchsorted(edges, times, side="right").astype(np.int64)

    # ---- per-stream API for the sim drivers ---------------------------------------------------------

    @property
    def ball_rate_hz(self) -> float:
        return self._ball_rate

    def attach_ball(self, sample_rate_hz: float) -> float:
        """A ball driver opens: sample at its rate and keep its samples until it takes them. Returns the
        cumulative distance (cm) at the latest sample made, the baseline for the driver's counts."""
        rate = _check_ball_rate(sample_rate_hz)
        if rate != self._ball_rate and self._n_next > 1:
            raise RuntimeError(
                f"ball sample rate cannot change from {self._ball_rate} to {rate} Hz after samples were made"
            )
        self._ball_rate = rate
        self._bn0, self._bts, self._bd = self._n_next, _EMPTY, _EMPTY
        self._ball_buf = []
        return self._last_d

    def detach_ball(self) -> None:
        self._ball_buf = None

    def attach_licks(self) -> None:
        self._lick_buf = []

    def detach_licks(self) -> None:
        self._lick_buf = None

    def attach_frames(self, rate_hz: float, jitter_ms: float, start_s: float) -> None:
        """A frame-clock driver opens: its rate, jitter and first-frame delay drive the edges."""
        if self._frames_given:
            raise RuntimeError("the frame clock cannot be reconfigured after frame edges were handed out")
        self._frame_rate, self._frame_jitter_s, self._frame_start = _check_frames(rate_hz, jitter_ms, start_s)
        self._frame_rng = np.random.default_rng(self._frame_seed)  # restart the stream
        self._frame_n = 0
        self._frame_next = self._frame_time(0)

    def take_ball(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance to t and return the ball samples the ball driver has not had: their times and the
        cumulative distance run (cm since the world started) at each, as an encoder counter reads."""
        buf = self._ball_buf
        if buf is None:
            raise RuntimeError("no ball driver attached: call attach_ball() first")
        if t > self._t:
            self._run(t)
        if not buf:
            return _EMPTY, _EMPTY
        if len(buf) == 1:
            return buf.pop()
        ts = np.concatenate([b[0] for b in buf])
        cm = np.concatenate([b[1] for b in buf])
        buf.clear()
        return ts, cm

    def take_ball_ahead(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What take_ball would return if called at each of `times` (ascending, after the latest time
        simulated) in turn, at once: (times, cumulative distance, ends), call j getting samples
        [ends[j - 1], ends[j]). Running does not depend on what the mouse sees, so the ball can be read
        ahead; the licks (which do) are not simulated by this call."""
        buf = self._ball_buf
        if buf is None:
            raise RuntimeError("no ball driver attached: call attach_ball() first")
        if buf:
            raise RuntimeError("take_ball_ahead() with samples of take_ball() not taken")
        if not len(times):
            return _EMPTY, _EMPTY, np.zeros(0, dtype=np.int64)
        n0 = self._n_next
        n1 = np.floor(times * self._ball_rate).astype(np.int64)  # the last sample of each call, as _run
        last = int(n1[-1])
        ends = np.maximum(n1 - (n0 - 1), 0)
        if last < n0:
            return _EMPTY, _EMPTY, ends
        self.mouse.generate_until(float(times[-1]))
        if last >= self._bn0 + len(self._bts):
            self._precompute(last)
        a, b = n0 - self._bn0, last + 1 - self._bn0
        ts, d = self._bts[a:b], self._bd[a:b]
        self._n_next = last + 1
        self._last_d = float(d[-1])
        return ts, d, ends

    def take_licks(self, t: float) -> list[LickEdge]:
        """Advance to t and return every lick edge the lick driver has not had, ascending."""
        buf = self._lick_buf
        if buf is None:
            raise RuntimeError("no lick driver attached: call attach_licks() first")
        if t > self._t:
            if math.floor(t * self._ball_rate) < self._n_next:
                # The ball was read ahead past t (take_ball_ahead): only the mouse moves on (_run's rest).
                self._t = t
                licks = self.mouse.advance(t)
                if not buf:
                    return licks
                buf.extend(licks)
            else:
                self._run(t)
        out = buf[:]
        buf.clear()
        return out

    # ---- internals ----------------------------------------------------------------------------------

    def _run(self, t: float) -> tuple[np.ndarray, np.ndarray, list[LickEdge]]:
        mouse = self.mouse
        mouse.run_until(t)
        n0 = self._n_next
        n1 = math.floor(t * self._ball_rate)
        if n1 >= n0:
            if n1 >= self._bn0 + len(self._bts):
                self._precompute(n1)
            a, b = n0 - self._bn0, n1 + 1 - self._bn0
            ts, d = self._bts[a:b], self._bd[a:b]
            self._n_next = n1 + 1
            self._last_d = float(d[-1])
            if self._ball_buf is not None:
                self._ball_buf.append((ts, d))
        else:
            ts = d = _EMPTY
        licks = mouse.take_licks(t)
        if licks and self._lick_buf is not None:
            self._lick_buf.extend(licks)
        self._t = t
        return ts, d, licks

    def _precompute(self, n_needed: int) -> None:
        """Ball samples from the next one not handed out to the end of the mouse's generated running
        (at least to sample n_needed), in one vectorised call."""
        rate = self._ball_rate
        n0 = self._n_next
        n_end = max(math.floor(self.mouse.generated_until * rate), n_needed)
        ts = np.arange(n0, n_end + 1, dtype=np.float64) / rate
        d = self.mouse.distance_at(ts, ahead=True)
        ts.flags.writeable = False  # handed out as views: nobody may write to them
        d.flags.writeable = False
        self._bn0, self._bts, self._bd = n0, ts, d

    def _frame_time(self, n: int) -> float:
        jitter = min(max(self._frame_rng.standard_normal(), -3.0), 3.0) * self._frame_jitter_s
        return self._frame_start + n / self._frame_rate + jitter


def _check_ball_rate(rate_hz: float) -> float:
    if not 0 < rate_hz <= 100_000:
        raise ValueError(f"ball sample rate must be in (0, 100000] Hz, got {rate_hz}")
    return float(rate_hz)


def _check_frames(rate_hz: float, jitter_ms: float, start_s: float) -> tuple[float, float, float]:
    if not 0 < rate_hz <= 1000:
        raise ValueError(f"frame rate must be in (0, 1000] Hz, got {rate_hz}")
    period_ms = 1000.0 / rate_hz
    # Edges stay in order only if the jitter (clipped at 3 sd) is well below the period.
    if not 0 <= jitter_ms <= period_ms / 20:
        limit = period_ms / 20
        raise ValueError(f"frame jitter must be in [0, {limit:.3g}] ms at {rate_hz} Hz, got {jitter_ms}")
    if not start_s >= 0:
        raise ValueError(f"frame clock start must be >= 0 s, got {start_s}")
    # The first edge must not come before time 0 even with the largest jitter.
    return float(rate_hz), jitter_ms / 1000.0, max(float(start_s), 3 * jitter_ms / 1000.0)


def _category(source: str, name: str) -> str:
    """A corridor's texture category: its source image, or its name for images from a file."""
    return category_of(name) if source == "image" else source


def reward_prior(protocol: Protocol) -> tuple[float, float]:
    """(mean, spread) in cm of where a trained mouse expects water under the protocol's first reward rule:
    the middle of the zone starts (zone modes) or of the cue positions plus a short reaction (cue modes)."""
    rule = protocol.stage_reward(0)
    texture = max(c.texture_length_cm for c in protocol.corridors)
    if rule.zone_start_cm is not None:
        lo, hi = rule.zone_start_cm
        return (lo + hi) / 2 + 10.0, max((hi - lo) / math.sqrt(12), 15.0)
    if protocol.cue is not None:
        lo, hi = protocol.cue.position_cm
        return (lo + hi) / 2 + 20.0, max((hi - lo) / math.sqrt(12), 15.0)
    return 0.55 * texture, 0.2 * texture
