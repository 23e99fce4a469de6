"""Maps a rig config's `type:` names to driver classes.

A driver module registers its classes with `@register(role, type_name)`; a config entry
`{type: NAME, ...params}` is validated against the class's `Params` model and built with
`create(role, entry, context)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from drivers.base import Clock, SimWorld

ROLES = ("ball", "lick", "valve", "cue", "frame_clock", "display")
# Roles a rig may leave out of its config (the sync output to the mesoscope's aux trigger).
OPTIONAL_ROLES = ("sync",)
ALL_ROLES = ROLES + OPTIONAL_ROLES

# Modules that hold drivers; imported on first lookup so optional vendor packages load only when used.
DRIVER_MODULES = (
    "drivers.sim", "drivers.serial_board", "drivers.nidaq", "drivers.mesoscope_ttl", "rig.vr.display_driver",
)


@dataclass(frozen=True)
class DriverContext:
    clock: Clock
    world: SimWorld | None = None  # only simulated drivers use it
    protocol: object | None = None  # the session's protocol (a display needs the corridors); opaque here


@dataclass(frozen=True)
class DriverSpec:
    role: str
    type_name: str
    cls: type
    params: type[BaseModel]


class Registry:
    """Holds the known driver types; one instance per process is built by `default_registry()`."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], DriverSpec] = {}

    def add(self, role: str, type_name: str, cls: type) -> None:
        if role not in ALL_ROLES:
            raise ValueError(f"unknown driver role {role!r}; roles: {', '.join(ALL_ROLES)}")
        params = getattr(cls, "Params", None)
        if params is None or not issubclass(params, BaseModel):
            raise TypeError(f"{cls.__name__} needs a pydantic Params model")
        self._specs[(role, type_name)] = DriverSpec(role, type_name, cls, params)

    def types(self, role: str) -> list[str]:
        return sorted(t for r, t in self._specs if r == role)

    def spec(self, role: str, type_name: str) -> DriverSpec:
        try:
            return self._specs[(role, type_name)]
        except KeyError:
            allowed = ", ".join(self.types(role)) or "none"
            raise KeyError(f"unknown {role} driver type {type_name!r}; allowed: {allowed}") from None

    def create(self, role: str, type_name: str, params: BaseModel, context: DriverContext) -> Any:
        return self.spec(role, type_name).cls(params, context)


_PENDING: list[tuple[str, str, type]] = []


def register(role: str, type_name: str) -> Callable[[type], type]:
    """Class decorator used by driver modules."""

    def deco(cls: type) -> type:
        _PENDING.append((role, type_name, cls))
        return cls

    return deco


def default_registry() -> Registry:
    for mod in DRIVER_MODULES:
        importlib.import_module(mod)
    reg = Registry()
    for role, type_name, cls in _PENDING:
        reg.add(role, type_name, cls)
    return reg
