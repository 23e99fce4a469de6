"""The set of drivers a rig config names, opened and closed together.

Closing always commands the valve shut first, whatever else fails, so no exit path leaves water running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from drivers.base import (
    ROLES,
    BallEncoder,
    Clock,
    CueOutput,
    Display,
    FrameClock,
    LickSensor,
    SimWorld,
    SyncOutput,
    Valve,
)
from drivers.registry import DriverContext, Registry
from rig.config import RigConfig, driver_registry

log = logging.getLogger(__name__)


@dataclass
class Devices:
    ball: BallEncoder
    lick: LickSensor
    valve: Valve
    cue: CueOutput
    frame_clock: FrameClock
    display: Display
    sync: SyncOutput | None = None  # optional: pulses to the mesoscope's aux trigger

    @classmethod
    def build(
        cls, config: RigConfig, clock: Clock, world: SimWorld | None, registry: Registry | None = None,
        protocol: object | None = None,
    ) -> Devices:
        registry = registry or driver_registry()
        context = DriverContext(clock=clock, world=world, protocol=protocol)
        made: dict[str, Any] = {}
        for role in ROLES:
            entry = config.drivers[role]
            made[role] = registry.create(role, entry.type, config.driver_params(role), context)
        if "sync" in config.drivers:
            made["sync"] = registry.create("sync", config.drivers["sync"].type, config.driver_params("sync"), context)
        return cls(**made)

    def by_role(self) -> dict[str, Any]:
        roles: dict[str, Any] = {"ball": self.ball, "lick": self.lick, "valve": self.valve, "cue": self.cue,
                                 "frame_clock": self.frame_clock, "display": self.display}
        if self.sync is not None:
            roles["sync"] = self.sync
        return roles

    def all(self) -> list[Any]:
        # The valve first: it is opened first and closed first.
        core = [self.valve, self.ball, self.lick, self.cue, self.frame_clock, self.display]
        return core if self.sync is None else [*core, self.sync]

    def open(self) -> None:
        opened = []
        try:
            for d in self.all():
                d.open()
                opened.append(d)
        except BaseException:
            for d in reversed(opened):
                _close_quietly(d)
            raise

    def close(self) -> None:
        try:
            self.valve.close_valve()
        except Exception:  # the valve must be shut even when its driver is broken; record why not
            log.exception("could not command the valve closed")
        for d in self.all():
            _close_quietly(d)

    def __enter__(self) -> Devices:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_quietly(device: Any) -> None:
    try:
        device.close()
    except Exception:  # one broken driver must not stop the others from closing; it is logged
        log.exception("closing %s failed", type(device).__name__)
