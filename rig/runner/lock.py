"""One session per rig: a lock file per rig (an flock held for the process's lifetime, so a crashed runner
never leaves a stale lock that blocks the rig) refuses a second start. Beside it, an info file (JSON,
replaced atomically) tells an app where to attach: pid, endpoints, session folder, animal.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.errors import RigBusy

__all__ = ["LOCK_DIR_ENV", "RigBusy", "RigLock", "busy_message", "default_lock_dir", "lock_paths", "read_lock"]

LOCK_DIR_ENV = "RIG_LOCK_DIR"


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir())


def _safe(rig_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in rig_name) or "rig"


def lock_paths(rig_name: str, lock_dir: Path | None = None) -> tuple[Path, Path]:
    """(lock file, info file) of a rig."""
    d = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    stem = f"corridor-rig-{_safe(rig_name)}"
    return d / f"{stem}.lock", d / f"{stem}.json"


def _held_by_someone(lock_file: Path) -> bool:
    """True when a live process holds the lock (an flock dies with its process: no stale locks)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_lock(rig_name: str, lock_dir: Path | None = None) -> dict[str, Any] | None:
    """The info of the session running on this rig, or None when no live session holds it."""
    lock_file, info_file = lock_paths(rig_name, lock_dir)
    if not _held_by_someone(lock_file):
        return None
    for _ in range(20):  # the holder may be between creating the lock and writing the info
        try:
            return json.loads(info_file.read_text())
        except FileNotFoundError:
            time.sleep(0.01)
        except json.JSONDecodeError as e:
            raise RigBusy(f"{info_file}: unreadable session info ({e}) while {lock_file} is held") from None
    return {"rig": rig_name, "pid": None, "starting": True}


def busy_message(rig_name: str, info: dict[str, Any]) -> str:
    who = ", ".join(f"{k} {info[k]}" for k in ("pid", "animal", "protocol", "started") if info.get(k))
    return (f"rig {rig_name!r} is already running a session ({who or 'starting'}); "
            "stop that session first, or attach to it with `rig gui`")


@dataclass
class RigLock:
    """Held while the session runs. `acquire` raises RigBusy when a live process holds the rig."""

    rig_name: str
    lock_file: Path
    info_file: Path
    _fd: int
    info: dict[str, Any]

    @classmethod
    def acquire(cls, rig_name: str, lock_dir: Path | None = None, **info: Any) -> RigLock:
        lock_file, info_file = lock_paths(rig_name, lock_dir)
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                held = read_lock(rig_name, lock_dir) or {}
                raise RigBusy(busy_message(rig_name, held)) from None
            # The previous holder may have unlinked the file between our open and our flock: then we
            # hold a lock on a dead inode, and must try again with the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                lock = cls(rig_name, lock_file, info_file, fd,
                           {"rig": rig_name, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
                lock.update(**info)
                return lock
            os.close(fd)
        raise RigBusy(f"{lock_file}: could not take the rig lock (it keeps changing hands)")

    def update(self, **info: Any) -> None:
        self.info.update(info)
        tmp = self.info_file.with_name(f".{self.info_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.info, default=str))
        os.replace(tmp, self.info_file)

    def release(self) -> None:
        if self._fd < 0:
            return
        for p in (self.info_file, self.lock_file):  # unlink while holding the lock: nobody sees half a state
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RigLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
