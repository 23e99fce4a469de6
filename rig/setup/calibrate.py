"""Valve calibration (`rig calibrate-valve`): pulse the valve, weigh the water, fit volume vs duration and
write the points, with an id and date, into the rig config; every attempt goes into the rig's history.

Everything that can be checked is checked before the first pulse (durations, pulses, interval against
the valve's max_open_ms). For each duration (shortest first) the valve gives `pulses` openings, one every
`interval_ms`; the operator weighs the water collected: the empty tube (tare) and the filled tube, or the
net water alone. Each entry is checked before going on: the volume per opening must be one a valve can
give, and it must grow with the opening roughly in proportion (gross tube weights, the classic mistake,
barely change from one duration to the next). The least-squares line (the one
rig.config.ValveCalibration turns microlitres into milliseconds with) is shown with its residuals and
refused when it is not monotonic, has an implausible intercept or fits poorly (ValveCalibration.problems).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivers.registry import Registry
from rig.config import CalibrationPoint, RigConfig, ValveCalibration, calibration_id
from rig.lab import journal
from rig.lab.rig_history import CalibrationRecord, Weighing
from rig.runner.clock import SessionClock
from rig.setup.checks import check_clock, open_drivers

UL_PER_G = 1000.0  # water: 1 g = 1 ml
MIN_GAP_MS = 20.0  # the valve closes and settles between two openings at least this long
MAX_PULSES = 10_000
# Volume per opening a water valve can plausibly give (the protocol's rewards are at most 50 ul).
MIN_UL_PER_OPENING = 0.05
MAX_UL_PER_OPENING = 50.0
# From one duration to the next, the added water per added ms, relative to the shorter duration's water
# per ms: 1 for a line through zero; a gross weight (tube + water) gives nearly 0.
MIN_MARGINAL_RATIO = 0.4
MAX_MARGINAL_RATIO = 5.0


@dataclass(frozen=True)
class Weighed:
    """One duration's water (grams): net, and the tube weights it came from when they were entered."""

    net_g: float
    tare_g: float | None = None
    filled_g: float | None = None

    @classmethod
    def of(cls, tare_g: float, filled_g: float) -> Weighed:
        return cls(round(filled_g - tare_g, 6), tare_g, filled_g)  # a scale reads to 0.1 mg at best


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def check_request(config: RigConfig, durations_ms: Sequence[float], pulses: int, interval_ms: float) -> list[float]:
    """The durations to run, shortest first; ValueError listing every problem, before anything is pulsed."""
    problems: list[str] = []
    durations = [float(d) for d in durations_ms]
    bad = [d for d in durations if not (_finite(d) and d > 0)]
    if bad:
        problems.append(f"durations must be positive numbers of ms, got {bad}")
    durations = sorted(d for d in durations if _finite(d) and d > 0)
    if len(set(durations)) != len(durations):
        problems.append(f"each duration once, got {durations}")
    if len(set(durations)) < 2:
        problems.append("give at least 2 durations (3 or more to judge the fit), e.g. --durations 20,40,80")
    max_open = getattr(config.driver_params("valve"), "max_open_ms", None)
    if isinstance(max_open, int | float):
        too_long = [d for d in durations if d > max_open]
        if too_long:
            problems.append(f"durations {too_long} ms exceed the valve's max_open_ms {max_open:g}")
    if not isinstance(pulses, int) or isinstance(pulses, bool) or not 1 <= pulses <= MAX_PULSES:
        problems.append(f"pulses must be a whole number from 1 to {MAX_PULSES}, got {pulses}")
    if not _finite(interval_ms):
        problems.append(f"interval must be a number of ms, got {interval_ms}")
    elif durations and interval_ms < max(durations) + MIN_GAP_MS:
        problems.append(f"interval {interval_ms:g} ms is too short for {max(durations):g} ms openings; use at least "
                        f"{max(durations) + MIN_GAP_MS:g} ms (the valve must close and settle between openings)")
    if problems:
        raise ValueError("; ".join(problems))
    return durations


def check_weighing(duration_ms: float, w: Weighed, pulses: int,
                   previous: Sequence[tuple[float, float]] = ()) -> str | None:
    """Why this entry cannot be right (None: plausible). `previous`: (duration ms, ul per opening) so far."""
    for name, v in (("tare", w.tare_g), ("filled", w.filled_g), ("net", w.net_g)):
        if v is not None and not _finite(v):
            return f"{name} weight {v!r}: not a number of grams"
    if w.tare_g is not None and w.filled_g is not None:
        if w.tare_g <= 0:
            return f"the empty tube weighs {w.tare_g:g} g? A tare is the weight of the empty tube (> 0 g)"
        if w.filled_g <= w.tare_g:
            return (f"the filled tube ({w.filled_g:g} g) is not heavier than the empty one ({w.tare_g:g} g): "
                    "are the two weights swapped?")
    elif w.net_g <= 0:
        return f"the water must weigh more than 0 g, got {w.net_g:g} g"
    ul = w.net_g * UL_PER_G / pulses
    what = f"{w.net_g:g} g of water from {pulses} x {duration_ms:g} ms is {ul:.3g} ul per opening"
    if ul > MAX_UL_PER_OPENING:
        if w.tare_g is None:
            return (f"{what}, more than a water valve gives (at most {MAX_UL_PER_OPENING:g} ul): that looks like the "
                    "weight of the tube with the water in it (gross); enter the water alone (filled minus empty "
                    "tube), or run without --net to enter both weights")
        return (f"{what}, more than a water valve gives (at most {MAX_UL_PER_OPENING:g} ul): check the empty "
                "tube's weight (tare) and the pulse count")
    if ul < MIN_UL_PER_OPENING:
        return (f"{what}, less than a working valve gives (at least {MIN_UL_PER_OPENING:g} ul): is the line primed "
                "(rig prime) and the valve connected? Weigh again")
    if previous:
        d0, ul0 = max(previous)
        if duration_ms > d0:
            marginal = (ul - ul0) / (duration_ms - d0) / (ul0 / d0)
            if ul <= ul0:
                return (f"{what}, not more than the {ul0:.3g} ul of {d0:g} ms: a longer opening gives more water; "
                        "weigh again")
            if marginal < MIN_MARGINAL_RATIO:
                return (f"{what}, hardly more than the {ul0:.3g} ul of {d0:g} ms ({(ul / ul0 - 1):.0%} more for "
                        f"{duration_ms / d0:.3g}x the opening): a valve's water grows with its opening. Were these "
                        "gross weights (tube + water)? Enter the empty tube's weight and the filled tube's, or "
                        "the water alone")
            if marginal > MAX_MARGINAL_RATIO:
                return (f"{what}, {ul / ul0:.3g}x the {ul0:.3g} ul of {d0:g} ms for {duration_ms / d0:.3g}x the "
                        f"opening: was water lost from the {d0:g} ms tube, or the line not primed then? Weigh again, "
                        "or rerun the calibration")
    return None


@dataclass(frozen=True)
class CalibrationFit:
    points: tuple[CalibrationPoint, ...]
    slope_ul_per_ms: float
    intercept_ul: float
    residuals_ul: tuple[float, ...]  # measured - fitted, per point
    problems: tuple[str, ...] = ()  # why the calibration is refused (empty: accepted)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [f"{'duration ms':>12} {'ul/opening':>11} {'fit ul':>8} {'residual':>9}"]
        for p, r in zip(self.points, self.residuals_ul, strict=True):
            lines.append(f"{p.duration_ms:12g} {p.volume_ul:11.3f} {p.volume_ul - r:8.3f} {r:+9.3f}")
        lines.append(f"volume = {self.slope_ul_per_ms:.5f} ul/ms x duration {self.intercept_ul:+.4f} ul")
        lines += [f"REFUSED: {p}" for p in self.problems]
        return "\n".join(lines)

    def calibration(self, date: dt.date) -> ValveCalibration:
        """The config section for these points (as written: 4 decimals), with its id and date."""
        points = tuple(CalibrationPoint(duration_ms=float(_num(p.duration_ms)), volume_ul=float(_num(p.volume_ul)))
                       for p in self.points)
        return ValveCalibration(id=calibration_id(points, date), date=date, points=points)


def volumes_ul(weights_g: Sequence[float], pulses: int) -> list[float]:
    """Volume per opening (ul) from the net weight (g) of `pulses` openings."""
    if pulses < 1:
        raise ValueError(f"pulses must be >= 1, got {pulses}")
    out = []
    for w in weights_g:
        if not (_finite(w) and w > 0):
            raise ValueError(f"weighed water must be a positive number of grams, got {w}")
        out.append(w * UL_PER_G / pulses)
    return out


def fit_points(durations_ms: Sequence[float], volumes: Sequence[float]) -> CalibrationFit:
    """The line through the points, its residuals and its problems. ValueError when a point is out of range."""
    if len(durations_ms) != len(volumes):
        raise ValueError(f"{len(durations_ms)} durations but {len(volumes)} volumes")
    if not durations_ms:
        raise ValueError("no calibration points")
    try:
        points = tuple(CalibrationPoint(duration_ms=d, volume_ul=v) for d, v in zip(durations_ms, volumes, strict=True))
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"calibration points rejected: {e}") from e
    cal = ValveCalibration.model_construct(id=None, date=None, points=points)  # judged below, not refused here
    slope, intercept = cal.fit()
    return CalibrationFit(points, slope, intercept, cal.residuals_ul(), tuple(cal.problems()))


def deliver(valve: object, clock: SessionClock, duration_ms: float, pulses: int, interval_ms: float) -> None:
    """`pulses` openings of duration_ms, one every interval_ms (each hardware-timed by the valve)."""
    if interval_ms < duration_ms + MIN_GAP_MS:
        raise ValueError(f"interval {interval_ms:g} ms is too short for {duration_ms:g} ms openings; "
                         f"use at least {duration_ms + MIN_GAP_MS:g} ms")
    t0 = clock.now()
    for k in range(pulses):
        clock.wait_until(t0 + k * interval_ms / 1000.0)
        valve.pulse(duration_ms)  # type: ignore[attr-defined]
    clock.wait_until(t0 + pulses * interval_ms / 1000.0)  # the last opening has ended


# weigh(duration_ms, problem) -> the weighing after that duration's pulses; `problem` says why the previous
# entry for it was refused (None on the first ask). A sequence gives the entries in order instead (scripts).
Weigh = Callable[[float, str | None], Weighed]


@dataclass(frozen=True)
class CalibrationRun:
    durations_ms: tuple[float, ...]
    pulses: int
    interval_ms: float
    weighings: tuple[Weighed, ...]
    fit: CalibrationFit
    refused_entries: tuple[str, ...] = field(default_factory=tuple)  # entries re-asked, and why


def calibrate_valve(
    config: RigConfig,
    durations_ms: Sequence[float],
    pulses: int,
    interval_ms: float,
    weigh: Weigh | Sequence[Weighed | float],
    *,
    registry: Registry | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    clock: SessionClock | None = None,
) -> CalibrationRun:
    """Check the request, run the pulses for every duration (shortest first), check every entry, fit."""
    durations = check_request(config, durations_ms, pulses, interval_ms)
    if callable(weigh):
        weigh_fn: Weigh = weigh
    else:
        given = [w if isinstance(w, Weighed) else Weighed(float(w)) for w in weigh]
        if len(given) != len(durations):
            raise ValueError(f"{len(durations)} durations but {len(given)} weights")
        by_duration = dict(zip(durations, given, strict=True))

        def weigh_fn(d: float, problem: str | None) -> Weighed:
            if problem is not None:
                raise ValueError(f"{d:g} ms: {problem}")
            return by_duration[d]

    clock = clock or check_clock(config)
    weighings: list[Weighed] = []
    done: list[tuple[float, float]] = []
    refused: list[str] = []
    with open_drivers(config, ["valve"], clock, registry=registry) as drivers:
        valve = drivers["valve"]
        too_long = [d for d in durations if d > valve.max_open_ms]
        if too_long:  # the driver's own limit, should it differ from the config's parameter
            raise ValueError(f"durations {too_long} ms exceed the valve's max_open_ms {valve.max_open_ms:g}")
        for d in durations:
            say(f"{d:g} ms: {pulses} openings, one every {interval_ms:g} ms, into a weighed empty tube ...")
            deliver(valve, clock, d, pulses, interval_ms)
            problem: str | None = None
            while True:
                w = weigh_fn(d, problem)
                problem = check_weighing(d, w, pulses, done)
                if problem is None:
                    break
                refused.append(f"{d:g} ms: {problem}")
            weighings.append(w)
            done.append((d, w.net_g * UL_PER_G / pulses))
    fit = fit_points([d for d, _ in done], [ul for _, ul in done])
    return CalibrationRun(tuple(durations), pulses, float(interval_ms), tuple(weighings), fit, tuple(refused))


# ---- the rig's history ---------------------------------------------------------------------------------


def history_record(run: CalibrationRun, config: RigConfig, config_path: Path, *, by: str, written: bool,
                   date: dt.date | None = None) -> CalibrationRecord:
    """The rig-history entry of a calibration run (accepted or refused)."""
    date = date or dt.date.today()
    cal = run.fit.calibration(date) if run.fit.ok else None
    return CalibrationRecord(
        recorded_at=journal.now_iso(), by=by, rig=config.name, config=str(config_path), date=date,
        accepted=run.fit.ok, written=written, id=cal.id if cal is not None else None,
        reason="; ".join(run.fit.problems), pulses=run.pulses, interval_ms=run.interval_ms,
        weighings=tuple(Weighing(duration_ms=d, net_g=w.net_g, tare_g=w.tare_g, filled_g=w.filled_g,
                                 ul_per_opening=w.net_g * UL_PER_G / run.pulses)
                        for d, w in zip(run.durations_ms, run.weighings, strict=True)),
        points=run.fit.points, slope_ul_per_ms=run.fit.slope_ul_per_ms, intercept_ul=run.fit.intercept_ul,
        residuals_ul=run.fit.residuals_ul,
    )


# ---- writing the config ------------------------------------------------------------------------------

_SECTION = "valve_calibration"


def calibration_block(cal: ValveCalibration, fit: CalibrationFit, indent: int = 2) -> str:
    """The body of the `valve_calibration:` section: id, date and points."""
    pad = " " * indent
    head = (f"{pad}id: {cal.id}  # rig calibrate-valve: {fit.slope_ul_per_ms:.5f} ul/ms, intercept "
            f"{fit.intercept_ul:+.4f} ul; weighings in the rig's history\n"
            f"{pad}date: {cal.date.isoformat() if cal.date else ''}\n"
            f"{pad}points:\n")
    rows = "".join(
        f"{pad}  - {{duration_ms: {_num(p.duration_ms)}, volume_ul: {_num(p.volume_ul)}}}\n" for p in cal.points
    )
    return head + rows


def _num(x: float) -> str:
    """x to 4 decimals, written as YAML reads it back exactly (20.0 -> 20, 2.01349 -> 2.0135)."""
    r = round(float(x), 4)
    return str(int(r)) if r == int(r) else repr(r)


def replace_section(text: str, fit: CalibrationFit, date: dt.date | None = None) -> str:
    """`text` with its top-level valve_calibration section replaced (appended when absent)."""
    cal = fit.calibration(date or dt.date.today())
    lines = text.splitlines(keepends=True)
    key = re.compile(rf"^{_SECTION}\s*:(.*)$")
    start = next((i for i, line in enumerate(lines) if key.match(line.rstrip("\r\n"))), None)
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + f"{_SECTION}:\n" + calibration_block(cal, fit)
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():  # blank lines before the next key stay
        end -= 1
    body = lines[start + 1:end]
    indent = next((len(b) - len(b.lstrip(" ")) for b in body if b.strip() and not b.lstrip().startswith("#")), 2)
    rest = key.match(lines[start].rstrip("\r\n")).group(1)  # type: ignore[union-attr]
    # Keep the key line (and its comment) unless it held the value inline (`valve_calibration: {...}`).
    head = lines[start] if not rest.strip() or rest.strip().startswith("#") else f"{_SECTION}:\n"
    return "".join(lines[:start]) + head + calibration_block(cal, fit, indent or 2) + "".join(lines[end:])


def write_calibration(path: str | os.PathLike[str], fit: CalibrationFit, registry: Registry | None = None,
                      date: dt.date | None = None) -> tuple[Path, ValveCalibration]:
    """Write an accepted fit into the config at `path` (the old file kept as PATH.bak); the new text is
    validated as a rig config before anything is replaced. Returns (backup, the calibration written)."""
    from rig.loading import load_config

    if not fit.ok:
        raise ValueError("the fit was refused: " + "; ".join(fit.problems))
    date = date or dt.date.today()
    path = Path(path)
    new_text = replace_section(path.read_text(encoding="utf-8"), fit, date)
    tmp = path.with_name(f".{path.name}.calibrating")
    tmp.write_text(new_text, encoding="utf-8")
    try:
        written = load_config(tmp, registry).valve_calibration
        if written != fit.calibration(date):
            raise ValueError(f"{path}: the rewritten valve_calibration does not read back as written")
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return backup, written
