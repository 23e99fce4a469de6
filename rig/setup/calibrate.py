"""Valve calibration (`rig calibrate-valve`): pulse the valve, weigh the water, fit volume vs duration and
write the points into the rig config.

For each duration the valve gives `pulses` openings, one every `interval_ms`; the operator weighs the
water collected (grams; 1 g of water = 1000 ul) and swaps the tube. Volume per opening = weight /
pulses. A least-squares line (the one rig.config.ValveCalibration uses to turn microlitres into
milliseconds) is fitted and shown with its residuals; the points replace the config's
`valve_calibration:` section, the rest of the file is kept as written and the old file is kept as
FILE.bak.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from drivers.registry import Registry
from rig.config import CalibrationPoint, RigConfig, ValveCalibration
from rig.runner.clock import SessionClock
from rig.setup.checks import check_clock, open_drivers

UL_PER_G = 1000.0  # water: 1 g = 1 ml
MIN_GAP_MS = 20.0  # the valve closes and settles between two openings at least this long


@dataclass(frozen=True)
class CalibrationFit:
    points: tuple[CalibrationPoint, ...]
    slope_ul_per_ms: float
    intercept_ul: float
    residuals_ul: tuple[float, ...]  # measured - fitted, per point

    def report(self) -> str:
        lines = [f"{'duration ms':>12} {'ul/opening':>11} {'fit ul':>8} {'residual':>9}"]
        for p, r in zip(self.points, self.residuals_ul, strict=True):
            lines.append(f"{p.duration_ms:12g} {p.volume_ul:11.3f} {p.volume_ul - r:8.3f} {r:+9.3f}")
        lines.append(f"volume = {self.slope_ul_per_ms:.5f} ul/ms x duration {self.intercept_ul:+.4f} ul")
        return "\n".join(lines)


def volumes_ul(weights_g: Sequence[float], pulses: int) -> list[float]:
    """Volume per opening (ul) from the total weight (g) of `pulses` openings."""
    if pulses < 1:
        raise ValueError(f"pulses must be >= 1, got {pulses}")
    out = []
    for w in weights_g:
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"weighed water must be a positive number of grams, got {w}")
        out.append(w * UL_PER_G / pulses)
    return out


def fit_points(durations_ms: Sequence[float], volumes: Sequence[float]) -> CalibrationFit:
    """Validated points and their line; ValueError when the points are out of range or not increasing."""
    if len(durations_ms) != len(volumes):
        raise ValueError(f"{len(durations_ms)} durations but {len(volumes)} volumes")
    if not durations_ms:
        raise ValueError("no calibration points")
    try:
        pairs = zip(durations_ms, volumes, strict=True)
        cal = ValveCalibration(points=tuple(CalibrationPoint(duration_ms=d, volume_ul=v) for d, v in pairs))
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"calibration points rejected: {e}") from e
    slope, intercept = cal.fit()
    residuals = tuple(p.volume_ul - (slope * p.duration_ms + intercept) for p in cal.points)
    return CalibrationFit(cal.points, slope, intercept, residuals)


def deliver(valve: Any, clock: SessionClock, duration_ms: float, pulses: int, interval_ms: float) -> None:
    """`pulses` openings of duration_ms, one every interval_ms (each hardware-timed by the valve)."""
    if interval_ms < duration_ms + MIN_GAP_MS:
        raise ValueError(
            f"interval {interval_ms:g} ms is too short for {duration_ms:g} ms openings; "
            f"use at least {duration_ms + MIN_GAP_MS:g} ms"
        )
    t0 = clock.now()
    for k in range(pulses):
        clock.wait_until(t0 + k * interval_ms / 1000.0)
        valve.pulse(duration_ms)
    clock.wait_until(t0 + pulses * interval_ms / 1000.0)  # the last opening has ended


def calibrate_valve(
    config: RigConfig,
    durations_ms: Sequence[float],
    pulses: int,
    interval_ms: float,
    weigh: Callable[[float], float] | Sequence[float],
    *,
    registry: Registry | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    clock: SessionClock | None = None,
) -> CalibrationFit:
    """Run the pulses for every duration and fit. `weigh(duration_ms)` returns the grams collected for
    that duration (the CLI asks the operator); a sequence gives them in order (tests, scripts)."""
    durations = [float(d) for d in durations_ms]
    if not durations:
        raise ValueError("no durations given")
    for d in durations:
        if not (math.isfinite(d) and d > 0):
            raise ValueError(f"durations must be positive numbers of ms, got {d}")
    if pulses < 1:
        raise ValueError(f"pulses must be >= 1, got {pulses}")
    if callable(weigh):
        weigh_fn = weigh
    else:
        given = list(weigh)
        if len(given) != len(durations):
            raise ValueError(f"{len(durations)} durations but {len(given)} weights")
        weigh_fn = dict(zip(durations, given, strict=True)).__getitem__
    clock = clock or check_clock(config)
    weights: list[float] = []
    with open_drivers(config, ["valve"], clock, registry=registry) as drivers:
        valve = drivers["valve"]
        too_long = [d for d in durations if d > valve.max_open_ms]
        if too_long:
            raise ValueError(f"durations {too_long} ms exceed the valve's max_open_ms {valve.max_open_ms:g}")
        for d in durations:
            say(f"{d:g} ms: {pulses} openings, one every {interval_ms:g} ms, into a weighed empty tube ...")
            deliver(valve, clock, d, pulses, interval_ms)
            weights.append(float(weigh_fn(d)))
    return fit_points(durations, volumes_ul(weights, pulses))


# ---- writing the config ------------------------------------------------------------------------------

_SECTION = "valve_calibration"


def calibration_block(fit: CalibrationFit, indent: int = 2) -> str:
    """The body of the `valve_calibration:` section for these points."""
    pad = " " * indent
    head = (f"{pad}points:  # rig calibrate-valve {date.today().isoformat()}: "
            f"{fit.slope_ul_per_ms:.5f} ul/ms, intercept {fit.intercept_ul:+.4f} ul\n")
    rows = "".join(
        f"{pad}  - {{duration_ms: {_num(p.duration_ms)}, volume_ul: {_num(p.volume_ul)}}}\n" for p in fit.points
    )
    return head + rows


def _num(x: float) -> str:
    """x to 4 decimals, written as YAML reads it back exactly (20.0 -> 20, 2.01349 -> 2.0135)."""
    r = round(float(x), 4)
    return str(int(r)) if r == int(r) else repr(r)


def replace_section(text: str, fit: CalibrationFit) -> str:
    """`text` with its top-level valve_calibration section replaced (appended when absent)."""
    lines = text.splitlines(keepends=True)
    key = re.compile(rf"^{_SECTION}\s*:(.*)$")
    start = next((i for i, line in enumerate(lines) if key.match(line.rstrip("\r\n"))), None)
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + f"{_SECTION}:\n" + calibration_block(fit)
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
    return "".join(lines[:start]) + head + calibration_block(fit, indent or 2) + "".join(lines[end:])


def write_calibration(path: str | os.PathLike[str], fit: CalibrationFit, registry: Registry | None = None) -> Path:
    """Write the points into the config at `path`, keeping the old file as PATH.bak; the new text is
    validated as a rig config before anything is replaced. Returns the backup's path."""
    from rig.loading import load_config

    path = Path(path)
    new_text = replace_section(path.read_text(encoding="utf-8"), fit)
    tmp = path.with_name(f".{path.name}.calibrating")
    tmp.write_text(new_text, encoding="utf-8")
    try:
        written = load_config(tmp, registry).valve_calibration.points
        expected = tuple((float(_num(p.duration_ms)), float(_num(p.volume_ul))) for p in fit.points)
        if tuple((p.duration_ms, p.volume_ul) for p in written) != expected:
            raise ValueError(f"{path}: the rewritten valve_calibration does not read back as written")
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return backup
