"""Maps a rig config's `type:` names to driver classes.

A driver module registers its classes with `@register(role, type_name)`; a config entry
`{type: NAME, ...params}` is validated against the class's `Params` model and built with
`create(role, entry, context)`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from drivers.base import ALL_ROLES, OPTIONAL_ROLES, ROLES, Clock, SimWorld

__all__ = ["ALL_ROLES", "DRIVER_MODULES", "OPTIONAL_ROLES", "ROLES", "DriverContext", "DriverSpec", "Registry",
           "default_registry", "register", "registry_of"]


# Modules that hold drivers; imported on first lookup so optional vendor packages load only when used.
# Drivers that live with the rest of the rig (the VR display, built on rig.vr's renderer) are added by the
# rig itself (rig.runner.devices.driver_registry): this package never names rig modules.
DRIVER_MODULES = ("drivers.sim", "drivers.serial_board", "drivers.nidaq", "drivers.mesoscope_ttl")


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


_TYPES_ATTR = "_driver_types"


def register(role: str, type_name: str) -> Callable[[type], type]:
    """Class decorator used by driver modules: marks the class as the `type_name` driver of `role`
    (a class may be marked for several roles). Registries find marked classes in the modules they load."""

    def deco(cls: type) -> type:
        marks = cls.__dict__.get(_TYPES_ATTR, ())
        setattr(cls, _TYPES_ATTR, (*marks, (role, type_name)))
        return cls

    return deco


def _marked(module: ModuleType) -> list[tuple[str, str, type]]:
    found: list[tuple[str, str, type]] = []
    for obj in vars(module).values():
        if isinstance(obj, type) and obj.__module__ == module.__name__:
            found.extend((role, name, obj) for role, name in obj.__dict__.get(_TYPES_ATTR, ()))
    return found


def registry_of(modules: Iterable[str]) -> Registry:
    """A registry of the drivers marked in these modules and, for packages, in their loaded submodules."""
    reg = Registry()
    for name in modules:
        root = importlib.import_module(name)
        mods = [root] + [m for n, m in sorted(sys.modules.items()) if n.startswith(name + ".") and m is not None]
        for mod in mods:
            for role, type_name, cls in _marked(mod):
                reg.add(role, type_name, cls)
    return reg


def default_registry(extra_modules: Iterable[str] = ()) -> Registry:
    """The drivers of this package, plus those of `extra_modules`."""
    return registry_of((*DRIVER_MODULES, *extra_modules))
