"""Driver conformance: every registered driver, and every fake, implements its role's interface.

One test per (role, registered type), plus the replay drivers (built directly, not through the
registry). Each is constructed as a session would construct it (without opening hardware), then checked
against the role's interface in drivers.base: every attribute and method the interface names is there,
and each method takes the interface's parameters by the interface's names. Params models are frozen
and forbid unknown keys, so a typo in a rig config is an error, never a silently ignored setting.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import drivers.base as base
from drivers.base import ALL_ROLES
from drivers.nidaq.fake import FakeNidaqmx, ManualClock
from drivers.registry import DriverContext, DriverSpec
from drivers.replay import ReplayBall, ReplayCue, ReplayDisplay, ReplayFrameClock, ReplayLick, ReplayValve
from rig.config import driver_registry

INTERFACE: dict[str, type] = {
    "ball": base.BallEncoder, "lick": base.LickSensor, "valve": base.Valve, "cue": base.CueOutput,
    "frame_clock": base.FrameClock, "display": base.Display, "sync": base.SyncOutput,
}
# The parameters a type needs before it can be built (everything else has a default).
REQUIRED_PARAMS: dict[str, dict[str, Any]] = {
    "serial_board": {"port": "/dev/null-corridor-board"},
    "emulator_ttl": {"truth_file": "/tmp/corridor-rig-conformance-ttl.jsonl"},
}
ROLE_PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("ball", "serial_board"): {"counts_per_cm": 10.0},
    ("ball", "nidaq"): {"pulses_per_rev": 1024, "ball_diameter_cm": 20.0},
}

REGISTRY = driver_registry()
SPECS = [REGISTRY.spec(role, t) for role in ALL_ROLES for t in REGISTRY.types(role)]


def _interface_members(iface: type) -> tuple[list[str], dict[str, inspect.Signature]]:
    """(attributes, methods with their signatures) an interface declares, its bases' included."""
    attrs: list[str] = []
    methods: dict[str, inspect.Signature] = {}
    for klass in reversed(iface.__mro__):
        if klass in (object,) or not getattr(klass, "_is_protocol", False):
            continue
        attrs += [a for a in getattr(klass, "__annotations__", {}) if not a.startswith("_")]
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_"):
                methods[name] = inspect.signature(value)
    return attrs, methods


def check_conforms(obj: object, role: str) -> None:
    iface = INTERFACE[role]
    attrs, methods = _interface_members(iface)
    for a in attrs:
        assert hasattr(obj, a), f"{type(obj).__name__} ({role}) lacks attribute {a!r}"
    for name, sig in methods.items():
        impl = getattr(obj, name, None)
        assert callable(impl), f"{type(obj).__name__} ({role}) lacks method {name}()"
        want = [p for p in sig.parameters.values() if p.name != "self"]
        have = inspect.signature(impl).parameters
        for p in want:
            assert p.name in have, f"{type(obj).__name__}.{name}() lacks parameter {p.name!r}"
            if p.default is inspect.Parameter.empty:
                continue
            assert have[p.name].default is not inspect.Parameter.empty, \
                f"{type(obj).__name__}.{name}({p.name}) must keep the interface's default"
        extra = [q for q in have.values() if q.name not in sig.parameters and q.default is inspect.Parameter.empty
                 and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
        assert not extra, f"{type(obj).__name__}.{name}() requires parameters the interface does not give: {extra}"
    assert isinstance(obj, iface), f"{type(obj).__name__} is not a {iface.__name__}"


@contextmanager
def built(spec: DriverSpec) -> Iterator[object]:
    clock = ManualClock()
    params = spec.params.model_validate({**REQUIRED_PARAMS.get(spec.type_name, {}),
                                         **ROLE_PARAMS.get((spec.role, spec.type_name), {})})
    world = None
    if spec.type_name == "sim":
        from rig.loading import REPO_ROOT, load_config, load_protocol
        from rig.sim.world import SimulatedWorld

        config = load_config(REPO_ROOT / "config" / "sim.yaml")
        world = SimulatedWorld.from_config(config, load_protocol(REPO_ROOT / "protocols" / "demo.yaml"), 1)
    context = DriverContext(clock=clock, world=world)
    if spec.type_name == "nidaq":
        with FakeNidaqmx(clock).installed():
            yield spec.cls(params, context)
    else:
        yield spec.cls(params, context)


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.role}-{s.type_name}" for s in SPECS])
def test_registered_driver_implements_its_role(spec: DriverSpec) -> None:
    cfg = spec.params.model_config
    assert cfg.get("extra") == "forbid" and cfg.get("frozen") is True, \
        f"{spec.cls.__name__}.Params must be frozen and forbid unknown keys"
    with built(spec) as driver:
        check_conforms(driver, spec.role)


def test_every_role_has_a_simulated_driver() -> None:
    """Every role runs without hardware: the sim type exists for each."""
    assert all("sim" in REGISTRY.types(role) for role in ALL_ROLES)


REPLAY = [
    ("ball", lambda c: ReplayBall(c, np.zeros(0), np.zeros(0, np.int64), np.zeros(0), 100.0)),
    ("lick", lambda c: ReplayLick(c, np.zeros(0), np.zeros(0, bool), np.zeros(0))),
    ("frame_clock", lambda c: ReplayFrameClock(c, np.zeros(0), np.zeros(0))),
    ("valve", lambda c: ReplayValve(c, 1000.0)),
    ("cue", lambda c: ReplayCue(c)),
    ("display", lambda c: ReplayDisplay(c)),
]


@pytest.mark.parametrize(("role", "make"), REPLAY, ids=[r for r, _ in REPLAY])
def test_replay_driver_implements_its_role(role: str, make: Any) -> None:
    check_conforms(make(ManualClock()), role)


def test_the_check_catches_a_driver_missing_a_method() -> None:
    """The conformance check itself fails on a driver that lacks part of its interface."""

    class Broken:
        clock = base.ClockMap()
        counts_per_cm = 1.0

        def open(self) -> None: ...

        def close(self) -> None: ...

        def self_test(self) -> list[base.CheckResult]:
            return []

    with pytest.raises(AssertionError, match="lacks method read"):
        check_conforms(Broken(), "ball")

    class WrongSignature(Broken):
        def read(self, timeout_s: float) -> base.BallSamples:  # the interface's read() takes nothing
            raise NotImplementedError

    with pytest.raises(AssertionError, match="requires parameters"):
        check_conforms(WrongSignature(), "ball")
