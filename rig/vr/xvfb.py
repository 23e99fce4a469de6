"""A private X server (Xvfb) for running the GL window display without a monitor: tests, benchmarks,
headless rigs. Mesa gives GL windows on it through GLX (software rendering)."""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO


class XvfbError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM when the parent process exits (Linux), so a
    server left running (e.g. under a live QApplication, see gui.testing) never outlives its user."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Xvfb:
    """`with Xvfb(width, height) as display:` starts `Xvfb` on a free display number (chosen by the server
    itself through -displayfd) and stops it on exit. `display` is the DISPLAY string, e.g. ":3"."""

    def __init__(
        self, width: int = 1920, height: int = 1080, depth: int = 24, timeout_s: float = 10.0
    ) -> None:
        self.screen = f"{width}x{height}x{depth}"
        self.timeout_s = timeout_s
        self.display: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # Xvfb's stderr goes to a temporary file: a pipe that nobody reads could fill up and stall it.
        self._log: IO[bytes] | None = None
        self._runtime_dir: str | None = None  # XDG_RUNTIME_DIR for Qt children when the caller has none

    def start(self) -> str:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise XvfbError("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb)")
        read_fd, write_fd = os.pipe()
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [
                    exe,
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    self.screen,
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                preexec_fn=_die_with_parent,
            )
            os.close(write_fd)
            write_fd = -1
            self.display = ":" + self._read_display(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        return self.display

    def _read_display(self, fd: int) -> str:
        # Xvfb writes the display number followed by a newline once it accepts connections.
        assert self._proc is not None
        deadline = time.monotonic() + self.timeout_s
        text = b""
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise XvfbError(f"Xvfb did not report a display within {self.timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                raise XvfbError(f"Xvfb exited before reporting a display: {self._log_tail()}")
            text += chunk
        return text.decode().strip()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        log, self._log = self._log, None
        runtime, self._runtime_dir = self._runtime_dir, None
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)
        if log is not None:
            log.close()
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-500:]

    def env(self) -> dict[str, str]:
        """os.environ for a child process that should draw on this server."""
        if self.display is None:
            raise XvfbError("Xvfb is not running")
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        env["QT_QPA_PLATFORM"] = "xcb"
        if not env.get("XDG_RUNTIME_DIR"):
            if self._runtime_dir is None:
                self._runtime_dir = tempfile.mkdtemp(prefix="rig-xdg-")  # mode 0700, as Qt wants
            env["XDG_RUNTIME_DIR"] = self._runtime_dir
        return env

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
