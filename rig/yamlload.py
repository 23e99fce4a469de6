"""Safe YAML loading with line numbers, for protocol and rig-config files.

`load_yaml(path)` returns the document's data plus a map from key paths such as
``('corridors', 2, 'texture', 'source')`` to 1-based line numbers, so that a validation error found
later can be reported as FILE:LINE. The document is built here from the parser's events (not by
PyYAML's composer) so that hostile input is refused while it is read: oversized files, binary
content, several documents, deep nesting, alias bombs, unknown tags and duplicate keys all become a
`YamlError` carrying `Problem`s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig.errors import BadInput

# The C parser is ~10x faster; the pure-Python one behaves the same and is the fallback.
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}

# Field names used for problems that concern the file as a whole rather than one key.
FILE_FIELD = "<file>"
YAML_FIELD = "<yaml>"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file; `str()` gives the `FILE:LINE: field: message` line."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class LoadError(BadInput):
    """A file could not be loaded; `problems` says every reason found, each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "load error")


class YamlError(LoadError):
    """The file is not acceptable YAML (syntax, size, encoding, structure, duplicate keys...)."""


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile file from costing much: a real protocol is a few kB, depth ~6."""

    max_bytes: int = 1 << 20
    max_depth: int = 32
    max_aliases: int = 64
    max_nodes: int = 100_000  # counted with aliases expanded, so an alias bomb hits it early


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Loaded:
    """A loaded document: `data` (always a dict), `lines` (key path -> 1-based line) and `file`."""

    file: str
    data: dict[Any, Any]
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Line of `path`, or of its closest ancestor present in the file (e.g. for a missing key)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)


def format_path(path: Path_) -> str:
    """('corridors', 2, 'texture', 'source') -> 'corridors[2].texture.source'."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Loaded:
    """Read and parse one YAML file whose top level must be a mapping. Raises YamlError."""
    name = str(path)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise YamlError([Problem(name, 1, FILE_FIELD, "no such file")]) from None
    except OSError as e:
        raise YamlError([Problem(name, 1, FILE_FIELD, f"cannot read: {e.strerror or e}")]) from None
    if p.is_dir():
        raise YamlError([Problem(name, 1, FILE_FIELD, "is a directory, not a YAML file")])
    if not p.is_file():
        raise YamlError([Problem(name, 1, FILE_FIELD, "is not a regular file")])
    if st.st_size > limits.max_bytes:
        raise YamlError([_too_big(name, st.st_size, limits)])
    try:
        with open(p, "rb") as f:
            raw = f.read(limits.max_bytes + 1)  # the size may have changed since stat()
    except OSError as e:
        raise YamlError([Problem(name, 1, FILE_FIELD, f"cannot read: {e.strerror or e}")]) from None
    return load_yaml_bytes(raw, name, limits)


def load_yaml_bytes(raw: bytes | str, source: str = "<string>", limits: Limits = DEFAULT_LIMITS) -> Loaded:
    """Parse YAML given as bytes (must be UTF-8) or text; `source` names it in problems."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogatepass")
    if len(raw) > limits.max_bytes:
        raise YamlError([_too_big(source, len(raw), limits)])
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise YamlError([Problem(source, line, FILE_FIELD, "binary content (NUL byte), not YAML text")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        msg = f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})"
        raise YamlError([Problem(source, line, FILE_FIELD, msg)]) from None
    return _Builder(text, source, limits).build()


def _too_big(name: str, size: int, limits: Limits) -> Problem:
    return Problem(name, 1, FILE_FIELD, f"file is {size} bytes; the limit is {limits.max_bytes} bytes")


class _Abort(Exception):
    """Stops building at the first problem that makes the rest of the file meaningless."""


class _Builder:
    """Builds plain Python data from parser events, recording the line of every key and item."""

    def __init__(self, text: str, source: str, limits: Limits) -> None:
        self.text = text
        self.source = source
        self.limits = limits
        self.lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.aliases = 0
        self.nodes = 0
        self.loader: Any = None

    # -- errors ---------------------------------------------------------------------------------
    def _fail(self, line: int, fld: str, message: str) -> _Abort:
        self.problems.append(Problem(self.source, line, fld, message))
        return _Abort()

    def _yaml_problem(self, e: yaml.YAMLError) -> Problem:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        if mark is not None:
            line = mark.line + 1
        elif isinstance(e, yaml.reader.ReaderError):
            line = self.text.count("\n", 0, max(0, e.position)) + 1
        else:
            line = 1
        if isinstance(e, yaml.MarkedYAMLError):
            msg = "; ".join(s for s in (e.context, e.problem) if s) or str(e)
            ctx = e.context_mark
            if ctx is not None and mark is not None and ctx.line != mark.line:
                msg += f" (the construct started at line {ctx.line + 1})"
        elif isinstance(e, yaml.reader.ReaderError):
            msg = f"character {e.character!r} is not allowed in YAML text"
        else:
            msg = str(e)
        line = min(line, self.text.count("\n") + 1)  # libyaml may place end-of-file errors one line past it
        return Problem(self.source, line, YAML_FIELD, f"YAML syntax: {msg}")

    # -- driving the parser ------------------------------------------------------------------------
    def build(self) -> Loaded:
        try:
            self.loader = _Loader(self.text)  # the pure-Python reader checks characters right here
            data = self._document()
        except _Abort:
            data = None
        except yaml.YAMLError as e:
            self.problems.append(self._yaml_problem(e))
            data = None
        except RecursionError:
            self.problems.append(Problem(self.source, 1, YAML_FIELD, "nesting too deep"))
            data = None
        finally:
            if self.loader is not None:
                self.loader.dispose()
        if self.problems:
            raise YamlError(sorted(self.problems, key=lambda p: p.line))
        assert isinstance(data, dict)
        return Loaded(self.source, data, self.lines)

    def _next(self) -> Any:
        return self.loader.get_event()

    def _peek(self) -> Any:
        return self.loader.peek_event()

    def _document(self) -> dict[Any, Any]:
        self._next()  # StreamStart
        if isinstance(self._peek(), yaml.StreamEndEvent):
            raise self._fail(1, FILE_FIELD, "file is empty; expected a YAML mapping")
        self._next()  # DocumentStart
        first = self._peek()
        start_line = first.start_mark.line + 1
        self.lines[()] = start_line
        data = self._node((), 1)
        self._next()  # DocumentEnd
        extra = self._peek()
        if not isinstance(extra, yaml.StreamEndEvent):
            raise self._fail(
                extra.start_mark.line + 1,
                YAML_FIELD,
                "a second YAML document starts here; a protocol or config file holds exactly one",
            )
        if not isinstance(data, dict):
            kind = "nothing" if data is None else f"a {type(data).__name__}"
            raise self._fail(start_line, FILE_FIELD, f"the top level must be a mapping of keys, got {kind}")
        return data

    def _count(self, n: int, line: int) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            msg = f"document too large: more than {self.limits.max_nodes} values (aliases expanded)"
            raise self._fail(line, YAML_FIELD, msg)

    def _node(self, path: Path_, depth: int) -> Any:
        ev = self._next()
        line = ev.start_mark.line + 1
        where = format_path(path) or YAML_FIELD
        if isinstance(ev, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                raise self._fail(line, where, f"too many aliases (more than {self.limits.max_aliases})")
            if ev.anchor not in self.anchors:
                raise self._fail(line, where, f"alias *{ev.anchor} refers to no complete anchor &{ev.anchor}")
            value, size = self.anchors[ev.anchor]
            self._count(size, line)
            return value
        if depth > self.limits.max_depth:
            raise self._fail(line, YAML_FIELD, f"nesting deeper than {self.limits.max_depth} levels")
        before = self.nodes
        self._count(1, line)
        if isinstance(ev, yaml.ScalarEvent):
            value = self._scalar(ev, where)
        elif isinstance(ev, yaml.SequenceStartEvent):
            self._plain_tag(ev, where)
            value = self._sequence(path, depth)
        elif isinstance(ev, yaml.MappingStartEvent):
            self._plain_tag(ev, where)
            value = self._mapping(path, depth)
        else:  # the parser only yields the events above inside a document
            raise self._fail(line, where, f"unexpected YAML event {type(ev).__name__}")
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (value, self.nodes - before)
        return value

    def _plain_tag(self, ev: Any, where: str) -> None:
        if ev.tag not in _PLAIN_COLLECTION_TAGS:
            raise self._fail(ev.start_mark.line + 1, where, f"YAML tag {ev.tag} is not supported")

    def _scalar(self, ev: Any, where: str) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == MERGE_TAG:
            return _MergeKey()
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as e:
            raise self._fail(ev.start_mark.line + 1, where, f"cannot read value: {e.problem}") from None
        except (ValueError, OverflowError) as e:  # e.g. an impossible timestamp such as 2024-13-45
            raise self._fail(ev.start_mark.line + 1, where, f"cannot read value {ev.value!r}: {e}") from None

    def _sequence(self, path: Path_, depth: int) -> list[Any]:
        items: list[Any] = []
        while not isinstance(self._peek(), yaml.SequenceEndEvent):
            sub = (*path, len(items))
            self.lines[sub] = self._peek().start_mark.line + 1
            items.append(self._node(sub, depth + 1))
        self._next()
        return items

    def _mapping(self, path: Path_, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        key_lines: dict[Any, int] = {}
        merges: list[tuple[Any, int]] = []
        while not isinstance(self._peek(), yaml.MappingEndEvent):
            kev = self._peek()
            kline = kev.start_mark.line + 1
            if not isinstance(kev, yaml.ScalarEvent):
                what = "aliases" if isinstance(kev, yaml.AliasEvent) else "lists or maps"
                raise self._fail(
                    kline, format_path(path) or YAML_FIELD, f"keys must be plain values, not {what}"
                )
            key = self._node(path, depth + 1)
            if isinstance(key, _MergeKey):
                merges.append((self._node(path, depth + 1), kline))
                continue
            sub = (*path, key)
            if key in key_lines:
                msg = f"duplicate key (first given at line {key_lines[key]})"
                self.problems.append(Problem(self.source, kline, format_path(sub), msg))
                self._node(sub, depth + 1)  # read and drop the repeated value
                continue
            key_lines[key] = kline
            self.lines[sub] = kline
            out[key] = self._node(sub, depth + 1)
        self._next()
        for value, line in merges:  # `<<: *base`: keys given explicitly win over merged ones
            sources = value if isinstance(value, list) else [value]
            for src in sources:
                if not isinstance(src, dict):
                    raise self._fail(line, format_path(path) or YAML_FIELD, "'<<' merges only mappings")
                for k, v in src.items():
                    if k not in out:
                        out[k] = v
                        self.lines.setdefault((*path, k), line)
        return out


class _MergeKey:
    """Marks the YAML merge key `<<` while a mapping is built."""
