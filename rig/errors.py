"""The rig's exit codes and the root of its errors; each error carries the exit code the CLI returns for it.

Exit codes: 0 ok; 1 a fault (driver error, session not complete, check failed, replay diverged); 2 bad
input (protocol, config, session folder, message); 3 the rig is busy with another session; 130 stopped by
SIGINT/SIGTERM (the session closed cleanly, valve shut, marked incomplete).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAULT = 1
    BAD_INPUT = 2
    BUSY = 3
    SIGNAL = 130


class RigError(Exception):
    """Root of the rig's own errors. The CLI prints one line for it and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.FAULT


class BadInput(RigError):
    """A file, a folder, an option or a message the rig cannot accept: nothing was started."""

    exit_code = ExitCode.BAD_INPUT


class RigBusy(RigError):
    """Another live process holds the rig (one session per rig)."""

    exit_code = ExitCode.BUSY
