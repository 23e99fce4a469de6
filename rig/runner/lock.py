"""One session per rig, and per device: the rig lock, and where an app finds a running session.

A session holds, for its whole life, a lock named for its rig (the config's name: how the app finds it) and
one lock per device its config opens (a serial port, an NI device), so two configs naming one board cannot
run at once either. Locks are advisory file locks that die with their process, so a crashed runner never
leaves a stale lock. Beside the rig lock an info file (JSON, replaced atomically) tells an app where to
attach: pid, endpoints, the credential file, the session folder, the animal.

Everything lives in a private lock directory of the user's (0700, owned by them, not a symlink), so another
user can neither squat a lock nor plant session info; `read_lock` also checks that the pid it names is alive
and that the lock is really held before anyone attaches.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rig.errors import BadInput, RigBusy
from rig.runner.filelock import FileLock, held_by_someone

__all__ = [
    "LOCK_DIR_ENV", "LockDirError", "LockInfo", "RigBusy", "RigLock", "busy_message", "credential_path",
    "default_lock_dir",
    "lock_paths", "private_dir", "read_lock",
]

LOCK_DIR_ENV = "RIG_LOCK_DIR"
MAX_INFO_BYTES = 64 * 1024


class LockDirError(BadInput):
    """The lock directory is not private to this user."""


class LockInfo(BaseModel):
    """The info file beside a rig's lock."""

    model_config = ConfigDict(extra="allow", frozen=True)

    rig: str
    pid: int | None = None
    started: str = ""
    starting: bool = False
    animal: str | None = None
    protocol: str | None = None
    source: str | None = None
    session: str | None = None
    telemetry: str | None = None
    commands: str | None = None
    credential: str | None = None  # the 0600 file holding this session's CURVE keys (rig.control.credentials)
    replay_of: str | None = None
    resources: list[str] = []


def default_lock_dir() -> Path:
    """$RIG_LOCK_DIR; else a per-user directory: $XDG_RUNTIME_DIR/corridor-rig, or corridor-rig-UID in the
    temp directory (POSIX), or %LOCALAPPDATA%/corridor-rig/run (Windows)."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    if sys.platform == "win32":  # pragma: no cover - Windows rigs
        return Path(os.environ.get("LOCALAPPDATA") or tempfile.gettempdir()) / "corridor-rig" / "run"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "corridor-rig"
    return Path(tempfile.gettempdir()) / f"corridor-rig-{os.geteuid()}"


def private_dir(path: Path) -> Path:
    """Create (0700) or check the lock directory: a real directory, owned by this user, closed to others."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        raise LockDirError(f"{path}: cannot create the lock directory: {e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LockDirError(f"{path}: the lock directory is not a directory (a symlink or a file?)")
    if sys.platform != "win32":
        if st.st_uid != os.geteuid():
            raise LockDirError(f"{path}: the lock directory belongs to uid {st.st_uid}, not to you "
                               f"(uid {os.geteuid()}); choose another with ${LOCK_DIR_ENV}")
        if st.st_mode & 0o077:
            raise LockDirError(f"{path}: the lock directory is open to other users "
                               f"(mode {stat.S_IMODE(st.st_mode):o}); `chmod 700 {path}` or choose another")
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "rig"


def lock_paths(rig_name: str, lock_dir: Path | None = None) -> tuple[Path, Path]:
    """(lock file, info file) of a rig."""
    d = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    stem = f"corridor-rig-{_safe(rig_name)}"
    return d / f"{stem}.lock", d / f"{stem}.json"


def credential_path(rig_name: str, lock_dir: Path) -> Path:
    """Where a session on this rig keeps its control credential (0600, removed when it ends)."""
    return Path(lock_dir) / f"corridor-rig-{_safe(rig_name)}.cred"


def resource_lock_path(resource: str, lock_dir: Path) -> Path:
    digest = hashlib.sha256(resource.encode()).hexdigest()[:16]
    return Path(lock_dir) / f"corridor-rig-device-{_safe(resource)[:40]}-{digest}.lock"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover
        return True  # os.kill(pid, 0) would terminate on Windows; the held lock is the proof there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_info(info_file: Path) -> LockInfo:
    st = os.lstat(info_file)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_INFO_BYTES:
        raise RigBusy(f"{info_file}: not a session info file (a link, a directory or too large)")
    if sys.platform != "win32" and st.st_uid != os.geteuid():
        raise RigBusy(f"{info_file}: session info belongs to another user")
    try:
        return LockInfo.model_validate_json(info_file.read_bytes())
    except ValidationError as e:
        raise RigBusy(f"{info_file}: unreadable session info ({e.error_count()} problems)") from None


def read_lock(rig_name: str, lock_dir: Path | None = None) -> LockInfo | None:
    """The info of the session running on this rig, or None when no live session holds it.

    Only a lock that a live process really holds counts; its info must be a regular file of this user's,
    naming that live pid. RigBusy when the rig is held but its info cannot be trusted."""
    d = private_dir(Path(lock_dir) if lock_dir is not None else default_lock_dir())
    lock_file, info_file = lock_paths(rig_name, d)
    if not held_by_someone(lock_file):
        return None
    for _ in range(20):  # the holder may be between taking the lock and writing the info
        try:
            info = _read_info(info_file)
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        if info.pid is None or not _pid_alive(info.pid):
            raise RigBusy(f"{info_file}: names pid {info.pid}, which is not running, while {lock_file} is held")
        return info
    return LockInfo(rig=rig_name, starting=True)


def busy_message(rig_name: str, info: LockInfo) -> str:
    who = ", ".join(f"{k} {v}" for k, v in (("pid", info.pid), ("animal", info.animal), ("protocol", info.protocol),
                                              ("started", info.started)) if v)
    return (f"rig {rig_name!r} is already running a session ({who or 'starting'}); "
            "stop that session first, or attach to it with `rig gui`")


class RigLock:
    """Held while a session runs. `acquire` raises RigBusy when a live process holds the rig or one of
    its devices. `resources` name the devices the session opens (rig.config.RigConfig.resources())."""

    def __init__(self, rig_name: str, lock_dir: Path, rig_lock: FileLock, devices: list[FileLock],
                 info: dict[str, Any]) -> None:
        self.rig_name = rig_name
        self.lock_dir = lock_dir
        self.lock_file, self.info_file = lock_paths(rig_name, lock_dir)
        self._rig = rig_lock
        self._devices = devices
        self.info = info

    @classmethod
    def acquire(cls, rig_name: str, lock_dir: Path | None = None, resources: tuple[str, ...] = (),
                **info: Any) -> RigLock:
        d = private_dir(Path(lock_dir) if lock_dir is not None else default_lock_dir())
        lock_file, _ = lock_paths(rig_name, d)
        rig = FileLock(lock_file)
        if not rig.try_acquire():
            held = read_lock(rig_name, d) or LockInfo(rig=rig_name, starting=True)
            raise RigBusy(busy_message(rig_name, held))
        taken: list[FileLock] = []
        try:
            for res in sorted(set(resources)):  # one order for everyone: no two sessions wait on each other
                lk = FileLock(resource_lock_path(res, d))
                if not lk.try_acquire():
                    holder = _device_holder(lk.path)
                    raise RigBusy(f"{res} is in use by another session{f' ({holder})' if holder else ''}; "
                                  "one session per device")
                lk.write(json.dumps({"pid": os.getpid(), "rig": rig_name, "resource": res}))
                taken.append(lk)
        except BaseException:
            for lk in taken:
                lk.release()
            rig.release()
            raise
        rig.write(f"{os.getpid()}\n")
        lock = cls(rig_name, d, rig, taken, {"rig": rig_name, "pid": os.getpid(),
                                            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                            "resources": sorted(set(resources))})
        lock.update(**info)
        return lock

    def update(self, **info: Any) -> None:
        self.info.update(info)
        LockInfo.model_validate(self.info)  # only what readers accept is ever written
        tmp = self.info_file.with_name(f".{self.info_file.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.info, default=str))
        os.replace(tmp, self.info_file)

    def release(self) -> None:
        if not self._rig.held:
            return
        try:
            self.info_file.unlink()
        except FileNotFoundError:
            pass
        for lk in self._devices:
            lk.release()
        self._rig.release()

    def __enter__(self) -> RigLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _device_holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text()[:4096])
        return f"rig {data.get('rig')!r}, pid {data.get('pid')}"
    except (OSError, ValueError, AttributeError):
        return ""
