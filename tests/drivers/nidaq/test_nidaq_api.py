"""The installed nidaqmx package as the judge of what the NI-DAQ driver and its fake use.

- The fake offers only nidaqmx's names: every public member of each fake class exists on the nidaqmx
  class it stands for, as the same kind of member (method, property, settable property, static method),
  with the same parameter names in the same positions and the same defaults; required real parameters
  are all there. The fake refuses anything else (test_nidaq_fake.py), so a driver that passes its tests
  on the fake calls nothing the real package lacks.
- Every enum member, error class and error code of the fake has nidaqmx's name and value.
- Independently of the fake, every `nidaqmx.<module>.<name>` path the driver's source spells out, and
  every enum member name a config can select, exists in the installed package.

CI runs this file against the lowest nidaqmx the project pins as well as the newest.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import typing
from pathlib import Path
from typing import Any

import nidaqmx  # the daq extra; part of dev
import nidaqmx.error_codes
import pytest

from drivers.nidaq import NidaqBall, NidaqFrameClock, NidaqLick
from drivers.nidaq.errors import import_nidaqmx
from drivers.nidaq.fake import FakeNidaqmx, ManualClock, api
from drivers.nidaq.fake import namespaces as fake_constants

DRIVER = Path(__file__).resolve().parents[3] / "drivers" / "nidaq"
SUBMODULES = {"constants", "errors", "stream_readers", "stream_writers", "system", "types", "Task"}


def resolve(path: str) -> Any:
    """The object a dotted path names, importing the longest module prefix that imports."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


API_CLASSES = sorted(
    (c for c in vars(api).values() if isinstance(c, type) and issubclass(c, api.Strict) and c.REAL),
    key=lambda c: c.__name__,
)


def module_paths(fake: FakeNidaqmx) -> list[str]:
    """The classes the driver reaches through the module (and so may construct), as nidaqmx paths."""
    paths = ["Task", "system.System", "system.Device", "system.watchdog.WatchdogTask", "types.DOExpirationState"]
    paths += [f"stream_readers.{n}" for n in vars(fake.stream_readers)]
    return paths + [f"stream_writers.{n}" for n in vars(fake.stream_writers)]


def reach(fake: FakeNidaqmx, path: str) -> Any:
    obj: Any = fake
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def constructed() -> set[type]:
    """The fake API classes reached through the module: the only ones whose __init__ the driver calls
    (channels, timing, streams... come from a task's properties)."""
    fake = FakeNidaqmx(ManualClock())
    out = set()
    for path in module_paths(fake):
        cls = reach(fake, path)
        out |= {c for c in cls.__mro__ if vars(api).get(c.__name__) is c and c is not api.Strict}
    return out


CONSTRUCTED = constructed()


def public_members(cls: type) -> dict[str, Any]:
    """The members the fake offers: public names (and __init__ where the driver constructs the class),
    not those of Strict/object."""
    out = {}
    for name in dir(cls):
        if name in ("REAL", "KIND") or (name.startswith("_") and not (name == "__init__" and cls in CONSTRUCTED)):
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner in (api.Strict, object):
            continue
        out[name] = inspect.getattr_static(cls, name)
    return out


def same_default(fake: Any, real: Any) -> bool:
    if isinstance(fake, enum.Enum) or isinstance(real, enum.Enum):
        return (type(fake).__name__, getattr(fake, "name", None), getattr(fake, "value", None)) == (
            type(real).__name__, getattr(real, "name", None), getattr(real, "value", None))
    return type(fake) is type(real) and fake == real


def signature_problems(where: str, fake: Any, real: Any) -> list[str]:
    f = list(inspect.signature(fake).parameters.values())
    r = list(inspect.signature(real).parameters.values())
    by_name = {p.name: p for p in r}
    problems = []
    for i, p in enumerate(f):
        q = by_name.get(p.name)
        if q is None:
            problems.append(f"{where}: parameter {p.name!r} does not exist on nidaqmx's")
            continue
        if p.kind is p.POSITIONAL_OR_KEYWORD and (i >= len(r) or r[i].name != p.name or q.kind is not p.kind):
            problems.append(f"{where}: {p.name!r} is positional {i} in the fake, not in nidaqmx")
        if p.kind is p.KEYWORD_ONLY and q.kind not in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY):
            problems.append(f"{where}: {p.name!r} cannot be given by keyword to nidaqmx's")
        if p.default is not p.empty and (q.default is q.empty or not same_default(p.default, q.default)):
            problems.append(f"{where}: default of {p.name!r} is {p.default!r} in the fake, {q.default!r} in nidaqmx")
    names = {p.name for p in f}
    for q in r:
        if q.default is q.empty and q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY) and q.name not in names:
            problems.append(f"{where}: nidaqmx requires {q.name!r}, the fake does not take it")
    return problems


@pytest.mark.parametrize("cls", API_CLASSES, ids=lambda c: c.__name__)
def test_fake_class_offers_only_what_its_nidaqmx_class_has(cls: type) -> None:
    real_cls = resolve(cls.REAL)
    assert inspect.isclass(real_cls), cls.REAL
    problems = []
    for name, member in public_members(cls).items():
        where = f"{cls.__name__}.{name}"
        try:
            real = inspect.getattr_static(real_cls, name)
        except AttributeError:
            problems.append(f"{where}: {cls.REAL} has no {name!r}")
            continue
        if isinstance(member, property):
            if not isinstance(real, property):
                problems.append(f"{where}: a property in the fake, a {type(real).__name__} in nidaqmx")
            elif member.fset is not None and real.fset is None:
                problems.append(f"{where}: settable in the fake, read-only in nidaqmx")
        elif isinstance(member, staticmethod):
            if not isinstance(real, staticmethod):
                problems.append(f"{where}: a static method in the fake, not in nidaqmx")
            else:
                problems += signature_problems(where, member.__func__, real.__func__)
        elif inspect.isfunction(member):
            if not inspect.isfunction(real):
                problems.append(f"{where}: a method in the fake, a {type(real).__name__} in nidaqmx")
            else:
                problems += signature_problems(where, member, real)
        else:
            problems.append(f"{where}: unexpected kind of member {type(member).__name__}")
    assert problems == []


def test_the_fake_module_reaches_the_classes_nidaqmx_does() -> None:
    fake = FakeNidaqmx(ManualClock())
    for path in module_paths(fake):
        obj = reach(fake, path)
        real = resolve(f"nidaqmx.{path}")
        stands_for = getattr(obj, "REAL", None)
        if stands_for is not None:
            assert resolve(stands_for) is real, path
        else:
            assert inspect.isclass(real), path


@pytest.mark.parametrize("fake_enum", fake_constants.ENUMS, ids=lambda e: e.__name__)
def test_fake_enums_have_nidaqmx_names_and_values(fake_enum: type[enum.Enum]) -> None:
    real = getattr(nidaqmx.constants, fake_enum.__name__)
    assert {m.name: m.value for m in fake_enum} == {m.name: real[m.name].value for m in fake_enum}


def test_fake_errors_mirror_nidaqmx_errors() -> None:
    real_codes = nidaqmx.error_codes.DAQmxErrors
    assert {m.name: m.value for m in fake_constants.DAQmxErrors} == {
        m.name: real_codes[m.name].value for m in fake_constants.DAQmxErrors}
    fake_errors = vars(fake_constants.errors)
    for name, cls in fake_errors.items():
        real = getattr(nidaqmx.errors, name)
        for base in cls.__mro__[1:]:
            if base.__name__ in fake_errors:
                assert issubclass(real, getattr(nidaqmx.errors, base.__name__)), (name, base.__name__)
    assert signature_problems("DaqError", fake_constants.DaqError.__init__, nidaqmx.errors.DaqError.__init__) == []
    assert fake_constants.DOExpirationState._fields == nidaqmx.types.DOExpirationState._fields


def module_paths_in_driver() -> set[tuple[str, ...]]:
    """Every attribute chain in drivers/nidaq/*.py (the fake aside) that starts at a nidaqmx submodule:
    `nd.constants.Edge.RISING` -> ("constants", "Edge", "RISING"), also through an alias `c = nd.constants`."""
    found: set[tuple[str, ...]] = set()
    for path in sorted(DRIVER.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, tuple[str, ...]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                chain = _chain(node.value)
                if chain and chain[-1] in SUBMODULES:
                    aliases[node.targets[0].id] = (chain[-1],)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):  # sub-chains (prefixes) are visited too: harmless
                chain = _chain(node)
                if not chain:
                    continue
                if chain[0] in aliases:
                    found.add(aliases[chain[0]] + chain[1:])
                    continue
                for i, name in enumerate(chain[1:], start=1):
                    if name in SUBMODULES and chain[i - 1] in ("nd", "nidaqmx", "_nd"):
                        found.add(chain[i:])
                        break
    return found


def _chain(node: ast.AST) -> tuple[str, ...]:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return (node.id, *reversed(names))
    return ()


def test_every_nidaqmx_path_the_driver_spells_exists() -> None:
    paths = module_paths_in_driver()
    assert ("constants", "TriggerType", "DIGITAL_EDGE") in paths and ("errors", "Error") in paths  # the scan works
    nd = import_nidaqmx()  # the driver's own import: the submodules it loads
    missing = []
    for chain in sorted(paths):
        obj: Any = nd
        for name in chain:
            if not hasattr(obj, name):
                missing.append(".".join(chain))
                break
            obj = getattr(obj, name)
    assert missing == []


@pytest.mark.parametrize(("model", "field", "enum_name"), [
    (NidaqLick.Params, "terminal", "TerminalConfiguration"),
    (NidaqFrameClock.Params, "input_config", "TerminalConfiguration"),
    (NidaqBall.Params, "decoding", "EncoderType"),
])
def test_config_choices_are_nidaqmx_enum_members(model: Any, field: str, enum_name: str) -> None:
    choices = typing.get_args(model.model_fields[field].annotation)
    real = getattr(nidaqmx.constants, enum_name)
    assert choices and all(c in real.__members__ for c in choices)
