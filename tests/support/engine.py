"""Shared builders for the engine tests: protocols from plain dicts and a recorder that drives an engine.

(Named test_* so it sits with the engine tests; it holds no tests itself.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rig.engine.machine import Engine
from rig.engine.records import Command, Event, Inputs, State, Step
from rig.protocol import Protocol

DT = 1 / 64  # s: a frame period that is exact in binary floating point


def ul_to_ms(ul: float) -> float:
    """A linear valve calibration: 4 ms per microlitre."""
    return 4.0 * ul


def base_protocol_dict() -> dict[str, Any]:
    return {
        "name": "unit",
        "kind": "task",
        "corridors": [
            {"name": "leaf1", "texture": {"source": "leaf"}, "rewarded": True},
            {"name": "circle1", "texture": {"source": "circle"}},
        ],
        "movement": {"rule": "gated", "speed_cm_s": 60.0, "threshold_cm_s": 6.0, "hold_ms": 62.5},
        "cue": {"position_cm": [50.0, 350.0], "duration_ms": 200.0, "frequency_hz": 4000.0},
        "reward": {"mode": "active_after_cue", "volume_ul": 2.5},
        "end": {"max_trials": 1000},
    }


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; a value of None deletes the key (e.g. cue: None removes the cue)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def make_protocol(**over: Any) -> Protocol:
    return Protocol.model_validate(merge(base_protocol_dict(), over))


def one_corridor(rewarded: bool = True, **corr: Any) -> list[dict[str, Any]]:
    return [{"name": "only", "texture": {"source": "leaf"}, "rewarded": rewarded, **corr}]


@dataclass
class Run:
    """Drives an engine and keeps everything it produced."""

    engine: Engine
    t: float = 0.0
    steps: list[Step] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    @classmethod
    def start(cls, protocol: Protocol, seed: int = 1, t0: float = 0.0) -> Run:
        r = cls(Engine(protocol, seed, ul_to_ms), t=t0)
        r._keep(r.engine.start(t0))
        return r

    def _keep(self, s: Step) -> Step:
        self.steps.append(s)
        self.events.extend(s.events)
        self.commands.extend(s.commands)
        return s

    @property
    def state(self) -> State:
        return self.engine.state

    def step(self, inputs: Inputs | None = None, dt: float = DT, **kw: Any) -> Step:
        self.t += dt
        return self._keep(self.engine.step(inputs if inputs is not None else Inputs(**kw), self.t))

    def run_until(
        self,
        cond: Callable[[State], bool],
        inputs: Inputs | Callable[[State, float], Inputs],
        dt: float = DT,
        max_steps: int = 1_000_000,
    ) -> Step:
        """Step until cond(state) holds (checked after each step)."""
        for _ in range(max_steps):
            inp = inputs(self.state, self.t + dt) if callable(inputs) else inputs
            s = self.step(inp, dt)
            if cond(s.state):
                return s
        raise AssertionError("condition never reached")

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


RUN = Inputs(ball_cm=30.0 * DT)  # 30 cm/s of ball running: above the 6 cm/s gate threshold
STILL = Inputs()
