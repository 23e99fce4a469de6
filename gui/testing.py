"""Test support: a private X server for Qt, started before any QApplication exists.

(rig.vr.xvfb serves the GL display; this small one is the app's own, so GUI tests do not depend on it.)
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


class XvfbError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child before exec: have the kernel send SIGTERM when the parent process exits (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _qt_app_alive() -> bool:
    qt = sys.modules.get("PyQt5.QtWidgets")
    return qt is not None and qt.QApplication.instance() is not None


@contextmanager
def xvfb(width: int = 1600, height: int = 1000, timeout_s: float = 10.0) -> Iterator[str]:
    """Run `Xvfb` on a display number it picks itself (-displayfd); yields the DISPLAY string."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise XvfbError("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb); the GUI tests need it")
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
                                 "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=errors,
                                preexec_fn=_die_with_parent)
        os.close(write_fd)
        try:
            text, deadline = b"", time.monotonic() + timeout_s
            while not text.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    raise XvfbError(f"Xvfb reported no display within {timeout_s:g} s")
                chunk = os.read(read_fd, 64)
                if not chunk:
                    errors.seek(0)
                    raise XvfbError(f"Xvfb exited: {errors.read().decode(errors='replace')[-500:]}")
                text += chunk
            yield ":" + text.decode().strip()
        finally:
            os.close(read_fd)
            # Qt aborts the whole process (exit 1) when its X server vanishes under a live QApplication;
            # the server then ends with this process instead (see _die_with_parent).
            if not _qt_app_alive():
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def qt_display(width: int = 1600, height: int = 1000) -> Iterator[str | None]:
    """Point DISPLAY at a private Xvfb for the duration. When a QApplication exists already (another test
    module made it, on its own display), reuse that. Fails loudly without Xvfb: GUI tests never skip."""
    from PyQt5 import QtWidgets

    if QtWidgets.QApplication.instance() is not None:
        yield os.environ.get("DISPLAY")
        return
    old = os.environ.get("DISPLAY")
    with xvfb(width, height) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("QT_QPA_PLATFORM", None)
        try:
            yield display
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old
