"""Load protocol and rig-config files into validated objects, reporting problems as FILE:LINE.

Every problem found (YAML or schema) becomes a `Problem` whose `str()` is
``FILE:LINE: field: message``, with `field` the dotted key path (``corridors[2].texture.source``).
`load_protocol` / `load_config` raise `ProtocolError` / `ConfigError` (both `LoadError`s holding the
problems); `validate_files` collects the problems of many files without raising.
"""

from __future__ import annotations

import os
import reprlib
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from drivers.registry import Registry
from rig.config import DriverEntry, RigConfig, driver_registry
from rig.protocol import FieldErrors, Protocol
from rig.yamlload import (
    FILE_FIELD,
    Loaded,
    LoadError,
    Path_,
    Problem,
    YamlError,
    format_path,
    load_yaml,
    load_yaml_bytes,
)

__all__ = [
    "DEFAULT_CONFIG",
    "REPO_ROOT",
    "ConfigError",
    "LoadError",
    "Problem",
    "ProtocolError",
    "YamlError",
    "default_config_path",
    "dump_config",
    "find_file",
    "dump_protocol",
    "load_any",
    "load_config",
    "load_protocol",
    "protocol_from_dict",
    "protocol_from_yaml",
    "validate_files",
]


REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: shipped protocols/ and config/ live here
DEFAULT_CONFIG = Path("config/sim.yaml")  # the built-in simulated rig


def find_file(name: str | os.PathLike[str], folder: str) -> Path:
    """A path as given; else the shipped file of that name in `folder` (`demo` -> protocols/demo.yaml)."""
    p = Path(name)
    if p.exists():
        return p
    for candidate in (REPO_ROOT / folder / p, REPO_ROOT / folder / f"{p}.yaml"):
        if candidate.exists():
            return candidate
    return p  # let the loader report it missing, with its name


def config_path(name: str | os.PathLike[str] | None) -> Path:
    """The config a command was given (a path, or a shipped config's name), else the default one."""
    return find_file(name, "config") if name else default_config_path()


def default_config_path() -> Path:
    """The rig config used when none is named: ./config/sim.yaml when there is one, else the shipped one."""
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else REPO_ROOT / DEFAULT_CONFIG


class ProtocolError(LoadError):
    """A protocol file (or dict) is not a valid protocol."""


class ConfigError(LoadError):
    """A rig-config file is not a valid rig configuration."""


M = TypeVar("M", bound=BaseModel)


def load_protocol(path: str | os.PathLike[str]) -> Protocol:
    """Read and validate a protocol YAML file; raises ProtocolError listing every problem."""
    return _validate(_read(path, ProtocolError), Protocol, ProtocolError)


def load_config(path: str | os.PathLike[str], registry: Registry | None = None) -> RigConfig:
    """Read and validate a rig config; driver parameters are checked against `registry` (default:
    the process's registry of installed drivers). Raises ConfigError listing every problem."""
    return _validate(_read(path, ConfigError), RigConfig, ConfigError, registry)


def is_config_data(data: dict[Any, Any]) -> bool:
    """A rig config has a `drivers` key at the top level; anything else is read as a protocol."""
    return "drivers" in data


def load_any(path: str | os.PathLike[str], registry: Registry | None = None) -> Protocol | RigConfig:
    """Load a file as a config when its top level has `drivers`, else as a protocol."""
    loaded = _read(path, LoadError)
    if is_config_data(loaded.data):
        return _validate(loaded, RigConfig, ConfigError, registry)
    return _validate(loaded, Protocol, ProtocolError)


def validate_files(
    paths: Iterable[str | os.PathLike[str]], registry: Registry | None = None
) -> list[Problem]:
    """Every problem in every file, in file order then line order; an empty list means all valid."""
    problems: list[Problem] = []
    for path in paths:
        try:
            load_any(path, registry)
        except LoadError as e:
            problems.extend(e.problems)
    return problems


def protocol_from_dict(d: Any, source: str = "<api>") -> Protocol:
    """Validate a protocol given as plain data (the scripting API); problems carry line 0."""
    if not isinstance(d, dict):
        got = type(d).__name__
        raise ProtocolError(
            [Problem(source, 0, FILE_FIELD, f"a protocol must be a mapping of keys, got {got}")]
        )
    return _validate(Loaded(source, d, {(): 0}), Protocol, ProtocolError)


def protocol_from_yaml(text: str | bytes, source: str = "<text>") -> Protocol:
    """Validate a protocol given as YAML text (e.g. from an editor); same checks as a file."""
    try:
        loaded = load_yaml_bytes(text, source)
    except YamlError as e:
        raise ProtocolError(e.problems) from None
    return _validate(loaded, Protocol, ProtocolError)


def dump_protocol(protocol: Protocol) -> str:
    """YAML text of the resolved protocol (every default filled in); loads back to an equal Protocol."""
    return _dump(protocol)


def dump_config(config: RigConfig) -> str:
    """YAML text of the resolved rig config, driver parameters as written in the file."""
    return _dump(config)


def _dump(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=100)


# -- internals ---------------------------------------------------------------------------------------


def _read(path: str | os.PathLike[str], error: type[LoadError]) -> Loaded:
    try:
        return load_yaml(path)
    except YamlError as e:
        raise error(e.problems) from None


def _validate(loaded: Loaded, model: type[M], error: type[LoadError], registry: Registry | None = None) -> M:
    context = {"registry": registry} if registry is not None else None
    refused = _scalar_type_issues(loaded.data, model, (), registry)
    located: list[tuple[Path_, str]] = list(refused.items())
    try:
        # A refused value is replaced by one no field type accepts, so it fails its own field and nothing
        # built on it (a cross-field check, e.g. a cue beyond a 1 cm texture) is reported at another line.
        result = model.model_validate(_replace(loaded.data, refused) if refused else loaded.data, context=context)
    except ValidationError as e:
        located += [(p, m) for p, m in _locate(e, model, ()) if p not in refused]
    else:
        if not located:
            return result
    problems = [Problem(loaded.file, loaded.line_of(p), format_path(p) or "(top level)", m) for p, m in located]
    # One line per problem, in file order; the same problem twice (e.g. via an alias) is said once.
    unique = sorted(set(problems), key=lambda p: (p.line, p.field, p.message))
    raise error(unique) from None


def _locate(err: ValidationError, model: type[BaseModel], prefix: Path_) -> list[tuple[Path_, str]]:
    """(data path, message) for each error in `err`, raised while validating `model` at `prefix`."""
    out: list[tuple[Path_, str]] = []
    for e in err.errors():
        path, owner, at = _walk(tuple(e["loc"]), model)
        path = (*prefix, *path)
        ctx = e.get("ctx") or {}
        if e["type"] == "too_short" and ctx.get("actual_length") == 0 and e.get("input"):
            continue  # pydantic's echo of item errors reported on their own: "not 0" items would mislead
        cause = ctx.get("error")
        if e["type"] == "value_error" and isinstance(cause, FieldErrors):
            for issue in cause.issues:
                where = (*path, *issue.loc)
                if issue.nested is not None and issue.nested_model is not None:
                    out.extend(_locate(issue.nested, issue.nested_model, where))
                else:
                    out.append((where, issue.message))
            continue
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # Point at the discriminating key itself (`movement.rule`), not at its parent.
            disc = str(e["ctx"]["discriminator"]).strip("'")
            path = (*path, disc)
        out.append((path, _message(e, owner, at)))
    return out


# -- booleans are never numbers, numbers never booleans -------------------------------------------------
#
# Pydantic's lax mode reads `true` as 1 for a number field and `1` (or "yes") as true for a boolean field:
# `texture_length_cm: true` became a 1 cm texture, and the error a user then saw was a consequence found
# at another line. Before validation the data is walked along the model's declared types (driver
# parameters through the driver registry); a boolean where only numbers are allowed, a number or a string
# where only a boolean is, and a string where only numbers are, is refused at its own key.


class _Refused:
    """Stands in for a refused value during validation: no field type accepts it."""

    def __repr__(self) -> str:
        return "<refused>"


def _replace(data: Any, refused: dict[Path_, str]) -> Any:
    def walk(value: Any, path: Path_) -> Any:
        if path in refused:
            return _Refused()
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    return walk(data, ())


def _scalar_kinds(tp: Any) -> set[str] | None:
    """{'int', 'number', 'bool', 'str', 'other'} a declared type accepts; None for models and containers."""
    tp = _unwrap_annotated(tp)
    if _is_union(tp):
        kinds: set[str] = set()
        for a in get_args(tp):
            if a is type(None):
                continue
            k = _scalar_kinds(a)
            if k is None:
                return None
            kinds |= k
        return kinds
    if tp is bool:
        return {"bool"}
    if tp is int:
        return {"int"}
    if tp is float:
        return {"number"}
    if tp is str:
        return {"str"}
    if get_origin(tp) is Literal:
        return {"other"}
    if _is_model(tp) or get_origin(tp) in (tuple, list, set, frozenset, dict):
        return None
    return {"other"}


def _unwrap_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _scalar_message(value: Any, kinds: set[str]) -> str | None:
    if "other" in kinds:
        return None
    numeric = kinds & {"int", "number"}
    what = "a valid number" if "number" in kinds else "a valid integer"
    if isinstance(value, bool):
        if "bool" not in kinds and numeric:
            return f"should be {what}, got {value!r} (a boolean is not a number)"
        return None
    if isinstance(value, int | float):
        if kinds == {"bool"}:
            return f"should be true or false, got {_short(value)} (a number is not a boolean)"
        return None
    if isinstance(value, str):
        if numeric and kinds <= {"int", "number"}:
            return f"should be {what}, got {_short(value)} (a string, not a number)"
        if kinds == {"bool"}:
            return f"should be true or false, got {_short(value)} (a string, not a boolean)"
    return None


def _scalar_type_issues(data: Any, tp: Any, path: Path_, registry: Registry | None) -> dict[Path_, str]:
    """Every refused scalar under `data` declared as `tp`: {path: message}."""
    out: dict[Path_, str] = {}

    def walk(value: Any, tp: Any, path: Path_) -> None:
        tp = _unwrap_annotated(tp)
        kinds = _scalar_kinds(tp)
        if kinds is not None:
            msg = _scalar_message(value, kinds)
            if msg is not None:
                out[path] = msg
            return
        if _is_union(tp):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [_unwrap(a) for a in members if _is_model(_unwrap(a))]
            if isinstance(value, dict) and models:
                chosen = _pick_member(value, models)
                if chosen is not None:
                    walk(value, chosen, path)
            elif isinstance(value, list):
                seqs = [a for a in members if get_origin(_unwrap_annotated(a)) in (tuple, list, set, frozenset)]
                if len(seqs) == 1:
                    walk(value, seqs[0], path)
            return
        if _is_model(tp):
            if not isinstance(value, dict):
                return
            if tp is DriverEntry:
                _driver_params(value, path)
                return
            for key, sub in value.items():
                field = tp.model_fields.get(key) if isinstance(key, str) else None
                if field is not None:
                    walk(sub, field.annotation, (*path, key))
            return
        origin, args = get_origin(tp), get_args(tp)
        if origin in (tuple, list, set, frozenset) and isinstance(value, list) and args:
            for i, item in enumerate(value):
                if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                    if i >= len(args):
                        return
                    walk(item, args[i], (*path, i))
                else:
                    walk(item, args[0], (*path, i))
        elif origin is dict and isinstance(value, dict) and len(args) == 2:
            for key, sub in value.items():
                walk(sub, args[1], (*path, key))

    def _driver_params(value: dict[Any, Any], path: Path_) -> None:
        role, kind = (path[-1] if path else None), value.get("type")
        if not isinstance(role, str) or not isinstance(kind, str):
            return
        try:
            reg = registry if registry is not None else driver_registry()
            params = reg.spec(role, kind).params
        except (KeyError, ImportError):
            return  # the model's own validation reports an unknown role or type
        walk({k: v for k, v in value.items() if k != "type"}, params, path)

    walk(data, tp, path)
    return out


def _pick_member(value: dict[Any, Any], models: list[type[BaseModel]]) -> type[BaseModel] | None:
    """The union member a mapping is meant for: the one whose tag it gives (e.g. movement `rule`)."""
    if len(models) == 1:
        return models[0]
    for m in models:
        for name, f in m.model_fields.items():
            if get_origin(f.annotation) is Literal and len(get_args(f.annotation)) == 1:
                if value.get(name) == get_args(f.annotation)[0]:
                    return m
    return None


def _message(e: Any, owner: type[BaseModel] | None, at: Any) -> str:
    kind = e["type"]
    ctx = e.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = ", ".join(owner.model_fields) if owner is not None else "?"
        return f"unknown key; allowed keys: {allowed}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{_short(e['input'])} is not allowed; allowed values: {ctx['expected']}"
    if kind == "union_tag_invalid":
        return f"{_short(ctx['tag'])} is not allowed; allowed values: {ctx['expected_tags']}"
    if kind == "union_tag_not_found":
        tags = ", ".join(repr(t) for t in _union_tags(at))
        return f"required key is missing; allowed values: {tags}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    msg = str(e["msg"])
    if msg.startswith("Input should"):
        msg = "should" + msg[len("Input should") :]
    inp = e.get("input")
    if isinstance(inp, str | int | float | bool) or inp is None:
        msg += f", got {_short(inp)}"
    return msg


def _short(value: Any) -> str:
    r = reprlib.Repr()
    r.maxstring = r.maxother = 60
    return r.repr(value)


def _walk(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[Path_, type[BaseModel] | None, Any]:
    """Turn a pydantic error location into the path in the data, following the model's types.

    Returns (data path, the model that owns the last key or None, the type found at the end). Union
    tags that pydantic puts into locations (`('movement', 'gated', 'speed')`) are not keys in the
    file and are dropped.
    """
    path: list[Any] = []
    owner: type[BaseModel] | None = None
    cur: Any = root
    for part in loc:
        cur = _unwrap(cur)
        members = _model_members(cur)
        if len(members) > 1:
            match = next((m for m in members if part in _tags_of(m) or part == m.__name__), None)
            if match is not None:
                cur = match
                continue
        if _is_model(cur):
            owner = cur
            field = cur.model_fields.get(part) if isinstance(part, str) else None
            path.append(part)
            cur = field.annotation if field is not None else None
            continue
        owner = None
        path.append(part)
        origin, args = get_origin(cur), get_args(cur)
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                cur = args[0]
            else:
                cur = args[part] if isinstance(part, int) and 0 <= part < len(args) else None
        elif origin in (list, set, frozenset) and args:
            cur = args[0]
        elif origin is dict and len(args) == 2:
            cur = args[1]
        else:
            cur = None
    return tuple(path), owner, _unwrap(cur)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds the data."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if _is_union(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _model_members(tp: Any) -> list[type[BaseModel]]:
    if not _is_union(tp):
        return []
    return [_unwrap(a) for a in get_args(tp) if _is_model(_unwrap(a))]


def _tags_of(model: type[BaseModel]) -> tuple[Any, ...]:
    """Single-value Literal fields of a model: the values a discriminator can select it by."""
    tags: list[Any] = []
    for f in model.model_fields.values():
        if get_origin(f.annotation) is Literal and len(get_args(f.annotation)) == 1:
            tags.extend(get_args(f.annotation))
    return tuple(tags)


def _union_tags(tp: Any) -> list[Any]:
    return [t for m in _model_members(tp) for t in _tags_of(m)]
