"""Raise the loop's scheduling priority for real-time sessions (what Psychtoolbox's Priority() does).

`loop_priority` in the rig config: `normal` leaves the process alone; `high` lowers its nice value (Windows:
HIGH_PRIORITY_CLASS); `realtime` asks Linux for SCHED_FIFO on the loop's thread (Windows: REALTIME_PRIORITY_CLASS,
which Windows grants as HIGH without administrator rights). On Linux both need privileges (root or
CAP_SYS_NICE); without them the session still runs, at normal priority, and says so in the log and the header.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

log = logging.getLogger(__name__)

Priority = Literal["normal", "high", "realtime"]

HIGH_NICE = -10
# Below the kernel's own threaded IRQ handlers (50), so device interrupts still get served; the kernel's
# RT throttling keeps a runaway loop from starving the machine completely.
FIFO_PRIORITY = 40


WINDOWS_CLASSES = {"high": 0x00000080, "realtime": 0x00000100}  # HIGH_ / REALTIME_PRIORITY_CLASS


def _raise_windows(priority: Priority) -> str:  # pragma: no cover - exercised on Windows rigs
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    if not kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), WINDOWS_CLASSES[priority]):
        err = ctypes.get_last_error()  # type: ignore[attr-defined]
        log.warning("could not raise the loop's priority to %s (Windows error %d); running at normal", priority, err)
        return f"normal ({priority} refused: Windows error {err})"
    return f"{priority} (Windows priority class 0x{WINDOWS_CLASSES[priority]:x})"


def raise_priority(priority: Priority) -> str:
    """Apply the priority to the calling thread; returns what was actually obtained (for the header)."""
    if priority == "normal":
        return "normal"
    if sys.platform == "win32":
        return _raise_windows(priority)
    try:
        if priority == "realtime":
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
            return f"realtime (SCHED_FIFO {FIFO_PRIORITY})"
        os.setpriority(os.PRIO_PROCESS, 0, HIGH_NICE)
        return f"high (nice {HIGH_NICE})"
    except (PermissionError, OSError, AttributeError) as e:
        log.warning("could not raise the loop's priority to %s (%s); running at normal priority", priority, e)
        return f"normal ({priority} refused: {e})"
