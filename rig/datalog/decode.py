"""Bounded reading of a session folder's files: which files are opened, how much is read, how deep and how
large a JSON value may be.

Every byte a reader takes from a session folder passes through here, so a damaged or hostile folder gives a
SessionError naming the file and what is wrong, never a traceback, a hang or an unbounded allocation:

- only regular files are opened: not directories, FIFOs or devices (opened without blocking, so a FIFO
  cannot wait forever for a writer), and never through a symbolic link (the writer makes none);
- a file larger than its limit is refused before anything is read (a sparse 100 GB file costs nothing);
- JSON: a line at most MAX_LINE_BYTES, nesting at most MAX_DEPTH levels, integers at most MAX_INT_DIGITS
  digits. NaN and +-Infinity are read (the writer writes them where a value is undefined); the schemas
  (rig.datalog.schema) say where a number must be finite.

The limits are far above anything the writer produces (docs/data-format.md, "Limits").
"""

from __future__ import annotations

import errno
import json
import json.scanner
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from rig.errors import BadInput

MAX_DEPTH = 32  # nesting of objects and arrays (the header's protocol and config need about 6)
MAX_INT_DIGITS = 20  # every integer the writer logs fits in 64 bits (at most 20 digits)
MAX_LINE_BYTES = 8 << 20  # one JSON line (a rejected mesoscope message, escaped, is at most ~6 MiB)
MAX_DOCUMENT_BYTES = 16 << 20  # header.json, footer.json, clock.json, sync_report.json
MAX_JSONL_BYTES = 4 << 30  # one JSON-lines file, whatever the session's length

# Read-only, never through a symbolic link, never blocking on a FIFO; not inherited by child processes.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


class SessionError(BadInput):
    """The folder is not a readable session (no header, bad header, unsupported format, damaged file)."""


class _TooLarge(ValueError):
    pass


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: Path) -> BinaryIO | None:
    """The file opened for reading, or None when nothing is at `path`. SessionError for anything that is
    there but is not a plain file, and for a file that cannot be opened (permissions)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise SessionError(f"{path}: a symbolic link (to {target}); session files are plain files and "
                               "links are not followed") from None
        raise SessionError(f"{path}: cannot be opened: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SessionError(f"{path}: {_kind_of(mode)}, not a file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def read_limited(f: BinaryIO, path: Path, limit: int, what: str = "") -> bytes:
    """The whole file, refused (SessionError) when it is larger than `limit` bytes; never reads past it."""
    size = file_size(f)
    if size > limit:
        raise SessionError(f"{path}: {size:,} bytes, more than {what or 'a session writes'} "
                           f"(at most {limit:,}): damaged")
    try:
        return f.read(limit + 1)[:limit]
    except OSError as e:
        raise SessionError(f"{path}: cannot be read: {e.strerror}") from None


def _bounded_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise _TooLarge(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


# Python's json (exact float round trip, NaN and Infinity read), with integers bounded before conversion.
_DECODER = json.JSONDecoder(parse_int=_bounded_int)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]


def deeper_than(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests objects/arrays more than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def decode_json(text: str, where: str, brackets: int | None = None, what: str = "valid JSON") -> Any:
    """One JSON value, within the depth and integer limits; SessionError naming `where` otherwise ("not
    {what}" when it is not JSON at all). `brackets` (the count of '[' and '{' in the text, when the caller
    has it) skips the depth walk when it cannot exceed MAX_DEPTH."""
    try:
        try:
            # The scanner alone (what decode() runs after two whitespace matches): the writer's lines have
            # no surrounding whitespace. Anything else takes the full path, for its verdict and message.
            value, end = _SCAN(text, 0)
            if end != len(text):
                raise StopIteration(end)
        except StopIteration:
            value = _DECODER.decode(text)
    except RecursionError:
        raise SessionError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except _TooLarge as e:
        raise SessionError(f"{where}: {e}") from None
    except ValueError as e:  # json.JSONDecodeError, and int() refusals
        raise SessionError(f"{where}: not {what} ({e})") from None
    if brackets is None:
        brackets = text.count("[") + text.count("{")
    if brackets > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        raise SessionError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return value


def read_document(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> Any | None:
    """A whole-file JSON document (header, footer, clock, sync report); None when the file does not exist."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        raw = read_limited(f, path, limit, "a session's JSON documents hold")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SessionError(f"{path}: not UTF-8 text ({e})") from None
    return decode_json(text, str(path))
