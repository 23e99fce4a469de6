"""`rig replay --verify`: re-run the engine from a session's logged inputs and compare every output.

The engine is rebuilt from the header (resolved protocol, seed, valve calibration) and stepped once
per logged iteration with exactly the inputs the runner gave it (rig.replay.inputs), at the logged
frame time. Every frames.bin record is compared bit for bit, every events.jsonl and commands.jsonl
line value for value (type-strict, NaN equal to NaN), plus the footer's counts and summary and the
header's protocol hash. The report names the first divergence: iteration, time, file, field, logged
and replayed values. docs/replay.md describes what is and is not covered.

A session without a footer was killed: it is verified up to the last iteration whose inputs are known
to be on disk (see `cut_iteration`), and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rig.config import ValveCalibration, driver_registry
from rig.datalog.reader import BINARY_FIELDS, FLAG_BITS, Session
from rig.datalog.writer import command_record, event_record, json_default
from rig.engine.machine import Engine
from rig.engine.records import Command, Event, EventKind, Inputs
from rig.loading import LoadError, protocol_from_dict, protocol_from_yaml
from rig.protocol import Protocol
from rig.replay.inputs import InputError, IterationInputs, group_inputs
from rig.runner.loop import step_engine
from rig.runner.operator import apply_operator

FRAME_FIELDS = BINARY_FIELDS["frames.bin"]
FRAME_DTYPE = np.dtype(list(FRAME_FIELDS))
_CODES = {"<i8": "q", "<f8": "d", "<i4": "i", "<i2": "h", "<u1": "B"}
# Order in which equal-iteration divergences are reported: the state first, then what it caused.
_FILE_ORDER = ("header.json", "ball.bin", "licks.bin", "operator.jsonl", "frames.bin", "events.jsonl",
               "commands.jsonl", "footer.json")


class _NotApplicable:
    """Marks a Divergence without a logged/replayed value pair (a malformed stream, a bad header)."""

    def __repr__(self) -> str:
        return "n/a"


NA: Any = _NotApplicable()


@dataclass(frozen=True)
class Divergence:
    """One place where the log and the replay disagree (or the log is inconsistent with itself)."""

    file: str
    iteration: int | None  # None: not tied to one iteration (header, footer, file length)
    t: float | None
    field: str
    logged: Any = NA
    replayed: Any = NA
    message: str = ""

    def __str__(self) -> str:
        where = f"iteration {self.iteration}" if self.iteration is not None else "session"
        if isinstance(self.t, float) and math.isfinite(self.t):
            where += f" (t={self.t:.6f} s)"
        text = f"{where}: {self.file}: {self.field}"
        if self.logged is not NA or self.replayed is not NA:
            text += f": logged {_short(self.logged)}, replayed {_short(self.replayed)}"
        return f"{text} -- {self.message}" if self.message else text


@dataclass
class VerifyReport:
    path: Path
    iterations: int  # iterations replayed and compared (1..iterations)
    session_s: float  # session time covered by those iterations
    elapsed_s: float  # wall time the verification took
    truncated: bool  # the session has no footer: it was killed, and was verified up to its cut
    divergences: list[Divergence] = field(default_factory=list)  # first one per check, earliest first
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None

    @property
    def speed(self) -> float:
        """Session time verified per second of wall time (x real time)."""
        return self.session_s / self.elapsed_s if self.elapsed_s > 0 else math.inf


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


# Canonical text of a JSON record: equal text <=> equal values, types included (1 vs 1.0, True vs 1),
# and NaN equal to NaN. Logged lines are re-encoded too, so the comparison does not depend on how the
# writer spaced or ordered them.
_CANON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=json_default).encode


def _canon(record: Any) -> str:
    try:
        return _CANON(record)
    except (TypeError, ValueError) as e:
        return f"<not JSON: {e}>"


def _first_field_difference(logged: Any, replayed: Any, prefix: str = "") -> tuple[str, Any, Any]:
    """The first key path at which two decoded JSON values differ, with both values there."""
    if isinstance(logged, dict) and isinstance(replayed, dict):
        for key in sorted(set(logged) | set(replayed), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in logged:
                return path, "<absent>", replayed[key]
            if key not in replayed:
                return path, logged[key], "<absent>"
            if _canon(logged[key]) != _canon(replayed[key]):
                return _first_field_difference(logged[key], replayed[key], path)
    if isinstance(logged, list) and isinstance(replayed, list) and len(logged) == len(replayed):
        for k, (a, b) in enumerate(zip(logged, replayed, strict=True)):
            if _canon(a) != _canon(b):
                return _first_field_difference(a, b, f"{prefix}[{k}]")
    return prefix or "line", logged, replayed


# ---------------------------------------------------------------------------------------------- header


@dataclass
class EngineSetup:
    """What the engine of a logged session was built from, read back from its header."""

    protocol: Protocol
    seed: int
    calibration: ValveCalibration
    frame_rate_hz: float
    counts_per_cm: float | None


def engine_setup(s: Session, out: list[Divergence], notes: list[str]) -> EngineSetup | None:
    """The engine's protocol, seed, calibration and frame rate from the header. Header inconsistencies
    (hash, protocol dict vs YAML) are appended to `out`; None when the engine cannot be built at all."""
    h = s.header

    def bad(fld: str, logged: Any, message: str) -> None:
        out.append(Divergence("header.json", None, None, fld, logged, NA, message))

    yaml_text = h.protocol_yaml
    if not isinstance(yaml_text, str):
        bad("protocol_yaml", yaml_text, "no protocol YAML in the header")
    else:
        digest = hashlib.sha256(yaml_text.encode("utf-8")).hexdigest()
        if digest != h.protocol_sha256:
            out.append(Divergence("header.json", None, None, "protocol_sha256", h.protocol_sha256, digest,
                                  "the protocol YAML does not match its recorded hash (altered header)"))
    try:
        protocol = protocol_from_dict(h.protocol, source=f"{s.path}/header.json:protocol")
    except LoadError as e:
        bad("protocol", "(invalid)", "; ".join(str(p) for p in e.problems))
        return None
    if isinstance(yaml_text, str):
        try:
            from_yaml = protocol_from_yaml(yaml_text, source=f"{s.path}/header.json:protocol_yaml")
        except LoadError as e:
            bad("protocol_yaml", "(invalid)", "; ".join(str(p) for p in e.problems))
        else:
            a, b = from_yaml.model_dump(mode="json"), protocol.model_dump(mode="json")
            if _canon(a) != _canon(b):
                path, va, vb = _first_field_difference(b, a)
                out.append(Divergence("header.json", None, None, f"protocol.{path}", va, vb,
                                      "the header's protocol differs from its protocol_yaml (altered header); "
                                      "'replayed' shows the YAML's value"))
    seed = h.seed
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        bad("seed", seed, "the seed must be a non-negative integer")
        return None
    config = h.config
    try:
        calibration = ValveCalibration.model_validate(config.get("valve_calibration"))
    except ValueError as e:
        bad("config.valve_calibration", config.get("valve_calibration"), f"not a valid calibration: {e}")
        return None
    rate = h.frame_rate_hz
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not rate > 0:
        bad("frame_rate_hz", rate, "the frame rate must be a positive number")
        return None
    return EngineSetup(protocol, seed, calibration, float(rate), ball_counts_per_cm(config, notes))


def ball_counts_per_cm(config: dict[str, Any], notes: list[str] | None = None) -> float | None:
    """The ball encoder's counts per cm from a header's config: the entry's own value, else the driver
    type's default (from the driver registry); None when neither is known."""
    entry = (config.get("drivers") or {}).get("ball") if isinstance(config, dict) else None
    if not isinstance(entry, dict):
        return None
    value = entry.get("counts_per_cm")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)

    try:
        spec = driver_registry().spec("ball", str(entry.get("type")))
        params = spec.params.model_validate({k: v for k, v in entry.items() if k != "type"})
    except (KeyError, ValueError, ImportError) as e:
        if notes is not None:
            notes.append(f"ball encoder counts_per_cm unknown ({e}); ball.bin counts not checked against cm")
        return None
    value = getattr(params, "counts_per_cm", None)
    return float(value) if isinstance(value, int | float) else None


# ---------------------------------------------------------------------------------------------- the cut


def cut_iteration(s: Session, n_frames: int, notes: list[str]) -> int:
    """The last iteration of a killed session whose inputs are all on disk.

    Each flush writes frames.bin, ball.bin, licks.bin, frame_clock.bin, timing.bin, then the JSON
    lines, in that order; so every iteration that timing.bin holds has its ball and lick inputs on
    disk too (frames.bin may be one flush ahead of timing.bin when the kill fell mid-flush).
    """
    timing_i = s.timing["i"]
    if not len(timing_i):
        notes.append("timing.bin is empty; the cut is taken from frames.bin alone")
        return n_frames
    last = int(timing_i[-1])
    if last < n_frames:
        notes.append(f"frames.bin holds {n_frames - last} iteration(s) past timing.bin's last ({last}): "
                     "the kill fell mid-flush; those are not verified")
        return max(last, 0)
    return n_frames


# ---------------------------------------------------------------------------------------------- replay


@dataclass
class _Replayed:
    frames: np.ndarray
    events: list[tuple[int, Event]]  # (iteration, Event)
    commands: list[tuple[int, Command]]  # (iteration, Command)
    done: bool
    trials: int
    rewards: int
    error: Divergence | None = None


_PACK_FRAME = struct.Struct("<" + "".join(_CODES[t] for _, t in FRAME_FIELDS)).pack


def replay_engine(setup: EngineSetup, times: list[float], inputs: IterationInputs) -> _Replayed:
    """Step a fresh engine through iterations 1..len(times) exactly as rig.runner.loop does."""
    engine = Engine(setup.protocol, setup.seed, setup.calibration.duration_ms)
    step = engine.start(0.0)
    events: list[tuple[int, Event]] = [(0, e) for e in step.events]
    commands: list[tuple[int, Command]] = [(0, c) for c in step.commands]
    pack = _PACK_FRAME
    b_moving, b_grey, b_cue, b_done = (FLAG_BITS[k] for k in ("moving", "in_grey", "cue_played", "done"))
    buf = bytearray()
    ball, licks, ops = inputs.ball_cm, inputs.licks, inputs.operator
    paused = False
    stop_reason = ""
    trials = rewards = 0
    done = False
    error: Divergence | None = None
    for i, t in enumerate(times, start=1):
        acts = ops.get(i)
        manual: tuple[float, ...] = ()
        if acts:
            manual, paused, stop_reason = apply_operator(acts, paused, stop_reason)
        try:
            step = step_engine(engine, Inputs(ball[i], licks[i], manual, paused), t, stop_reason)
        except ValueError as e:
            error = Divergence("frames.bin", i, t, "engine", message=f"the engine rejects the logged inputs: {e}")
            break
        st = step.state
        # Inlined (not a helper call): this runs for every iteration of the session.
        flags = ((b_moving if st.moving else 0) | (b_grey if st.in_grey else 0) | (b_cue if st.cue_played else 0)
                 | (b_done if st.done else 0))
        buf += pack(i, st.t, st.trial, st.corridor, st.stage, st.position_cm, st.position_cum_cm, st.ball_speed_cm_s,
                    st.virtual_speed_cm_s, st.cue_position_cm, st.zone_start_cm, st.rewards_in_trial, flags)
        if step.commands:
            commands += [(i, c) for c in step.commands]
        if step.events:
            for ev in step.events:
                events.append((i, ev))
                if ev.kind == EventKind.TRIAL_END:
                    trials += 1
                elif ev.kind == EventKind.REWARD:
                    rewards += 1
        if st.done:
            done = True
            break
    frames = np.frombuffer(bytes(buf), dtype=FRAME_DTYPE)
    return _Replayed(frames, events, commands, done, trials, rewards, error)


# ---------------------------------------------------------------------------------------------- compare


def _describe_flags(value: int) -> dict[str, bool]:
    return {name: bool(value & bit) for name, bit in FLAG_BITS.items()}


def compare_frames(logged: np.ndarray, replayed: np.ndarray) -> Divergence | None:
    """First record (bit-exact, NaN included) and field at which two frames.bin arrays differ, over their
    common length."""
    n = min(len(logged), len(replayed))
    a, b = logged[:n], replayed[:n]
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return None
    diff = np.zeros(n, dtype=bool)
    for name, _ in FRAME_FIELDS:
        x, y = np.ascontiguousarray(a[name]), np.ascontiguousarray(b[name])
        diff |= x.view(f"u{x.itemsize}") != y.view(f"u{y.itemsize}")  # bitwise: NaN == NaN, -0.0 != 0.0
    rows = np.flatnonzero(diff)
    if not len(rows):
        return None
    r = int(rows[0])
    for name, _ in FRAME_FIELDS:
        x, y = a[name][r], b[name][r]
        if np.asarray(x).tobytes() != np.asarray(y).tobytes():
            if name == "flags":
                fx, fy = _describe_flags(int(x)), _describe_flags(int(y))
                which = [k for k in fx if fx[k] != fy[k]]
                label = "flags." + which[0] if which else "flags"
                lx, ly = (fx[which[0]], fy[which[0]]) if which else (int(x), int(y))
                return Divergence("frames.bin", int(b["i"][r]), float(a["t"][r]), label, lx, ly)
            return Divergence("frames.bin", int(b["i"][r]), float(a["t"][r]), name, x.item(), y.item())
    return None


def compare_lines(
    name: str, logged: list[dict[str, Any]], replayed: list[dict[str, Any]], *, prefix_only: bool,
    footer_count: int | None,
) -> tuple[Divergence | None, str | None]:
    """Compare JSON-lines records in order. Returns (first divergence, note). With `prefix_only` (a
    killed session) the log may stop early: missing trailing lines are a note, not a divergence."""
    logged_c = [_canon(r) for r in logged]
    replayed_c = [_canon(r) for r in replayed]
    n = min(len(logged_c), len(replayed_c))
    k = next((j for j in range(n) if logged_c[j] != replayed_c[j]), None)
    if k is not None:
        lo, re_ = logged[k], replayed[k]
        t = lo.get("t") if isinstance(lo, dict) else None
        it = lo.get("i") if isinstance(lo, dict) else None
        # A deleted or inserted line shifts everything after it: say so rather than list a mismatch.
        if k + 1 < len(replayed_c) and logged_c[k] == replayed_c[k + 1]:
            return Divergence(name, re_.get("i"), re_.get("t"), f"line {k + 1}", "<missing>",
                              _line_summary(re_), "a line is missing from the log"), None
        if k + 1 < len(logged_c) and logged_c[k + 1] == replayed_c[k]:
            return Divergence(name, it if isinstance(it, int) else None, t, f"line {k + 1}", _line_summary(lo),
                              "<none>", "the log has an extra line"), None
        path, va, vb = _first_field_difference(lo, re_)
        if isinstance(re_, dict) and not isinstance(it, int):
            it = re_.get("i")
        return Divergence(name, it if isinstance(it, int) else None, t if isinstance(t, float) else re_.get("t"),
                          f"line {k + 1} ({_kind(lo)}) {path}", va, vb), None
    if len(logged_c) > len(replayed_c):
        extra = logged[len(replayed_c)]
        it = extra.get("i") if isinstance(extra, dict) else None
        te = extra.get("t") if isinstance(extra, dict) else None
        return Divergence(name, it if isinstance(it, int) else None, te,
                          f"line {len(replayed_c) + 1}", _line_summary(extra), "<none>",
                          f"the log has {len(logged_c) - len(replayed_c)} line(s) the replay does not produce"), None
    if len(logged_c) < len(replayed_c):
        first = replayed[len(logged_c)]
        missing = len(replayed_c) - len(logged_c)
        if prefix_only:
            return None, (f"{name}: the last {missing} replayed line(s) (from iteration {first['i']}) are not in the "
                          "log: not flushed before the session was killed")
        why = "the log is missing its last line(s)"
        if footer_count is not None and footer_count > len(logged_c):
            why = f"{name} is truncated: the footer counts {footer_count} lines, the file holds {len(logged_c)}"
        return Divergence(name, first["i"], first["t"], f"line {len(logged_c) + 1}", "<missing>",
                          _line_summary(first), f"{why} ({missing} line(s) missing)"), None
    return None, None


def _kind(rec: Any) -> str:
    return str(rec.get("kind")) if isinstance(rec, dict) else "?"


def _line_summary(rec: Any) -> str:
    if not isinstance(rec, dict):
        return _short(rec)
    return f"{rec.get('kind')} i={rec.get('i')} t={rec.get('t')}"


# ---------------------------------------------------------------------------------------------- verify


def virtual_times(n: int, frame_rate_hz: float) -> list[float]:
    """The frame times of a --fast session: the runner's running sum of the period, added one by one."""
    period = 1.0 / frame_rate_hz
    out = []
    t = period
    for _ in range(n):
        out.append(t)
        t += period
    return out


def verify_session(path: str | Path) -> VerifyReport:
    """Replay a session's engine from its logged inputs and compare every logged output.

    Raises rig.datalog.reader.SessionError when the folder cannot be read as a session at all.
    """
    t_start = time.perf_counter()
    s = Session.open(Path(path))
    found: list[Divergence] = []
    notes: list[str] = []
    truncated = s.footer is None
    if s.footer_error is not None:  # the reader reads on without it; the log is not intact all the same
        found.append(Divergence("footer.json", None, None, "footer", message=f"damaged ({s.footer_error}): the "
                                "session's end and record counts cannot be checked; verified as if killed"))
    footer = s.footer or {}
    logged_counts = footer.get("counts")
    counts: dict[str, Any] = logged_counts if isinstance(logged_counts, dict) else {}

    def finish(n: int) -> VerifyReport:
        t_end = float(s.frames["t"][n - 1]) if 0 < n <= len(s.frames) else 0.0
        found.sort(key=lambda d: (d.file != "header.json", d.iteration if d.iteration is not None else math.inf,
                                  _FILE_ORDER.index(d.file) if d.file in _FILE_ORDER else 99))
        return VerifyReport(s.path, n, t_end, time.perf_counter() - t_start, truncated, found, notes)

    setup = engine_setup(s, found, notes)
    logged_frames = s.frames
    if logged_frames.dtype != FRAME_DTYPE:
        found.append(Divergence("header.json", None, None, "files.frames.bin.dtype", str(logged_frames.dtype),
                                str(FRAME_DTYPE), "frames.bin's record layout is not this version's"))
        return finish(0)
    if setup is None:
        return finish(0)

    # Integrity of the log's own structure before any replay.
    if truncated:
        notes.append("no footer.json: the session was killed (or is still running); verifying up to its cut")
    else:
        for name in s.trimmed:
            found.append(Divergence(name, None, None, "end of file", message=f"{name} ends in a partial record "
                                    "although the session was closed: truncated or corrupted afterwards"))
        for name, want in counts.items():
            have = _count(s, name)
            if have is not None and isinstance(want, int) and have != want:
                kind = "truncated (or records deleted)" if have < want else "extended (or records added)"
                found.append(Divergence(name, None, None, "record count", have, want,
                                        f"{name} was {kind} after the session closed: the footer counts {want} "
                                        f"records, the file holds {have}"))
    fi = logged_frames["i"]
    n = len(fi)
    gaps = np.flatnonzero(fi != np.arange(1, n + 1))
    if len(gaps):
        r = int(gaps[0])
        found.append(Divergence("frames.bin", r + 1, float(logged_frames["t"][r]), f"record {r} i", int(fi[r]), r + 1,
                                "frames.bin has a missing, extra or renumbered record"))
        n = r
    if truncated:
        n = min(n, cut_iteration(s, n, notes))
        if n == 0:
            notes.append("the session was killed before its first iteration reached the disk: nothing to verify")

    try:
        inputs = group_inputs(s.ball, s.licks, s.operator, n)
    except InputError as e:
        found.append(Divergence(e.file, e.iteration, None, f"row {e.row}", message=e.message))
        return finish(0)
    notes += inputs.ignored_operator
    declared = counts.get("frames.bin")
    _check_inputs(s, setup, n, max(n, declared) if isinstance(declared, int) else n, truncated, found)

    times = logged_frames["t"][:n].tolist()
    if s.header.fast is True:
        ideal = virtual_times(n, setup.frame_rate_hz)
        if times != ideal:
            k = next(j for j in range(n) if times[j] != ideal[j])
            found.append(Divergence("frames.bin", k + 1, times[k], "t", times[k], ideal[k],
                                    "a --fast session's frame times are the virtual clock's"))

    rep = replay_engine(setup, times, inputs)
    if rep.error is not None:
        found.append(rep.error)
    d = compare_frames(logged_frames[:n], rep.frames)
    if d is not None:
        found.append(d)
    if rep.error is None:
        if len(rep.frames) < n:
            end = len(rep.frames)
            found.append(Divergence("frames.bin", end + 1, times[end], "record", "logged", "<none>",
                                    f"the replayed session ended at iteration {end}, the log goes on to {n}"))
        elif not rep.done and not truncated and len(gaps) == 0:
            reason = str(footer.get("reason", ""))
            if reason.startswith("error"):
                notes.append(f"the session ended on an error ({reason}); verified up to its last iteration {n}")
            else:
                why = "frames.bin ends although the replayed session goes on"
                if isinstance(counts.get("frames.bin"), int) and counts["frames.bin"] > n:
                    why += f": the file is truncated (the footer counts {counts['frames.bin']} records)"
                found.append(Divergence("frames.bin", n + 1 if n else None, None, "record", "<none>",
                                        "a next iteration", why))
    last_i = n if rep.error is None else len(rep.frames)
    # Lines past the last replayed iteration are compared only when the whole log was replayed; otherwise
    # (cut, gap, engine refusal) they would only repeat the divergence already reported.
    partial = truncated or rep.error is not None or len(gaps) > 0
    for name, logged, replayed in (
        ("events.jsonl", s.events, [event_record(i, e) for i, e in rep.events]),
        ("commands.jsonl", s.commands, [command_record(i, c) for i, c in rep.commands]),
    ):
        if partial:
            within = [r for r in logged if isinstance(r, dict) and isinstance(r.get("i"), int) and r["i"] <= last_i]
            if len(within) < len(logged) and truncated:
                notes.append(f"{name}: {len(logged) - len(within)} line(s) after the cut (iteration {last_i}) "
                             "not verified")
            logged = within
        d, note = compare_lines(name, logged, replayed, prefix_only=truncated,
                                footer_count=counts.get(name) if isinstance(counts.get(name), int) else None)
        if d is not None:
            found.append(d)
        if note:
            notes.append(note)
    if not partial:
        _check_summary(footer, n, rep, found)
    return finish(len(rep.frames))


def _count(s: Session, name: str) -> int | None:
    attr = {"frames.bin": "frames", "ball.bin": "ball", "licks.bin": "licks", "frame_clock.bin": "frame_clock",
            "timing.bin": "timing", "events.jsonl": "events", "commands.jsonl": "commands",
            "operator.jsonl": "operator", "mesoscope.jsonl": "mesoscope", "faults.jsonl": "faults"}.get(name)
    return None if attr is None or not hasattr(s, attr) else len(getattr(s, attr))


def _check_inputs(
    s: Session, setup: EngineSetup, n: int, n_declared: int, truncated: bool, found: list[Divergence]
) -> None:
    """Inputs logged outside the session, ball cm inconsistent with counts, operator times off the frames.
    `n` is the last iteration replayed, `n_declared` the last the footer says the session had."""
    frames_t = s.frames["t"]
    for name, arr in (("ball.bin", s.ball), ("licks.bin", s.licks)):
        it = arr["i"]
        bad = np.flatnonzero((it < 1) | ((it > n_declared) if not truncated else False))
        if len(bad):
            r = int(bad[0])
            found.append(Divergence(name, int(it[r]), float(arr["t"][r]), f"row {r} i", int(it[r]), f"1..{n_declared}",
                                    "an input logged for an iteration the session does not have"))
    cpc = setup.counts_per_cm
    if cpc is not None and len(s.ball):
        ball = s.ball[s.ball["i"] <= n]
        expect = ball["counts"] * (1.0 / cpc)  # the runner's cm = counts * cm_per_count
        bad = np.flatnonzero(expect.view(np.uint64) != np.ascontiguousarray(ball["cm"]).view(np.uint64))
        if len(bad):
            r = int(bad[0])
            found.append(Divergence("ball.bin", int(ball["i"][r]), float(ball["t"][r]), f"row {r} cm",
                                    float(ball["cm"][r]), float(expect[r]),
                                    f"cm is not counts x 1/counts_per_cm ({cpc:g}): an altered input"))
    for k, rec in enumerate(s.operator):
        i = rec.get("i")
        if isinstance(i, int) and 1 <= i <= min(n, len(frames_t)) and rec.get("t") != float(frames_t[i - 1]):
            found.append(Divergence("operator.jsonl", i, float(frames_t[i - 1]), f"line {k + 1} t", rec.get("t"),
                                    float(frames_t[i - 1]), "an operator action is stamped with its iteration's time"))
            break
        if isinstance(i, int) and i > n_declared and not truncated:
            found.append(Divergence("operator.jsonl", i, rec.get("t"), f"line {k + 1} i", i, f"1..{n_declared}",
                                    "an operator action logged for an iteration the session does not have"))
            break


def _check_summary(footer: dict[str, Any], n: int, rep: _Replayed, found: list[Divergence]) -> None:
    summary = footer.get("summary")
    if not isinstance(summary, dict):
        return
    expect = {"iterations": n + 1, "trials": rep.trials, "rewards": rep.rewards}
    for key, value in expect.items():
        if key in summary and summary[key] != value:
            found.append(Divergence("footer.json", None, None, f"summary.{key}", summary[key], value,
                                    "the footer's summary disagrees with the replay"))
