"""Rig configuration schema: which drivers, their parameters, calibration and where data goes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from drivers.base import ALL_ROLES, ROLES
from drivers.registry import Registry, default_registry
from rig.mesoscope.config import MesoscopeSettings
from rig.protocol import FieldErrors, FieldIssue, Frozen, field_error

# The devices between the rig and the animal: all simulated, the animal is the virtual mouse.
ANIMAL_ROLES = ("ball", "lick", "valve", "cue")

# Driver modules of the rig itself, beside those of the drivers package: the VR display (rig.vr's renderer).
RIG_DRIVER_MODULES = ("rig.vr.display_driver",)


def driver_registry() -> Registry:
    """Every driver a rig config can name: the drivers package's and the rig's own."""
    return default_registry(RIG_DRIVER_MODULES)


class DriverEntry(BaseModel):
    """`{type: NAME, ...}`: the remaining keys are the driver's own parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(min_length=1)

    def params_dict(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CalibrationPoint(Frozen):
    duration_ms: float = Field(gt=0, le=10_000)
    volume_ul: float = Field(gt=0, le=1000)


# What a plausible valve calibration looks like (rig.setup.calibrate refuses the same things when measuring).
MAX_INTERCEPT_FRACTION = 0.25  # the fit's water at 0 ms, as a fraction of the smallest measured volume
MAX_RESIDUAL_FRACTION = 0.10  # each point within 10% of the line (needs 3 points to mean anything)
# The form NWB and DANDI want for a person ("Last, First"): dandischema's NAME_PATTERN.
PERSON_NAME = re.compile(r"^([\w\s\-\.']+),\s+([\w\s\-\.']+)$")


def calibration_id(points: tuple[CalibrationPoint, ...], date: dt.date | None) -> str:
    """The id of a calibration: a digest of its points and date, so an id names exactly one set of points."""
    body = json.dumps({"date": date.isoformat() if date else None,
                       "points": [[p.duration_ms, p.volume_ul] for p in points]}, sort_keys=True)
    return "cal-" + hashlib.sha256(body.encode()).hexdigest()[:10]


class ValveCalibration(Frozen):
    """Volume delivered per opening, measured by weighing (rig calibrate-valve writes it, with its id and
    date; the rig's history holds every calibration: rig.lab.rig_history)."""

    id: str | None = Field(None, description="calibration id (rig calibrate-valve); checked against the points")
    date: dt.date | None = Field(None, description="day of the weighing")
    points: tuple[CalibrationPoint, ...] = Field(min_length=1)

    def fit(self) -> tuple[float, float]:
        """(slope ul/ms, intercept ul) of a least-squares line; one point: a line through zero."""
        if len(self.points) == 1:
            p = self.points[0]
            return p.volume_ul / p.duration_ms, 0.0
        n = len(self.points)
        xs = [p.duration_ms for p in self.points]
        ys = [p.volume_ul for p in self.points]
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            return my / mx, 0.0
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        return slope, my - slope * mx

    def duration_ms(self, volume_ul: float) -> float:
        slope, intercept = self.fit()
        return max(0.0, (volume_ul - intercept) / slope)

    def volume_ul(self, duration_ms: float) -> float:
        """The water an opening of this duration delivers (the fit, never below zero)."""
        if duration_ms <= 0:
            return 0.0
        slope, intercept = self.fit()
        return max(0.0, slope * duration_ms + intercept)

    def residuals_ul(self) -> tuple[float, ...]:
        slope, intercept = self.fit()
        return tuple(p.volume_ul - (slope * p.duration_ms + intercept) for p in self.points)

    @property
    def volume_range_ul(self) -> tuple[float, float]:
        """The volumes the calibration measured: a reward outside them is an extrapolation."""
        vols = [p.volume_ul for p in self.points]
        return min(vols), max(vols)

    @property
    def ref_id(self) -> str:
        """The id sessions record: the written one, or the digest of the points when the config has none."""
        return self.id or calibration_id(self.points, self.date)

    def problems(self) -> list[str]:
        """Why this calibration cannot be trusted (empty: it can). Also used by rig calibrate-valve."""
        pts = sorted(self.points, key=lambda p: p.duration_ms)
        out: list[str] = []
        for a, b in zip(pts, pts[1:], strict=False):
            if b.duration_ms == a.duration_ms:
                out.append(f"two points at {a.duration_ms:g} ms; give each duration once (the mean of repeats)")
            elif b.volume_ul <= a.volume_ul:
                out.append(f"volume must increase with duration: {b.duration_ms:g} ms gives {b.volume_ul:g} ul, "
                           f"not more than {a.duration_ms:g} ms ({a.volume_ul:g} ul); check the weighed volumes")
        if out or len(pts) < 2:
            return out
        slope, intercept = self.fit()
        smallest = pts[0].volume_ul
        if intercept > MAX_INTERCEPT_FRACTION * smallest:
            out.append(
                f"implausible intercept: the line gives {intercept:.3g} ul at 0 ms "
                f"({intercept / smallest:.0%} of the smallest measured volume, {smallest:g} ul; at most "
                f"{MAX_INTERCEPT_FRACTION:.0%}): a closed valve gives no water, so short openings would be "
                "logged as water never given; were gross (tube + water) weights entered? Recalibrate")
        if len(pts) >= 3:
            worst = max(self.points, key=lambda p: abs(p.volume_ul - (slope * p.duration_ms + intercept))
                        / p.volume_ul)
            r = worst.volume_ul - (slope * worst.duration_ms + intercept)
            if abs(r) > MAX_RESIDUAL_FRACTION * worst.volume_ul:
                out.append(f"poor fit: {worst.duration_ms:g} ms measured {worst.volume_ul:g} ul but the line gives "
                           f"{worst.volume_ul - r:.3g} ul ({abs(r) / worst.volume_ul:.0%} off; at most "
                           f"{MAX_RESIDUAL_FRACTION:.0%}); weigh more openings per duration and recalibrate")
        return out

    @model_validator(mode="after")
    def _trustworthy(self) -> ValveCalibration:
        issues = [FieldIssue(("points",), m) for m in self.problems()]
        if (self.id is None) != (self.date is None):
            issues.append(FieldIssue(("id",) if self.id is None else ("date",),
                                     "id and date come together (rig calibrate-valve writes both)"))
        elif self.id is not None and self.id != calibration_id(self.points, self.date):
            issues.append(FieldIssue(("id",), f"{self.id!r} does not match the points and date (they were changed "
                                              "after calibration): run rig calibrate-valve, or remove id and date"))
        if issues:
            raise FieldErrors(issues)
        return self


class LabSettings(Frozen):
    """Who and where, for the session header and the NWB export; and the rig's water-restriction policy."""

    institution: str | None = Field(None, min_length=1, max_length=200)
    lab: str | None = Field(None, min_length=1, max_length=200)
    experimenter: str | None = Field(None, description="default experimenter, 'Last, First' (NWB/DANDI form)")
    missing_weight: Literal["refuse", "warn"] = Field(
        "refuse", description="a water-restricted animal without a weight for the day: refuse the session or warn")
    min_weight_fraction: float = Field(0.8, gt=0, lt=1, description="alert below this fraction of baseline")
    require_registered: bool = Field(False, description="refuse sessions of animals not in the registry")

    @model_validator(mode="after")
    def _person(self) -> LabSettings:
        if self.experimenter is not None and not PERSON_NAME.match(self.experimenter):
            raise field_error(("experimenter",), f"{self.experimenter!r}: write a person as 'Last, First' "
                                                 "(e.g. 'Doe, Jane'), the form NWB and DANDI want")
        return self


class ValveSafety(Frozen):
    """Limits the runner holds the valve to, whatever asks it to open (rig.runner.valve_guard)."""

    min_closed_ms: float = Field(100.0, ge=0, le=60_000, description="the valve stays shut this long between "
                                                                    "openings")
    manual_rewards_per_minute: float = Field(30.0, gt=0, le=600, description="operator rewards beyond this "
                                                                             "rate are refused")
    max_session_water_ul: float = Field(3000.0, gt=0, le=100_000, description="no opening once a session has "
                                                                              "given this much water")


class SimMouse(Frozen):
    """The virtual mouse used by simulated drivers (docs/sim.md)."""

    expertise: float = Field(
        0.8, ge=0, le=1,
        description="where an animal the rig has no memory of starts: 0 = naive, 1 = expert (reward "
                    "expectation in rewarded corridors and familiarity with every corridor)")
    learning_rate: float = Field(0.03, ge=0, le=1, description="reward learning per task trial")
    familiarity_m: float = Field(
        2500.0, gt=0, le=1e6, description="metres of a texture seen until its representation is 63 % formed")
    memory: bool = Field(
        True, description="keep what each simulated animal learned in DATA/ANIMAL/sim-mouse.json, "
                          "read at session start and written at session end")
    run_speed_cm_s: float = Field(25.0, gt=0, le=200, description="typical running speed in a bout")
    bout_s: float = Field(20.0, gt=0, description="mean duration of a running bout")
    pause_s: float = Field(2.0, ge=0, description="mean duration of a pause between bouts")
    lick_rate_hz: float = Field(0.3, ge=0, le=20, description="baseline (spontaneous) lick rate")
    seed: int | None = Field(None, description="default: derived from the session seed")


class RigConfig(Frozen):
    name: str = Field(min_length=1, max_length=64)
    data_dir: str = "data"
    frame_rate_hz: float = Field(60.0, gt=0, le=1000)
    min_free_disk_mb: float = Field(200.0, ge=0)
    loop_priority: Literal["normal", "high", "realtime"] = Field(
        "normal", description="scheduling priority of real-time sessions (needs root or CAP_SYS_NICE)")
    valve_calibration: ValveCalibration
    valve_safety: ValveSafety = ValveSafety()
    drivers: dict[str, DriverEntry]
    sim: SimMouse | None = None
    mesoscope: MesoscopeSettings | None = None
    lab: LabSettings = Field(default_factory=LabSettings)

    _driver_params: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _drivers_known(self, info: ValidationInfo) -> RigConfig:
        """Checks roles and types, and validates each driver's parameters against its Params model.

        The registry comes from the validation context (`context={"registry": reg}`) when given, so
        tests and tools can validate against their own driver set; otherwise the default one.
        """
        issues: list[FieldIssue] = []
        missing = [r for r in ROLES if r not in self.drivers]
        if missing:
            issues.append(
                FieldIssue(("drivers",), f"missing roles {missing}; every rig needs {list(ROLES)}")
            )
        for role in self.drivers:
            if role not in ALL_ROLES:
                issues.append(
                    FieldIssue(("drivers", role), f"unknown driver role; allowed: {', '.join(ALL_ROLES)}")
                )
        registry = _registry_from(info)
        if isinstance(registry, str):
            issues.append(FieldIssue(("drivers",), registry))
        else:
            for role, entry in self.drivers.items():
                if role not in ALL_ROLES:
                    continue
                try:
                    spec = registry.spec(role, entry.type)
                except KeyError as e:
                    issues.append(FieldIssue(("drivers", role, "type"), str(e.args[0])))
                    continue
                try:
                    self._driver_params[role] = spec.params.model_validate(entry.params_dict())
                except ValidationError as e:
                    issues.append(FieldIssue(("drivers", role), nested=e, nested_model=spec.params))
        if self.simulated and self.sim is None:
            issues.append(FieldIssue(("sim",), "simulated drivers need a sim: section (the virtual mouse)"))
        if issues:
            raise FieldErrors(issues)
        return self

    def driver_params(self, role: str) -> BaseModel:
        return self._driver_params[role]

    @property
    def simulated(self) -> bool:
        return any(e.type == "sim" for e in self.drivers.values())

    def resources(self) -> tuple[str, ...]:
        """The devices this config opens, as lock names: a driver's own `resources()` when its parameters
        define one, else its serial `port` (resolved, so two names of one port are one device) or its NI
        `device`. A session holds a lock on each (rig.runner.lock), whatever config names them."""
        out: set[str] = set()
        for role in self.drivers:
            params = self._driver_params.get(role)
            if params is None:
                continue
            own = getattr(params, "resources", None)
            if callable(own):
                out.update(own())
                continue
            port = getattr(params, "port", None)
            if isinstance(port, str) and port:
                out.add(f"serial:{os.path.realpath(os.path.expanduser(port))}")
            device = getattr(params, "device", None)
            if isinstance(device, str) and device and self.drivers[role].type == "nidaq":
                out.add(f"nidaq:{device}")
        return tuple(sorted(out))

    @property
    def names_hardware(self) -> bool:
        """True when a session with this config opens a device (so it takes the device locks, even --fast)."""
        return bool(self.resources())

    @property
    def real_animal_roles(self) -> tuple[str, ...]:
        """The roles the virtual mouse would drive that name real devices: when any does, a real animal is
        on the rig (so `rig run` needs its --animal)."""
        return tuple(r for r in ANIMAL_ROLES if r in self.drivers and self.drivers[r].type != "sim")


def _registry_from(info: ValidationInfo) -> Registry | str:
    """The registry to validate drivers against, or a message saying why none could be built."""
    ctx = info.context
    if isinstance(ctx, dict) and ctx.get("registry") is not None:
        return ctx["registry"]
    try:
        return driver_registry()
    except ImportError as e:  # a driver module (or the vendor package it needs) is not installed
        return f"driver modules cannot be imported: {e}"
