"""Random-interval sync pulses (the pyControl scheme): schedule, rig-side record, offline aligner.

The rig sends pulses at random intervals to the mesoscope's aux trigger input; ScanImage timestamps
them in its own clock and writes them into the imaging files' frame headers (`auxTrigger0 = [...]`).
Because the intervals are random, any run of a few consecutive intervals occurs once in a session, so
the two lists of pulse times can be matched without knowing the clock offset, lost pulses included, and
a clock map (offset and drift) fitted on all matched pulses. That re-derives the imaging <-> behaviour
alignment offline from the imaging files alone, independently of the frame clock and the ZeroMQ link.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from drivers.clockfit import LinearFit, least_squares
from rig.runner.hooks import LoopHook

if TYPE_CHECKING:
    from drivers.base import Clock, SyncOutput
    from rig.datalog.writer import SessionWriter
    from rig.engine.records import Step
    from rig.runner.loop import Runner, RunResult

SYNC_PULSES = "sync_pulses.npy"
PULSE_DTYPE = np.dtype([("i", "<i8"), ("t", "<f8")])  # iteration that read the pulse, its session time
SYNC_EMITTED = "sync_emitted.npy"
# A pulse as the sync driver reported it: iteration that read it, its device time, that mapped to the session.
EMITTED_DTYPE = np.dtype([("i", "<i8"), ("t_device", "<f8"), ("t", "<f8")])


class AlignmentError(ValueError):
    """The two pulse lists could not be matched; the message says why."""


# ---- generation ----------------------------------------------------------------------------------


def pulse_schedule(duration_s: float, seed: int, *, min_interval_s: float = 0.1, max_interval_s: float = 1.9,
                   start_s: float = 0.0) -> np.ndarray:
    """Pulse onset times in [start_s, start_s + duration_s]: intervals uniform in [min, max], seeded."""
    if not 0 < min_interval_s <= max_interval_s:
        raise ValueError(f"need 0 < min_interval_s <= max_interval_s, got {min_interval_s}, {max_interval_s}")
    if duration_s < 0:
        raise ValueError(f"duration_s={duration_s}: must be >= 0")
    rng = np.random.default_rng(seed)
    n = int(duration_s / min_interval_s) + 2  # enough intervals to pass the end whatever is drawn
    t = start_s + np.cumsum(rng.uniform(min_interval_s, max_interval_s, n))
    return t[t <= start_s + duration_s]


@dataclass
class PulseTrain:
    """Hands out a schedule's pulses as session time passes (for a software-timed output)."""

    schedule: np.ndarray
    _next: int = 0

    def due(self, t: float) -> np.ndarray:
        """Scheduled onsets at or before t not handed out yet."""
        end = int(np.searchsorted(self.schedule, t, side="right"))
        out, self._next = self.schedule[self._next:end], max(self._next, end)
        return out


class RandomPulseSchedule:
    """An open-ended random-interval schedule, drawn as time passes: the same onsets as
    `pulse_schedule(duration, seed, ...)` for the same seed and bounds, so it can be re-derived offline."""

    def __init__(self, seed: int, min_interval_s: float, max_interval_s: float, start_s: float = 0.0) -> None:
        if not 0 < min_interval_s <= max_interval_s:
            raise ValueError(f"need 0 < min_interval_s <= max_interval_s, got {min_interval_s}, {max_interval_s}")
        self.seed, self.min_interval_s, self.max_interval_s = seed, min_interval_s, max_interval_s
        self._rng = np.random.default_rng(seed)
        self._next = start_s + self._draw()

    def _draw(self) -> float:
        return float(self._rng.uniform(self.min_interval_s, self.max_interval_s))

    def due(self, t: float) -> np.ndarray:
        """Scheduled onsets at or before t not handed out yet."""
        out: list[float] = []
        while self._next <= t:
            out.append(self._next)
            self._next += self._draw()
        return np.asarray(out, dtype=float)


# ---- rig-side record -----------------------------------------------------------------------------


@dataclass
class SyncPulseRecorder(LoopHook):
    """Runner hook recording emitted sync pulses on the session timeline.

    `take(t)` returns the session times of pulses emitted since its previous call (t = the iteration's
    session time): e.g. `lambda t: sync.clock.to_session(sync.read())` for a board that times the pulses
    itself, or `PulseTrain(schedule).due` for a software schedule. Each iteration's pulses go to
    mesoscope.jsonl (kind `sync_pulse`); at the end all of them go to sync_pulses.npy (PULSE_DTYPE).
    """

    take: Callable[[float], np.ndarray]
    records: list[tuple[int, float]] = field(default_factory=list)
    _writer: SessionWriter | None = None

    def start(self, runner: Runner) -> None:
        self._writer = runner.writer

    def iteration(self, i: int, t: float, step: Step) -> None:
        pulses = np.asarray(self.take(t), dtype=float)
        if len(pulses) and self._writer is not None:
            self.records.extend((i, float(p)) for p in pulses)
            self._writer.mesoscope(i, t, "sync_pulse", t_pulse=[float(p) for p in pulses])

    def end(self, runner: Runner, result: RunResult | None) -> None:
        if self._writer is None:
            return
        table = np.array(self.records, dtype=PULSE_DTYPE) if self.records else np.zeros(0, PULSE_DTYPE)
        buf = io.BytesIO()
        np.save(buf, table, allow_pickle=False)
        self._writer.attach(SYNC_PULSES, buf.getvalue())


class SyncPulseHook(LoopHook):
    """Runner hook driving a sync output (drivers.base.SyncOutput) on a seeded random schedule.

    Each iteration, when the schedule says a pulse is due it calls `sync.pulse()` once (onsets that fell
    due together after a stall become one pulse) and logs the commanded session time (mesoscope.jsonl
    kind `sync_pulse`: t_pulse, t_scheduled); it also drains `sync.read()`, the pulses as the device
    reports them, into kind `sync_emitted` (t_device, and t_session mapped by the driver's clock). At the end the
    commanded times go to sync_pulses.npy (PULSE_DTYPE) and the reported ones to sync_emitted.npy
    (EMITTED_DTYPE). A failing pulse is logged as a fault (source `sync`) and the session goes on: a sync
    line is no reason to stop the behaviour.
    """

    def __init__(self, sync: SyncOutput, seed: int) -> None:
        self.sync = sync
        self.schedule = RandomPulseSchedule(seed, float(sync.min_interval_s), float(sync.max_interval_s))
        self.commanded: list[tuple[int, float]] = []
        self.emitted: list[tuple[int, float, float]] = []
        self._writer: SessionWriter | None = None
        self._clock: Clock | None = None

    def start(self, runner: Runner) -> None:
        self._writer, self._clock = runner.writer, runner.clock
        s = self.schedule
        self._writer.mesoscope(runner.iteration, runner.clock.now(), "sync_schedule", seed=s.seed,
                               min_interval_s=s.min_interval_s, max_interval_s=s.max_interval_s)

    def iteration(self, i: int, t: float, step: Step) -> None:
        writer, clock = self._writer, self._clock
        if writer is None or clock is None:
            return
        due = self.schedule.due(clock.now())
        if len(due):
            t_cmd = float(clock.now())
            try:
                self.sync.pulse()
            except Exception as e:  # a broken sync line must not end the session; it is logged as a fault
                writer.fault(i, t_cmd, "sync", "pulse_failed", f"{type(e).__name__}: {e}")
            else:
                self.commanded.append((i, t_cmd))
                writer.mesoscope(i, t, "sync_pulse", t_pulse=[t_cmd], t_scheduled=[float(x) for x in due])
        self._drain(i, t)

    def _drain(self, i: int, t: float) -> None:
        assert self._writer is not None
        t_dev = np.asarray(self.sync.read(), dtype=float)
        if len(t_dev):
            t_ses = np.asarray(self.sync.clock.to_session(t_dev), dtype=float)
            self.emitted.extend((i, float(a), float(b)) for a, b in zip(t_dev, t_ses, strict=True))
            self._writer.mesoscope(i, t, "sync_emitted", t_device=t_dev.tolist(), t_session=t_ses.tolist())

    def end(self, runner: Runner, result: RunResult | None) -> None:
        if self._writer is None:
            return
        try:
            self._drain(runner.iteration, runner.clock.now())
        finally:
            self._writer.attach(SYNC_PULSES, _npy(np.array(self.commanded, dtype=PULSE_DTYPE)))
            self._writer.attach(SYNC_EMITTED, _npy(np.array(self.emitted, dtype=EMITTED_DTYPE)))


def _npy(table: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    return buf.getvalue()


MAX_PULSES = 10_000_000  # far more than a day of pulses every few seconds


def load_pulses(session_dir: str | Path, name: str = SYNC_PULSES) -> np.ndarray:
    """A session's logged pulse table (sync_pulses.npy or sync_emitted.npy)."""
    from rig.datalog.reader import read_table  # bounded, never unpickled, never blocking

    path = Path(session_dir) / name
    table = read_table(path, MAX_PULSES)
    if table is None:
        raise FileNotFoundError(f"{path}: no sync pulses logged (was a sync driver configured?)")
    return table


# ---- imaging side: ScanImage frame headers --------------------------------------------------------


def scanimage_aux_triggers(frame_descriptions: Iterable[str], channel: int = 0) -> np.ndarray:
    """Times of the pulses on aux trigger `channel` from ScanImage frame descriptions (each frame lists
    `auxTriggerN = [t1 t2 ...]`, seconds since acquisition start, for the triggers during that frame).
    Sorted, each pulse once."""
    pattern = re.compile(rf"^\s*auxTrigger{channel}\s*=\s*\[([^\]]*)\]", re.MULTILINE)
    times: list[float] = []
    for k, text in enumerate(frame_descriptions):
        for m in pattern.finditer(text):
            body = m.group(1).replace(",", " ").replace(";", " ").split()
            try:
                times.extend(float(x) for x in body)
            except ValueError:
                raise ValueError(f"frame description {k}: auxTrigger{channel} is not a list of numbers: "
                                 f"{m.group(0)!r}") from None
    return np.unique(np.asarray(times, dtype=float))


# ---- offline aligner -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PulseAlignment:
    """Matched pulses and the fit imaging time -> rig time (`fit.to_rig`, residuals in the fit)."""

    fit: LinearFit
    rig_index: np.ndarray  # indices into the sorted rig pulses ...
    imaging_index: np.ndarray  # ... and the sorted imaging pulses they were matched with
    n_rig: int
    n_imaging: int

    @property
    def unmatched_rig(self) -> int:
        return self.n_rig - len(self.rig_index)

    @property
    def unmatched_imaging(self) -> int:
        return self.n_imaging - len(self.imaging_index)

    def to_rig(self, t_imaging: np.ndarray | float) -> np.ndarray:
        return self.fit.map(t_imaging)


def align_pulses(rig_times: np.ndarray | Sequence[float], imaging_times: np.ndarray | Sequence[float], *,
                 window: int = 5, tolerance_s: float = 0.01, max_drift: float = 1e-3) -> PulseAlignment:
    """Match rig pulse times to imaging pulse times (each in its own clock) and fit imaging -> rig.

    Runs of `window` consecutive intervals that agree within tolerance_s (+ max_drift x interval) and
    occur exactly once on the rig side anchor the match; a first fit from the anchors then pairs every
    pulse within tolerance_s of its mapped time, so pulses lost on either side only go unmatched.
    """
    a = np.sort(np.asarray(rig_times, dtype=float).ravel())
    b = np.sort(np.asarray(imaging_times, dtype=float).ravel())
    if window < 2:
        raise ValueError(f"window={window}: need at least 2 intervals to identify a run of pulses")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("align_pulses: pulse times must be finite")
    if len(a) <= window or len(b) <= window:
        raise AlignmentError(f"too few pulses to align: {len(a)} on the rig, {len(b)} on the imaging side; "
                             f"need more than window={window} on each")
    da, db = np.diff(a), np.diff(b)
    runs = sliding_window_view(da, window)
    pairs_a: list[int] = []
    pairs_b: list[int] = []
    for k in range(len(db) - window + 1):
        chunk = db[k:k + window]
        ok = np.all(np.abs(runs - chunk) <= tolerance_s + max_drift * chunk, axis=1)
        hits = np.flatnonzero(ok)
        if len(hits) == 1:
            pairs_a.extend(range(hits[0], hits[0] + window + 1))
            pairs_b.extend(range(k, k + window + 1))
    if not pairs_a:
        raise AlignmentError(
            f"no run of {window} consecutive pulse intervals matches between the rig ({len(a)} pulses) and the "
            f"imaging side ({len(b)}): are they from the same session, and is tolerance_s={tolerance_s} above "
            "the timestamp jitter?")
    # Overlapping runs repeat pairs; a pulse claimed by two different partners is not an anchor.
    anchors = sorted(set(zip(pairs_b, pairs_a, strict=True)))
    ib = np.array([p[0] for p in anchors])
    ia = np.array([p[1] for p in anchors])
    ub, cb = np.unique(ib, return_counts=True)
    ua, ca = np.unique(ia, return_counts=True)
    keep = np.isin(ib, ub[cb == 1]) & np.isin(ia, ua[ca == 1])
    ib, ia = ib[keep], ia[keep]
    fit = least_squares(b[ib], a[ia], fit_scale=len(ib) >= 3)
    # Every pulse: nearest rig pulse to its mapped time, one-to-one, within tolerance.
    mapped = fit.map(b)
    pos = np.clip(np.searchsorted(a, mapped), 1, len(a) - 1)
    left_closer = np.abs(a[pos - 1] - mapped) <= np.abs(a[pos] - mapped)
    nearest = np.where(left_closer, pos - 1, pos)
    err = np.abs(a[nearest] - mapped)
    used: set[int] = set()
    match_b: list[int] = []
    match_a: list[int] = []
    for j in np.argsort(err, kind="stable"):
        if err[j] > tolerance_s:
            break
        if int(nearest[j]) not in used:
            used.add(int(nearest[j]))
            match_b.append(int(j))
            match_a.append(int(nearest[j]))
    order = np.argsort(match_b)
    mb, ma = np.array(match_b)[order], np.array(match_a)[order]
    fit = least_squares(b[mb], a[ma], fit_scale=len(mb) >= 3)
    return PulseAlignment(fit, ma, mb, len(a), len(b))
