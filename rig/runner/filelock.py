"""Portable advisory file locks that die with their process (flock on POSIX, msvcrt.locking on Windows).

A crashed runner never leaves a stale lock behind: the operating system drops the lock with the process.
"""

from __future__ import annotations

import os
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

if fcntl is not None:

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class FileLock:
    """An exclusive, non-blocking lock on one file, held until `release()` or the process ends."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (and nothing held) when another process does."""
        if self._fd >= 0:
            return True
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if not _try_lock(fd):
                os.close(fd)
                return False
            # The previous holder may have unlinked the file between our open and our lock: then we hold a
            # lock on a dead inode and must try again with the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)
        return False

    def write(self, text: str) -> None:
        if self._fd < 0:
            raise RuntimeError(f"{self.path}: lock not held")
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, text.encode())

    def release(self, unlink: bool = True) -> None:
        if self._fd < 0:
            return
        if unlink:  # unlink while holding the lock: nobody sees half a state
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


def held_by_someone(path: Path) -> bool:
    """True when a live process holds the lock on `path`."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)
